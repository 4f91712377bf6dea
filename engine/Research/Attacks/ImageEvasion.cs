using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Engine.Attacks;

/// <summary>
/// What an evasive attacker appends to its generator, in this order: a Gaussian blur (<see cref="ImageBlur"/>, exact
/// gradient), then JPEG re-encoding at a quality (the image rounded to bytes, encoded and decoded as an upload would be),
/// whose gradient is taken as the identity — the straight-through estimate, as JPEG has no useful derivative.
/// Images are planar (N, 3, S, S) with values in 0…1.
/// </summary>
public sealed class ImageEvasion
{
    public ImageEvasion(double blurSigma, int jpegQuality)
    {
        if (!(blurSigma >= 0 && blurSigma <= 16)) throw new ArgumentException($"The blur σ must lie in [0, 16], got {blurSigma}.");
        if (jpegQuality is < 0 or > 100) throw new ArgumentException($"The JPEG quality must lie in 1…100 (0: none), got {jpegQuality}.");
        Blur = blurSigma > 0 ? new ImageBlur(blurSigma) : null;
        JpegQuality = jpegQuality;
    }

    public ImageBlur? Blur { get; }
    public int JpegQuality { get; }

    // images: (N, 3, S, S) in 0…1 → the same shape, blurred then JPEG-compressed.
    public float[] Forward(float[] images, int side)
    {
        var y = Blur?.Forward(images, side) ?? images;
        return JpegQuality > 0 ? Jpeg(y, side, JpegQuality) : y;
    }

    // dOutput: (N, 3, S, S) → d(images): straight through the JPEG step, the blur's adjoint after it.
    public float[] Backward(float[] dOutput, int side) => Blur?.Backward(dOutput, side) ?? dOutput;

    /// <summary>Each image rounded to bytes, JPEG-encoded at <paramref name="quality"/> and decoded, back to 0…1.</summary>
    public static float[] Jpeg(ReadOnlySpan<float> images, int side, int quality)
    {
        int per = 3 * side * side;
        if (images.Length % per != 0) throw new ArgumentException($"{images.Length} values do not form 3×{side}×{side} images.");
        var y = new float[images.Length];
        var scaled = new float[per];
        for (int i = 0; i < images.Length / per; i++)
        {
            var src = images.Slice(i * per, per);
            for (int j = 0; j < per; j++) scaled[j] = src[j] * 255f;
            var decoded = PlanarImage.From(Augmentations.JpegReencode(RgbImage.FromPlanar(scaled, side, side), quality)).Values;
            for (int j = 0; j < per; j++) y[i * per + j] = decoded[j] / 255f;
        }
        return y;
    }
}
