namespace ModelGuardian.Engine.Attacks;

/// <summary>
/// The attacks' image head for a grey victim, on the host (a batch of 32² planes is small): raw generator
/// outputs (N, 1, S, S) → batch-norm over the batch without affine parameters (DFME's last layer) → a =
/// normalised value → image (tanh(a + shift) + 1) / 2, one grey plane repeated to three channels (N, 3, S, S).
/// The zeroth-order attacks perturb a, before the tanh, as DFME does. A negative shift starts the images
/// darker, as the victim's own images are (objects on black). Forward and backward side by side; FD-checked.
/// </summary>
public static class GreyImageHead
{
    private const double Epsilon = 1e-5;

    // raw: (N, 1, S, S) → a: (N, 1, S, S) and 1/σ of the batch (batch statistics, biased variance, as batch-norm trains).
    public static (float[] Normalised, double InverseStd) Normalise(ReadOnlySpan<float> raw)
    {
        if (raw.Length < 2) throw new ArgumentException($"Batch-norm over {raw.Length} values.");
        double mean = 0, variance = 0;
        foreach (float v in raw) mean += v;
        mean /= raw.Length;
        foreach (float v in raw) variance += (v - mean) * (v - mean);
        variance /= raw.Length;
        double inv = 1 / Math.Sqrt(variance + Epsilon);
        var a = new float[raw.Length];
        for (int i = 0; i < a.Length; i++) a[i] = (float)((raw[i] - mean) * inv);
        return (a, inv);
    }

    // da: (N, 1, S, S) → draw; with â = a: draw = (1/σ)·(da − mean(da) − â·mean(da·â)).
    public static float[] NormaliseBackward(ReadOnlySpan<float> normalised, double inverseStd, ReadOnlySpan<float> dNormalised)
    {
        if (normalised.Length != dNormalised.Length) throw new ArgumentException($"{dNormalised.Length} gradients for {normalised.Length} values.");
        double meanD = 0, meanDa = 0;
        for (int i = 0; i < normalised.Length; i++) { meanD += dNormalised[i]; meanDa += (double)dNormalised[i] * normalised[i]; }
        meanD /= normalised.Length;
        meanDa /= normalised.Length;
        var draw = new float[normalised.Length];
        for (int i = 0; i < draw.Length; i++) draw[i] = (float)(inverseStd * (dNormalised[i] - meanD - normalised[i] * meanDa));
        return draw;
    }

    // a: (N, 1, S, S) → images: (N, 3, S, S), (tanh(a + shift) + 1) / 2 in every channel.
    public static float[] ToImages(ReadOnlySpan<float> normalised, int planeLength, float shift)
    {
        int n = Planes(normalised.Length, planeLength);
        var images = new float[n * 3 * planeLength];
        for (int i = 0; i < n; i++)
        {
            var plane = images.AsSpan(i * 3 * planeLength, planeLength);
            for (int j = 0; j < planeLength; j++) plane[j] = (MathF.Tanh(normalised[i * planeLength + j] + shift) + 1) / 2;
            plane.CopyTo(images.AsSpan((i * 3 + 1) * planeLength, planeLength));
            plane.CopyTo(images.AsSpan((i * 3 + 2) * planeLength, planeLength));
        }
        return images;
    }

    // dImages: (N, 3, S, S) → da: (N, 1, S, S); the three channels' gradients summed, times (1 − tanh²) / 2.
    public static float[] ToImagesBackward(ReadOnlySpan<float> normalised, int planeLength, float shift, ReadOnlySpan<float> dImages)
    {
        int n = Planes(normalised.Length, planeLength);
        if (dImages.Length != 3 * normalised.Length) throw new ArgumentException($"{dImages.Length} image gradients for {n} images of 3×{planeLength}.");
        var da = new float[normalised.Length];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < planeLength; j++)
            {
                float t = MathF.Tanh(normalised[i * planeLength + j] + shift);
                float sum = dImages[i * 3 * planeLength + j] + dImages[(i * 3 + 1) * planeLength + j] + dImages[(i * 3 + 2) * planeLength + j];
                da[i * planeLength + j] = sum * (1 - t * t) / 2;
            }
        return da;
    }

    /// <summary>
    /// <paramref name="count"/> images as a grey-headed attack's generator makes them: <paramref name="body"/> (from
    /// <see cref="Training.ImageGenerator.CreateGreyLogits"/>) on noise seeded by <paramref name="seed"/>, normalised over
    /// each batch of <paramref name="batch"/>, through the tanh head at <paramref name="shift"/>, rounded to bytes.
    /// </summary>
    public static IReadOnlyList<Imaging.RgbImage> Sample(Training.ImageGenerator body, int count, ulong seed, float shift, int batch = 64)
    {
        if (batch < 2) throw new ArgumentException($"The head normalises over a batch: at least 2 images, got {batch}.");
        var rng = new Data.SeededRandom(seed);
        int side = Training.ImageGenerator.Side, plane = side * side, noise = Training.ImageGenerator.NoiseSize;
        var images = new List<Imaging.RgbImage>(count);
        for (int start = 0; start < count; start += batch)
        {
            int n = Math.Max(2, Math.Min(batch, count - start));
            var z = new float[n * noise];
            for (int i = 0; i < z.Length; i++) z[i] = (float)rng.NextGaussian();
            var raw = body.Forward(z, new Core.Shape4(n, noise, 1, 1));
            var values = ToImages(Normalise(raw).Normalised, plane, shift);
            System.Numerics.Tensors.TensorPrimitives.Multiply(values, 255f, values);
            for (int i = 0; i < n && images.Count < count; i++) images.Add(Imaging.RgbImage.FromPlanar(values.AsSpan(i * 3 * plane, 3 * plane), side, side));
        }
        return images;
    }

    private static int Planes(int length, int planeLength) =>
        planeLength > 0 && length % planeLength == 0 ? length / planeLength : throw new ArgumentException($"{length} values do not form planes of {planeLength}.");
}
