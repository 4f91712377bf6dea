using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Engine.Data;

/// <summary>
/// A folder of sample images installed by a Debian package. <see cref="Excluded"/> names files there that
/// pass <see cref="PhotoRule"/> but are not camera photos (drawings, paintings, logos, synthetic tests) or
/// duplicate another file. <see cref="Optional"/> sources add photos when installed but are not what an
/// error tells the user to install.
/// </summary>
public sealed record PhotoSource(string Package, string Directory, IReadOnlyList<string> Excluded, bool Optional = false);

/// <summary>
/// Which images count as colour photos, applied per file in this order: a PNG/JPEG/BMP extension; not
/// excluded by name; decodable; not stored as grey; both sides ≥ <see cref="MinSide"/> and ≤ the load's
/// maxSide; mean chroma (max − min of R, G, B per pixel) ≥ <see cref="MinMeanChroma"/>, which rejects grey
/// images stored as RGB; and at most <see cref="MaxFlatShare"/> of pixels equal to their right-hand
/// neighbour, which rejects logos, drawings and renderings with flat areas (camera noise makes neighbours
/// differ in photos: 0–43% in the Debian photos, 55–99% in their drawings).
/// </summary>
public sealed record PhotoRule
{
    public int MinSide { get; init; } = 128;
    public double MinMeanChroma { get; init; } = 8.0;
    public double MaxFlatShare { get; init; } = 0.5;
}

/// <summary>
/// Where a crop comes from: a <see cref="Side"/>² window at the photo's own resolution (the default — real
/// camera statistics, no resampling traces), or, with <see cref="MinSourceSide"/>/<see cref="MaxSourceSide"/>,
/// a square of a side drawn uniformly from that range (capped by the photo) shrunk or enlarged to
/// <see cref="Side"/> with anti-aliased bicubic resampling.
/// </summary>
public sealed record PhotoCropOptions(int Side)
{
    public int? MinSourceSide { get; init; }
    public int? MaxSourceSide { get; init; }
}

/// <summary>
/// Real colour photos from Debian packages, the "real" class of the detectors' training data,
/// served as seeded random crops. The packages ship a few dozen photos; every crop is a different window,
/// so they give many distinct training images. Which photos the pool holds depends on which packages are
/// installed; for one installation, a seed always gives the same crops.
/// </summary>
public sealed class PhotoPool
{
    /// <summary>Every place photos are looked for — the one list to extend. Each folder is scanned non-recursively.</summary>
    public static IReadOnlyList<PhotoSource> DebianSources { get; } =
    [
        // ~20 test images of scikit-image; color.png is its colour wheel.
        new("python3-skimage", "/usr/lib/python3/dist-packages/skimage/data", ["color.png"]),
        // OpenCV's sample data: photos among calibration shots, drawings and logos.
        new("opencv-doc", "/usr/share/doc/opencv-doc/examples/data",
            ["HappyFish.jpg", "WindowsLogo.jpg", "pic2.png", "pic4.png", "starry_night.jpg",
             // rejected by the rule anyway; named so that its 13-megapixel decode is skipped
             "chessboard.png"]),
        // darknet's detection samples (labels/ beneath holds glyphs and is not scanned); scream.jpg is Munch's painting.
        new("darknet", "/usr/share/darknet/data", ["scream.jpg"], Optional: true),
        // libjxl's test photos at 500 px; the _alpha file repeats the _srgb8 one.
        new("libjxl-testdata", "/usr/share/libjxl-testdata/external/wesaturate/500px", ["tmshre_riaphotographs_alpha.png"], Optional: true),
    ];

    private PhotoPool(IReadOnlyList<ImageFile> photos, IReadOnlyList<SkippedFile> rejected)
    {
        (Photos, Rejected) = (photos, rejected);
        SmallestSide = photos.Min(p => Math.Min(p.Image.Width, p.Image.Height));
    }

    /// <summary>The accepted photos, in source order, then ordinal file-name order.</summary>
    public IReadOnlyList<ImageFile> Photos { get; }

    /// <summary>Every other image file in the source folders, with the reason.</summary>
    public IReadOnlyList<SkippedFile> Rejected { get; }

    /// <summary>The shortest side among the photos: the largest crop every photo can give.</summary>
    public int SmallestSide { get; }

    /// <summary>Loads the photos of every installed source.</summary>
    /// <exception cref="DatasetNotFoundException">no source folder exists or none holds an accepted photo; names the packages to install.</exception>
    public static PhotoPool Load(IReadOnlyList<PhotoSource>? sources = null, PhotoRule? rule = null, int maxSide = RgbImage.DefaultMaxSide)
    {
        sources ??= DebianSources;
        rule ??= new PhotoRule();
        var photos = new List<ImageFile>();
        var rejected = new List<SkippedFile>();
        foreach (var source in sources)
        {
            if (!Directory.Exists(source.Directory)) continue;
            var files = Directory.EnumerateFiles(source.Directory).Where(ImageFolder.IsImageFile).Order(StringComparer.Ordinal);
            foreach (var file in files)
            {
                string? reason = source.Excluded.Contains(Path.GetFileName(file)) ? "listed as not a photo (or a duplicate)" : null;
                RgbImage? image = null;
                if (reason is null) (image, reason) = Judge(file, rule, maxSide);
                if (image is not null) photos.Add(new ImageFile(file, image));
                else rejected.Add(new SkippedFile(file, reason!));
            }
        }
        if (photos.Count == 0)
        {
            var required = sources.Where(s => !s.Optional).Select(s => s.Package).Distinct().ToList();
            var optional = sources.Where(s => s.Optional).Select(s => s.Package).Distinct().ToList();
            if (required.Count == 0) (required, optional) = (optional, []);
            throw new DatasetNotFoundException("Real photos (the Debian sample-image packages)", required,
                sources.Select(s => s.Directory).ToList(),
                optional.Count == 0 ? null : $"{string.Join(" and ", optional)} add more photos");
        }
        return new PhotoPool(photos, rejected);
    }

    /// <summary>Applies <paramref name="rule"/> to one file: the decoded photo, or null and why not.</summary>
    public static (RgbImage? Photo, string? Reason) Judge(string file, PhotoRule rule, int maxSide = RgbImage.DefaultMaxSide)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(file); }
        catch (IOException e) { return (null, "unreadable: " + e.Message); }
        ImageHeader header;
        try { header = ImageCodec.Identify(bytes); }
        catch (InvalidDataException e) { return (null, "unreadable header: " + e.Message); }
        var (width, height, _, grey) = header;
        if (grey) return (null, "grey");
        if (Math.Min(width, height) < rule.MinSide) return (null, $"too small ({width}×{height})");
        if (Math.Max(width, height) > maxSide) return (null, $"too large ({width}×{height})");
        RgbImage image;
        try { image = RgbImage.Decode(bytes, maxSide); }
        catch (InvalidDataException e) { return (null, "undecodable: " + e.Message); }

        var p = image.Pixels;
        int n = image.Width * image.Height;
        long chroma = 0, flat = 0;
        for (int i = 0; i < n; i++)
        {
            int r = p[3 * i], g = p[3 * i + 1], b = p[3 * i + 2];
            chroma += Math.Max(r, Math.Max(g, b)) - Math.Min(r, Math.Min(g, b));
        }
        for (int y = 0; y < image.Height; y++)
            for (int x = 0, a = y * image.Width * 3; x + 1 < image.Width; x++, a += 3)
                if (p[a] == p[a + 3] && p[a + 1] == p[a + 4] && p[a + 2] == p[a + 5]) flat++;
        double meanChroma = (double)chroma / n, flatShare = (double)flat / n;
        if (meanChroma < rule.MinMeanChroma) return (null, $"grey in effect (mean chroma {meanChroma:F1} < {rule.MinMeanChroma})");
        if (flatShare > rule.MaxFlatShare) return (null, $"flat like a drawing or logo ({flatShare:P0} of pixels equal their neighbour > {rule.MaxFlatShare:P0})");
        return (image, null);
    }

    /// <summary>One random crop: a photo chosen uniformly, then a window within it (see <see cref="PhotoCropOptions"/>).</summary>
    public RgbImage Crop(PhotoCropOptions options, Random rng)
    {
        var (minSource, maxSource) = SourceRange(options);
        var photo = Photos[rng.Next(Photos.Count)].Image;
        int source = rng.Next(minSource, Math.Min(maxSource, Math.Min(photo.Width, photo.Height)) + 1);
        int x = rng.Next(photo.Width - source + 1), y = rng.Next(photo.Height - source + 1);
        var crop = Augmentations.Crop(photo, x, y, source, source);
        return Augmentations.Resize(crop, options.Side, options.Side);
    }

    /// <summary>
    /// <paramref name="count"/> crops; crop i draws from <see cref="SeededRandom.ForItem"/>(seed, 0, i), so it is the
    /// same whatever the count and can be produced on any thread.
    /// </summary>
    public IEnumerable<RgbImage> Crops(int count, PhotoCropOptions options, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        SourceRange(options);
        return Enumerable.Range(0, count).Select(i => Crop(options, SeededRandom.ForItem(seed, 0, i)));
    }

    private (int Min, int Max) SourceRange(PhotoCropOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Side, 1);
        int min = options.MinSourceSide ?? options.Side, max = options.MaxSourceSide ?? options.Side;
        if (min < 1 || max < min) throw new ArgumentException($"Source side range must satisfy 1 ≤ min ≤ max, got {min}…{max}.");
        if (min > SmallestSide) throw new ArgumentException($"A {min}-pixel source window does not fit the smallest photo's {SmallestSide}-pixel side.");
        return (min, max);
    }
}
