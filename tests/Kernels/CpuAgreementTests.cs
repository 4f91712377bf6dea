using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Cpu;

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
