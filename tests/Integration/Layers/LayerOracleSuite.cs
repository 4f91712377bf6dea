using ModelGuardian.Kernels;
using ModelGuardian.Tests.Oracle;
using T = System.Collections.Generic.Dictionary<string, (int[] Shape, float[] Data)>;

namespace ModelGuardian.Tests.Layers;

/// <summary>
/// Every layer of the contract, forward and backward-to-input, against PyTorch on random shapes
/// (odd sizes, stride 1/2, padding 0/1/3, batch 1 and 3). One abstract suite, one subclass per
/// backend, so the backends cannot drift. Tolerance: 1e-5 of the tensor's max-abs for outputs and
/// input gradients (fp32 kernels against fp32 PyTorch; the largest reductions here are a few hundred terms).
/// </summary>
public abstract class LayerOracleSuite(TorchOracle oracle) : IDisposable
{
    private const double Tolerance = 1e-5;
    protected abstract IKernels CreateKernels();
    private IKernels? _kernels;
    protected IKernels K => _kernels ??= CreateKernels();

    public void Dispose() { _kernels?.Dispose(); GC.SuppressFinalize(this); }

    private DeviceBuffer Up(float[] data) { var b = K.Allocate(data.Length); K.Upload(data, b); return b; }
    private float[] Down(DeviceBuffer b, int n) { var r = new float[n]; K.Download(b, r); return r; }

    /// <summary>Runs our forward and backward, asks the oracle, compares both.</summary>
    private void Check(string what, object p, T inputs, int outLength, Func<DeviceBuffer, DeviceBuffer, DeviceBuffer> forward, Func<DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer> backward)
    {
        var g = TestUtil.Random(outLength, 99);
        var withG = new T(inputs) { ["g"] = ([outLength], g) };
        var expected = oracle.Run("layer", p, withG);
        using var x = Up(inputs["x"].Data);
        using var y = forward(x, K.Allocate(outLength));
        TestUtil.AssertClose(expected["y"].Data, Down(y, outLength), Tolerance, $"{what} forward");
        using var dy = Up(g);
        using var dx = backward(x, y, dy);
        TestUtil.AssertClose(expected["dx"].Data, Down(dx, inputs["x"].Data.Length), Tolerance, $"{what} backward");
    }

    public static TheoryData<int, int, int, int, int, int, int, int, int, bool> ConvCases => new()
    {
        // n, cin, h, w, cout, k, stride, pad, groups, bias
        { 1, 3, 9, 7, 5, 3, 1, 1, 1, true },
        { 3, 4, 11, 10, 6, 3, 2, 1, 1, false },
        { 1, 5, 13, 13, 4, 7, 2, 3, 1, true },
        { 3, 6, 8, 9, 6, 1, 1, 0, 1, true },
        { 1, 6, 10, 10, 8, 1, 2, 0, 1, false },
        { 3, 4, 12, 12, 6, 4, 2, 1, 2, true },
        { 1, 6, 9, 11, 6, 3, 1, 1, 6, false },   // depthwise, like the StyleGAN blur
        { 3, 4, 10, 9, 4, 3, 2, 1, 4, true },    // depthwise, strided
        { 1, 40, 17, 15, 70, 3, 1, 1, 1, true }, // several GEMM blocks along M and K
        { 3, 3, 33, 31, 35, 5, 1, 0, 1, false }, // several column blocks, partial tiles
        { 1, 3, 224, 224, 64, 7, 2, 3, 1, false }, // the ResNet stem: parallel GEMM, col2im over 49-row channel blocks
        { 2, 8, 64, 64, 8, 3, 1, 1, 8, false },    // a StyleGAN blur, big enough to run in parallel
        { 1, 16, 64, 64, 32, 4, 2, 1, 1, false },  // StyleGAN's fused 4×4 stride-2 down-sampling conv
    };

    [Theory, MemberData(nameof(ConvCases))]
    public void Conv2d(int n, int cin, int h, int w, int cout, int k, int stride, int pad, int groups, bool bias)
    {
        var s = Conv2dShape.Square(n, cin, h, w, cout, k, stride, pad, groups);
        var x = TestUtil.Random(s.InputLength, 1); var wt = TestUtil.Random(s.WeightLength, 2); var b = TestUtil.Random(cout, 3);
        var inputs = new T { ["x"] = ([n, cin, h, w], x), ["w"] = ([cout, cin / groups, k, k], wt) };
        if (bias) inputs["b"] = ([cout], b);
        using var W = Up(wt); using var B = Up(b);
        Check($"conv {s}", new { kind = "conv2d", stride = new[] { stride, stride }, padding = new[] { pad, pad }, groups }, inputs, s.OutputLength,
            (X, Y) => { K.Conv2dForward(s, X, W, bias ? B : null, Y); return Y; },
            (X, Y, DY) => { var DX = K.Allocate(s.InputLength); K.Conv2dBackwardInput(s, DY, W, DX); return DX; });
    }

    [Theory]
    [InlineData(1, 7, 5, true)]
    [InlineData(3, 33, 17, false)]
    [InlineData(2, 300, 1, true)]
    public void Dense(int n, int inF, int outF, bool bias)
    {
        var x = TestUtil.Random(n * inF, 1); var wt = TestUtil.Random(inF * outF, 2); var b = TestUtil.Random(outF, 3);
        var inputs = new T { ["x"] = ([n, inF], x), ["w"] = ([outF, inF], wt) };
        if (bias) inputs["b"] = ([outF], b);
        using var W = Up(wt); using var B = Up(b);
        Check("dense", new { kind = "linear" }, inputs, n * outF,
            (X, Y) => { K.DenseForward(n, inF, outF, X, W, bias ? B : null, Y); return Y; },
            (X, Y, DY) => { var DX = K.Allocate(n * inF); K.DenseBackwardInput(n, inF, outF, DY, W, DX); return DX; });
    }

    [Theory]
    [InlineData(1, 3, 9, 9, 3, 2, 1)]   // ResNet stem pool
    [InlineData(3, 2, 10, 7, 2, 2, 0)]
    [InlineData(1, 2, 8, 11, 3, 1, 1)]
    [InlineData(1, 8, 112, 112, 3, 2, 1)]
    public void MaxPool(int n, int c, int h, int w, int k, int stride, int pad)
    {
        var s = Pool2dShape.Square(n, c, h, w, k, stride, pad);
        var x = TestUtil.Random(s.InputLength, 5);
        Check($"maxpool {s}", new { kind = "max_pool2d", kernel = new[] { k, k }, stride = new[] { stride, stride }, padding = new[] { pad, pad } },
            new T { ["x"] = ([n, c, h, w], x) }, s.OutputLength,
            (X, Y) => { K.MaxPool2dForward(s, X, Y); return Y; },
            (X, Y, DY) => { var DX = K.Allocate(s.InputLength); K.MaxPool2dBackward(s, X, DY, DX); return DX; });
    }

    [Theory]
    [InlineData(1, 3, 8, 8, 2, 2, 0, true)]  // StyleGAN down-sampling
    [InlineData(3, 2, 9, 7, 3, 2, 1, true)]
    [InlineData(3, 2, 9, 7, 3, 2, 1, false)]
    [InlineData(1, 2, 6, 5, 3, 1, 1, false)]
    public void AvgPool(int n, int c, int h, int w, int k, int stride, int pad, bool includePad)
    {
        var s = Pool2dShape.Square(n, c, h, w, k, stride, pad);
        var x = TestUtil.Random(s.InputLength, 6);
        Check($"avgpool {s}", new { kind = "avg_pool2d", kernel = new[] { k, k }, stride = new[] { stride, stride }, padding = new[] { pad, pad }, count_include_pad = includePad },
            new T { ["x"] = ([n, c, h, w], x) }, s.OutputLength,
            (X, Y) => { K.AvgPool2dForward(s, includePad, X, Y); return Y; },
            (X, Y, DY) => { var DX = K.Allocate(s.InputLength); K.AvgPool2dBackward(s, includePad, DY, DX); return DX; });
    }

    [Theory]
    [InlineData(1, 4, 7, 7, 1, 1)]
    [InlineData(3, 2, 10, 7, 3, 4)]
    public void AdaptiveAvgPool(int n, int c, int h, int w, int oh, int ow)
    {
        var x = TestUtil.Random(n * c * h * w, 7);
        Check("adaptive avgpool", new { kind = "adaptive_avg_pool2d", size = new[] { oh, ow } }, new T { ["x"] = ([n, c, h, w], x) }, n * c * oh * ow,
            (X, Y) => { K.AdaptiveAvgPool2dForward(n, c, h, w, oh, ow, X, Y); return Y; },
            (X, Y, DY) => { var DX = K.Allocate(n * c * h * w); K.AdaptiveAvgPool2dBackward(n, c, h, w, oh, ow, DY, DX); return DX; });
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(0.2f)]
    public void LeakyRelu(float slope)
    {
        int n = 3 * 5 * 7 * 9;
        var x = TestUtil.Random(n, 8);
        Check("leaky relu", new { kind = "leaky_relu", slope }, new T { ["x"] = ([3, 5, 7, 9], x) }, n,
            (X, Y) => { K.LeakyReluForward(n, slope, X, Y); return Y; },
            (X, Y, DY) => { var DX = K.Allocate(n); K.LeakyReluBackward(n, slope, Y, DY, DX); return DX; });
    }

    [Fact]
    public void BiasLeakyRelu()
    {
        int n = 3, c = 5, hw = 6 * 7;
        var x = TestUtil.Random(n * c * hw, 9); var b = TestUtil.Random(c, 10);
        using var B = Up(b);
        Check("bias leaky relu", new { kind = "bias_leaky_relu", slope = 0.2f }, new T { ["x"] = ([n, c, 6, 7], x), ["b"] = ([c], b) }, n * c * hw,
            (X, Y) => { K.BiasLeakyReluForward(n, c, hw, 0.2f, X, B, Y); return Y; },
            (X, Y, DY) => { var DX = K.Allocate(n * c * hw); K.LeakyReluBackward(n * c * hw, 0.2f, Y, DY, DX); return DX; });
    }

    [Fact]
    public void ChannelAffine()
    {
        int n = 3, c = 4, hw = 5 * 3;
        var x = TestUtil.Random(n * c * hw, 11); var sc = TestUtil.Random(c, 12); var sh = TestUtil.Random(c, 13);
        using var S = Up(sc); using var H = Up(sh);
        Check("channel affine", new { kind = "channel_affine" }, new T { ["x"] = ([n, c, 5, 3], x), ["scale"] = ([c], sc), ["shift"] = ([c], sh) }, n * c * hw,
            (X, Y) => { K.ChannelAffineForward(n, c, hw, X, S, H, Y); return Y; },
            (X, Y, DY) => { var DX = K.Allocate(n * c * hw); K.ChannelAffineBackward(n, c, hw, DY, S, DX); return DX; });
    }

    [Fact]
    public void Sigmoid()
    {
        var x = TestUtil.Random(3 * 7, 14, 6f);
        Check("sigmoid", new { kind = "sigmoid" }, new T { ["x"] = ([3, 7], x) }, 21,
            (X, Y) => { K.SigmoidForward(21, X, Y); return Y; },
            (X, Y, DY) => { var DX = K.Allocate(21); K.SigmoidBackward(21, Y, DY, DX); return DX; });
    }

    [Fact]
    public void Softmax()
    {
        var x = TestUtil.Random(3 * 10, 15, 8f);
        Check("softmax", new { kind = "softmax" }, new T { ["x"] = ([3, 10], x) }, 30,
            (X, Y) => { K.SoftmaxForward(3, 10, X, Y); return Y; },
            (X, Y, DY) => { var DX = K.Allocate(30); K.SoftmaxBackward(3, 10, Y, DY, DX); return DX; });
    }

    [Theory]
    [InlineData(ResizeMode.Nearest, 5, 7, 12, 9)]
    [InlineData(ResizeMode.Nearest, 9, 8, 4, 3)]
    [InlineData(ResizeMode.Bilinear, 5, 7, 12, 9)]
    [InlineData(ResizeMode.Bilinear, 9, 8, 4, 3)]
    [InlineData(ResizeMode.Bilinear, 32, 32, 64, 64)]
    public void Resize(ResizeMode mode, int h, int w, int oh, int ow)
    {
        var s = new ResizeShape(3, 2, h, w, oh, ow, mode);
        var x = TestUtil.Random(s.InputLength, 16);
        Check($"resize {s}", new { kind = "interpolate", mode = mode == ResizeMode.Nearest ? "nearest" : "bilinear", size = new[] { oh, ow } },
            new T { ["x"] = ([3, 2, h, w], x) }, s.OutputLength,
            (X, Y) => { K.ResizeForward(s, X, Y); return Y; },
            (X, Y, DY) => { var DX = K.Allocate(s.InputLength); K.ResizeBackward(s, DY, DX); return DX; });
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(4, 1)]
    [InlineData(4, 2)]
    [InlineData(4, 4)]
    [InlineData(6, 3)]
    public void MinibatchStddev(int n, int group)
    {
        int c = 5, h = 4, w = 3;
        var x = TestUtil.Random(n * c * h * w, 17);
        Check($"mbstd n={n} g={group}", new { kind = "mbstd", group }, new T { ["x"] = ([n, c, h, w], x) }, n * (c + 1) * h * w,
            (X, Y) => { K.MinibatchStddevForward(n, c, h, w, group, 1e-8f, X, Y); return Y; },
            (X, Y, DY) => { var DX = K.Allocate(n * c * h * w); K.MinibatchStddevBackward(n, c, h, w, group, 1e-8f, X, DY, DX); return DX; });
    }
}

[Collection(OracleCollection.Name)]
public sealed class ReferenceLayerOracleTests(TorchOracle oracle) : LayerOracleSuite(oracle)
{
    protected override IKernels CreateKernels() => new global::ModelGuardian.Kernels.Reference.ReferenceKernels();
}

[Collection(OracleCollection.Name)]
public sealed class CpuLayerOracleTests(TorchOracle oracle) : LayerOracleSuite(oracle)
{
    protected override IKernels CreateKernels() => new global::ModelGuardian.Kernels.Cpu.CpuKernels();
}
