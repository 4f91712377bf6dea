using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;

namespace ModelGuardian.Weights;

/// <summary>
/// Seeded random weights for any architecture, recorded into a <see cref="TensorSet"/> under the
/// names the network asks for. Used where no trained weights exist yet (the `mg grad` default,
/// oracle tests, benchmarks). The stream is <see cref="SplitMix64"/>, so a seed means the same
/// weights on every machine and .NET version.
/// </summary>
public sealed class RandomWeights(ulong seed) : IParameterSource
{
    private SplitMix64 _stream = new(seed);

    public TensorSet Tensors { get; } = new();

    /// <summary>Builds <paramref name="architecture"/> with seeded random weights.</summary>
    public static (Network Network, TensorSet Tensors) Create(ModelGuardian.Kernels.IKernels kernels, ArchitectureDescriptor architecture, ulong seed)
    {
        var source = new RandomWeights(seed);
        return (Network.Create(kernels, architecture, source), source.Tensors);
    }

    public float[] Take(string name, int[] shape, ParameterRole role)
    {
        if (Tensors.Contains(name)) return Tensors[name].Data;
        int count = shape.Aggregate(1, (a, b) => a * b);
        int fanIn = shape.Length > 1 ? count / shape[0] : 1;
        var data = new float[count];
        for (int i = 0; i < count; i++)
        {
            data[i] = role switch
            {
                // He-normal keeps activations of deep ReLU nets in range; a StyleGAN's equalised-lr
                // scaling is applied by the builder on top, as for real (unit-normal) StyleGAN weights.
                ParameterRole.ConvWeight or ParameterRole.DenseWeight when IsStyleGanName(name) => Normal(),
                ParameterRole.ConvWeight or ParameterRole.DenseWeight => Normal() * MathF.Sqrt(2f / fanIn),
                ParameterRole.Bias => 0.1f * Normal(),
                // Inside residual blocks γ is kept small, as in a trained ResNet, whose residual branches add
                // corrections rather than doubling the stream: with γ ~ 1 and eval-mode statistics that do not
                // renormalise, a random ResNet-50's stream grows ~2^16 and its input gradient becomes chaotic
                // (fp32 rounding flips ReLUs and moves ~1% of it), which no fp32 engine can match to 1e-3.
                ParameterRole.BatchNormWeight when name.StartsWith("layer", StringComparison.Ordinal) => 0.1f + 0.3f * Uniform(),
                ParameterRole.BatchNormWeight => 0.5f + Uniform(),
                ParameterRole.BatchNormBias => 0.1f * Normal(),
                ParameterRole.BatchNormMean => 0.1f * Normal(),
                ParameterRole.BatchNormVariance => 0.5f + Uniform(),
                _ => Normal(),
            };
        }
        Tensors[name] = HostTensor.Create(data, shape);
        return data;
    }

    // genforce StyleGAN names are "input{k}.weight" and "layer{k}.weight" with no further dots.
    private static bool IsStyleGanName(string name)
        => (name.StartsWith("input", StringComparison.Ordinal) || name.StartsWith("layer", StringComparison.Ordinal)) && name.Count(c => c == '.') == 1;

    /// <summary>Uniform in [0, 1).</summary>
    private float Uniform() => _stream.NextSingle();

    private float Normal()
    {
        double u1 = ((_stream.Next() >> 11) + 1.0) / (1UL << 53), u2 = (_stream.Next() >> 11) / (double)(1UL << 53);
        return (float)BoxMuller.Normal(u1, u2);
    }
}
