using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Engine.Data;

/// <summary>A random transform of an 8-bit RGB image: deterministic for a given generator state.</summary>
public interface IAugmentation
{
    RgbImage Apply(RgbImage image, Random rng);
}

/// <summary>
/// A random <see cref="Width"/>×<see cref="Height"/> window (torchvision's RandomCrop): the image is first
/// padded with <see cref="Fill"/> by <see cref="Padding"/> pixels on every side, and, with
/// <see cref="PadIfNeeded"/>, further (evenly, extra pixel right/bottom) until the window fits.
/// </summary>
public sealed record RandomCropOptions(int Width, int Height) : IAugmentation
{
    public RandomCropOptions(int side) : this(side, side) { }

    public int Padding { get; init; }
    public bool PadIfNeeded { get; init; }
    public byte Fill { get; init; }

    public RgbImage Apply(RgbImage image, Random rng) => Augmentations.RandomCrop(image, this, rng);
}

/// <summary>Mirror left–right (no parameters; how often is the pipeline step's probability).</summary>
public sealed record HorizontalFlipOptions : IAugmentation
{
    public RgbImage Apply(RgbImage image, Random rng) => Augmentations.FlipHorizontal(image);
}

/// <summary>Gaussian blur with σ uniform on [<see cref="MinSigma"/>, <see cref="MaxSigma"/>] (CNNDetection: [0, 3]).</summary>
public sealed record GaussianBlurOptions(double MinSigma = 0, double MaxSigma = 3) : IAugmentation
{
    public RgbImage Apply(RgbImage image, Random rng) => Augmentations.RandomGaussianBlur(image, this, rng);
}

/// <summary>JPEG re-encoding at a quality uniform on the integers <see cref="MinQuality"/>…<see cref="MaxQuality"/> (CNNDetection: 30…100).</summary>
public sealed record JpegOptions(int MinQuality = 30, int MaxQuality = 100) : IAugmentation
{
    public RgbImage Apply(RgbImage image, Random rng) => Augmentations.RandomJpeg(image, this, rng);
}

/// <summary>
/// The training augmentations of CNNDetection / Model-Guardian as pure functions of an
/// <see cref="RgbImage"/> and a generator. They work on 8-bit pixels because that is what a query is — a
/// PNG or JPEG upload — and what the JPEG codec needs: crop, pad and flip move bytes and are exact; blur
/// rounds to the nearest byte once, after both passes; JPEG decodes to bytes. <see cref="PlanarImage.From"/>
/// then converts exactly. A function may return its input when it has nothing to do (σ too small to move a
/// pixel); images are never modified in place.
/// </summary>
public static class Augmentations
{
    /// <summary>Gaussian support is cut at this many σ (as scipy.ndimage's default truncate = 4).</summary>
    public const double BlurTruncate = 4.0;

    public static RgbImage RandomCrop(RgbImage image, RandomCropOptions options, Random rng)
    {
        if (options.Width < 1 || options.Height < 1) throw new ArgumentException($"Crop size must be positive, got {options.Width}×{options.Height}.");
        ArgumentOutOfRangeException.ThrowIfNegative(options.Padding);
        if (options.Padding > 0) image = Pad(image, options.Padding, options.Padding, options.Padding, options.Padding, options.Fill);
        if (options.PadIfNeeded && (image.Width < options.Width || image.Height < options.Height))
        {
            int dw = Math.Max(0, options.Width - image.Width), dh = Math.Max(0, options.Height - image.Height);
            image = Pad(image, dw / 2, dh / 2, dw - dw / 2, dh - dh / 2, options.Fill);
        }
        if (image.Width < options.Width || image.Height < options.Height)
            throw new ArgumentException($"A {options.Width}×{options.Height} crop does not fit a {image.Width}×{image.Height} image (after padding); set PadIfNeeded to pad it.");
        int x = rng.Next(image.Width - options.Width + 1), y = rng.Next(image.Height - options.Height + 1);
        return Crop(image, x, y, options.Width, options.Height);
    }

    /// <summary>The <paramref name="width"/>×<paramref name="height"/> window at (<paramref name="x"/>, <paramref name="y"/>), which must lie inside the image.</summary>
    public static RgbImage Crop(RgbImage image, int x, int y, int width, int height)
    {
        if (width < 1 || height < 1 || x < 0 || y < 0 || x + width > image.Width || y + height > image.Height)
            throw new ArgumentException($"Crop {width}×{height} at ({x}, {y}) is not inside a {image.Width}×{image.Height} image.");
        var pixels = new byte[width * height * 3];
        for (int row = 0; row < height; row++)
            image.Pixels.AsSpan(((y + row) * image.Width + x) * 3, width * 3).CopyTo(pixels.AsSpan(row * width * 3));
        return new RgbImage(width, height, pixels);
    }

    /// <summary>Adds borders of <paramref name="fill"/> (the same value in R, G and B).</summary>
    public static RgbImage Pad(RgbImage image, int left, int top, int right, int bottom, byte fill = 0)
    {
        if (left < 0 || top < 0 || right < 0 || bottom < 0) throw new ArgumentException("Padding must not be negative.");
        int w = image.Width + left + right, h = image.Height + top + bottom;
        var pixels = new byte[checked(w * h * 3)];
        if (fill != 0) pixels.AsSpan().Fill(fill);
        for (int row = 0; row < image.Height; row++)
            image.Pixels.AsSpan(row * image.Width * 3, image.Width * 3).CopyTo(pixels.AsSpan(((top + row) * w + left) * 3));
        return new RgbImage(w, h, pixels);
    }

    public static RgbImage FlipHorizontal(RgbImage image)
    {
        int w = image.Width;
        var src = image.Pixels;
        var pixels = new byte[src.Length];
        for (int y = 0; y < image.Height; y++)
        {
            int row = y * w * 3;
            for (int x = 0; x < w; x++)
            {
                int from = row + x * 3, to = row + (w - 1 - x) * 3;
                pixels[to] = src[from]; pixels[to + 1] = src[from + 1]; pixels[to + 2] = src[from + 2];
            }
        }
        return new RgbImage(w, image.Height, pixels);
    }

    public static RgbImage RandomGaussianBlur(RgbImage image, GaussianBlurOptions options, Random rng)
    {
        if (!(options.MinSigma >= 0 && options.MaxSigma >= options.MinSigma && double.IsFinite(options.MaxSigma)))
            throw new ArgumentException($"Blur σ range must satisfy 0 ≤ min ≤ max, got [{options.MinSigma}, {options.MaxSigma}].");
        double sigma = options.MinSigma + (options.MaxSigma - options.MinSigma) * rng.NextDouble();
        return GaussianBlur(image, sigma);
    }

    /// <summary>
    /// Separable Gaussian blur, kernel radius round(4σ), weights normalised to sum 1, borders clamped
    /// (edge pixels repeated); the horizontal pass is kept in float and only the result is rounded, so a
    /// constant image stays exactly constant. Returns the input when the radius is 0 (σ &lt; 0.125).
    /// </summary>
    public static RgbImage GaussianBlur(RgbImage image, double sigma)
    {
        if (!(sigma >= 0 && double.IsFinite(sigma))) throw new ArgumentException($"σ must be finite and ≥ 0, got {sigma}.", nameof(sigma));
        int radius = (int)(BlurTruncate * sigma + 0.5);
        if (radius == 0) return image;
        var kernel = GaussianWeights(sigma, radius);

        int w = image.Width, h = image.Height;
        var src = image.Pixels;
        var tmp = new float[src.Length];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                float r = 0, g = 0, b = 0;
                for (int k = -radius; k <= radius; k++)
                {
                    int at = (y * w + Math.Clamp(x + k, 0, w - 1)) * 3;
                    float wk = kernel[k + radius];
                    r += wk * src[at]; g += wk * src[at + 1]; b += wk * src[at + 2];
                }
                int o = (y * w + x) * 3;
                tmp[o] = r; tmp[o + 1] = g; tmp[o + 2] = b;
            }
        var pixels = new byte[src.Length];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                float r = 0, g = 0, b = 0;
                for (int k = -radius; k <= radius; k++)
                {
                    int at = (Math.Clamp(y + k, 0, h - 1) * w + x) * 3;
                    float wk = kernel[k + radius];
                    r += wk * tmp[at]; g += wk * tmp[at + 1]; b += wk * tmp[at + 2];
                }
                int o = (y * w + x) * 3;
                pixels[o] = ToByte(r); pixels[o + 1] = ToByte(g); pixels[o + 2] = ToByte(b);
            }
        return new RgbImage(w, h, pixels);
    }

    /// <summary>The 2r + 1 weights of a Gaussian of <paramref name="sigma"/> at −r…r, summing to 1.</summary>
    public static float[] GaussianWeights(double sigma, int radius)
    {
        var kernel = new float[2 * radius + 1];
        double sum = 0;
        for (int i = -radius; i <= radius; i++) sum += Math.Exp(-0.5 * i * i / (sigma * sigma));
        for (int i = -radius; i <= radius; i++) kernel[i + radius] = (float)(Math.Exp(-0.5 * i * i / (sigma * sigma)) / sum);
        return kernel;
    }

    public static RgbImage RandomJpeg(RgbImage image, JpegOptions options, Random rng)
    {
        if (options.MinQuality < 1 || options.MaxQuality > 100 || options.MinQuality > options.MaxQuality)
            throw new ArgumentException($"JPEG quality range must lie within 1…100 with min ≤ max, got {options.MinQuality}…{options.MaxQuality}.");
        return JpegReencode(image, rng.Next(options.MinQuality, options.MaxQuality + 1));
    }

    /// <summary>
    /// Encodes as baseline JPEG at <paramref name="quality"/> (1…100; chroma subsampled 4:2:0 at quality ≤ 90,
    /// full 4:4:4 above) and decodes it back, both with <see cref="ImageCodec"/>.
    /// </summary>
    public static RgbImage JpegReencode(RgbImage image, int quality)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(quality, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(quality, 100);
        using var ms = new MemoryStream();
        ImageCodec.WriteJpeg(image.Pixels, image.Width, image.Height, quality, ms);
        return RgbImage.Decode(ms.GetBuffer().AsSpan(0, (int)ms.Length), Math.Max(image.Width, image.Height));
    }

    /// <summary>PIL-style bicubic resize (anti-aliased when shrinking; <see cref="Resampler.Bicubic"/>), rounded to bytes.</summary>
    public static RgbImage Resize(RgbImage image, int width, int height)
    {
        if (width < 1 || height < 1) throw new ArgumentException($"Size must be positive, got {width}×{height}.");
        if (width == image.Width && height == image.Height) return image;
        var planar = PlanarImage.From(image).Values;
        var resized = Resampler.Bicubic(planar, 3, image.Height, image.Width, height, width);
        return RgbImage.FromPlanar(resized, width, height);
    }

    private static byte ToByte(float v) => (byte)Math.Clamp((int)(v + 0.5f), 0, 255);
}

/// <summary>One step of an <see cref="AugmentationPipeline"/>: a transform applied with probability <see cref="Probability"/>.</summary>
public sealed record AugmentationStep(IAugmentation Transform, double Probability = 1.0);

/// <summary>
/// Transforms applied in order, each with its own probability; every random decision and parameter comes
/// from the one generator passed in, so an image and a generator state give one result. For a data loader,
/// <see cref="Apply(RgbImage, ulong, long, long)"/> gives each (seed, epoch, item) its own generator, so
/// results do not depend on thread scheduling.
/// </summary>
public sealed class AugmentationPipeline
{
    public AugmentationPipeline(IEnumerable<AugmentationStep> steps)
    {
        Steps = steps.ToList();
        foreach (var step in Steps)
        {
            ArgumentNullException.ThrowIfNull(step.Transform);
            if (!(step.Probability >= 0 && step.Probability <= 1)) throw new ArgumentException($"Probability must lie in [0, 1], got {step.Probability} for {step.Transform}.");
        }
    }

    public IReadOnlyList<AugmentationStep> Steps { get; }

    /// <summary>
    /// CNNDetection's training augmentation, which Model-Guardian uses: Gaussian blur σ ~ U[0, 3]
    /// and JPEG quality ~ U{30…100}, each with probability <paramref name="blurJpegProbability"/> (the paper
    /// gives no value; 0.5 is CNNDetection's "Blur+JPEG (0.5)" model), then a random
    /// <paramref name="cropSide"/>² crop, then a horizontal flip with probability 0.5.
    /// </summary>
    public static AugmentationPipeline CnnDetection(int cropSide, double blurJpegProbability = 0.5) => new(
    [
        new AugmentationStep(new GaussianBlurOptions(0, 3), blurJpegProbability),
        new AugmentationStep(new JpegOptions(30, 100), blurJpegProbability),
        new AugmentationStep(new RandomCropOptions(cropSide) { PadIfNeeded = true }),
        new AugmentationStep(new HorizontalFlipOptions(), 0.5),
    ]);

    public RgbImage Apply(RgbImage image, Random rng)
    {
        foreach (var step in Steps)
        {
            bool apply = step.Probability >= 1 || (step.Probability > 0 && rng.NextDouble() < step.Probability);
            if (apply) image = step.Transform.Apply(image, rng);
        }
        return image;
    }

    /// <summary>Applies with the generator <see cref="SeededRandom.ForItem"/>(<paramref name="seed"/>, <paramref name="epoch"/>, <paramref name="index"/>).</summary>
    public RgbImage Apply(RgbImage image, ulong seed, long epoch, long index) => Apply(image, SeededRandom.ForItem(seed, epoch, index));
}
