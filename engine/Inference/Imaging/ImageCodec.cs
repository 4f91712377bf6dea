using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.PixelFormats;

namespace ModelGuardian.Engine.Imaging;

/// <summary>
/// Image files in and out, for bytes that may come from an attacker. Decoding is SixLabors.ImageSharp
/// (fully managed) restricted to PNG, JPEG, BMP, GIF (first frame) and WebP. The side limit is checked
/// from the header before any pixel is allocated, and every allocation is capped, so a decode's memory
/// and its work (the PNG, BMP, GIF and WebP decoders do work in proportion to the pixels they produce)
/// are bounded. JPEG, whose decoder walks a segment structure, is also cancelled past a time limit: its
/// decoder checks the token between rows of blocks. Whatever a decoder throws becomes an
/// <see cref="InvalidDataException"/> whose message names the problem and is safe to show a client.
/// </summary>
public static class ImageCodec
{
    /// <summary>Largest buffer a decode may allocate. A 4096² RGB image needs 48 MB; the cap leaves room for
    /// a decoder's intermediate planes and refuses anything larger.</summary>
    public const int AllocationLimitMegabytes = 256;

    /// <summary>Default wall-clock bound for one JPEG decode; a valid image of the default largest side decodes
    /// in well under a second on one core.</summary>
    public static readonly TimeSpan DefaultTimeLimit = TimeSpan.FromSeconds(5);

    /// <summary>The formats accepted; TIFF, TGA and PBM are left out as attack surface no client needs.</summary>
    public static IReadOnlyList<string> Formats { get; } = ["PNG", "JPEG", "BMP", "GIF", "WebP"];

    // One configuration for every decode: only the listed formats, one thread per decode (a server runs
    // many queries at once; a decode must not take every core), bounded allocations.
    private static readonly Configuration Config = MakeConfiguration();

    private static Configuration MakeConfiguration()
    {
        var c = new Configuration(new PngConfigurationModule(), new JpegConfigurationModule(), new BmpConfigurationModule(),
            new GifConfigurationModule(), new WebpConfigurationModule())
        {
            MaxDegreeOfParallelism = 1,
            MemoryAllocator = MemoryAllocator.Create(new MemoryAllocatorOptions
            {
                AllocationLimitMegabytes = AllocationLimitMegabytes,
                MaximumPoolSizeMegabytes = 64,
            }),
        };
        c.ImageFormatsManager.SetDecoder(GifFormat.Instance, new GifDecoder { DecodingMode = FrameDecodingMode.First });
        return c;
    }

    /// <summary>Decodes an image file into 8-bit RGB; grey becomes RGB, alpha is dropped.</summary>
    /// <exception cref="InvalidDataException">not one of <see cref="Formats"/>, malformed, larger than
    /// <paramref name="maxSide"/>, or (JPEG) not decoded within <paramref name="timeLimit"/>.</exception>
    public static RgbImage Decode(ReadOnlySpan<byte> data, int maxSide = RgbImage.DefaultMaxSide, TimeSpan? timeLimit = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSide, 1);
        if (data.IsEmpty) throw new InvalidDataException("The image is empty (0 bytes).");
        var bytes = data.ToArray();
        var (info, format) = ReadHeader(bytes);
        int width = info.Width, height = info.Height;
        if (width > maxSide || height > maxSide)
            throw new InvalidDataException($"The {format.Name} image is {width}×{height}; the largest side accepted is {maxSide}.");
        if (width < 1 || height < 1) throw new InvalidDataException($"The {format.Name} image declares a size of {width}×{height}.");

        var limit = timeLimit ?? DefaultTimeLimit;
        using var cancel = new CancellationTokenSource(limit);
        try
        {
            using var stream = new MemoryStream(bytes, writable: false);
            var decoder = Config.ImageFormatsManager.FindDecoder(format)
                          ?? throw new InvalidDataException($"No decoder for {format.Name}.");
            using var image = decoder.Decode<Rgb24>(Config, stream, cancel.Token);
            if (image.Width != width || image.Height != height)
                throw new InvalidDataException($"The {format.Name} header says {width}×{height} but {image.Width}×{image.Height} was decoded.");
            var pixels = new byte[checked(image.Width * image.Height * 3)];
            image.CopyPixelDataTo(pixels);
            return new RgbImage(image.Width, image.Height, pixels);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            throw new InvalidDataException($"The {format.Name} image was not decoded within {limit.TotalSeconds:0.###} s.");
        }
        catch (Exception e) when (e is not (InvalidDataException or OutOfMemoryException))
        {
            throw new InvalidDataException($"The {format.Name} image could not be decoded: {Describe(e)}", e);
        }
    }

    /// <summary>What a file declares in its header alone: size, format, and whether it stores grey levels only
    /// (a grey PNG or a one-component JPEG).</summary>
    /// <exception cref="InvalidDataException">not one of <see cref="Formats"/>, or a header that cannot be read.</exception>
    public static ImageHeader Identify(byte[] bytes)
    {
        var (info, format) = ReadHeader(bytes);
        bool grey = format switch
        {
            PngFormat => info.Metadata.GetPngMetadata().ColorType is PngColorType.Grayscale or PngColorType.GrayscaleWithAlpha,
            JpegFormat => info.Metadata.GetJpegMetadata().ColorType is JpegColorType.Luminance,
            _ => false,
        };
        return new ImageHeader(info.Width, info.Height, format.Name, grey);
    }

    private static (IImageInfo Info, IImageFormat Format) ReadHeader(byte[] bytes)
    {
        IImageInfo? info;
        IImageFormat? format;
        try
        {
            using var stream = new MemoryStream(bytes, writable: false);
            info = Image.Identify(Config, stream, out format);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"The image header could not be read: {Describe(e)}", e);
        }
        if (info is null || format is null)
            throw new InvalidDataException($"Not a decodable image ({string.Join(", ", Formats)} expected).");
        return (info, format);
    }

    // The decoders' own exceptions name the problem; a NullReferenceException or IndexOutOfRangeException
    // from a decoder bug only says that the file is malformed, which is all the client needs.
    private static string Describe(Exception e) => e switch
    {
        InvalidImageContentException or UnknownImageFormatException or ImageFormatException or NotSupportedException => e.Message,
        _ => $"malformed data ({e.GetType().Name} in the decoder)",
    };

    /// <summary>PNG of 8-bit interleaved pixels with 3 (RGB) or 4 (RGBA) channels.</summary>
    public static void WritePng(byte[] pixels, int width, int height, int channels, Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        using var image = Load(pixels, width, height, channels);
        image.Save(destination, new PngEncoder { CompressionLevel = PngCompressionLevel.DefaultCompression });
    }

    /// <summary>Baseline JPEG at <paramref name="quality"/> (1…100); chroma subsampled 4:2:0 at quality ≤ 90, full 4:4:4 above.</summary>
    public static void WriteJpeg(byte[] pixels, int width, int height, int quality, Stream destination)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(quality, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(quality, 100);
        using var image = Load(pixels, width, height, 3);
        image.Save(destination, new JpegEncoder
        {
            Quality = quality,
            ColorType = quality <= 90 ? JpegColorType.YCbCrRatio420 : JpegColorType.YCbCrRatio444,
        });
    }

    /// <summary>24-bit BMP.</summary>
    public static void WriteBmp(byte[] pixels, int width, int height, Stream destination)
    {
        using var image = Load(pixels, width, height, 3);
        image.Save(destination, new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 });
    }

    private static Image Load(byte[] pixels, int width, int height, int channels) => channels switch
    {
        3 => Image.LoadPixelData<Rgb24>(pixels, width, height),
        4 => Image.LoadPixelData<Rgba32>(pixels, width, height),
        _ => throw new ArgumentOutOfRangeException(nameof(channels), channels, "3 (RGB) or 4 (RGBA) channels expected."),
    };
}

/// <summary>An image file's header: its size, its format's name, and whether it stores grey levels only.</summary>
public sealed record ImageHeader(int Width, int Height, string Format, bool Grey);
