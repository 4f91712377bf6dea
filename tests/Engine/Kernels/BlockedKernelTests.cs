using System.Runtime.Intrinsics;
using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Kernels.Reference;
using ModelGuardian.Weights;

namespace ModelGuardian.Tests.Kernels;

/// <summary>
/// The CPU backend's channel-blocked inference kernels (IBlockedKernels) against the reference's NCHW
/// kernels: the same convolution, pooling and averaging, read back out of the blocked layout; borders
/// that must be zero are; and whole ResNets against the NCHW route. Reported skipped, with the reason, on a
/// CPU without AVX-512 (the kernels refuse to run there, and networks do not use them: checked too).
/// </summary>
public sealed class BlockedKernelTests : IDisposable
{
    // Sums of up to 7·7·64 products in another order than the reference's: 1e-5 of the output's max-abs.
    private const double Tolerance = 1e-5;
    private readonly CpuKernels _cpu = new();
    private readonly ReferenceKernels _reference = new();

    public void Dispose()
    {
        _cpu.Dispose();
        _reference.Dispose();
    }

    private static bool Supported => Vector512.IsHardwareAccelerated;
    private IKernels Cpu => _cpu; // AllocateConstant is the interface's

    // x: layout, from the blocked buffer → (N, C, H, W); also checks that the border (and only the border) is zero
    private static float[] ReadBack(float[] blocked, BlockedLayout l, bool checkBorder = true)
    {
        var y = new float[l.N * l.C * l.H * l.W];
        for (int n = 0; n < l.N; n++)
            for (int c = 0; c < l.C; c++)
                for (int r = 0; r < l.Rows; r++)
                    for (int q = 0; q < l.Pitch; q++)
                    {
                        float v = blocked[n * l.ImageLength + c / l.Block * l.PlaneLength + ((long)r * l.Pitch + q) * l.Block + c % l.Block];
                        bool inside = r >= l.Pad && r < l.Pad + l.H && q >= l.Pad && q < l.Pad + l.W;
                        if (inside) y[((n * l.C + c) * l.H + r - l.Pad) * l.W + q - l.Pad] = v;
                        else if (checkBorder) Assert.True(v == 0f, $"border ({n}, {c}, {r}, {q}) of {l} holds {v}, not 0");
                    }
        return y;
    }

    private float[] Blocked(float[] nchw, BlockedLayout layout)
    {
        using var x = _cpu.Allocate(nchw.Length);
        using var y = _cpu.Allocate(layout.Length);
        _cpu.Upload(nchw, x);
        _cpu.Fill(y, layout.Length, float.NaN); // whatever was there before must not show
        _cpu.ToBlocked(layout, x, y);
        var result = new float[layout.Length];
        _cpu.Download(y, result);
        return result;
    }

    [SkippableTheory]
    [InlineData(3, 7, 2)]   // RGB: blocks of 1 (plain NCHW with a border)
    [InlineData(32, 5, 1)]  // blocks of 16
    [InlineData(48, 3, 0)]
    public void EntryKeepsEveryValueAndZeroesTheBorder(int c, int side, int pad)
    {
        Skip.IfNot(Supported, "the blocked kernels need AVX-512, which this CPU lacks");
        var layout = BlockedLayout.For(2, c, side, side + 1, pad);
        var x = TestUtil.Random(2 * c * side * (side + 1), 1);
        Assert.Equal(x, ReadBack(Blocked(x, layout), layout));
    }

    // (N, Cin, H, W, Cout, kernel, stride, pad): output widths 1 to 31 (tiles of 14, evenly cut rows, two-row
    // tiles for rows of ≤ 7 with an odd row count), the RGB stem, 1×1 stride 2, padding 0 to 3, batch 1 and 3.
    public static TheoryData<int, int, int, int, int, int, int, int> Convolutions() => new()
    {
        { 1, 3, 23, 21, 32, 7, 2, 3 },    // stem-like: 7×7/2 pad 3 from 3 channels (blocks of 1), 11×12 out
        { 3, 16, 9, 9, 32, 3, 1, 1 },     // 9×9 out: one 9-wide tile per row
        { 1, 32, 31, 31, 64, 3, 1, 1 },   // 31 wide: 11 + 10 + 10
        { 2, 16, 28, 28, 32, 1, 1, 0 },   // 28 = 14 + 14, pointwise
        { 1, 32, 14, 14, 32, 1, 2, 0 },   // 1×1 stride 2 → 7×7: two-row tiles, 7 rows (the last alone)
        { 3, 16, 7, 7, 64, 3, 1, 1 },     // 7×7, two-row tiles, batch 3
        { 1, 16, 13, 13, 32, 3, 2, 1 },   // 3×3/2 → 7×7
        { 1, 16, 5, 3, 32, 3, 1, 1 },     // 3 wide, two-row tiles of 3, 5 rows
        { 1, 16, 1, 1, 32, 1, 1, 0 },     // one pixel
        { 1, 16, 4, 4, 32, 3, 1, 2 },     // padding 2 on a border of 2: 6×6 out
    };

    [SkippableTheory, MemberData(nameof(Convolutions))]
    public void ConvolutionMatchesTheReference(int n, int cin, int h, int w, int cout, int k, int stride, int pad)
    {
        Skip.IfNot(Supported, "the blocked kernels need AVX-512, which this CPU lacks");
        var s = new Conv2dShape(n, cin, h, w, cout, k, k, stride, stride, pad, pad);
        var x = TestUtil.Random(s.InputLength, 1); var wt = TestUtil.Random(s.WeightLength, 2, 0.2f);
        var bias = TestUtil.Random(cout, 3); var residual = TestUtil.Random(s.OutputLength, 4);
        var input = BlockedLayout.For(n, cin, h, w, Math.Max(pad, 1));
        var output = BlockedLayout.For(n, cout, s.OutH, s.OutW, 1);
        foreach (var (slope, withResidual, withBias) in new[] { ((float?)null, false, true), (0f, true, true), (0.2f, false, false), (0.2f, true, false) })
        {
            var expected = Reference(s, x, wt, withBias ? bias : null, slope, withResidual ? residual : null);
            using var X = _cpu.Allocate(input.Length); using var W = Cpu.AllocateConstant(wt); using var B = Cpu.AllocateConstant(bias);
            using var R = _cpu.Allocate(output.Length); using var Y = _cpu.Allocate(output.Length);
            _cpu.Upload(Blocked(x, input), X);
            _cpu.Upload(Blocked(residual, output), R);
            _cpu.Fill(Y, output.Length, float.NaN);
            _cpu.BlockedConv2dForward(s, input, output, X, W, withBias ? B : null, Y, slope, withResidual ? R : null);
            var y = new float[output.Length];
            _cpu.Download(Y, y);
            TestUtil.AssertClose(expected, ReadBack(y, output), Tolerance, $"{s} slope {slope} residual {withResidual} bias {withBias}");
        }
    }

    private float[] Reference(Conv2dShape s, float[] x, float[] w, float[]? bias, float? slope, float[]? residual)
    {
        var k = _reference;
        using var X = k.Allocate(x.Length); using var W = k.Allocate(w.Length); using var Y = k.Allocate(s.OutputLength);
        using var B = bias is null ? null : k.Allocate(bias.Length); using var R = residual is null ? null : k.Allocate(residual.Length);
        k.Upload(x, X); k.Upload(w, W);
        if (B is not null) k.Upload(bias, B);
        if (R is not null) k.Upload(residual, R);
        k.Conv2dForward(s, X, W, B, Y, slope, R);
        var y = new float[s.OutputLength];
        k.Download(Y, y);
        return y;
    }

    [SkippableTheory]
    [InlineData(112, 3, 2, 1)] // the ImageNet stem's pool
    [InlineData(9, 3, 2, 1)]
    [InlineData(8, 2, 2, 0)]
    [InlineData(7, 3, 1, 1)]
    public void MaxPoolingMatchesTheReferenceExactly(int side, int kernel, int stride, int pad)
    {
        Skip.IfNot(Supported, "the blocked kernels need AVX-512, which this CPU lacks");
        // Negative inputs too: a window that overhangs the border takes the max of its pixels, not of the zero border.
        var s = Pool2dShape.Square(2, 32, side, side, kernel, stride, pad);
        var x = TestUtil.Random(s.InputLength, 5);
        using var RX = _reference.Allocate(x.Length); using var RY = _reference.Allocate(s.OutputLength);
        _reference.Upload(x, RX);
        _reference.MaxPool2dForward(s, RX, RY);
        var expected = new float[s.OutputLength];
        _reference.Download(RY, expected);

        var input = BlockedLayout.For(2, 32, side, side, 1); var output = BlockedLayout.For(2, 32, s.OutH, s.OutW, 1);
        using var X = _cpu.Allocate(input.Length); using var Y = _cpu.Allocate(output.Length);
        _cpu.Upload(Blocked(x, input), X);
        _cpu.Fill(Y, output.Length, float.NaN);
        _cpu.BlockedMaxPool2dForward(s, input, output, X, Y);
        var y = new float[output.Length];
        _cpu.Download(Y, y);
        Assert.Equal(expected, ReadBack(y, output));
    }

    [SkippableFact]
    public void GlobalAverageMatchesTheReference()
    {
        Skip.IfNot(Supported, "the blocked kernels need AVX-512, which this CPU lacks");
        var layout = BlockedLayout.For(3, 48, 7, 5, 1);
        var x = TestUtil.Random(3 * 48 * 7 * 5, 6);
        using var RX = _reference.Allocate(x.Length); using var RY = _reference.Allocate(3 * 48);
        _reference.Upload(x, RX);
        _reference.AdaptiveAvgPool2dForward(3, 48, 7, 5, 1, 1, RX, RY);
        var expected = new float[3 * 48];
        _reference.Download(RY, expected);
        using var X = _cpu.Allocate(layout.Length); using var Y = _cpu.Allocate(3 * 48);
        _cpu.Upload(Blocked(x, layout), X);
        _cpu.BlockedGlobalAveragePool(layout, X, Y);
        var y = new float[3 * 48];
        _cpu.Download(Y, y);
        TestUtil.AssertClose(expected, y, 1e-6, "global average"); // 35 terms in fp32 against the reference's doubles
    }

    [SkippableFact]
    public void BadLayoutsAndUnsupportedConvolutionsAreRefusedWithAReason()
    {
        Skip.IfNot(Supported, "the blocked kernels need AVX-512, which this CPU lacks");
        var s = Conv2dShape.Square(1, 16, 8, 8, 32, 3, 1, 1);
        var input = BlockedLayout.For(1, 16, 8, 8, 1); var output = BlockedLayout.For(1, 32, 8, 8, 1);
        // X is long enough to be y as well: the aliasing check, not a length check, must refuse that call.
        using var X = _cpu.Allocate(output.Length); using var W = Cpu.AllocateConstant(new float[s.WeightLength]); using var Y = _cpu.Allocate(output.Length);
        void Refused(string expected, Action call) { var m = Assert.ThrowsAny<ArgumentException>(call).Message; Assert.True(m.Contains(expected), $"\"{expected}\" not in: {m}"); }
        Refused("does not hold the input", () => _cpu.BlockedConv2dForward(s with { H = 9 }, input, output, X, W, null, Y));
        Refused("does not hold the output", () => _cpu.BlockedConv2dForward(s, input, output with { C = 64 }, X, W, null, Y));
        Refused("not supported", () => _cpu.BlockedConv2dForward(s, input with { Pad = 0 }, output, X, W, null, Y)); // border narrower than the padding
        Refused("not supported", () => _cpu.BlockedConv2dForward(Conv2dShape.Square(1, 16, 8, 8, 32, 3, 3, 1), input, BlockedLayout.For(1, 32, 3, 3, 1), X, W, null, Y));
        Refused("must not be x", () => _cpu.BlockedConv2dForward(s, input, BlockedLayout.For(1, 32, 8, 8, 1), X, W, null, X));
        Refused("block must be 1 or 16", () => _cpu.ToBlocked(new BlockedLayout(1, 8, 4, 4, 1, 8), X, Y));
        Refused("blocks of 16", () => _cpu.BlockedGlobalAveragePool(BlockedLayout.For(1, 3, 4, 4, 1), X, Y));
        using var small = _cpu.Allocate(10);
        Refused("holds 10 floats", () => _cpu.BlockedConv2dForward(s, input, output, X, W, null, small));
    }

    // ResNets whose every convolution runs blocked (widths that are multiples of 32), both stems.
    public static TheoryData<int, ResNetStem, int, int> Networks() => new()
    {
        { 18, ResNetStem.Cifar, 16, 3 },
        { 50, ResNetStem.ImageNet, 45, 2 },
    };

    [SkippableTheory, MemberData(nameof(Networks))]
    public void ANetworkRunsBlockedAndAgreesWithTheNchwRoute(int depth, ResNetStem stem, int side, int batch)
    {
        Skip.IfNot(Supported, "the blocked kernels need AVX-512, which this CPU lacks");
        var a = ArchitectureDescriptor.ResNet(depth, 5, stem, inputSide: side, width: 32);
        using var nchwKernels = new CpuKernels { BlockedInference = false };
        var (blocked, _) = RandomWeights.Create(_cpu, a, 9);
        var (nchw, _) = RandomWeights.Create(nchwKernels, a, 9);
        using var _b = blocked;
        using var _n = nchw;
        var shape = new Shape4(batch, 3, side, side);
        var x = TestUtil.Random(shape.Length, 10);
        var expected = nchw.Forward(x, shape);
        var y = blocked.Forward(x, shape);
        TestUtil.AssertClose(expected, y, Tolerance, $"{a} blocked vs NCHW");
        // A second call reuses the buffers the first gave back (borders and all): the same bits.
        Assert.Equal(y, blocked.Forward(x, shape));
        // Image 1 alone gives the very bits it gets in the batch: no sum depends on the batch.
        var alone = blocked.Forward(x.AsSpan(shape.PerImage, shape.PerImage), shape with { N = 1 });
        Assert.Equal(y.AsSpan(5, 5).ToArray(), alone);
        // The recorded forward (a tape) runs on the NCHW kernels, as it must for its backward.
        TestUtil.AssertClose(expected, blocked.ForwardWithInputGradient(x, shape).Outputs, Tolerance, $"{a} recorded forward");
    }

    [Fact]
    public void WithoutAvx512NetworksStayOnTheNchwKernels()
    {
        // The default follows the hardware; off, a network never calls a blocked kernel (they would throw without AVX-512).
        Assert.Equal(Vector512.IsHardwareAccelerated, new CpuKernels().BlockedInference);
        using var k = new CpuKernels { BlockedInference = false };
        var (net, _) = RandomWeights.Create(k, ArchitectureDescriptor.ResNet(18, 2, ResNetStem.Cifar, inputSide: 8, width: 32), 1);
        using var _n = net;
        Assert.Equal(2, net.Forward(TestUtil.Random(3 * 64, 2), new Shape4(1, 3, 8, 8)).Length);
    }
}
