namespace ModelGuardian.Engine.Networks;

public enum NetworkKind
{
    ResNet,
    StyleGanDiscriminator,
    /// <summary>A trained synthetic-image source (the training library's ImageGenerator): saved and loaded, never served.</summary>
    ImageGenerator,
}

public enum ResNetStem
{
    /// <summary>torchvision: 7×7 stride-2 conv, 3×3 stride-2 max-pool.</summary>
    ImageNet,
    /// <summary>CIFAR (DFME's victims): 3×3 stride-1 conv, no max-pool.</summary>
    Cifar,
}

/// <summary>How an image is turned into the network's input (per channel: (p/255 − mean) / std).</summary>
public sealed record InputNormalization(float[] Mean, float[] Std)
{
    public static InputNormalization ImageNet { get; } = new([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);

    /// <summary>x = 2·p/255 − 1, the StyleGAN discriminators' range [−1, 1].</summary>
    public static InputNormalization SymmetricUnit { get; } = new([0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f]);

    /// <summary>A checked normalisation: one finite mean and one finite, positive std per RGB channel.</summary>
    public static InputNormalization Validated(float[] mean, float[] std)
    {
        if (mean.Length != 3 || std.Length != 3)
            throw new ArgumentException($"Normalisation needs 3 means and 3 stds (one per RGB channel), got {mean.Length} and {std.Length}.");
        if (!mean.All(float.IsFinite) || !std.All(s => float.IsFinite(s) && s > 0))
            throw new ArgumentException($"Normalisation means must be finite and stds finite and positive, got mean [{string.Join(", ", mean)}] std [{string.Join(", ", std)}].");
        return new InputNormalization((float[])mean.Clone(), (float[])std.Clone());
    }
}

/// <summary>
/// What a network is, independent of its weights: enough to build it, to name its tensors and
/// to check a weight file against it. Immutable.
/// </summary>
public sealed record ArchitectureDescriptor
{
    public required NetworkKind Kind { get; init; }

    /// <summary>ResNet depth: 18, 34 or 50.</summary>
    public int Depth { get; init; }
    public ResNetStem Stem { get; init; } = ResNetStem.ImageNet;
    /// <summary>ResNet: channels of the stem and of the first stage (torchvision: 64); stages use ×1, ×2, ×4, ×8 of it.</summary>
    public int Width { get; init; } = 64;
    /// <summary>Number of outputs of the final dense layer (1 = single logit).</summary>
    public int Outputs { get; init; } = 1;

    /// <summary>StyleGAN: input side (power of two, 32…1024).</summary>
    public int Resolution { get; init; }
    /// <summary>StyleGAN channel rule nf(res) = min(FmapBase / res, FmapMax).</summary>
    public int FmapBase { get; init; } = 16384;
    public int FmapMax { get; init; } = 512;
    /// <summary>StyleGAN minibatch-stddev group size; 1 = per-image mode (no coupling across a batch).</summary>
    public int MbstdGroupSize { get; init; } = 4;

    /// <summary>Image generator: how it up-samples (its width is <see cref="Width"/>, its output side <see cref="Resolution"/>).</summary>
    public GeneratorFamily GeneratorFamily { get; init; }

    public int InputChannels { get; init; } = 3;
    /// <summary>Default input side for images (ResNets accept other sides ≥ MinimumInputSide).</summary>
    public int InputSide { get; init; } = 224;
    public InputNormalization? Normalization { get; init; }
    /// <summary>How a query becomes this network's input (null: resized to <see cref="InputSide"/>, the filter the caller picks).</summary>
    public InputContract? Input { get; init; }

    public InputNormalization EffectiveNormalization =>
        Normalization ?? (Kind == NetworkKind.StyleGanDiscriminator ? InputNormalization.SymmetricUnit : InputNormalization.ImageNet);

    public const int MaxOutputs = 100_000, MaxResNetWidth = 1024, MaxStyleGanChannels = 4096;

    public static ArchitectureDescriptor ResNet(int depth, int outputs = 1, ResNetStem stem = ResNetStem.ImageNet, int? inputSide = null, int width = 64)
    {
        if (depth is not (18 or 34 or 50)) throw new ArgumentException($"ResNet depth must be 18, 34 or 50, got {depth}.");
        if (outputs < 1) throw new ArgumentException($"ResNet needs at least one output, got {outputs}.");
        // Upper bounds keep a crafted descriptor from asking for absurd allocations; real models are far below them.
        if (outputs > MaxOutputs) throw new ArgumentException($"ResNet outputs must be at most {MaxOutputs}, got {outputs}.");
        if (width < 1 || width > MaxResNetWidth) throw new ArgumentException($"ResNet width must be in 1…{MaxResNetWidth}, got {width}.");
        return new ArchitectureDescriptor
        {
            Kind = NetworkKind.ResNet, Depth = depth, Outputs = outputs, Stem = stem, Width = width,
            InputSide = inputSide ?? (stem == ResNetStem.Cifar ? 32 : 224),
        };
    }

    public static ArchitectureDescriptor StyleGanD(int resolution = 256, int fmapBase = 16384, int fmapMax = 512, int mbstdGroupSize = 4)
    {
        if (resolution < 8 || resolution > 1024 || (resolution & (resolution - 1)) != 0)
            throw new ArgumentException($"StyleGAN discriminator resolution must be a power of two in 8…1024, got {resolution}.");
        if (fmapBase < 1 || fmapMax < 1 || mbstdGroupSize < 1) throw new ArgumentException("StyleGAN widths and group size must be positive.");
        if (fmapBase / resolution < 1) throw new ArgumentException($"StyleGAN fmap base {fmapBase} gives no channels at resolution {resolution} (needs fmap base ≥ resolution).");
        if (fmapMax > MaxStyleGanChannels) throw new ArgumentException($"StyleGAN fmap max must be at most {MaxStyleGanChannels}, got {fmapMax}.");
        return new ArchitectureDescriptor
        {
            Kind = NetworkKind.StyleGanDiscriminator, Resolution = resolution, FmapBase = fmapBase, FmapMax = fmapMax,
            MbstdGroupSize = mbstdGroupSize, InputSide = resolution, Outputs = 1,
        };
    }

    /// <summary>An image generator of <paramref name="family"/> and <paramref name="width"/> (its 32² output is recorded as the resolution).</summary>
    public static ArchitectureDescriptor Generator(GeneratorFamily family, int width)
    {
        if (!Enum.IsDefined(family)) throw new ArgumentException($"Unknown generator family {family}.");
        if (width < 1 || width > MaxStyleGanChannels / 2) throw new ArgumentException($"Generator width must be in 1…{MaxStyleGanChannels / 2}, got {width}.");
        return new ArchitectureDescriptor
        {
            Kind = NetworkKind.ImageGenerator, GeneratorFamily = family, Width = width,
            Resolution = GeneratorShape.Side, InputSide = GeneratorShape.Side,
        };
    }

    /// <summary>Parses the names used on the command line: resnet18|34|50[-cifar], stylegan-d.</summary>
    public static ArchitectureDescriptor Parse(string name, int outputs = 1, int resolution = 256, int width = 64, int fmapBase = 16384, int fmapMax = 512)
    {
        string n = name.ToLowerInvariant();
        bool cifar = n.EndsWith("-cifar", StringComparison.Ordinal);
        switch (cifar ? n[..^"-cifar".Length] : n)
        {
            case "resnet18": return ResNet(18, outputs, cifar ? ResNetStem.Cifar : ResNetStem.ImageNet, width: width);
            case "resnet34": return ResNet(34, outputs, cifar ? ResNetStem.Cifar : ResNetStem.ImageNet, width: width);
            case "resnet50": return ResNet(50, outputs, cifar ? ResNetStem.Cifar : ResNetStem.ImageNet, width: width);
            case "stylegan-d" when !cifar: return StyleGanD(resolution, fmapBase, fmapMax);
            default: throw new ArgumentException($"Unknown architecture '{name}'. Known: resnet18, resnet34, resnet50 (each also -cifar), stylegan-d.");
        }
    }

    /// <summary>ResNet stages: bottleneck blocks (50) or basic ones (18, 34), and the block count of each of the four stages.</summary>
    public (bool Bottleneck, int[] Blocks) ResNetStages => Depth switch
    {
        18 => (false, [2, 2, 2, 2]),
        34 => (false, [3, 4, 6, 3]),
        50 => (true, [3, 4, 6, 3]),
        _ => throw new ArgumentException($"ResNet depth must be 18, 34 or 50, got {Depth}."),
    };

    /// <summary>torchvision's residual blocks in order, with their names and widths (one walk for builders, schema and training).</summary>
    public IEnumerable<ResNetBlock> ResNetBlocks()
    {
        var (bottleneck, blocks) = ResNetStages;
        int inplanes = Width, expansion = bottleneck ? 4 : 1;
        for (int stage = 0; stage < 4; stage++)
        {
            for (int b = 0; b < blocks[stage]; b++)
            {
                int width = Width << stage;
                yield return new ResNetBlock($"layer{stage + 1}.{b}", inplanes, width, width * expansion, b == 0 && stage > 0 ? 2 : 1, bottleneck);
                inplanes = width * expansion;
            }
        }
    }

    /// <summary>Features entering a ResNet's final dense layer.</summary>
    public int ResNetFeatures => (Width << 3) * (ResNetStages.Bottleneck ? 4 : 1);

    /// <summary>The smallest input side whose every stride-2 stage still has a pixel.</summary>
    public int MinimumInputSide => Kind switch
    {
        NetworkKind.ResNet => Stem == ResNetStem.ImageNet ? 32 : 8,
        _ => Resolution,
    };

    public override string ToString() => Kind switch
    {
        NetworkKind.ResNet => $"resnet{Depth}{(Stem == ResNetStem.Cifar ? "-cifar" : "")}{(Width == 64 ? "" : $" width {Width}")} ({Outputs} output{(Outputs == 1 ? "" : "s")})",
        NetworkKind.ImageGenerator => $"image generator {GeneratorFamilies.Name(GeneratorFamily)} width {Width} ({Resolution}² output)",
        _ => $"stylegan-d {Resolution}² (fmap base {FmapBase}, max {FmapMax}, mbstd group {MbstdGroupSize})",
    };
}

/// <summary>
/// One torchvision residual block: basic (two 3×3 convs) or bottleneck (1×1, 3×3 carrying the
/// stride — v1.5 —, 1×1 ×4), with a 1×1 downsample shortcut when the shape changes.
/// </summary>
public sealed record ResNetBlock(string Prefix, int InPlanes, int Width, int OutChannels, int Stride, bool Bottleneck)
{
    public bool HasDownsample => Stride != 1 || InPlanes != OutChannels;
}
