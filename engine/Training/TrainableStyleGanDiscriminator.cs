using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Training;

/// <summary>
/// Per-channel bias then leaky-ReLU, trainable (StyleGAN adds the bias of a down-sampling conv after its
/// 2×2 average pool). Backward: dx = dy·lrelu'(y), and the bias gradient is Σ_{n,p} dx per channel.
/// </summary>
public sealed class TrainBiasLeakyRelu : ILayer
{
    private readonly Parameter _bias;
    private readonly float _slope;
    private readonly int _c;

    public TrainBiasLeakyRelu(ParameterStore store, string name, int channels, float slope, ReadOnlySpan<float> bias)
    {
        (_c, _slope) = (channels, slope);
        _bias = store.Add($"{name}.bias", [channels], ParameterRole.Bias, true, bias);
    }

    public Shape4 OutputShape(Shape4 x) => x.C == _c ? x : throw new ArgumentException($"Bias expects {_c} channels, got {x}.");

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var s = OutputShape(x.Shape);
        int hw = s.H * s.W;
        var y = pass.New(s);
        pass.K.BiasLeakyReluForward(s.N, _c, hw, _slope, x.Buffer, _bias.Value, y.Buffer);
        tape?.Record(dy =>
        {
            var dx = pass.New(s);
            pass.K.LeakyReluBackward(y.Length, _slope, y.Buffer, dy.Buffer, dx.Buffer);
            var db = pass.New(new Shape4(1, 1, 1, _c));
            pass.K.ChannelSum(s.N, _c, hw, dx.Buffer, db.Buffer);
            pass.K.Axpy(_c, 1f, db.Buffer, _bias.Gradient!);
            return dx;
        });
        return y;
    }
}

/// <summary>
/// The StyleGAN v1 discriminator of <see cref="StyleGanDiscriminatorBuilder"/> as a trainable graph,
/// for any resolution the builder takes. Parameters are held in their effective (run-time) form: weights are
/// initialised N(0, 1)·gain/√fan_in, which is genforce's equalised-learning-rate initialisation (stored
/// weights N(0, 1)), biases 0. The fused conv-downscale of sides ≥ 128 is trained as its exact equivalent,
/// 3×3 conv then 2×2 average pool. <see cref="Export"/> divides the scale back out, so the tensors are
/// genforce's stored ones and the inference builder (or <c>ModelFiles</c>) loads them.
/// </summary>
public sealed class TrainableStyleGanDiscriminator : TrainableGraph
{
    private const float Slope = 0.2f;
    private static readonly float Gain = MathF.Sqrt(2f);
    private readonly ParameterBuffers _constants;
    private readonly Dictionary<string, float> _scales;

    private TrainableStyleGanDiscriminator(ArchitectureDescriptor architecture, ILayer root, ParameterStore parameters, ParameterBuffers constants, Dictionary<string, float> scales)
        : base(root, parameters, new TrainingMode())
    {
        (Architecture, _constants, _scales) = (architecture, constants, scales);
    }

    public ArchitectureDescriptor Architecture { get; }

    /// <summary>Each weight's equalised-lr scale gain/√fan_in: effective = stored · scale (biases are not scaled).</summary>
    public IReadOnlyDictionary<string, float> WeightScales => _scales;

    /// <summary>A seeded discriminator of architecture <paramref name="a"/> (its minibatch-stddev group is the one trained with).</summary>
    public static TrainableStyleGanDiscriminator Create(IKernels kernels, ArchitectureDescriptor a, ulong seed)
    {
        if (a.Kind != NetworkKind.StyleGanDiscriminator) throw new ArgumentException($"Not a StyleGAN discriminator: {a}.");
        var rng = new Data.SeededRandom(seed);
        var store = new ParameterStore(kernels);
        var constants = new ParameterBuffers(kernels);
        var scales = new Dictionary<string, float>(StringComparer.Ordinal);
        try
        {
            float[] Weight(string name, int count, int fanIn, float gain)
            {
                float scale = gain / MathF.Sqrt(fanIn);
                scales[$"{name}.weight"] = scale;
                return rng.Normals(count, scale);
            }
            ILayer[] Conv(string name, int cin, int cout, int k, int pad) =>
                [new TrainConv2d(store, name, cin, cout, k, 1, pad, bias: true, Weight(name, cout * cin * k * k, cin * k * k, Gain), new float[cout]), new LeakyReluLayer(Slope)];
            TrainDense Dense(string name, int inF, int outF, float gain) => new(store, name, inF, outF, Weight(name, outF * inF, inF, gain), new float[outF]);

            int Nf(int res) => StyleGanDiscriminatorBuilder.Channels(a, res);
            var layers = new List<ILayer>();
            layers.AddRange(Conv("input0", a.InputChannels, Nf(a.Resolution), 1, 0));
            int index = 0;
            for (int res = a.Resolution; res > 4; res /= 2, index += 2)
            {
                int cin = Nf(res), cout = Nf(res / 2);
                layers.AddRange(Conv($"layer{index}", cin, cin, 3, 1));
                layers.Add(StyleGanDiscriminatorBuilder.Blur(constants, cin));
                string down = $"layer{index + 1}";
                layers.Add(new TrainConv2d(store, down, cin, cout, 3, 1, 1, bias: false, Weight(down, cout * cin * 9, cin * 9, Gain)));
                layers.Add(new Pool2dLayer(PoolKind.Average, 2, 2));
                layers.Add(new TrainBiasLeakyRelu(store, down, cout, Slope, new float[cout]));
            }
            int c4 = Nf(4), cd = Math.Min(a.FmapBase / 2, a.FmapMax);
            layers.Add(new MinibatchStddevLayer(a.MbstdGroupSize));
            layers.AddRange(Conv($"layer{index}", c4 + 1, c4, 3, 1));
            layers.Add(Dense($"layer{index + 1}", c4 * 16, cd, Gain));
            layers.Add(new LeakyReluLayer(Slope));
            layers.Add(Dense($"layer{index + 2}", cd, 1, 1f));
            return new TrainableStyleGanDiscriminator(a, new Sequential(layers), store, constants, scales);
        }
        catch
        {
            constants.Dispose();
            store.Dispose();
            throw;
        }
    }

    /// <summary>Every tensor under its genforce name in the stored (unscaled) form the inference builder takes.</summary>
    public TensorSet Export()
    {
        var set = Parameters.ToTensorSet();
        foreach (var (name, scale) in _scales)
        {
            var t = set[name];
            var stored = new float[t.Data.Length];
            for (int i = 0; i < stored.Length; i++) stored[i] = t.Data[i] / scale;
            set[name] = new HostTensor(t.Shape, stored);
        }
        return set;
    }

    protected override void DisposeResources() => _constants.Dispose();
}
