using System.Diagnostics;
using ModelGuardian.Engine.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit.Abstractions;

namespace ModelGuardian.Tests.Imaging;

/// <summary>
/// Property test of the image intake: valid PNG, JPEG (baseline 4:2:0 and 4:4:4, progressive, grey), BMP,
/// GIF and WebP files are mutated (bit flips, byte writes, truncations, insertions, deletions, repeated
/// ranges, large length fields) and decoded. The only allowed outcomes are an image within the side limit
/// or an <see cref="InvalidDataException"/>, and no decode may reach the codec's time limit. A decode that
/// ignores its cancellation is caught by a watchdog, which fails the test naming the case instead of hanging.
/// MG_FUZZ_MUTATIONS sets the number of cases (default 3,000).
/// </summary>
public sealed class ImageFuzzTests(ITestOutputHelper output)
{
    private const int MaxSide = 512;
    private static readonly TimeSpan Watchdog = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task The_37_byte_jpeg_is_refused_as_a_bad_image()
    {
        Assert.Equal(37, HostileImages.Truncated37ByteJpeg.Length);
        var error = await Task.Run(() => Record.Exception(() => ImageCodec.Decode(HostileImages.Truncated37ByteJpeg))).WaitAsync(Watchdog);
        Assert.IsType<InvalidDataException>(error);
    }

    [Fact]
    public void A_jpeg_decode_past_its_time_limit_is_cancelled_inside_the_decoder()
    {
        // A limit already spent: the JPEG decoder checks its token between rows of blocks and must stop with the
        // bad-image error. (The other decoders do not check it; their work is bounded by the declared pixel count.)
        using var rgb = Image.LoadPixelData<Rgb24>(new byte[512 * 512 * 3], 512, 512);
        using var ms = new MemoryStream();
        rgb.Save(ms, new JpegEncoder());
        var e = Assert.Throws<InvalidDataException>(() => ImageCodec.Decode(ms.ToArray(), timeLimit: TimeSpan.Zero));
        Assert.Contains("not decoded within", e.Message);
    }

    [Fact]
    public void Every_seed_decodes_to_its_pixels()
    {
        foreach (var (name, bytes) in Seeds())
        {
            var image = ImageCodec.Decode(bytes, MaxSide);
            Assert.Equal((Width, Height), (image.Width, image.Height));
            var (mean, max) = Difference(Pattern(), image, name.Contains("grey"));
            // Lossless formats give the pattern back exactly; JPEG within its quantisation (mean ≤ 6 levels), GIF
            // within its 256-colour palette and dithering (mean ≤ 10).
            if (name.StartsWith("jpeg")) Assert.True(mean <= 6, $"{name}: mean |Δ| {mean:F2}");
            else if (name.StartsWith("gif")) Assert.True(mean <= 10, $"{name}: mean |Δ| {mean:F2}");
            else Assert.True(max == 0, $"{name}: max |Δ| {max}");
        }
    }

    [Fact]
    public void Mutated_files_decode_or_fail_with_one_error_type_within_the_bound()
    {
        int cases = int.TryParse(Environment.GetEnvironmentVariable("MG_FUZZ_MUTATIONS"), out int n) && n > 0 ? n : 3000;
        var report = Fuzz(cases, seed: 20261203, output.WriteLine);
        output.WriteLine(report.Summary);
        Assert.True(report.Failures.Count == 0, string.Join("\n", report.Failures.Take(20)));
        // The mutations must reach both outcomes, or the test exercises nothing.
        Assert.True(report.Decoded > 0 && report.Refused > 0, report.Summary);
    }

    public sealed record FuzzReport(int Cases, int Decoded, int Refused, double MaxMilliseconds, string SlowestCase, List<string> Failures,
        Dictionary<string, int> RefusalsByKind)
    {
        public string Summary =>
            $"{Cases} cases: {Decoded} decoded, {Refused} refused as bad images, {Failures.Count} failures; slowest decode {MaxMilliseconds:F1} ms ({SlowestCase}); "
            + "refusals by decoder exception: " + string.Join(", ", RefusalsByKind.OrderByDescending(k => k.Value).Select(k => $"{k.Key} {k.Value}"));
    }

    /// <summary>Runs <paramref name="cases"/> mutations on a worker thread under the watchdog.</summary>
    public static FuzzReport Fuzz(int cases, int seed, Action<string> log)
    {
        var seeds = Seeds().ToArray();
        long caseStarted = Stopwatch.GetTimestamp();
        string current = "";
        int decoded = 0, refused = 0;
        double maxMs = 0;
        string slowest = "";
        var failures = new List<string>();
        var kinds = new Dictionary<string, int>();
        var worker = new Thread(() =>
        {
            var rng = new Random(seed);
            for (int i = 0; i < cases; i++)
            {
                var (name, original) = seeds[i % seeds.Length];
                var (mutated, how) = Mutate(original, rng);
                Volatile.Write(ref current, $"case {i} ({name}, {how})");
                Volatile.Write(ref caseStarted, Stopwatch.GetTimestamp());
                try
                {
                    var image = ImageCodec.Decode(mutated, MaxSide);
                    if (image.Width > MaxSide || image.Height > MaxSide) failures.Add($"{current}: decoded {image.Width}×{image.Height} past the side limit");
                    decoded++;
                }
                catch (InvalidDataException e)
                {
                    if (e.Message.Contains("not decoded within")) failures.Add($"{current}: reached the time limit: {e.Message}");
                    refused++;
                    string kind = e.InnerException?.GetType().Name ?? "header or size check";
                    kinds[kind] = kinds.GetValueOrDefault(kind) + 1;
                }
                catch (Exception e)
                {
                    failures.Add($"{current}: {e.GetType().Name}: {e.Message}");
                }
                double ms = Stopwatch.GetElapsedTime(caseStarted).TotalMilliseconds;
                if (ms > maxMs) (maxMs, slowest) = (ms, current);
                if ((i + 1) % 10_000 == 0) log($"{i + 1} cases, slowest so far {maxMs:F1} ms");
            }
        }) { IsBackground = true, Name = "image fuzz" };
        worker.Start();
        while (!worker.Join(TimeSpan.FromSeconds(1)))
        {
            var elapsed = Stopwatch.GetElapsedTime(Volatile.Read(ref caseStarted));
            // A background thread stuck in a decoder cannot be stopped; failing names the case that hangs.
            Assert.True(elapsed < Watchdog, $"{Volatile.Read(ref current)} has run for {elapsed.TotalSeconds:F0} s: the decoder ignores its time limit");
        }
        return new FuzzReport(cases, decoded, refused, maxMs, slowest, failures, kinds);
    }

    private static (byte[] Bytes, string How) Mutate(byte[] original, Random rng)
    {
        var b = new List<byte>(original);
        int steps = 1 + rng.Next(3);
        var how = new List<string>();
        for (int s = 0; s < steps && b.Count > 0; s++)
        {
            int at = rng.Next(b.Count);
            switch (rng.Next(8))
            {
                case 0:
                    b[at] ^= (byte)(1 << rng.Next(8));
                    how.Add($"flip@{at}");
                    break;
                case 1:
                    byte[] interesting = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE];
                    b[at] = rng.Next(2) == 0 ? interesting[rng.Next(interesting.Length)] : (byte)rng.Next(256);
                    how.Add($"set@{at}");
                    break;
                case 2:
                    b.RemoveRange(at, b.Count - at);
                    how.Add($"truncate@{at}");
                    break;
                case 3:
                    var extra = new byte[1 + rng.Next(16)];
                    rng.NextBytes(extra);
                    b.InsertRange(at, extra);
                    how.Add($"insert{extra.Length}@{at}");
                    break;
                case 4:
                    int len = Math.Min(b.Count - at, 1 + rng.Next(32));
                    b.RemoveRange(at, len);
                    how.Add($"delete{len}@{at}");
                    break;
                case 5:
                    int rl = Math.Min(b.Count - at, 1 + rng.Next(64));
                    b.InsertRange(at, b.GetRange(at, rl));
                    how.Add($"repeat{rl}@{at}");
                    break;
                case 6:
                    // A large 16- or 32-bit field: lengths and sizes in every format's headers.
                    int width = rng.Next(2) == 0 ? 2 : 4;
                    for (int k = 0; k < width && at + k < b.Count; k++) b[at + k] = k == 0 ? (byte)0x7F : (byte)0xFF;
                    how.Add($"big{width * 8}@{at}");
                    break;
                default:
                    for (int k = 0; k < 1 + rng.Next(8) && at + k < b.Count; k++) b[at + k] = (byte)rng.Next(256);
                    how.Add($"scramble@{at}");
                    break;
            }
        }
        return (b.ToArray(), string.Join("+", how));
    }

    private const int Width = 40, Height = 30;

    private static RgbImage Pattern()
    {
        var px = new byte[Width * Height * 3];
        for (int y = 0; y < Height; y++)
            for (int x = 0; x < Width; x++)
            {
                int i = (y * Width + x) * 3;
                (px[i], px[i + 1], px[i + 2]) = ((byte)(x * 6), (byte)(y * 8), (byte)(128 + 60 * Math.Sin(x * 0.3 + y * 0.2)));
            }
        return new RgbImage(Width, Height, px);
    }

    /// <summary>Mean and max |Δ| against the pattern (against its luma for grey files).</summary>
    private static (double Mean, int Max) Difference(RgbImage expected, RgbImage actual, bool grey)
    {
        long sum = 0;
        int max = 0;
        for (int i = 0; i < expected.Pixels.Length; i++)
        {
            int want = expected.Pixels[i];
            if (grey)
            {
                int p = i / 3 * 3;
                want = new Rgb24(expected.Pixels[p], expected.Pixels[p + 1], expected.Pixels[p + 2]) is var c ? ToL8(c) : 0;
            }
            int d = Math.Abs(want - actual.Pixels[i]);
            sum += d;
            max = Math.Max(max, d);
        }
        return ((double)sum / expected.Pixels.Length, max);
    }

    private static byte ToL8(Rgb24 c)
    {
        L8 l = default;
        l.FromRgb24(c);
        return l.PackedValue;
    }

    /// <summary>The valid files the mutations start from, each named by its kind.</summary>
    public static IEnumerable<(string Name, byte[] Bytes)> Seeds()
    {
        var pattern = Pattern();
        using var rgb = Image.LoadPixelData<Rgb24>(pattern.Pixels, Width, Height);
        using var grey = rgb.CloneAs<L8>();
        byte[] Save(Image image, SixLabors.ImageSharp.Formats.IImageEncoder encoder)
        {
            using var ms = new MemoryStream();
            image.Save(ms, encoder);
            return ms.ToArray();
        }
        yield return ("png", pattern.EncodePng());
        yield return ("png-grey", Save(grey, new PngEncoder { ColorType = PngColorType.Grayscale }));
        yield return ("png-interlaced", Save(rgb, new PngEncoder { InterlaceMethod = PngInterlaceMode.Adam7 }));
        yield return ("jpeg-baseline-420", Jpeg(pattern, 75));
        yield return ("jpeg-baseline-444", Jpeg(pattern, 95));
        yield return ("jpeg-grey", Save(grey, new JpegEncoder { ColorType = JpegColorType.Luminance, Quality = 90 }));
        // Written by libjpeg-turbo's cjpeg -progressive from the same pattern (the managed encoder writes baseline only).
        yield return ("jpeg-progressive", File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", "images", "progressive.jpg")));
        yield return ("bmp", Bmp(pattern));
        yield return ("gif", Save(rgb, new GifEncoder()));
        yield return ("webp-lossless", Save(rgb, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }));
    }

    private static byte[] Jpeg(RgbImage image, int quality)
    {
        using var ms = new MemoryStream();
        ImageCodec.WriteJpeg(image.Pixels, image.Width, image.Height, quality, ms);
        return ms.ToArray();
    }

    private static byte[] Bmp(RgbImage image)
    {
        using var ms = new MemoryStream();
        ImageCodec.WriteBmp(image.Pixels, image.Width, image.Height, ms);
        return ms.ToArray();
    }
}
