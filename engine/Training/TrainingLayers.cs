using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Training;

/// <summary>Whether batch-norm normalises with batch statistics (and updates its running ones) or with the running ones.</summary>
public sealed class TrainingMode
{
    public bool IsTraining { get; set; } = true;
}

// Trainable layers: each forward records, on the tape, a backward step that returns the input
// gradient and adds the parameter gradients into Parameter.Gradient. Layer inputs are never
// written after the layer has read them, so the backward may use them.

/// <summary>conv2d (PyTorch layout), optional bias.</summary>
public sealed class TrainConv2d : ILayer
{
    private readonly Parameter _weight;
    private readonly Parameter? _bias;
    private readonly int _cout, _kernel, _stride, _pad;

    public TrainConv2d(ParameterStore store, string name, int cin, int cout, int kernel, int stride, int pad, bool bias, ReadOnlySpan<float> weight, ReadOnlySpan<float> biasValues = default)
    {
        _weight = store.Add($"{name}.weight", [cout, cin, kernel, kernel], ParameterRole.ConvWeight, true, weight);
        _bias = bias ? store.Add($"{name}.bias", [cout], ParameterRole.Bias, true, biasValues) : null;
        (_cout, _kernel, _stride, _pad) = (cout, kernel, stride, pad);
    }

    private Conv2dShape Geometry(Shape4 x) => Conv2dShape.Square(x.N, x.C, x.H, x.W, _cout, _kernel, _stride, _pad);

    public Shape4 OutputShape(Shape4 input)
    {
        var s = Geometry(input);
        s.Validate();
        return new Shape4(input.N, _cout, s.OutH, s.OutW);
    }

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var s = Geometry(x.Shape);
        var y = pass.New(OutputShape(x.Shape));
        pass.K.Conv2dForward(s, x.Buffer, _weight.Value, _bias?.Value, y.Buffer);
        tape?.Record(dy =>
        {
            var dx = pass.New(x.Shape);
            pass.K.Conv2dBackwardInput(s, dy.Buffer, _weight.Value, dx.Buffer);
            var dw = pass.New(new Shape4(1, 1, 1, _weight.Length));
            var db = _bias is null ? null : pass.New(new Shape4(1, 1, 1, _cout));
            pass.K.Conv2dBackwardWeight(s, x.Buffer, dy.Buffer, dw.Buffer, db?.Buffer);
            pass.K.Axpy(_weight.Length, 1f, dw.Buffer, _weight.Gradient!);
            if (_bias is not null) pass.K.Axpy(_cout, 1f, db!.Buffer, _bias.Gradient!);
            return dx;
        });
        return y;
    }
}

/// <summary>Batch-norm (PyTorch: eps 1e-5, momentum 0.1) in training or evaluation mode.</summary>
public sealed class TrainBatchNorm : ILayer
{
    private const float Epsilon = 1e-5f, Momentum = 0.1f;
    private readonly Parameter _gamma, _beta, _mean, _var;
    private readonly TrainingMode _mode;
    private readonly int _c;

    public TrainBatchNorm(ParameterStore store, string name, int channels, TrainingMode mode)
    {
        _c = channels;
        _mode = mode;
        _gamma = store.Add($"{name}.weight", [channels], ParameterRole.BatchNormWeight, true, Enumerable.Repeat(1f, channels).ToArray());
        _beta = store.Add($"{name}.bias", [channels], ParameterRole.BatchNormBias, true, new float[channels]);
        _mean = store.Add($"{name}.running_mean", [channels], ParameterRole.BatchNormMean, false, new float[channels]);
        _var = store.Add($"{name}.running_var", [channels], ParameterRole.BatchNormVariance, false, Enumerable.Repeat(1f, channels).ToArray());
    }

    public Shape4 OutputShape(Shape4 input) => input.C == _c ? input : throw new ArgumentException($"Batch-norm over {_c} channels got {input}.");

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var s = OutputShape(x.Shape);
        int hw = s.H * s.W;
        var y = pass.New(s);
        if (!_mode.IsTraining)
        {
            // Evaluation: the running statistics as a per-channel affine map.
            var k = pass.K;
            float[] g = Get(k, _gamma), b = Get(k, _beta), m = Get(k, _mean), v = Get(k, _var);
            var scale = new float[_c];
            var shift = new float[_c];
            for (int c = 0; c < _c; c++)
            {
                scale[c] = (float)(g[c] / Math.Sqrt(v[c] + (double)Epsilon));
                shift[c] = (float)(b[c] - m[c] * (double)scale[c]);
            }
            var sc = pass.Upload(scale, new Shape4(1, 1, 1, _c));
            var sh = pass.Upload(shift, new Shape4(1, 1, 1, _c));
            k.ChannelAffineForward(s.N, _c, hw, x.Buffer, sc.Buffer, sh.Buffer, y.Buffer);
            tape?.Record(dy =>
            {
                var dx = pass.New(s);
                k.ChannelAffineBackward(s.N, _c, hw, dy.Buffer, sc.Buffer, dx.Buffer);
                return dx;
            });
            return y;
        }
        var saveMean = pass.New(new Shape4(1, 1, 1, _c));
        var saveInvStd = pass.New(new Shape4(1, 1, 1, _c));
        pass.K.BatchNormTrainForward(s.N, _c, hw, Epsilon, Momentum, x.Buffer, _gamma.Value, _beta.Value, _mean.Value, _var.Value, saveMean.Buffer, saveInvStd.Buffer, y.Buffer);
        tape?.Record(dy =>
        {
            var dx = pass.New(s);
            var dg = pass.New(new Shape4(1, 1, 1, _c));
            var db = pass.New(new Shape4(1, 1, 1, _c));
            pass.K.BatchNormTrainBackward(s.N, _c, hw, x.Buffer, dy.Buffer, _gamma.Value, saveMean.Buffer, saveInvStd.Buffer, dx.Buffer, dg.Buffer, db.Buffer);
            pass.K.Axpy(_c, 1f, dg.Buffer, _gamma.Gradient!);
            pass.K.Axpy(_c, 1f, db.Buffer, _beta.Gradient!);
            return dx;
        });
        return y;
    }

    private static float[] Get(IKernels k, Parameter p)
    {
        var a = new float[p.Length];
        k.Download(p.Value, a);
        return a;
    }
}

/// <summary>Flatten, then y = x·Wᵀ + b.</summary>
public sealed class TrainDense : ILayer
{
    private readonly Parameter _weight, _bias;
    private readonly int _in, _out;

    public TrainDense(ParameterStore store, string name, int inFeatures, int outFeatures, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias)
    {
        (_in, _out) = (inFeatures, outFeatures);
        _weight = store.Add($"{name}.weight", [outFeatures, inFeatures], ParameterRole.DenseWeight, true, weight);
        _bias = store.Add($"{name}.bias", [outFeatures], ParameterRole.Bias, true, bias);
    }

    public Shape4 OutputShape(Shape4 x) => x.PerImage == _in ? new Shape4(x.N, _out, 1, 1) : throw new ArgumentException($"Dense expects {_in} input features, got {x.PerImage} (input {x}).");

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var y = pass.New(OutputShape(x.Shape));
        int n = x.Shape.N;
        pass.K.DenseForward(n, _in, _out, x.Buffer, _weight.Value, _bias.Value, y.Buffer);
        tape?.Record(dy =>
        {
            var dx = pass.New(x.Shape);
            pass.K.DenseBackwardInput(n, _in, _out, dy.Buffer, _weight.Value, dx.Buffer);
            var dw = pass.New(new Shape4(1, 1, 1, _weight.Length));
            var db = pass.New(new Shape4(1, 1, 1, _out));
            pass.K.DenseBackwardWeight(n, _in, _out, x.Buffer, dy.Buffer, dw.Buffer, db.Buffer);
            pass.K.Axpy(_weight.Length, 1f, dw.Buffer, _weight.Gradient!);
            pass.K.Axpy(_out, 1f, db.Buffer, _bias.Gradient!);
            return dx;
        });
        return y;
    }
}

/// <summary>y = ReLU(body(x) + shortcut(x)), shortcut null = identity: a ResNet block in training form.</summary>
public sealed class TrainResidual(ILayer body, ILayer? shortcut) : ILayer
{
    public Shape4 OutputShape(Shape4 input)
    {
        var a = body.OutputShape(input);
        var b = shortcut?.OutputShape(input) ?? input;
        return a == b ? a : throw new ArgumentException($"Residual branches disagree: {a} vs {b}.");
    }

    public Tensor Forward(Pass pass, Tensor x, Tape? tape)
    {
        var bodyTape = tape is null ? null : new Tape();
        var sideTape = tape is null ? null : new Tape();
        var a = body.Forward(pass, x, bodyTape);
        var b = shortcut is null ? x : shortcut.Forward(pass, x, sideTape);
        var y = pass.New(a.Shape);
        pass.K.Add(y.Length, a.Buffer, b.Buffer, y.Buffer);
        pass.K.LeakyReluForward(y.Length, 0f, y.Buffer, y.Buffer);
        tape?.Record(dy =>
        {
            var g = pass.New(y.Shape);
            pass.K.LeakyReluBackward(y.Length, 0f, y.Buffer, dy.Buffer, g.Buffer);
            // Each branch's first backward step only reads g (batch-norm or conv), so both may start from it.
            var dxSide = shortcut is null ? g : sideTape!.Backward(g);
            var dxMain = bodyTape!.Backward(g);
            pass.K.Add(x.Length, dxMain.Buffer, dxSide.Buffer, dxMain.Buffer);
            return dxMain;
        });
        return y;
    }
}
