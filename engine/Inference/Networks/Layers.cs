using ModelGuardian.Engine.Core;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Networks;

// Layers compose the kernels of IKernels into forward passes and record their backward-to-input
// on a tape. Weights are uploaded once, owned by the network (ParameterBuffers) and never
// written after load, which is what makes a loaded network safe to call from many threads.

/// <summary>Device copies of a network's parameters, disposed with the network.</summary>
internal sealed class ParameterBuffers(IKernels kernels) : IDisposable
{
    private readonly List<DeviceBuffer> _buffers = new();

    public IKernels Kernels { get; } = kernels;

    public DeviceBuffer Upload(ReadOnlySpan<float> values)
    {
        var b = Kernels.AllocateConstant(values);
        _buffers.Add(b);
        return b;
    }

    public void Dispose()
    {
        foreach (var b in _buffers) b.Dispose();
        _buffers.Clear();
    }
}

/// <summary>
/// conv2d with optional bias (batch-norm already folded in at load) and optionally a fused
/// leaky-ReLU (slope 0 = ReLU), whose backward then runs on the gradient first.
/// </summary>
internal sealed class Conv2dLayer : ILayer
{
    private readonly DeviceBuffer _weight;
    private readonly DeviceBuffer? _bias;

    public Conv2dLayer(ParameterBuffers parameters, float[] weight, float[]? bias, int cin, int cout, int kernel, int stride, int pad, int groups = 1, float? leakyReluSlope = null)
    {
        LeakyReluSlope = leakyReluSlope;
        if (weight.Length != cout * (cin / groups) * kernel * kernel)
            throw new ArgumentException($"Conv2d weight has {weight.Length} values, expected {cout}×{cin / groups}×{kernel}×{kernel}.");
        if (bias is not null && bias.Length != cout) throw new ArgumentException($"Conv2d bias has {bias.Length} values, expected {cout}.");
        (Cin, Cout, Kernel, Stride, Pad, Groups) = (cin, cout, kernel, stride, pad, groups);
        _weight = parameters.Upload(weight);
        _bias = bias is null ? null : parameters.Upload(bias);
    }

    public int Cin { get; }
    public int Cout { get; }
    public int Kernel { get; }
    public int Stride { get; }
    public int Pad { get; }
    public int Groups { get; }
    public float? LeakyReluSlope { get; }

    private Conv2dShape Geometry(Shape4 x) => Conv2dShape.Square(x.N, x.C, x.H, x.W, Cout, Kernel, Stride, Pad, Groups);

    public Shape4 OutputShape(Shape4 x)
    {
        if (x.C != Cin) throw new ArgumentException($"Conv2d expects {Cin} input channels, got {x.C} (input {x}).");
        var g = Geometry(x);
        g.Validate();
        return new Shape4(x.N, Cout, g.OutH, g.OutW);
    }

    /// <summary>
    /// y = lrelu(conv(x) + bias + residual) in one kernel, for the last conv of a residual block. Only the
    /// conv's own backward is recorded: the caller owns the activation's, since the shortcut shares it.
    /// </summary>
    internal Tensor ForwardWithResidual(Pass pass, Tensor x, Tensor residual, float slope, Tape? tape)
    {
        if (LeakyReluSlope is not null) throw new InvalidOperationException("A conv with its own activation cannot take a residual.");
        var y = pass.New(OutputShape(x.Shape));
        if (residual.Shape != y.Shape) throw new ArgumentException($"Residual {residual.Shape} does not match the conv output {y.Shape}.");
        var g = Geometry(x.Shape);
        pass.K.Conv2dForward(g, x.Buffer, _weight, _bias, y.Buffer, slope, residual.Buffer);
        tape?.Record(dy =>
        {
            var dx = pass.New(x.Shape);
            pass.K.Conv2dBackwardInput(g, dy.Buffer, _weight, dx.Buffer);
            return dx;
        });
        return y;
    }

    // Inference on channel-blocked activations (BlockedRun): the same convolution, input and output blocked.
    /// <summary>This conv's blocked output layout for a blocked input, or null where the backend cannot run it blocked.</summary>
    internal BlockedLayout? BlockedOutput(IBlockedKernels k, BlockedLayout x)
    {
        if (x.C != Cin) return null;
        var g = Geometry(BlockedRun.ShapeOf(x));
        if (g.H + 2 * g.PadH < g.KH || g.W + 2 * g.PadW < g.KW || !k.SupportsBlockedConv2d(g, x)) return null;
        return new BlockedLayout(x.N, Cout, g.OutH, g.OutW, BlockedRun.Border, BlockedLayout.Vector);
    }

    /// <summary>y = lrelu(conv(x) + bias [+ residual]) on blocked tensors; the slope is this conv's own unless a residual's is given.</summary>
    internal BlockedTensor ForwardBlocked(Pass pass, IBlockedKernels k, BlockedTensor x, BlockedTensor? residual = null, float? residualSlope = null)
    {
        var layout = BlockedOutput(k, x.Layout) ?? throw new InvalidOperationException($"Conv {Cin}→{Cout} {Kernel}×{Kernel}/{Stride} cannot run on {x.Layout}.");
        var y = pass.NewBlocked(layout);
        k.BlockedConv2dForward(Geometry(BlockedRun.ShapeOf(x.Layout)), x.Layout, layout, x.Buffer, _weight, _bias, y.Buffer, residual is null ? LeakyReluSlope : residualSlope, residual?.Buffer);
        return y;
    }

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var y = pass.New(OutputShape(x.Shape));
        var g = Geometry(x.Shape);
        pass.K.Conv2dForward(g, x.Buffer, _weight, _bias, y.Buffer, LeakyReluSlope);
        tape?.Record(dy =>
        {
            if (LeakyReluSlope is { } slope) pass.K.LeakyReluBackward(y.Length, slope, y.Buffer, dy.Buffer, dy.Buffer);
            var dx = pass.New(x.Shape);
            pass.K.Conv2dBackwardInput(g, dy.Buffer, _weight, dx.Buffer);
            return dx;
        });
        return y;
    }
}

/// <summary>Leaky-ReLU (slope 0 = ReLU), in place: its backward needs only the output.</summary>
internal sealed class LeakyReluLayer(float slope) : ILayer
{
    public Shape4 OutputShape(Shape4 input) => input;

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        pass.K.LeakyReluForward(x.Length, slope, x.Buffer, x.Buffer);
        tape?.Record(dy =>
        {
            pass.K.LeakyReluBackward(x.Length, slope, x.Buffer, dy.Buffer, dy.Buffer);
            return dy;
        });
        return x;
    }
}

/// <summary>Per-channel bias then leaky-ReLU (StyleGAN adds its bias after the pool).</summary>
internal sealed class BiasLeakyReluLayer : ILayer
{
    private readonly DeviceBuffer _bias;
    private readonly float _slope;

    public BiasLeakyReluLayer(ParameterBuffers parameters, float[] bias, float slope)
    {
        _bias = parameters.Upload(bias);
        _slope = slope;
        Channels = bias.Length;
    }

    public int Channels { get; }

    public Shape4 OutputShape(Shape4 x) =>
        x.C == Channels ? x : throw new ArgumentException($"Bias expects {Channels} channels, got {x.C}.");

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var s = OutputShape(x.Shape);
        pass.K.BiasLeakyReluForward(s.N, s.C, s.H * s.W, _slope, x.Buffer, _bias, x.Buffer);
        tape?.Record(dy =>
        {
            pass.K.LeakyReluBackward(x.Length, _slope, x.Buffer, dy.Buffer, dy.Buffer);
            return dy;
        });
        return x;
    }
}

internal enum PoolKind { Max, Average }

/// <summary>Max or average pooling (PyTorch semantics, count_include_pad = true).</summary>
internal sealed class Pool2dLayer(PoolKind kind, int kernel, int stride, int pad = 0) : ILayer
{
    private Pool2dShape Geometry(Shape4 x) => Pool2dShape.Square(x.N, x.C, x.H, x.W, kernel, stride, pad);

    /// <summary>The blocked output layout (max pooling on blocks of 16 only), or null.</summary>
    internal BlockedLayout? BlockedOutput(BlockedLayout x)
    {
        if (kind != PoolKind.Max || x.Block != BlockedLayout.Vector) return null;
        var g = Geometry(BlockedRun.ShapeOf(x));
        if (x.H + 2 * pad < kernel || x.W + 2 * pad < kernel || 2 * pad > kernel) return null;
        return new BlockedLayout(x.N, x.C, g.OutH, g.OutW, BlockedRun.Border, BlockedLayout.Vector);
    }

    internal BlockedTensor ForwardBlocked(Pass pass, IBlockedKernels k, BlockedTensor x)
    {
        var layout = BlockedOutput(x.Layout) ?? throw new InvalidOperationException($"This pooling cannot run on {x.Layout}.");
        var y = pass.NewBlocked(layout);
        k.BlockedMaxPool2dForward(Geometry(BlockedRun.ShapeOf(x.Layout)), x.Layout, layout, x.Buffer, y.Buffer);
        return y;
    }

    public Shape4 OutputShape(Shape4 x)
    {
        var g = Geometry(x);
        g.Validate();
        return new Shape4(x.N, x.C, g.OutH, g.OutW);
    }

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var y = pass.New(OutputShape(x.Shape));
        var g = Geometry(x.Shape);
        if (kind == PoolKind.Max) pass.K.MaxPool2dForward(g, x.Buffer, y.Buffer);
        else pass.K.AvgPool2dForward(g, true, x.Buffer, y.Buffer);
        tape?.Record(dy =>
        {
            var dx = pass.New(x.Shape);
            if (kind == PoolKind.Max) pass.K.MaxPool2dBackward(g, x.Buffer, dy.Buffer, dx.Buffer);
            else pass.K.AvgPool2dBackward(g, true, dy.Buffer, dx.Buffer);
            return dx;
        });
        return y;
    }
}

/// <summary>Adaptive average pooling to (outH, outW); (1, 1) is the global pool of a ResNet.</summary>
internal sealed class AdaptiveAvgPoolLayer(int outH, int outW) : ILayer
{
    /// <summary>Whether this is a global pool, the exit of a blocked run.</summary>
    internal bool IsGlobal => outH == 1 && outW == 1;

    public Shape4 OutputShape(Shape4 x) => new(x.N, x.C, outH, outW);

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var s = x.Shape;
        var y = pass.New(OutputShape(s));
        pass.K.AdaptiveAvgPool2dForward(s.N, s.C, s.H, s.W, outH, outW, x.Buffer, y.Buffer);
        tape?.Record(dy =>
        {
            var dx = pass.New(s);
            pass.K.AdaptiveAvgPool2dBackward(s.N, s.C, s.H, s.W, outH, outW, dy.Buffer, dx.Buffer);
            return dx;
        });
        return y;
    }
}

/// <summary>Flatten (C, H, W) into features, then a dense layer: y = x·Wᵀ + b.</summary>
internal sealed class DenseLayer : ILayer
{
    private readonly DeviceBuffer _weight;
    private readonly DeviceBuffer? _bias;

    public DenseLayer(ParameterBuffers parameters, float[] weight, float[]? bias, int inFeatures, int outFeatures)
    {
        if (weight.Length != inFeatures * outFeatures) throw new ArgumentException($"Dense weight has {weight.Length} values, expected {outFeatures}×{inFeatures}.");
        if (bias is not null && bias.Length != outFeatures) throw new ArgumentException($"Dense bias has {bias.Length} values, expected {outFeatures}.");
        (In, Out) = (inFeatures, outFeatures);
        _weight = parameters.Upload(weight);
        _bias = bias is null ? null : parameters.Upload(bias);
    }

    public int In { get; }
    public int Out { get; }

    public Shape4 OutputShape(Shape4 x) => x.PerImage == In
        ? new Shape4(x.N, Out, 1, 1)
        : throw new ArgumentException($"Dense expects {In} input features, got {x.PerImage} (input {x}).");

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var y = pass.New(OutputShape(x.Shape));
        int n = x.Shape.N;
        pass.K.DenseForward(n, In, Out, x.Buffer, _weight, _bias, y.Buffer);
        tape?.Record(dy =>
        {
            var dx = pass.New(x.Shape);
            pass.K.DenseBackwardInput(n, In, Out, dy.Buffer, _weight, dx.Buffer);
            return dx;
        });
        return y;
    }
}

/// <summary>StyleGAN's minibatch standard deviation: one extra channel per image.</summary>
internal sealed class MinibatchStddevLayer(int groupSize, float epsilon = 1e-8f) : ILayer
{
    public int GroupSize { get; } = groupSize;

    public Shape4 OutputShape(Shape4 x) => x with { C = x.C + 1 };

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var s = x.Shape;
        int g = Math.Min(GroupSize, s.N); // TF: G = min(group size, N)
        if (s.N % g != 0)
            throw new ArgumentException($"Minibatch-stddev: batch size {s.N} is not divisible by the group size {g}; use a batch that is, or per-image mode (group size 1).");
        var y = pass.New(OutputShape(s));
        pass.K.MinibatchStddevForward(s.N, s.C, s.H, s.W, g, epsilon, x.Buffer, y.Buffer);
        tape?.Record(dy =>
        {
            var dx = pass.New(s);
            pass.K.MinibatchStddevBackward(s.N, s.C, s.H, s.W, g, epsilon, x.Buffer, dy.Buffer, dx.Buffer);
            return dx;
        });
        return y;
    }
}

/// <summary>Layers one after another.</summary>
internal sealed class Sequential(IReadOnlyList<ILayer> layers) : ILayer
{
    public IReadOnlyList<ILayer> Layers { get; } = layers;

    public Shape4 OutputShape(Shape4 input)
    {
        var s = input;
        foreach (var l in Layers) s = l.OutputShape(s);
        return s;
    }

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var input = x;
        int start = 0;
        // An inference pass on a backend with blocked kernels runs what it can of the network blocked (BlockedRun).
        if (tape is null && pass.K is IBlockedKernels { BlockedInference: true } blocked && BlockedRun.Find(blocked, Layers, x.Shape) is { } run)
        {
            x = run.Forward(pass, blocked, x);
            start = run.End;
        }
        foreach (var l in Layers.Skip(start))
        {
            var y = l.Forward(pass, x, tape);
            if (tape is null && x.Buffer != input.Buffer) ReleaseIfDead(pass, x, y);
            x = y;
        }
        return x;
    }

    /// <summary>Without a tape, a consumed intermediate is dead unless the result lives in its buffer (a view, an in-place layer).</summary>
    internal static void ReleaseIfDead(Pass pass, Tensor consumed, Tensor result)
    {
        if (consumed.Buffer != result.Buffer) pass.Release(consumed);
    }
}

/// <summary>
/// y = activation(body(x) + shortcut(x)); shortcut null = identity (a ResNet block). The body ends with
/// an activation-free conv, whose store adds the shortcut and applies the activation in one pass.
/// </summary>
internal sealed class ResidualLayer : ILayer
{
    private readonly IReadOnlyList<ILayer> _head;
    private readonly Conv2dLayer _last;
    private readonly ILayer? _shortcut;
    private readonly float _slope;

    public ResidualLayer(IReadOnlyList<ILayer> body, ILayer? shortcut, float slope = 0f)
    {
        if (body.Count == 0 || body[^1] is not Conv2dLayer { LeakyReluSlope: null } last)
            throw new ArgumentException("A residual body must end with a convolution that has no activation of its own.");
        (_head, _last, _shortcut, _slope) = (body.Take(body.Count - 1).ToArray(), last, shortcut, slope);
    }

    public Shape4 OutputShape(Shape4 input)
    {
        var a = input;
        foreach (var l in _head) a = l.OutputShape(a);
        a = _last.OutputShape(a);
        var b = _shortcut?.OutputShape(input) ?? input;
        if (a != b) throw new ArgumentException($"Residual branches disagree: {a} vs {b}.");
        return a;
    }

    /// <summary>The block's blocked output layout, or null when a branch cannot run blocked or the branches disagree.</summary>
    internal BlockedLayout? BlockedOutput(IBlockedKernels k, BlockedLayout x)
    {
        BlockedLayout? h = x;
        foreach (var layer in _head) h = h is { } l ? BlockedRun.Output(k, layer, l) : null;
        var main = h is { } last ? _last.BlockedOutput(k, last) : null;
        var side = _shortcut is null ? x : BlockedRun.Output(k, _shortcut, x);
        return main is not null && main == side ? main : null;
    }

    internal BlockedTensor ForwardBlocked(Pass pass, IBlockedKernels k, BlockedTensor x)
    {
        var residual = _shortcut is null ? x : BlockedRun.Forward(pass, k, _shortcut, x);
        var h = x;
        foreach (var layer in _head)
        {
            var next = BlockedRun.Forward(pass, k, layer, h);
            if (h != x) pass.Release(h);
            h = next;
        }
        var y = _last.ForwardBlocked(pass, k, h, residual, _slope);
        if (h != x) pass.Release(h);
        if (residual != x && residual != h) pass.Release(residual);
        return y;
    }

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var bodyTape = tape is null ? null : new Tape();
        var shortcutTape = tape is null ? null : new Tape();
        var residual = _shortcut is null ? x : _shortcut.Forward(pass, x, shortcutTape);
        var h = x;
        foreach (var layer in _head)
        {
            var next = layer.Forward(pass, h, bodyTape);
            if (tape is null && h.Buffer != x.Buffer) Sequential.ReleaseIfDead(pass, h, next);
            h = next;
        }
        var y = _last.ForwardWithResidual(pass, h, residual, _slope, bodyTape);
        if (tape is null)
        {
            if (h.Buffer != x.Buffer) Sequential.ReleaseIfDead(pass, h, y);
            if (residual.Buffer != x.Buffer && residual.Buffer != h.Buffer) Sequential.ReleaseIfDead(pass, residual, y);
        }
        tape?.Record(dy =>
        {
            pass.K.LeakyReluBackward(y.Length, _slope, y.Buffer, dy.Buffer, dy.Buffer);
            // Both branches only read dy: each one's first backward step is a conv's, which writes a new tensor.
            var dxMain = bodyTape!.Backward(dy);
            var dxSide = _shortcut is null ? dy : shortcutTape!.Backward(dy);
            pass.K.Add(x.Length, dxMain.Buffer, dxSide.Buffer, dxMain.Buffer);
            return dxMain;
        });
        return y;
    }
}
