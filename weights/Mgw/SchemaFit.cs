using System.Text.RegularExpressions;
using ModelGuardian.Engine.Networks;

namespace ModelGuardian.Weights;

/// <summary>
/// How a table of named tensor shapes fits an architecture's parameter schema: missing, mis-shaped and
/// unexpected tensors, with the buffers checkpoints carry that inference does not use set apart.
/// Every weight file is checked this way before a network is built from it.
/// </summary>
public static partial class SchemaFit
{
    private const int MaxListed = 25;

    /// <summary>How a set of named shapes fits an architecture's schema.</summary>
    public sealed record Fit(List<ParameterSpec> Missing, List<string> MisShaped, List<string> Unexpected, List<string> Ignored, IReadOnlyDictionary<string, int[]> Shapes)
    {
        /// <summary>One error naming every mis-shaped tensor, and every missing and unexpected one unless relaxed.</summary>
        public void ThrowIfRefused(string path, ArchitectureDescriptor arch, bool allowMissing = false, bool ignoreUnexpected = false)
        {
            var problems = new List<string>();
            if (MisShaped.Count > 0) problems.Add($"{MisShaped.Count} mis-shaped: {List(MisShaped)}");
            bool refuseMissing = Missing.Count > 0 && !allowMissing, refuseUnexpected = Unexpected.Count > 0 && !ignoreUnexpected;
            if (refuseMissing) problems.Add($"{Missing.Count} missing: {List(Missing.Select(m => $"'{m.Name}' {m.ShapeText}"))}");
            if (refuseUnexpected) problems.Add($"{Unexpected.Count} unexpected: {List(Unexpected.Select(u => $"'{u}' [{string.Join(", ", Shapes[u])}]"))}");
            if (problems.Count == 0) return;
            string hint = refuseMissing || refuseUnexpected ? " (--allow-missing / --ignore-unexpected relax the missing and unexpected checks explicitly)" : "";
            throw new WeightFormatException($"'{path}' does not fit {arch}: {string.Join("; ", problems)}{hint}.");
        }
    }

    public static Fit Compare(IReadOnlyList<ParameterSpec> expected, IReadOnlyDictionary<string, int[]> shapes, ArchitectureDescriptor arch)
    {
        var expectedNames = expected.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var missing = new List<ParameterSpec>();
        var misShaped = new List<string>();
        foreach (var spec in expected)
        {
            if (!shapes.TryGetValue(spec.Name, out var shape)) missing.Add(spec);
            else if (!shape.AsSpan().SequenceEqual(spec.Shape)) misShaped.Add($"'{spec.Name}' is [{string.Join(", ", shape)}], expected {spec.ShapeText}");
        }
        var extra = shapes.Keys.Where(k => !expectedNames.Contains(k)).ToList();
        return new Fit(missing, misShaped, extra.Where(k => !IsKnownUnused(k, arch)).ToList(), extra.Where(k => IsKnownUnused(k, arch)).ToList(), shapes);
    }

    /// <summary>Buffers checkpoints carry that inference does not use.</summary>
    private static bool IsKnownUnused(string name, ArchitectureDescriptor arch) => arch.Kind switch
    {
        NetworkKind.ResNet => name.EndsWith(".num_batches_tracked", StringComparison.Ordinal),
        // lod (level of detail, 0 at full resolution), the FromRGB layers of lower lods, blur kernels (fixed).
        _ => name == "lod" || LowerLodFromRgb().IsMatch(name) || name.EndsWith(".blur.kernel", StringComparison.Ordinal),
    };

    [GeneratedRegex(@"^input[1-9][0-9]*\.(weight|bias)$")]
    private static partial Regex LowerLodFromRgb();

    internal static string List(IEnumerable<string> items, int max = MaxListed)
    {
        var all = items.ToList();
        return string.Join(", ", all.Take(max)) + (all.Count > max ? $", … ({all.Count - max} more)" : "");
    }
}
