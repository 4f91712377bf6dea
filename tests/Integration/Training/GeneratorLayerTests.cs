using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels.Cpu;

namespace ModelGuardian.Tests.Training;

/// <summary>
/// The generators' fixed layers against their definitions written out index by index (exact: each output is a
/// copy, or a sum of at most nine products of exactly representable weights), their backward against the
/// definition's transpose (a permutation's inverse; the adjoint identity within float accumulation error).
/// </summary>
public sealed class GeneratorLayerTests
{
    private static (float[] Y, float[] Dx) Run(ILayer layer, float[] x, Shape4 shape, float[] dy)
    {
        using var k = new CpuKernels();
        using var pool = new BufferPool(k);
        using var pass = new Pass(pool);
        var tape = new Tape();
        var y = layer.Forward(pass, pass.Upload(x, shape), tape);
        var outY = pass.Download(y);
        var dx = pass.Download(tape.Backward(pass.Upload(dy, y.Shape)));
        return (outY, dx);
    }

    [Fact]
    public void DepthToSpaceIsPyTorchsPixelShuffleAndItsBackwardTheInversePermutation()
    {
        const int n = 2, c = 3, h = 4, w = 5;
        var x = TestUtil.Random(n * 4 * c * h * w, 1, 1f);
        var dy = TestUtil.Random(n * c * 2 * h * 2 * w, 2, 1f);
        var (y, dx) = Run(FixedConvLayer.DepthToSpace2(c), x, new Shape4(n, 4 * c, h, w), dy);
        for (int b = 0; b < n; b++)
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < h; i++)
                    for (int j = 0; j < w; j++)
                        for (int di = 0; di < 2; di++)
                            for (int dj = 0; dj < 2; dj++)
                            {
                                // out[c, 2h + i, 2w + j] = in[4c + 2i + j, h, w] (torch.nn.PixelShuffle(2)).
                                int inIndex = ((b * 4 * c + 4 * ch + 2 * di + dj) * h + i) * w + j;
                                int outIndex = ((b * c + ch) * 2 * h + 2 * i + di) * 2 * w + 2 * j + dj;
                                Assert.Equal(x[inIndex], y[outIndex]);
                                Assert.Equal(dy[outIndex], dx[inIndex]);
                            }
    }

    [Fact]
    public void TheBinomialBlurIsADepthwiseZeroPaddedFilterAndItsBackwardItsAdjoint()
    {
        const int n = 2, c = 3, h = 6, w = 7;
        var x = TestUtil.Random(n * c * h * w, 3, 1f);
        var dy = TestUtil.Random(n * c * h * w, 4, 1f);
        var (y, dx) = Run(FixedConvLayer.Blur3x3(c), x, new Shape4(n, c, h, w), dy);
        float[] taps = [1, 2, 1];
        for (int p = 0; p < n * c; p++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                {
                    double s = 0;
                    for (int a = -1; a <= 1; a++)
                        for (int b = -1; b <= 1; b++)
                            if (i + a >= 0 && i + a < h && j + b >= 0 && j + b < w) s += taps[a + 1] * taps[b + 1] / 16.0 * x[(p * h + i + a) * w + j + b];
                    Assert.Equal(s, y[(p * h + i) * w + j], 5);
                }
        double left = y.Zip(dy, (a, b) => (double)a * b).Sum(), right = x.Zip(dx, (a, b) => (double)a * b).Sum();
        Assert.Equal(left, right, 4);
        Assert.Throws<ArgumentException>(() => new FixedConvLayer(new float[5], 4, 4, 3, 1, 1, groups: 4));
    }
}
