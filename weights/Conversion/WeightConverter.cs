using System.Security.Cryptography;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Weights.Format;
using ModelGuardian.Weights.Mapping;
using ModelGuardian.Weights.Sources;

namespace ModelGuardian.Weights;

/// <summary>What a conversion did.</summary>
public sealed record ConversionReport(string Output, string SourceFormat, long ParameterCount, Provenance Provenance, IReadOnlyList<string> Warnings);

/// <summary>Checkpoint (torch zip/legacy, safetensors, StyleGAN TF pickle) → our weight file.</summary>
public static class WeightConverter
{
    public const string ConverterVersion = "ModelGuardian mg convert, weight format 1";

    /// <param name="progress">0…1 over hashing the source and reading its tensors.</param>
    public static ConversionReport Convert(string source, ArchitectureDescriptor arch, string output, MappingOptions? options = null, IProgress<double>? progress = null)
    {
        string sha = Sha256(source, progress);
        using var checkpoint = Checkpoint.Open(source);
        var mapped = StateDictMapping.Map(checkpoint, arch, options);
        progress?.Report(1.0);
        var provenance = new Provenance(Path.GetFileName(source), sha, checkpoint.Format, ConverterVersion, DateTimeOffset.UtcNow, mapped.Notes);
        WeightFile.Save(output, arch, mapped.Tensors, provenance);
        return new ConversionReport(output, checkpoint.Format, mapped.Tensors.Tensors.Values.Sum(t => (long)t.Length), provenance, mapped.Warnings);
    }

    private static string Sha256(string path, IProgress<double>? progress)
    {
        using var f = File.OpenRead(path);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        long done = 0, total = Math.Max(1, f.Length);
        int n;
        while ((n = f.Read(buffer)) > 0)
        {
            sha.AppendData(buffer, 0, n);
            done += n;
            progress?.Report(0.9 * done / total);
        }
        return System.Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}
