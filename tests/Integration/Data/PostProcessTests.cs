using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Tests.Data;

/// <summary>The evasion steps the detector is measured under: names, strengths, and what each step does to an image.</summary>
public sealed class PostProcessTests
{
    private static RgbImage Smooth(int side)
    {
        var px = new byte[side * side * 3];
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                for (int c = 0; c < 3; c++) px[(y * side + x) * 3 + c] = (byte)(128 + 80 * Math.Sin(0.15 * x + 0.1 * y + c));
        return new RgbImage(side, side, px);
    }

    private static RgbImage Checker(int side) => new(side, side, Enumerable.Range(0, side * side * 3).Select(i => (byte)((i / 3 % side + i / (3 * side)) % 2 * 200 + 20)).ToArray());

    private static double MeanAbsDiff(RgbImage a, RgbImage b) => a.Pixels.Zip(b.Pixels, (x, y) => Math.Abs(x - y)).Average();

    [Fact]
    public void NamesRoundTripAndBadStepsAreRefused()
    {
        Assert.Equal(["blur-0.5", "blur-1", "blur-2", "jpeg-90", "jpeg-75", "jpeg-50", "jpeg-30", "downup-2", "noise-3"], PostProcess.Protocol.Select(p => p.Name));
        foreach (var p in PostProcess.Protocol) Assert.Equal(p, PostProcess.Parse(p.Name));
        foreach (var bad in new[] { "blur", "blur-0", "sharpen-1", "jpeg-101", "jpeg-7.5", "downup-1", "noise--2", "blur-x", "" })
            Assert.Throws<ArgumentException>(() => PostProcess.Parse(bad));
    }

    [Fact]
    public void BlurAndJpegAreTheTrainingAugmentationsAtAFixedStrength()
    {
        var img = Smooth(32);
        Assert.Equal(Augmentations.GaussianBlur(img, 1).Pixels, PostProcess.Parse("blur-1").Apply(img, 5).Pixels);
        Assert.Equal(Augmentations.JpegReencode(img, 30).Pixels, PostProcess.Parse("jpeg-30").Apply(img, 5).Pixels);
    }

    [Fact]
    public void DownUpKeepsSizeAndLowFrequenciesAndRemovesTheFinestDetail()
    {
        var step = PostProcess.Parse("downup-2");
        var flat = new RgbImage(32, 32, Enumerable.Repeat((byte)77, 32 * 32 * 3).ToArray());
        Assert.Equal(flat.Pixels, step.Apply(flat, 0).Pixels);
        var smooth = Smooth(32);
        var back = step.Apply(smooth, 0);
        Assert.Equal((32, 32), (back.Width, back.Height));
        Assert.True(MeanAbsDiff(smooth, back) < 3, $"a smooth image moved by {MeanAbsDiff(smooth, back):F2} on average");
        // A one-pixel checkerboard (20/220) is above the half-resolution Nyquist limit: away from the borders it becomes grey near 120.
        var interior = Augmentations.Crop(step.Apply(Checker(32), 0), 6, 6, 20, 20).Pixels;
        Assert.True(interior.Min() >= 100 && interior.Max() <= 140, $"interior spans {interior.Min()}…{interior.Max()}");
    }

    [Fact]
    public void NoiseHasTheStatedSpreadIsSeededAndStaysInRange()
    {
        var step = PostProcess.Parse("noise-3");
        var grey = new RgbImage(64, 64, Enumerable.Repeat((byte)128, 64 * 64 * 3).ToArray());
        var a = step.Apply(grey, 11);
        Assert.Equal(a.Pixels, step.Apply(grey, 11).Pixels);
        Assert.NotEqual(a.Pixels, step.Apply(grey, 12).Pixels);
        var d = a.Pixels.Select(p => p - 128.0).ToArray();
        double mean = d.Average(), sd = Math.Sqrt(d.Select(x => (x - mean) * (x - mean)).Average());
        // 12,288 draws: the mean's standard error is 0.03; rounding to integers adds 1/12 to the variance (σ 3 → 3.01).
        Assert.InRange(mean, -0.15, 0.15);
        Assert.InRange(sd, 2.85, 3.2);
        // Near black and white the noise is clamped, never wrapped around.
        var black = step.Apply(new RgbImage(16, 16, new byte[16 * 16 * 3]), 3);
        Assert.True(black.Pixels.Max() <= 20, $"black went to {black.Pixels.Max()}");
    }

    [Fact]
    public void TheTrainingAugmentationIsSeededAndDoesNothingAtProbabilityZero()
    {
        var img = Smooth(32);
        Assert.Same(img, new PostProcessAugmentation(0, Resampling: true).Apply(img, new SeededRandom(1)));
        var always = new PostProcessAugmentation(1, Resampling: true);
        var a = always.Apply(img, new SeededRandom(4));
        Assert.Equal(a.Pixels, always.Apply(img, new SeededRandom(4)).Pixels);
        Assert.True(MeanAbsDiff(img, a) > 0.5, "blur, JPEG, down-up and noise together should move the image");
        // Over many seeds at ½, some images pass untouched (¼ of draws skip both blur and JPEG).
        var half = new PostProcessAugmentation(0.5);
        int untouched = Enumerable.Range(0, 200).Count(s => ReferenceEquals(img, half.Apply(img, new SeededRandom((ulong)s))));
        Assert.InRange(untouched, 25, 80);
        Assert.Throws<ArgumentException>(() => new PostProcessAugmentation(1.5).Apply(img, new SeededRandom(1)));
    }
}
