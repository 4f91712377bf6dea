using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Engine.Networks;

/// <summary>
/// Turns an image into a network's input as its descriptor says: brought to the input side by its input contract
/// (resized, padded or centre-cropped; made grey) or, without one, resized; then normalised per channel.
/// </summary>
public static class NetworkInput
{
    /// <summary>(3, S, S) for S = the network's input side.</summary>
    public static float[] FromImage(Network network, RgbImage image, ResizeFilter filter = ResizeFilter.Bilinear)
        => FromPlanar(network, PlanarImage.From(image), filter);

    /// <summary>(3, S, S) for S = the network's input side, from values on the 0…255 scale.</summary>
    public static float[] FromPlanar(Network network, PlanarImage image, ResizeFilter filter = ResizeFilter.Bilinear)
        => FromPlanar(network.Architecture, network.Kernels, image, filter);

    /// <summary>
    /// As for a network of architecture <paramref name="a"/> on <paramref name="kernels"/> (a trainable one, say).
    /// <paramref name="filter"/> applies only where the descriptor has no input contract, whose own filter wins.
    /// </summary>
    /// <exception cref="InvalidDataException">the image cannot meet the network's input contract.</exception>
    public static float[] FromPlanar(ArchitectureDescriptor a, Kernels.IKernels kernels, PlanarImage image, ResizeFilter filter = ResizeFilter.Bilinear)
    {
        int side = a.InputSide;
        if (a.Input is { } contract) image = contract.Apply(image, side, kernels);
        int hw = image.Width * image.Height;
        var norm = a.EffectiveNormalization;
        // Normalising first is exact: both filters are affine combinations whose weights sum to 1.
        var planar = new float[3 * hw];
        for (int c = 0; c < 3; c++)
        {
            float scale = 1f / (255f * norm.Std[c]), shift = norm.Mean[c] / norm.Std[c];
            var src = image.Values.AsSpan(c * hw, hw);
            var dst = planar.AsSpan(c * hw, hw);
            for (int i = 0; i < hw; i++) dst[i] = src[i] * scale - shift;
        }
        if (image.Width == side && image.Height == side) return planar;
        return Resampler.Resize(kernels, filter, planar, 3, image.Height, image.Width, side, side);
    }

    /// <summary>
    /// Planar images with values in 0…1 — a generator's sigmoid output standing for p/255 — (N, 3, S, S) with S² =
    /// <paramref name="planeSize"/>, as a network of architecture <paramref name="a"/> takes them: x = v/std_c − mean_c/std_c,
    /// the map <see cref="FromPlanar(ArchitectureDescriptor, Kernels.IKernels, PlanarImage, ResizeFilter)"/> applies to p. No resize:
    /// the images must already have the network's side.
    /// </summary>
    public static float[] FromUnit(ArchitectureDescriptor a, ReadOnlySpan<float> unit, int planeSize)
    {
        var (scale, shift) = UnitMap(a);
        var x = new float[unit.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int c = i / planeSize % 3;
            x[i] = unit[i] * scale[c] - shift[c];
        }
        return x;
    }

    /// <summary>The chain rule back through <see cref="FromUnit"/>: ∂/∂v = ∂/∂x / std_c, in place; returns <paramref name="gradient"/>.</summary>
    public static float[] FromUnitBackward(ArchitectureDescriptor a, float[] gradient, int planeSize)
    {
        var (scale, _) = UnitMap(a);
        for (int i = 0; i < gradient.Length; i++) gradient[i] *= scale[i / planeSize % 3];
        return gradient;
    }

    private static (float[] Scale, float[] Shift) UnitMap(ArchitectureDescriptor a)
    {
        var norm = a.EffectiveNormalization;
        return (norm.Std.Select(s => 1f / s).ToArray(), norm.Mean.Zip(norm.Std, (m, s) => m / s).ToArray());
    }
}
