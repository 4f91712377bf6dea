using ModelGuardian.Engine.Core;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Networks;

/// <summary>A network's outputs and the gradient of Σ outputᵢ·gᵢ with respect to its input.</summary>
public sealed record InputGradientResult(float[] Outputs, float[] InputGradient);

/// <summary>
/// A loaded network on one backend: immutable after construction and safe to call from many
/// threads at once (each call runs in its own <see cref="Pass"/> with pooled buffers).
/// </summary>
public sealed class Network : IDisposable
{
    private readonly ILayer _root;
    private readonly ParameterBuffers _parameters;
    private readonly BufferPool _pool;
    private volatile bool _disposed;

    internal Network(ArchitectureDescriptor architecture, ILayer root, ParameterBuffers parameters)
    {
        Architecture = architecture;
        _root = root;
        _parameters = parameters;
        _pool = new BufferPool(parameters.Kernels);
    }

    public ArchitectureDescriptor Architecture { get; }
    public IKernels Kernels => _parameters.Kernels;

    /// <summary>Builds <paramref name="architecture"/> on <paramref name="kernels"/> from named weights.</summary>
    public static Network Create(IKernels kernels, ArchitectureDescriptor architecture, IParameterSource source)
        => architecture.Kind switch
        {
            NetworkKind.ResNet => ResNetBuilder.Build(kernels, architecture, source),
            NetworkKind.StyleGanDiscriminator => StyleGanDiscriminatorBuilder.Build(kernels, architecture, source),
            NetworkKind.ImageGenerator => throw new ArgumentException($"{architecture} is an image generator, not a network to serve: load it with GeneratorFiles.Load (ModelGuardian.Training)."),
            _ => throw new ArgumentException($"Unsupported network kind {architecture.Kind}."),
        };

    /// <summary>As <see cref="Create(IKernels, ArchitectureDescriptor, IParameterSource)"/>, strictly from a tensor set.</summary>
    public static Network Create(IKernels kernels, ArchitectureDescriptor architecture, TensorSet tensors)
    {
        var source = new TensorSetSource(tensors);
        var net = Create(kernels, architecture, source);
        try { source.ThrowIfIncomplete(); }
        catch { net.Dispose(); throw; }
        return net;
    }

    public Shape4 OutputShape(Shape4 input) => _root.OutputShape(input);

    /// <summary>Outputs (N, Outputs) for input (N, C, H, W) in row-major NCHW.</summary>
    public float[] Forward(ReadOnlySpan<float> input, Shape4 shape)
    {
        CheckInput(input, shape);
        using var pass = new Pass(_pool);
        var x = pass.Upload(input, shape);
        return pass.Download(_root.Forward(pass, x, tape: null));
    }

    /// <summary>
    /// Forward, then backward to the input of Σ outputᵢ·gᵢ; <paramref name="outputGradient"/> empty
    /// means g = 1 everywhere, i.e. the gradient of the sum of the outputs.
    /// </summary>
    public InputGradientResult ForwardWithInputGradient(ReadOnlySpan<float> input, Shape4 shape, ReadOnlySpan<float> outputGradient = default)
    {
        CheckInput(input, shape);
        using var pass = new Pass(_pool);
        var tape = new Tape();
        var x = pass.Upload(input, shape);
        var y = _root.Forward(pass, x, tape);
        var outputs = pass.Download(y);
        var dy = pass.New(y.Shape);
        if (outputGradient.IsEmpty) pass.K.Fill(dy.Buffer, dy.Length, 1f);
        else if (outputGradient.Length != dy.Length)
            throw new ArgumentException($"Output gradient has {outputGradient.Length} values, the output {y.Shape} has {dy.Length}.");
        else pass.K.Upload(outputGradient, dy.Buffer);
        var dx = tape.Backward(dy);
        return new InputGradientResult(outputs, pass.Download(dx));
    }

    private void CheckInput(ReadOnlySpan<float> input, Shape4 shape)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var a = Architecture;
        if (shape.N < 1) throw new ArgumentException($"Batch size must be ≥ 1, got {shape.N}.");
        if (shape.C != a.InputChannels) throw new ArgumentException($"{a} expects {a.InputChannels} input channels, got {shape.C} (input {shape}).");
        if (a.Kind == NetworkKind.StyleGanDiscriminator && (shape.H != a.Resolution || shape.W != a.Resolution))
            throw new ArgumentException($"{a} expects {a.Resolution}×{a.Resolution} inputs, got {shape.H}×{shape.W}.");
        if (shape.H < a.MinimumInputSide || shape.W < a.MinimumInputSide)
            throw new ArgumentException($"Input {shape.H}×{shape.W} is smaller than {a} allows (at least {a.MinimumInputSide}×{a.MinimumInputSide}).");
        if (input.Length != shape.Length) throw new ArgumentException($"Input has {input.Length} values, shape {shape} needs {shape.Length}.");
        for (int i = 0; i < input.Length; i++)
            if (!float.IsFinite(input[i]))
                throw new ArgumentException($"Input contains {input[i]} at index {i} (image {i / shape.PerImage}); inputs must be finite.");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _pool.Dispose();
        _parameters.Dispose();
    }
}
