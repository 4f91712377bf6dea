using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Tests.Data;

public class AugmentationTests
{
    /// <summary>A photo-like test image: smooth colour gradients plus seeded noise of ±12.</summary>
    private static RgbImage Smooth(int w, int h, int seed)
    {
        var rng = new SeededRandom((ulong)seed);
        var px = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                {
                    double v = 128 + 90 * Math.Sin(0.11 * x + 0.07 * y + 2.1 * c) + rng.Next(-12, 13);
                    px[(y * w + x) * 3 + c] = (byte)Math.Clamp(v, 0, 255);
                }
        return new RgbImage(w, h, px);
    }

    private static RgbImage Constant(int w, int h, byte r, byte g, byte b)
    {
        var px = new byte[w * h * 3];
        for (int i = 0; i < w * h; i++) (px[3 * i], px[3 * i + 1], px[3 * i + 2]) = (r, g, b);
        return new RgbImage(w, h, px);
    }

    private static (double Mean, int Max) AbsDiff(RgbImage a, RgbImage b)
    {
        Assert.Equal((a.Width, a.Height), (b.Width, b.Height));
        long sum = 0; int max = 0;
        for (int i = 0; i < a.Pixels.Length; i++) { int d = Math.Abs(a.Pixels[i] - b.Pixels[i]); sum += d; max = Math.Max(max, d); }
        return ((double)sum / a.Pixels.Length, max);
    }

    [Fact]
    public void Flip_twice_is_identity_and_mirrors_columns()
    {
        var img = Smooth(7, 5, 1);
        var once = Augmentations.FlipHorizontal(img);
        Assert.Equal((7, 5), (once.Width, once.Height));
        Assert.Equal(img.Pixels.AsSpan(0, 3).ToArray(), once.Pixels.AsSpan(6 * 3, 3).ToArray());
        Assert.NotEqual(img.Pixels, once.Pixels);
        Assert.Equal(img.Pixels, Augmentations.FlipHorizontal(once).Pixels);
    }

    [Fact]
    public void Random_crop_is_a_window_of_the_image_within_bounds()
    {
        var img = Smooth(20, 12, 2);
        var rng = new SeededRandom(3);
        var positions = new HashSet<(int, int)>();
        for (int t = 0; t < 50; t++)
        {
            var crop = Augmentations.RandomCrop(img, new RandomCropOptions(8, 6), rng);
            Assert.Equal((8, 6), (crop.Width, crop.Height));
            var at = FindWindow(img, crop);
            Assert.NotNull(at);
            positions.Add(at.Value);
        }
        Assert.True(positions.Count > 20, $"only {positions.Count} distinct positions in 50 crops");
        var corner = Augmentations.Crop(img, 12, 6, 8, 6);
        Assert.Equal(img.Pixels.AsSpan(img.Pixels.Length - 3).ToArray(), corner.Pixels.AsSpan(corner.Pixels.Length - 3).ToArray());
        Assert.Throws<ArgumentException>(() => Augmentations.Crop(img, 13, 0, 8, 6));
        Assert.Throws<ArgumentException>(() => Augmentations.RandomCrop(img, new RandomCropOptions(21, 4), rng));
    }

    private static (int, int)? FindWindow(RgbImage img, RgbImage crop)
    {
        for (int y = 0; y + crop.Height <= img.Height; y++)
            for (int x = 0; x + crop.Width <= img.Width; x++)
                if (Augmentations.Crop(img, x, y, crop.Width, crop.Height).Pixels.AsSpan().SequenceEqual(crop.Pixels)) return (x, y);
        return null;
    }

    [Fact]
    public void Padded_crop_holds_fill_or_image_and_can_reach_the_padding()
    {
        var img = Constant(6, 6, 200, 201, 202);
        var options = new RandomCropOptions(6) { Padding = 2, Fill = 7 };
        var rng = new SeededRandom(4);
        bool sawFill = false;
        for (int t = 0; t < 30; t++)
        {
            var crop = Augmentations.RandomCrop(img, options, rng);
            Assert.Equal((6, 6), (crop.Width, crop.Height));
            for (int i = 0; i < 36; i++)
            {
                var px = (crop.Pixels[3 * i], crop.Pixels[3 * i + 1], crop.Pixels[3 * i + 2]);
                Assert.True(px == (200, 201, 202) || px == (7, 7, 7), $"pixel {px}");
                sawFill |= px == (7, 7, 7);
            }
        }
        Assert.True(sawFill);
        // Too small without padding; PadIfNeeded pads evenly.
        var small = Constant(3, 2, 1, 2, 3);
        Assert.Throws<ArgumentException>(() => Augmentations.RandomCrop(small, new RandomCropOptions(4), rng));
        var padded = Augmentations.RandomCrop(small, new RandomCropOptions(4) { PadIfNeeded = true }, rng);
        Assert.Equal((4, 4), (padded.Width, padded.Height));
        Assert.Equal(6 * 3, padded.Pixels.Count(b => b != 0));
    }

    [Fact]
    public void Blur_with_tiny_sigma_is_identity()
    {
        var img = Smooth(16, 16, 5);
        Assert.Same(img, Augmentations.GaussianBlur(img, 0));
        Assert.Equal(img.Pixels, Augmentations.GaussianBlur(img, 0.1).Pixels);   // radius round(0.4) = 0
        // σ = 0.3: radius 1, neighbour weights 0.4% each: within 2 levels of the original.
        var (mean, max) = AbsDiff(img, Augmentations.GaussianBlur(img, 0.3));
        Assert.True(max <= 2 && mean < 0.5, $"σ = 0.3 moved pixels by up to {max} (mean {mean})");
    }

    [Fact]
    public void Blur_keeps_a_constant_image_exactly_and_smooths_noise()
    {
        foreach (var sigma in new[] { 0.5, 1.0, 2.5, 3.0 })
        {
            var flat = Constant(13, 9, 0, 128, 255);
            var blurred = Augmentations.GaussianBlur(flat, sigma);
            Assert.Equal((13, 9), (blurred.Width, blurred.Height));
            Assert.Equal(flat.Pixels, blurred.Pixels);
        }
        // A 1-pixel black/white checkerboard: away from the clamped borders, σ = 2 leaves it nearly flat grey.
        var checker = new RgbImage(32, 32, Enumerable.Range(0, 32 * 32 * 3).Select(i => (byte)(((i / 3 % 32) + (i / 96)) % 2 * 255)).ToArray());
        var smooth = Augmentations.GaussianBlur(checker, 2);
        var interior = Augmentations.Crop(smooth, 8, 8, 16, 16).Pixels;
        Assert.True(interior.Min() >= 120 && interior.Max() <= 135, $"interior spans {interior.Min()}…{interior.Max()}");
        // Random σ within the range; σ drawn from [0, 0] changes nothing.
        var img = Smooth(10, 10, 6);
        Assert.Equal(img.Pixels, Augmentations.RandomGaussianBlur(img, new GaussianBlurOptions(0, 0), new SeededRandom(1)).Pixels);
        Assert.Throws<ArgumentException>(() => Augmentations.GaussianBlur(img, double.NaN));
    }

    [Fact]
    public void Jpeg_at_quality_100_stays_close_and_lower_qualities_keep_the_shape()
    {
        var img = Smooth(48, 40, 7);
        var q100 = Augmentations.JpegReencode(img, 100);
        var (mean, max) = AbsDiff(img, q100);
        // stb's quality-100 JPEG (4:4:4, all quantisers 1): measured mean 0.5, max 3 on this image.
        Assert.True(mean <= 1.0 && max <= 6, $"quality 100: mean |Δ| {mean:F2}, max {max}");
        var q30 = Augmentations.JpegReencode(img, 30);
        Assert.Equal((48, 40), (q30.Width, q30.Height));
        Assert.True(AbsDiff(img, q30).Mean > mean, "quality 30 should lose more than quality 100");
        var odd = Augmentations.RandomJpeg(Smooth(17, 9, 8), new JpegOptions(), new SeededRandom(2));
        Assert.Equal((17, 9), (odd.Width, odd.Height));
        Assert.Throws<ArgumentException>(() => Augmentations.RandomJpeg(img, new JpegOptions(0, 100), new SeededRandom(2)));
    }

    [Fact]
    public void Pipeline_is_deterministic_for_a_seed_and_keeps_shape_and_range()
    {
        var img = Smooth(40, 36, 9);
        var pipeline = AugmentationPipeline.CnnDetection(cropSide: 32);
        var outputs = new List<byte[]>();
        for (int item = 0; item < 12; item++)
        {
            var a = pipeline.Apply(img, seed: 77, epoch: 1, index: item);
            var b = pipeline.Apply(img, SeededRandom.ForItem(77, 1, item));
            Assert.Equal(a.Pixels, b.Pixels);
            Assert.Equal((32, 32), (a.Width, a.Height));
            var planar = PlanarImage.From(a);                 // validates 0…255, finite
            Assert.Equal(3 * 32 * 32, planar.Values.Length);
            outputs.Add(a.Pixels);
        }
        Assert.True(outputs.Select(Convert.ToHexString).Distinct().Count() >= 10, "items should get different augmentations");
        Assert.NotEqual(pipeline.Apply(img, 77, 1, 0).Pixels, pipeline.Apply(img, 78, 1, 0).Pixels);

        // Probability 0 steps never run; probability 1 steps always do.
        var never = new AugmentationPipeline([new AugmentationStep(new HorizontalFlipOptions(), 0)]);
        Assert.Same(img, never.Apply(img, new SeededRandom(1)));
        var always = new AugmentationPipeline([new AugmentationStep(new HorizontalFlipOptions())]);
        Assert.Equal(Augmentations.FlipHorizontal(img).Pixels, always.Apply(img, new SeededRandom(1)).Pixels);
        Assert.Throws<ArgumentException>(() => new AugmentationPipeline([new AugmentationStep(new HorizontalFlipOptions(), 1.5)]));
    }

    [Fact]
    public void Resize_keeps_constants_and_sizes()
    {
        var flat = Constant(50, 30, 10, 20, 30);
        var small = Augmentations.Resize(flat, 16, 8);
        Assert.Equal((16, 8), (small.Width, small.Height));
        Assert.Equal(Constant(16, 8, 10, 20, 30).Pixels, small.Pixels);
        Assert.Same(flat, Augmentations.Resize(flat, 50, 30));
    }
}
