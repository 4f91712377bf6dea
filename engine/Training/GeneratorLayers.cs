using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Training;

/// <summary>Nearest or bilinear resize to a fixed size (generators up-sample with it).</summary>
public sealed class ResizeLayer(int outH, int outW, ResizeMode mode) : ILayer
{
    public Shape4 OutputShape(Shape4 x) => x with { H = outH, W = outW };

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var s = new ResizeShape(x.Shape.N, x.Shape.C, x.Shape.H, x.Shape.W, outH, outW, mode);
        var y = pass.New(OutputShape(x.Shape));
        pass.K.ResizeForward(s, x.Buffer, y.Buffer);
        tape?.Record(dy =>
        {
            var dx = pass.New(x.Shape);
            pass.K.ResizeBackward(s, dy.Buffer, dx.Buffer);
            return dx;
        });
        return y;
    }
}

/// <summary>A view of the same values under another (C, H, W) — e.g. a dense layer's features as 8×8 maps.</summary>
public sealed class ReshapeLayer(int c, int h, int w) : ILayer
{
    public Shape4 OutputShape(Shape4 x) => x.PerImage == c * h * w ? new Shape4(x.N, c, h, w) : throw new ArgumentException($"Cannot view {x} as {c}×{h}×{w}.");

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var input = x.Shape;
        tape?.Record(dy => new Tensor(dy.Buffer, input));
        return new Tensor(x.Buffer, OutputShape(input));
    }
}

/// <summary>Element-wise logistic sigmoid.</summary>
public sealed class SigmoidLayer : ILayer
{
    public Shape4 OutputShape(Shape4 x) => x;

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var y = pass.New(x.Shape);
        pass.K.SigmoidForward(x.Length, x.Buffer, y.Buffer);
        tape?.Record(dy =>
        {
            var dx = pass.New(x.Shape);
            pass.K.SigmoidBackward(y.Length, y.Buffer, dy.Buffer, dx.Buffer);
            return dx;
        });
        return y;
    }
}

/// <summary>
/// Transposed convolution (PyTorch ConvTranspose2d, weight (Cin, Cout, K, K), no bias): the input
/// gradient of the convolution that maps its output back to its input. So its forward is that
/// conv's backward-to-input, its backward-to-input that conv's forward, and its weight gradient
/// that conv's weight gradient with the roles of x and dy exchanged — no new kernel.
/// </summary>
public sealed class TrainConvTranspose2d : ILayer
{
    private readonly Parameter _weight;
    private readonly int _cin, _cout, _kernel, _stride, _pad;

    public TrainConvTranspose2d(ParameterStore store, string name, int cin, int cout, int kernel, int stride, int pad, ReadOnlySpan<float> weight)
    {
        (_cin, _cout, _kernel, _stride, _pad) = (cin, cout, kernel, stride, pad);
        _weight = store.Add($"{name}.weight", [cin, cout, kernel, kernel], ParameterRole.ConvWeight, true, weight);
    }

    public Shape4 OutputShape(Shape4 x)
    {
        if (x.C != _cin) throw new ArgumentException($"Transposed conv expects {_cin} channels, got {x}.");
        return new Shape4(x.N, _cout, (x.H - 1) * _stride - 2 * _pad + _kernel, (x.W - 1) * _stride - 2 * _pad + _kernel);
    }

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var outShape = OutputShape(x.Shape);
        // The mirrored conv: input (N, Cout, OH, OW) → output (N, Cin, H, W), weight (Cin, Cout, K, K) as PyTorch stores a transposed conv's.
        var conv = Conv2dShape.Square(x.Shape.N, _cout, outShape.H, outShape.W, _cin, _kernel, _stride, _pad);
        var y = pass.New(outShape);
        pass.K.Conv2dBackwardInput(conv, x.Buffer, _weight.Value, y.Buffer);
        tape?.Record(dy =>
        {
            var dx = pass.New(x.Shape);
            pass.K.Conv2dForward(conv, dy.Buffer, _weight.Value, null, dx.Buffer);
            var dw = pass.New(new Shape4(1, 1, 1, _weight.Length));
            pass.K.Conv2dBackwardWeight(conv, dy.Buffer, x.Buffer, dw.Buffer, null);
            pass.K.Axpy(_weight.Length, 1f, dw.Buffer, _weight.Gradient!);
            return dx;
        });
        return y;
    }
}

/// <summary>
/// A convolution whose weights are constants, not parameters — a fixed filter or a fixed rearrangement — with its gradient
/// to the input. Weights are laid out as PyTorch's: (Cout, Cin/groups, K, K) for a convolution, (Cin, Cout, K, K) for a
/// transposed one (one group only). They are uploaded into each pass, so the layer owns no device memory.
/// </summary>
public sealed class FixedConvLayer : ILayer
{
    private readonly float[] _weight;
    private readonly int _cin, _cout, _kernel, _stride, _pad, _groups;
    private readonly bool _transposed;

    public FixedConvLayer(float[] weight, int cin, int cout, int kernel, int stride, int pad, int groups = 1, bool transposed = false)
    {
        if (transposed && groups != 1) throw new ArgumentException("A fixed transposed convolution has one group.");
        int expected = transposed ? cin * cout * kernel * kernel : cout * (cin / groups) * kernel * kernel;
        if (weight.Length != expected) throw new ArgumentException($"A fixed conv {cin}→{cout}, {kernel}×{kernel}, groups {groups} needs {expected} weights, got {weight.Length}.");
        (_weight, _cin, _cout, _kernel, _stride, _pad, _groups, _transposed) = (weight, cin, cout, kernel, stride, pad, groups, transposed);
    }

    /// <summary>Per channel, the 3×3 binomial low-pass [1 2 1]ᵀ[1 2 1]/16, zero-padded by 1 (size kept): StyleGAN2's kind of up-sampling filter.</summary>
    public static FixedConvLayer Blur3x3(int channels)
    {
        float[] taps = [1, 2, 1, 2, 4, 2, 1, 2, 1];
        var w = new float[channels * 9];
        for (int c = 0; c < channels; c++)
            for (int t = 0; t < 9; t++) w[c * 9 + t] = taps[t] / 16f;
        return new FixedConvLayer(w, channels, channels, 3, 1, 1, groups: channels);
    }

    /// <summary>
    /// PyTorch's PixelShuffle(2): (4C, H, W) → (C, 2H, 2W), out[c, 2h + i, 2w + j] = in[4c + 2i + j, h, w], as a stride-2
    /// transposed convolution with one-hot 2×2 weights.
    /// </summary>
    public static FixedConvLayer DepthToSpace2(int channelsOut)
    {
        int cin = 4 * channelsOut;
        var w = new float[cin * channelsOut * 4];
        for (int c = 0; c < channelsOut; c++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) w[(((4 * c + 2 * i + j) * channelsOut + c) * 2 + i) * 2 + j] = 1f;
        return new FixedConvLayer(w, cin, channelsOut, 2, 2, 0, transposed: true);
    }

    public Shape4 OutputShape(Shape4 x)
    {
        if (x.C != _cin) throw new ArgumentException($"Fixed conv expects {_cin} channels, got {x}.");
        return _transposed
            ? new Shape4(x.N, _cout, (x.H - 1) * _stride - 2 * _pad + _kernel, (x.W - 1) * _stride - 2 * _pad + _kernel)
            : new Shape4(x.N, _cout, (x.H + 2 * _pad - _kernel) / _stride + 1, (x.W + 2 * _pad - _kernel) / _stride + 1);
    }

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var outShape = OutputShape(x.Shape);
        var w = pass.Upload(_weight, new Shape4(1, 1, 1, _weight.Length));
        var y = pass.New(outShape);
        if (_transposed)
        {
            // The mirrored conv maps the output back to the input: its backward-to-input is this layer's forward.
            var conv = Conv2dShape.Square(x.Shape.N, _cout, outShape.H, outShape.W, _cin, _kernel, _stride, _pad);
            pass.K.Conv2dBackwardInput(conv, x.Buffer, w.Buffer, y.Buffer);
            tape?.Record(dy =>
            {
                var dx = pass.New(x.Shape);
                pass.K.Conv2dForward(conv, dy.Buffer, w.Buffer, null, dx.Buffer);
                return dx;
            });
        }
        else
        {
            var conv = Conv2dShape.Square(x.Shape.N, _cin, x.Shape.H, x.Shape.W, _cout, _kernel, _stride, _pad, _groups);
            pass.K.Conv2dForward(conv, x.Buffer, w.Buffer, null, y.Buffer);
            tape?.Record(dy =>
            {
                var dx = pass.New(x.Shape);
                pass.K.Conv2dBackwardInput(conv, dy.Buffer, w.Buffer, dx.Buffer);
                return dx;
            });
        }
        return y;
    }
}
