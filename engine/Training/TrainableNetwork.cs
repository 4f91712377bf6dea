using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Training;

/// <summary>
/// A layer graph being trained: its parameters (mutable, with gradients), the batch-norm mode, and
/// forward / forward-backward passes over pooled buffers. Not thread-safe: one loop drives it.
/// Networks (<see cref="TrainableNetwork"/>) and generators (<see cref="ImageGenerator"/>) are such graphs.
/// </summary>
public abstract class TrainableGraph : IDisposable
{
    private readonly ILayer _root;
    private readonly BufferPool _pool;

    protected TrainableGraph(ILayer root, ParameterStore parameters, TrainingMode mode)
    {
        _root = root;
        Parameters = parameters;
        Mode = mode;
        _pool = new BufferPool(parameters.Kernels);
    }

    public ParameterStore Parameters { get; }
    public TrainingMode Mode { get; }
    public IKernels Kernels => Parameters.Kernels;

    /// <summary>Outputs without recording a backward (evaluation, sampling, or a quick look while training).</summary>
    public float[] Forward(ReadOnlySpan<float> input, Shape4 shape)
    {
        using var pass = new Pass(_pool);
        return pass.Download(_root.Forward(pass, pass.Upload(input, shape), null));
    }

    /// <summary>
    /// Forward, then <paramref name="loss"/> maps the outputs to (loss, ∂loss/∂outputs), then backward:
    /// parameter gradients are added into each <see cref="Parameter.Gradient"/>. Returns the loss and the outputs.
    /// </summary>
    public (double Loss, float[] Outputs) ForwardBackward(ReadOnlySpan<float> input, Shape4 shape, Func<float[], (double Loss, float[] OutputGradient)> loss)
    {
        using var recorded = Record(input, shape);
        var (value, dOut) = loss(recorded.Outputs);
        recorded.Backward(dOut);
        return (value, recorded.Outputs);
    }

    /// <summary>
    /// A forward pass whose backward is run later, once the caller has worked out ∂loss/∂outputs — e.g. from
    /// another network that consumes these outputs (a generator feeding a student or a discriminator).
    /// <see cref="RecordedPass.Backward"/> adds the parameter gradients and returns ∂loss/∂input.
    /// </summary>
    public RecordedPass Record(ReadOnlySpan<float> input, Shape4 shape)
    {
        var pass = new Pass(_pool);
        try
        {
            var tape = new Tape();
            var y = _root.Forward(pass, pass.Upload(input, shape), tape);
            return new RecordedPass(pass, tape, y, shape);
        }
        catch
        {
            pass.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        _pool.Dispose();
        Parameters.Dispose();
        DisposeResources();
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees what a graph holds beside its parameters (e.g. constant weights of fixed layers).</summary>
    protected virtual void DisposeResources() { }
}

/// <summary>One recorded forward pass of a <see cref="TrainableGraph"/>: its outputs, and its backward, run at most once.</summary>
public sealed class RecordedPass : IDisposable
{
    private readonly Pass _pass;
    private readonly Tape _tape;
    private readonly Tensor _output;
    private readonly Shape4 _inputShape;
    private bool _done, _disposed;

    internal RecordedPass(Pass pass, Tape tape, Tensor output, Shape4 inputShape)
    {
        (_pass, _tape, _output, _inputShape) = (pass, tape, output, inputShape);
        Outputs = pass.Download(output);
    }

    public float[] Outputs { get; }
    public Shape4 OutputShape => _output.Shape;

    /// <summary>Backward from ∂loss/∂outputs: parameter gradients are added into the parameters; returns ∂loss/∂input (shape of the input).</summary>
    public float[] Backward(ReadOnlySpan<float> outputGradient)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_done) throw new InvalidOperationException("This pass has been backpropagated already.");
        if (outputGradient.Length != Outputs.Length) throw new ArgumentException($"{outputGradient.Length} output gradients for {Outputs.Length} outputs.");
        _done = true;
        var dx = _tape.Backward(_pass.Upload(outputGradient, _output.Shape));
        if (dx.Shape != _inputShape) throw new InvalidOperationException($"The backward gave an input gradient of {dx.Shape} for an input of {_inputShape}.");
        return _pass.Download(dx);
    }

    public void Dispose()
    {
        _disposed = true;
        _pass.Dispose();
    }
}

/// <summary>
/// A ResNet being trained: batch-norm unfolded (batch statistics in training mode).
/// <see cref="Export"/> gives the tensors under the names the inference builders take, so a
/// trained network is saved as a weight file and served like any converted one.
/// </summary>
public sealed class TrainableNetwork : TrainableGraph
{
    private TrainableNetwork(ArchitectureDescriptor architecture, ILayer root, ParameterStore parameters, TrainingMode mode) : base(root, parameters, mode)
        => Architecture = architecture;

    public ArchitectureDescriptor Architecture { get; }

    /// <summary>
    /// A torchvision ResNet with torchvision's initialisation (conv: Kaiming normal, fan-out; BN γ = 1,
    /// β = 0; fc: uniform ±1/√fan-in), seeded: the same seed gives the same weights everywhere.
    /// </summary>
    public static TrainableNetwork ResNet(IKernels kernels, ArchitectureDescriptor a, ulong seed)
    {
        if (a.Kind != NetworkKind.ResNet) throw new ArgumentException($"Not a ResNet: {a}.");
        var rng = new Data.SeededRandom(seed);
        var store = new ParameterStore(kernels);
        var mode = new TrainingMode();
        try
        {
            ILayer[] ConvBn(string conv, string bn, int cin, int cout, int k, int stride, int pad, bool relu)
            {
                var w = rng.Normals(cout * cin * k * k, MathF.Sqrt(2f / (cout * k * k)));
                ILayer[] layers = [new TrainConv2d(store, conv, cin, cout, k, stride, pad, bias: false, w), new TrainBatchNorm(store, bn, cout, mode)];
                return relu ? [.. layers, new LeakyReluLayer(0f)] : layers;
            }
            var layers = new List<ILayer>();
            if (a.Stem == ResNetStem.ImageNet)
            {
                layers.AddRange(ConvBn("conv1", "bn1", a.InputChannels, a.Width, 7, 2, 3, relu: true));
                layers.Add(new Pool2dLayer(PoolKind.Max, 3, 2, 1));
            }
            else layers.AddRange(ConvBn("conv1", "bn1", a.InputChannels, a.Width, 3, 1, 1, relu: true));
            foreach (var b in a.ResNetBlocks())
            {
                string p = b.Prefix;
                ILayer[] body = b.Bottleneck
                    ? [.. ConvBn($"{p}.conv1", $"{p}.bn1", b.InPlanes, b.Width, 1, 1, 0, true), .. ConvBn($"{p}.conv2", $"{p}.bn2", b.Width, b.Width, 3, b.Stride, 1, true),
                       .. ConvBn($"{p}.conv3", $"{p}.bn3", b.Width, b.OutChannels, 1, 1, 0, false)]
                    : [.. ConvBn($"{p}.conv1", $"{p}.bn1", b.InPlanes, b.Width, 3, b.Stride, 1, true), .. ConvBn($"{p}.conv2", $"{p}.bn2", b.Width, b.Width, 3, 1, 1, false)];
                ILayer? shortcut = b.HasDownsample
                    ? new Sequential(ConvBn($"{p}.downsample.0", $"{p}.downsample.1", b.InPlanes, b.OutChannels, 1, b.Stride, 0, false))
                    : null;
                layers.Add(new TrainResidual(new Sequential(body), shortcut));
            }
            int inplanes = a.ResNetFeatures;
            layers.Add(new AdaptiveAvgPoolLayer(1, 1));
            float bound = 1f / MathF.Sqrt(inplanes);
            layers.Add(new TrainDense(store, "fc", inplanes, a.Outputs, rng.Uniforms(a.Outputs * inplanes, bound), rng.Uniforms(a.Outputs, bound)));
            return new TrainableNetwork(a, new Sequential(layers), store, mode);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>Every tensor under its torchvision name, running statistics included (what the inference builders take).</summary>
    public TensorSet Export() => Parameters.ToTensorSet();
}

/// <summary>Seeded initial values for parameters, drawn from the project's own generator (same numbers everywhere).</summary>
internal static class RandomTensors
{
    public static float[] Uniforms(this Random rng, int count, float bound)
    {
        var a = new float[count];
        for (int i = 0; i < count; i++) a[i] = (float)((2 * rng.NextDouble() - 1) * bound);
        return a;
    }

    /// <summary>Box–Muller normals with standard deviation <paramref name="std"/>.</summary>
    public static float[] Normals(this Random rng, int count, float std)
    {
        var a = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble(); // u1 in (0, 1]: the log is finite
            a[i] = (float)BoxMuller.Normal(u1, u2, std);
        }
        return a;
    }
}
