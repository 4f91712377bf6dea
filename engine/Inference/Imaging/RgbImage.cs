namespace ModelGuardian.Engine.Imaging;

/// <summary>An 8-bit RGB image, row-major HWC.</summary>
public sealed record RgbImage
{
    public RgbImage(int width, int height, byte[] pixels)
    {
        if (width < 1 || height < 1) throw new ArgumentException($"Image size must be positive, got {width}×{height}.");
        if (pixels.Length != checked(width * height * 3))
            throw new ArgumentException($"A {width}×{height} RGB image needs {width * height * 3} bytes, got {pixels.Length}.");
        (Width, Height, Pixels) = (width, height, pixels);
    }

    public int Width { get; }
    public int Height { get; }
    public byte[] Pixels { get; }

    /// <summary>Largest side accepted from an untrusted file unless the caller says otherwise.</summary>
    public const int DefaultMaxSide = 4096;

    /// <summary>Decodes an untrusted image file (<see cref="ImageCodec.Decode"/>); grey and alpha images become RGB.</summary>
    /// <exception cref="InvalidDataException">not a decodable image, or larger than <paramref name="maxSide"/>.</exception>
    public static RgbImage Decode(ReadOnlySpan<byte> data, int maxSide = DefaultMaxSide) => ImageCodec.Decode(data, maxSide);

    public static RgbImage Load(string path, int maxSide = DefaultMaxSide)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"No such image file: {path}", path);
        return Decode(File.ReadAllBytes(path), maxSide);
    }

    public byte[] EncodePng()
    {
        using var ms = new MemoryStream();
        ImageCodec.WritePng(Pixels, Width, Height, 3, ms);
        return ms.ToArray();
    }

    /// <summary>From planar CHW values already in 0…255 (rounded to nearest, clamped).</summary>
    public static RgbImage FromPlanar(ReadOnlySpan<float> chw, int width, int height)
    {
        int hw = width * height;
        var pixels = new byte[3 * hw];
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < hw; i++) pixels[i * 3 + c] = (byte)Math.Clamp(MathF.Round(chw[c * hw + i]), 0f, 255f);
        return new RgbImage(width, height, pixels);
    }
}
