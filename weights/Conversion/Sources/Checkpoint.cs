namespace ModelGuardian.Weights.Sources;

/// <summary>
/// A checkpoint file opened for reading: its format and its object tree (dicts, lists, tuples,
/// objects and <see cref="SourceTensor"/> leaves). Keeps the file open while tensors are read lazily.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    private readonly IDisposable? _resources;

    internal Checkpoint(string path, string format, object? root, IDisposable? resources)
    {
        Path = path;
        Format = format;
        Root = root;
        _resources = resources;
    }

    public string Path { get; }
    /// <summary>torch-zip, torch-legacy, safetensors or tf-pickle.</summary>
    public string Format { get; }
    public object? Root { get; }

    /// <summary>Opens <paramref name="path"/>, recognising its format from its first bytes (never from its name).</summary>
    public static Checkpoint Open(string path)
    {
        var head = new byte[64];
        int n;
        using (var f = File.OpenRead(path)) n = f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        var span = head.AsSpan(0, n);
        if (n == 0) throw new WeightFormatException($"'{path}' is empty.");
        try
        {
            if (TorchCheckpoint.LooksLikeZip(span)) return TorchCheckpoint.OpenZip(path);
            if (TorchCheckpoint.LooksLikeLegacy(span)) return TorchCheckpoint.OpenLegacy(path);
            if (SafeTensors.LooksLikeSafeTensors(span)) return SafeTensors.Open(path);
            if (span[0] == 0x80) return TfPickle.Open(path);
        }
        catch (WeightFormatException e) when (!e.Message.Contains(path, StringComparison.Ordinal))
        {
            throw new WeightFormatException($"'{path}': {e.Message}", e);
        }
        if (ModelGuardian.Weights.Format.WeightFile.LooksLikeWeightFile(span))
            throw new WeightFormatException($"'{path}' is already a ModelGuardian weight file; load it with --model (mg inspect shows what it holds).");
        throw new WeightFormatException($"'{path}' is not a checkpoint this converter reads: expected a torch.save file (zip or legacy), .safetensors or a StyleGAN TF pickle.");
    }

    public void Dispose() => _resources?.Dispose();
}
