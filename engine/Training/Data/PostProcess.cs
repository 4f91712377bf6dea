using System.Globalization;
using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Engine.Data;

/// <summary>What a client can do to an image between making it and sending it.</summary>
public enum PostProcessKind
{
    /// <summary>Gaussian blur; the amount is σ in pixels.</summary>
    Blur,
    /// <summary>JPEG re-encoding; the amount is the quality, 1…100.</summary>
    Jpeg,
    /// <summary>Bicubic down-sampling by an integer factor and back up to the original size; the amount is the factor.</summary>
    DownUp,
    /// <summary>Additive Gaussian noise, rounded to bytes; the amount is σ in grey levels of 255.</summary>
    Noise,
}

/// <summary>
/// One post-processing step at one strength, named as tables, result keys and the CLI write it: blur-1,
/// jpeg-75, downup-2, noise-3. These are the cheap steps an attacker appends to its generator to wash out
/// up-sampling traces, and that ordinary uploads go through too, so the detector is measured under each on
/// attack and benign images alike.
/// </summary>
public sealed record PostProcess
{
    public PostProcess(PostProcessKind kind, double amount)
    {
        bool valid = kind switch
        {
            PostProcessKind.Blur => amount > 0 && amount <= 16,
            PostProcessKind.Jpeg => amount >= 1 && amount <= 100 && amount == Math.Floor(amount),
            PostProcessKind.DownUp => amount >= 2 && amount <= 16 && amount == Math.Floor(amount),
            PostProcessKind.Noise => amount > 0 && amount <= 128,
            _ => false,
        };
        if (!valid)
            throw new ArgumentException($"Bad post-processing strength {amount} for {kind} (blur σ in (0, 16], JPEG quality 1…100, down-up factor 2…16, noise σ in (0, 128]).");
        (Kind, Amount) = (kind, amount);
    }

    public PostProcessKind Kind { get; }
    public double Amount { get; }

    public string Name => $"{KindName(Kind)}-{Amount.ToString(CultureInfo.InvariantCulture)}";

    public override string ToString() => Name;

    /// <summary>The measurement protocol's steps: blur σ 0.5, 1, 2; JPEG quality 90, 75, 50, 30; down-up ×2; noise σ 3.</summary>
    public static IReadOnlyList<PostProcess> Protocol { get; } =
    [
        new(PostProcessKind.Blur, 0.5), new(PostProcessKind.Blur, 1), new(PostProcessKind.Blur, 2),
        new(PostProcessKind.Jpeg, 90), new(PostProcessKind.Jpeg, 75), new(PostProcessKind.Jpeg, 50), new(PostProcessKind.Jpeg, 30),
        new(PostProcessKind.DownUp, 2), new(PostProcessKind.Noise, 3),
    ];

    /// <summary>Reads a name such as "blur-1" or "jpeg-75".</summary>
    public static PostProcess Parse(string name)
    {
        int dash = name.IndexOf('-');
        var kind = dash < 0 ? null : Enum.GetValues<PostProcessKind>().Cast<PostProcessKind?>().FirstOrDefault(k => KindName(k!.Value) == name[..dash]);
        if (kind is null || !double.TryParse(name[(dash + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out double amount))
            throw new ArgumentException($"Unknown post-processing step '{name}' (e.g. blur-1, jpeg-75, downup-2, noise-3).");
        return new PostProcess(kind.Value, amount);
    }

    /// <summary>The processed image; noise is drawn from <paramref name="seed"/>, the other steps are deterministic.</summary>
    public RgbImage Apply(RgbImage image, ulong seed) => Kind switch
    {
        PostProcessKind.Blur => Augmentations.GaussianBlur(image, Amount),
        PostProcessKind.Jpeg => Augmentations.JpegReencode(image, (int)Amount),
        PostProcessKind.DownUp => DownUp(image, (int)Amount),
        PostProcessKind.Noise => AddNoise(image, Amount, seed),
        _ => throw new InvalidOperationException($"Unknown post-processing kind {Kind}."),
    };

    private static string KindName(PostProcessKind kind) => kind switch
    {
        PostProcessKind.Blur => "blur", PostProcessKind.Jpeg => "jpeg", PostProcessKind.DownUp => "downup", PostProcessKind.Noise => "noise",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    private static RgbImage DownUp(RgbImage image, int factor)
    {
        var small = Augmentations.Resize(image, Math.Max(1, image.Width / factor), Math.Max(1, image.Height / factor));
        return Augmentations.Resize(small, image.Width, image.Height);
    }

    private static RgbImage AddNoise(RgbImage image, double sigma, ulong seed)
    {
        var rng = new SeededRandom(seed);
        var pixels = new byte[image.Pixels.Length];
        for (int i = 0; i < pixels.Length; i++)
            pixels[i] = (byte)Math.Clamp((int)Math.Round(image.Pixels[i] + sigma * rng.NextGaussian()), 0, 255);
        return new RgbImage(image.Width, image.Height, pixels);
    }
}

/// <summary>
/// Post-processing as a training augmentation: with probability <see cref="Probability"/> each, in order, a blur
/// with σ ~ U[0, 3] and a JPEG re-encoding at quality ~ U{30…100} (CNNDetection's "Blur+JPEG" recipe, which the
/// paper trains with), then, where <see cref="Resampling"/> is set, a down-up by 2 and noise with σ ~ U[0, 4]
/// under the same probability: the steps an adaptive attacker reaches for first.
/// </summary>
public sealed record PostProcessAugmentation(double Probability, bool Resampling = false) : IAugmentation
{
    public RgbImage Apply(RgbImage image, Random rng)
    {
        if (!(Probability >= 0 && Probability <= 1)) throw new ArgumentException($"Post-processing probability must lie in [0, 1], got {Probability}.");
        if (rng.NextDouble() < Probability) image = Augmentations.RandomGaussianBlur(image, new GaussianBlurOptions(0, 3), rng);
        if (rng.NextDouble() < Probability) image = Augmentations.RandomJpeg(image, new JpegOptions(30, 100), rng);
        if (!Resampling) return image;
        if (rng.NextDouble() < Probability) image = new PostProcess(PostProcessKind.DownUp, 2).Apply(image, 0);
        if (rng.NextDouble() < Probability)
        {
            double sigma = 4 * rng.NextDouble();
            if (sigma > 0) image = new PostProcess(PostProcessKind.Noise, sigma).Apply(image, rng is SeededRandom s ? s.NextUInt64() : (ulong)rng.NextInt64());
        }
        return image;
    }
}
