using ModelGuardian.Engine.Networks;

namespace ModelGuardian.Engine.Imaging;

/// <summary>Turns an image into a network's input as its descriptor says: normalised per channel, resized to the input side.</summary>
public static class NetworkInput
{
    /// <summary>(3, S, S) for S = the network's input side.</summary>
    public static float[] FromImage(Network network, RgbImage image, ResizeFilter filter = ResizeFilter.Bilinear)
    {
        var a = network.Architecture;
        int side = a.InputSide;
        var norm = a.EffectiveNormalization;
        // Normalising first is exact: both filters are affine combinations whose weights sum to 1.
        var planar = image.ToPlanar(norm.Mean, norm.Std);
        if (image.Width == side && image.Height == side) return planar;
        return filter == ResizeFilter.Bicubic
            ? Resampler.Bicubic(planar, 3, image.Height, image.Width, side, side)
            : Resampler.Bilinear(network.Kernels, planar, 3, image.Height, image.Width, side, side);
    }
}
