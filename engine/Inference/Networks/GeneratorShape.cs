namespace ModelGuardian.Engine.Networks;

/// <summary>How a generator up-samples — what leaves its trace in the gradient representation.</summary>
public enum GeneratorFamily
{
    /// <summary>Stride-2 transposed convolutions (DCGAN-like): checkerboard artifacts.</summary>
    TransposedConv,
    /// <summary>Nearest-neighbour ×2 then a 3×3 conv, as DFME's generator.</summary>
    NearestConv,
    /// <summary>Bilinear ×2 then a 3×3 conv.</summary>
    BilinearConv,
    /// <summary>A stride-2 transposed convolution followed by a fixed 3×3 binomial blur, as StyleGAN2 low-passes its up-sampling.</summary>
    TransposedBlur,
    /// <summary>A 3×3 conv to four times the channels, then depth-to-space (sub-pixel convolution, ESPCN).</summary>
    PixelShuffle,
}

/// <summary>The command-line names of the generator families: transposed, nearest, bilinear, transposed-blur, pixel-shuffle.</summary>
public static class GeneratorFamilies
{
    public static string Name(GeneratorFamily family) => family switch
    {
        GeneratorFamily.TransposedConv => "transposed",
        GeneratorFamily.NearestConv => "nearest",
        GeneratorFamily.BilinearConv => "bilinear",
        GeneratorFamily.TransposedBlur => "transposed-blur",
        GeneratorFamily.PixelShuffle => "pixel-shuffle",
        _ => throw new ArgumentException($"Unknown generator family {family}."),
    };

    public static GeneratorFamily Parse(string name) =>
        Enum.GetValues<GeneratorFamily>().Cast<GeneratorFamily?>().FirstOrDefault(f => Name(f!.Value) == name)
        ?? throw new ArgumentException($"Unknown generator family '{name}' ({string.Join(", ", Enum.GetValues<GeneratorFamily>().Select(Name))}).");
}

/// <summary>
/// The sizes an image generator's weight file implies: what the architecture descriptor and parameter schema
/// need to describe a generator without building one (the trainable generator lives with training).
/// </summary>
public static class GeneratorShape
{
    /// <summary>Output side (square, 3 channels) and noise length.</summary>
    public const int Side = 32, NoiseSize = 64;

    /// <summary>Channels after the dense layer and after each up-sampling, for <paramref name="width"/>.</summary>
    public static (int C0, int C1, int C2) Channels(int width) => (2 * width, width, Math.Max(8, width / 2));
}
