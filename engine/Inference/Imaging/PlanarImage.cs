namespace ModelGuardian.Engine.Imaging;

/// <summary>
/// An RGB image as planar float values on the 0…255 scale, (3, H, W) row-major: what both a decoded
/// PNG/JPEG and a float tensor sent as JSON become, so every query takes one preprocessing path.
/// </summary>
public sealed record PlanarImage
{
    public PlanarImage(int width, int height, float[] values)
    {
        if (width < 1 || height < 1) throw new ArgumentException($"Image size must be positive, got {width}×{height}.");
        if (values.Length != 3L * width * height) throw new ArgumentException($"A {width}×{height} RGB image needs {3L * width * height} values, got {values.Length}.");
        foreach (float v in values)
            if (!(v >= 0f && v <= 255f)) throw new ArgumentException($"Pixel values must be finite and within 0…255, got {v}.");
        (Width, Height, Values) = (width, height, values);
    }

    public int Width { get; }
    public int Height { get; }
    public float[] Values { get; }

    public static PlanarImage From(RgbImage image)
    {
        int hw = image.Width * image.Height;
        var values = new float[3 * hw];
        var px = image.Pixels;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < hw; i++) values[c * hw + i] = px[i * 3 + c];
        return new PlanarImage(image.Width, image.Height, values);
    }
}
