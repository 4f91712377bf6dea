using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Tests.Oracle;
using T = System.Collections.Generic.Dictionary<string, (int[] Shape, float[] Data)>;

namespace ModelGuardian.Tests.Layers;

/// <summary>
/// Each kind of input contract against torchvision's functional transforms on the same float image (0…255):
/// resize, pad (with and without a resize to the content side first), resize-then-centre-crop, and grey.
/// Tolerance 1e-5 of the max-abs: both sides interpolate in float32.
/// </summary>
[Collection(OracleCollection.Name)]
public sealed class InputContractOracleTests(TorchOracle oracle)
{
    [Theory]
    [InlineData("resize", 37, 23, 32, 0, 0, false)]
    [InlineData("resize", 20, 20, 32, 0, 0, true)]
    [InlineData("pad", 28, 28, 32, 28, 0, false)]   // Fashion-MNIST: padding only
    [InlineData("pad", 40, 40, 32, 28, 17, true)]   // resized to the content side first, grey, grey padding
    [InlineData("center-crop", 300, 200, 224, 256, 0, false)]
    [InlineData("center-crop", 37, 50, 32, 35, 0, true)] // odd margins: the crop offset's rounding matters
    public void Contract_matches_torchvision(string fit, int h, int w, int side, int extra, float padValue, bool grey)
    {
        var contract = new InputContract
        {
            Fit = fit switch { "pad" => InputFit.Pad, "center-crop" => InputFit.CenterCrop, _ => InputFit.Resize },
            ContentSide = fit == "pad" ? extra : 0, ResizeSide = fit == "center-crop" ? extra : 0, PadValue = padValue, Grey = grey,
        };
        contract.Validate(side);
        var x = TestUtil.Random(3 * h * w, h * 131 + w).Select(v => 127.5f + 127.5f * v).ToArray();
        var expected = oracle.Run("input_contract",
            new { fit, side, content = extra, resize_side = extra, pad_value = padValue, grey },
            new T { ["x"] = ([3, h, w], x) });
        using var kernels = new CpuKernels();
        var ours = contract.Apply(new PlanarImage(w, h, x), side, kernels);
        Assert.Equal(expected["y"].Shape, new[] { 3, ours.Height, ours.Width });
        TestUtil.AssertClose(expected["y"].Data, ours.Values, 1e-5, $"{fit} {h}×{w} → {side}");
    }
}
