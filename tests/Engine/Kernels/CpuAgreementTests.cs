using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Kernels.Reference;

namespace ModelGuardian.Tests.Kernels;

/// <summary>The fast CPU backend against the reference, through the same suite as ILGPU.</summary>
public sealed class CpuAgreementTests : KernelAgreementSuite
{
    protected override IKernels CreateBackend() => new CpuKernels();
}

/// <summary>
/// The CPU backend with every convolution forced onto one algorithm: the automatic choice picks by
/// output width, so the suite's small shapes would otherwise test only im2col.
/// </summary>
public sealed class CpuShiftedConvolutionTests : KernelAgreementSuite
{
    protected override IKernels CreateBackend() => new CpuKernels(convolution: ConvolutionAlgorithm.Shifted);
}

/// <inheritdoc cref="CpuShiftedConvolutionTests"/>
public sealed class CpuIm2ColConvolutionTests : KernelAgreementSuite
{
    protected override IKernels CreateBackend() => new CpuKernels(convolution: ConvolutionAlgorithm.Im2Col);
}

/// <summary>
/// The shifted forward one image per chunk (its copy buffer holds one image; by default about 1 MB of
/// images), through the same suite: batch-3 cases run three chunks.
/// </summary>
public sealed class CpuShiftedChunkedConvolutionTests : KernelAgreementSuite
{
    protected override IKernels CreateBackend() => new CpuKernels(convolution: ConvolutionAlgorithm.Shifted) { PaddedChunkFloats = 1 };

    [Theory]
    [InlineData(1, 3)]   // one image per chunk: 5 chunks
    [InlineData(1800, 1)] // 2 images (858 floats each) per chunk: a short last chunk
    public void ChunkingChangesNoBit(int chunkFloats, int groups)
    {
        // Every output column is the same sum whichever chunk its image is in: exactly equal, not close.
        var s = Conv2dShape.Square(5, 6, 11, 9, 6, 3, 1, 1, groups);
        var x = TestUtil.Random(s.InputLength, 1); var w = TestUtil.Random(s.WeightLength, 2); var b = TestUtil.Random(s.Cout, 3); var res = TestUtil.Random(s.OutputLength, 4);
        float[] Run(IKernels k)
        {
            using var X = k.Allocate(x.Length); using var W = k.AllocateConstant(w); using var B = k.AllocateConstant(b);
            using var R = k.Allocate(res.Length); using var Y = k.Allocate(s.OutputLength);
            k.Upload(x, X); k.Upload(res, R);
            k.Conv2dForward(s, X, W, B, Y, 0.2f, R);
            var y = new float[s.OutputLength];
            k.Download(Y, y);
            return y;
        }
        using var whole = new CpuKernels(convolution: ConvolutionAlgorithm.Shifted);
        using var chunked = new CpuKernels(convolution: ConvolutionAlgorithm.Shifted) { PaddedChunkFloats = chunkFloats };
        Assert.Equal(Run(whole), Run(chunked));
    }
}

/// <summary>
/// The CPU backend with every packed-GEMM tile going through the tile buffer and its store, through the
/// same suite — the route partial tiles always take — and bit for bit against the default, where full
/// tiles whose rows are runs in C are written straight from the micro-kernel's registers.
/// </summary>
public sealed class CpuTileBufferConvolutionTests : KernelAgreementSuite
{
    protected override IKernels CreateBackend() => new CpuKernels(convolution: ConvolutionAlgorithm.Im2Col) { DirectTileStores = false };

    // Shapes with full 12×32 tiles inside an image (≥ 12 output channels per group, ≥ 32 output pixels),
    // tiles that cross into the next image (100 or 121 pixels per image), tiles whose halves lie in two
    // images (16 pixels) or cross (25), partial row tiles (40 = 3·12 + 4), and depths over one 256-deep
    // chunk, so later chunks add to C's own sums.
    // On the shifted path (its own store: a pitched grid's pixels packed on store) the same for 3×3 layers
    // over several depth chunks (the earlier chunks' sums come from the tile buffer) and a one-chunk 7×7/2.
    public static TheoryData<string, int, int, int, int, int, int, ConvolutionAlgorithm> Shapes() => new()
    {
        { "1×1 forward", 300, 40, 10, 1, 1, 1, ConvolutionAlgorithm.Im2Col },
        { "1×1 forward, 2 groups", 600, 80, 10, 1, 1, 2, ConvolutionAlgorithm.Im2Col },
        { "3×3/2 forward (im2col)", 40, 40, 21, 3, 2, 1, ConvolutionAlgorithm.Im2Col },
        { "3×3/1 forward, deep (im2col)", 64, 24, 8, 3, 1, 1, ConvolutionAlgorithm.Im2Col },
        { "1×1 forward, 4×4 images (a tile's halves in two images)", 40, 24, 4, 1, 1, 1, ConvolutionAlgorithm.Im2Col },
        { "1×1 forward, 5×5 images (halves that cross)", 40, 24, 5, 1, 1, 1, ConvolutionAlgorithm.Im2Col },
        { "3×3/1 shifted, 10² (pitch 12), 3 depth chunks", 64, 24, 10, 3, 1, 1, ConvolutionAlgorithm.Shifted },
        { "3×3/1 shifted, 37² (pitch 39), 2 groups", 160, 48, 37, 3, 1, 2, ConvolutionAlgorithm.Shifted },
        { "7×7/2 shifted, one depth chunk", 3, 24, 40, 7, 2, 1, ConvolutionAlgorithm.Shifted },
    };

    [Theory, MemberData(nameof(Shapes))]
    public void DirectTileStoresChangeNoBit(string what, int cin, int cout, int side, int kernel, int stride, int groups, ConvolutionAlgorithm algorithm)
    {
        var s = Conv2dShape.Square(3, cin, side, side, cout, kernel, stride, kernel / 2, groups);
        var x = TestUtil.Random(s.InputLength, 1); var w = TestUtil.Random(s.WeightLength, 2); var b = TestUtil.Random(s.Cout, 3);
        var res = TestUtil.Random(s.OutputLength, 4); var dy = TestUtil.Random(s.OutputLength, 5);
        // Forward with every epilogue combination, the input gradient, and the weight gradient (its GEMM adds into dw).
        float[][] Run(IKernels k)
        {
            using var X = k.Allocate(x.Length); using var W = k.AllocateConstant(w); using var B = k.AllocateConstant(b);
            using var R = k.Allocate(res.Length); using var Y = k.Allocate(s.OutputLength); using var DY = k.Allocate(dy.Length);
            using var DX = k.Allocate(s.InputLength); using var DW = k.Allocate(s.WeightLength); using var DB = k.Allocate(s.Cout);
            k.Upload(x, X); k.Upload(res, R); k.Upload(dy, DY);
            var results = new List<float[]>();
            float[] Take(DeviceBuffer buffer, int length)
            {
                var values = new float[length];
                k.Download(buffer, values);
                return values;
            }
            foreach (var (bias, slope, residual) in new (DeviceBuffer?, float?, DeviceBuffer?)[] { (B, 0.2f, R), (B, null, null), (null, 0f, R), (null, null, null) })
            {
                k.Conv2dForward(s, X, W, bias, Y, slope, residual);
                results.Add(Take(Y, s.OutputLength));
            }
            k.Conv2dBackwardInput(s, DY, W, DX);
            results.Add(Take(DX, s.InputLength));
            k.Conv2dBackwardWeight(s, X, DY, DW, DB);
            results.Add(Take(DW, s.WeightLength));
            return results.ToArray();
        }
        using var direct = new CpuKernels(convolution: algorithm);
        using var buffered = new CpuKernels(convolution: algorithm) { DirectTileStores = false };
        var expected = Run(buffered);
        var actual = Run(direct);
        // Bits, not float equality (which takes −0 for +0).
        for (int i = 0; i < expected.Length; i++)
            Assert.True(expected[i].Select(BitConverter.SingleToInt32Bits).SequenceEqual(actual[i].Select(BitConverter.SingleToInt32Bits)), $"{what}: result {i} differs between the two store routes");
    }
}

/// <summary>
/// Im2col's packing of a same-size stride-1 convolution as masked slices of the plane, against packing it
/// run by run: a copy either way, so the same bits. Shapes: planes of 64 pixels (slivers inside an
/// image), 16 (each half of a sliver one image), 49 (a short last sliver, run by run), 25 (halves that
/// cross into the next image, run by run), a 5×5 kernel (padding 2), groups; forward and input gradient.
/// </summary>
public sealed class CpuLinearIm2ColTests
{
    [Theory]
    [InlineData(8, 3, 1, 3)]
    [InlineData(4, 3, 1, 3)]
    [InlineData(7, 3, 1, 1)]
    [InlineData(5, 3, 1, 3)]
    [InlineData(9, 5, 1, 2)]
    [InlineData(8, 3, 2, 3)]
    public void LinearPackingChangesNoBit(int side, int kernel, int groups, int batch)
    {
        var s = Conv2dShape.Square(batch, 24, side, side, 24, kernel, 1, kernel / 2, groups);
        var x = TestUtil.Random(s.InputLength, 1); var w = TestUtil.Random(s.WeightLength, 2); var b = TestUtil.Random(s.Cout, 3);
        var dy = TestUtil.Random(s.OutputLength, 4);
        (float[] Y, float[] DX) Run(IKernels k)
        {
            using var X = k.Allocate(x.Length); using var W = k.AllocateConstant(w); using var B = k.AllocateConstant(b);
            using var Y = k.Allocate(s.OutputLength); using var DY = k.Allocate(dy.Length); using var DX = k.Allocate(s.InputLength);
            k.Upload(x, X); k.Upload(dy, DY);
            k.Conv2dForward(s, X, W, B, Y, 0.2f);
            k.Conv2dBackwardInput(s, DY, W, DX);
            var y = new float[s.OutputLength]; var dx = new float[s.InputLength];
            k.Download(Y, y); k.Download(DX, dx);
            return (y, dx);
        }
        using var linear = new CpuKernels(convolution: ConvolutionAlgorithm.Im2Col);
        using var runByRun = new CpuKernels(convolution: ConvolutionAlgorithm.Im2Col) { LinearIm2Col = false };
        var expected = Run(runByRun);
        var actual = Run(linear);
        Assert.True(expected.Y.Select(BitConverter.SingleToInt32Bits).SequenceEqual(actual.Y.Select(BitConverter.SingleToInt32Bits)), "forward differs");
        Assert.True(expected.DX.Select(BitConverter.SingleToInt32Bits).SequenceEqual(actual.DX.Select(BitConverter.SingleToInt32Bits)), "input gradient differs");
    }
}

/// <summary>The automatic choice between the shifted and im2col forwards, on the shapes it was measured on.</summary>
public sealed class ConvolutionChoiceTests
{
    [Theory]
    [InlineData(1, 64, 56, 3, 1, true)]    // ResNet-50 b1 layer 1: 3264 vs 3136 columns
    [InlineData(1, 512, 7, 3, 1, true)]    // ResNet-50 b1 layer 4: 64 columns either way
    [InlineData(8, 512, 7, 3, 1, false)]   // ResNet-50 b8 layer 4: 512 vs 416
    [InlineData(8, 256, 14, 3, 1, true)]   // ResNet-50 b8 layer 3: 1792 vs 1568, just within 8/7
    [InlineData(64, 64, 32, 3, 1, true)]   // ResNet-34 CIFAR b64 layer 1
    [InlineData(64, 256, 8, 3, 1, false)]  // ResNet-34 CIFAR b64 layer 3: 6144 vs 4096
    [InlineData(1, 512, 4, 3, 1, false)]   // StyleGAN D at 4×4: 32 vs a 16-column sliver
    [InlineData(1, 64, 56, 3, 2, false)]   // small strided kernels stay on im2col
    [InlineData(1, 3, 224, 7, 2, true)]    // the 7×7/2 stem
    [InlineData(64, 3, 32, 3, 1, false)]   // 3 input channels: the copy outweighs the gather
    public void ShiftedIsChosenWhereItWasMeasuredFaster(int batch, int channels, int side, int kernel, int stride, bool shifted)
    {
        var s = Conv2dShape.Square(batch, channels, side, side, channels, kernel, stride, kernel / 2);
        Assert.Equal(shifted, new PaddedPatches(s).Preferred);
    }
}

/// <summary>
/// The tap-by-tap weight gradient against the reference on shapes the agreement suite's small ones do not
/// reach, strided ones included: large enough to run in parallel (taps × depth parts, the parts' sums added at the end), and with
/// the padded copy cut into chunks of one or two images, whose sums add up. Tolerance 1e-5 of dw's max-abs:
/// the same sums in another order over ~10⁴ fp32 terms.
/// </summary>
public sealed class ShiftedWeightGradientTests
{
    [Theory]
    [InlineData(8, 16, 16, 16, 3, 1, 1, int.MaxValue)] // one chunk, parallel parts
    [InlineData(8, 16, 16, 16, 3, 1, 1, 1)]            // eight chunks of one image
    [InlineData(5, 48, 9, 20, 3, 1, 1, 3000)]          // chunks of two images and a short last one; 2 slivers, 2 row tiles
    [InlineData(4, 24, 12, 12, 1, 0, 1, int.MaxValue)] // 1×1: one tap, so the depth is split into parts
    [InlineData(3, 16, 10, 40, 5, 2, 1, 1)]            // 5×5 with padding 2
    [InlineData(6, 8, 15, 16, 3, 1, 2, int.MaxValue)]  // 3×3/2 on an odd side: 4 parity planes, the last rows and columns partly padding
    [InlineData(5, 16, 12, 24, 1, 0, 2, 2000)]         // 1×1/2 (a ResNet shortcut): one parity plane
    [InlineData(2, 3, 23, 16, 7, 3, 2, int.MaxValue)]  // the 7×7/2 stem
    public void AgreesWithTheReference(int batch, int cin, int side, int cout, int kernel, int pad, int stride, int chunkFloats)
    {
        var s = Conv2dShape.Square(batch, cin, side, side, cout, kernel, stride, pad);
        Assert.True(ShiftedWeightGradient.Fits(s));
        var x = TestUtil.Random(s.InputLength, 1); var dy = TestUtil.Random(s.OutputLength, 2);
        float[] Run(IKernels k)
        {
            using var X = k.Allocate(x.Length); using var DY = k.Allocate(dy.Length); using var DW = k.Allocate(s.WeightLength);
            k.Upload(x, X); k.Upload(dy, DY);
            k.Fill(DW, s.WeightLength, 77f); // overwritten, not accumulated
            k.Conv2dBackwardWeight(s, X, DY, DW, null);
            var dw = new float[s.WeightLength];
            k.Download(DW, dw);
            return dw;
        }
        using var reference = new ReferenceKernels();
        using var shifted = new CpuKernels(convolution: ConvolutionAlgorithm.Shifted) { WeightGradientChunkFloats = chunkFloats };
        TestUtil.AssertClose(Run(reference), Run(shifted), 1e-5, $"dw of {s}, chunks of {chunkFloats} floats");
    }
}
