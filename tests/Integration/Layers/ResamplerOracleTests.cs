using ModelGuardian.Engine.Imaging;
using ModelGuardian.Tests.Oracle;
using T = System.Collections.Generic.Dictionary<string, (int[] Shape, float[] Data)>;

namespace ModelGuardian.Tests.Layers;

/// <summary>The bicubic option of the gradient transform against PIL's own bicubic (float images, so no 8-bit rounding).</summary>
[Collection(OracleCollection.Name)]
public sealed class ResamplerOracleTests(TorchOracle oracle)
{
    [Theory]
    [InlineData(32, 32, 256, 256)] // a CIFAR-sized query up to the discriminator's side
    [InlineData(37, 23, 64, 96)]   // odd sizes, different factors per axis
    [InlineData(300, 200, 64, 64)] // down-scaling: PIL widens the filter's support
    [InlineData(9, 9, 9, 9)]       // identity
    public void BicubicMatchesPil(int h, int w, int outH, int outW)
    {
        var x = TestUtil.Random(3 * h * w, h * 31 + w);
        var expected = oracle.Run("pil_bicubic", new { size = new[] { outH, outW } }, new T { ["x"] = ([3, h, w], x) });
        var ours = Resampler.Bicubic(x, 3, h, w, outH, outW);
        // PIL computes in float32 with weights normalised in double: 1e-5 of the max-abs.
        TestUtil.AssertClose(expected["y"].Data, ours, 1e-5, $"bicubic {h}×{w} → {outH}×{outW}");
    }
}
