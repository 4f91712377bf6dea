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
}

/// <summary>The command-line names of the generator families: transposed, nearest, bilinear.</summary>
public static class GeneratorFamilies
{
    public static string Name(GeneratorFamily family) => family switch
    {
        GeneratorFamily.TransposedConv => "transposed",
        GeneratorFamily.NearestConv => "nearest",
        GeneratorFamily.BilinearConv => "bilinear",
        _ => throw new ArgumentException($"Unknown generator family {family}."),
    };

    public static GeneratorFamily Parse(string name) => name switch
    {
        "transposed" => GeneratorFamily.TransposedConv,
        "nearest" => GeneratorFamily.NearestConv,
        "bilinear" => GeneratorFamily.BilinearConv,
        _ => throw new ArgumentException($"Unknown generator family '{name}' (transposed, nearest or bilinear)."),
    };
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
