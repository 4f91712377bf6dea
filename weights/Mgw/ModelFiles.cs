using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;
using ModelGuardian.Weights.Format;

namespace ModelGuardian.Weights;

/// <summary>Loads networks from our weight files.</summary>
public static class ModelFiles
{
    /// <summary>
    /// Reads <paramref name="path"/> (checksum verified) and builds its network on <paramref name="kernels"/>.
    /// The tensor table must match the architecture exactly; this is checked before anything is built.
    /// </summary>
    public static (Network Network, WeightFileContents Contents) Load(IKernels kernels, string path)
        => Load(kernels, path, a => a);

    /// <summary>
    /// A StyleGAN discriminator as the gradient transform uses it: minibatch-stddev in per-image mode
    /// (group 1) whatever the file says, so a query's gradient never depends on its batch-mates.
    /// </summary>
    public static (Network Network, WeightFileContents Contents) LoadTransform(IKernels kernels, string path)
        => Load(kernels, path, a => a.Kind == NetworkKind.StyleGanDiscriminator
            ? a with { MbstdGroupSize = 1 }
            : throw new ArgumentException($"'{path}' holds a {a}, not a StyleGAN discriminator."));

    /// <summary>
    /// Reads <paramref name="path"/> (checksum verified) and checks its tensor table against its architecture's
    /// schema, without building anything: for networks built elsewhere (e.g. a trainable generator).
    /// </summary>
    public static WeightFileContents LoadChecked(string path)
    {
        var contents = WeightFile.Load(path);
        var fit = SchemaFit.Compare(ParameterSchema.For(contents.Architecture),
            contents.Tensors.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.Shape, StringComparer.Ordinal), contents.Architecture);
        if (fit.Ignored.Count > 0) fit = fit with { Unexpected = [.. fit.Unexpected, .. fit.Ignored] };
        fit.ThrowIfRefused(path, contents.Architecture);
        return contents;
    }

    private static (Network Network, WeightFileContents Contents) Load(IKernels kernels, string path, Func<ArchitectureDescriptor, ArchitectureDescriptor> adjust)
    {
        var contents = LoadChecked(path);
        return (Network.Create(kernels, adjust(contents.Architecture), contents.Tensors), contents);
    }
}
