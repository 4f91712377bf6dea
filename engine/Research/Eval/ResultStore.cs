using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelGuardian.Engine.Eval;

/// <summary>
/// Where an evaluation keeps what it has computed: one JSON file per result, written to a temporary name and
/// renamed into place, so an interrupted run leaves whole results or none, and a rerun skips what exists.
/// The settings that shape results are written first (run.json); a rerun with other settings is refused
/// rather than mixing results of two experiments.
/// </summary>
public sealed class ResultStore
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    public ResultStore(string directory, object settings)
    {
        Directory = directory;
        System.IO.Directory.CreateDirectory(Path.Combine(directory, "cells"));
        string runFile = Path.Combine(directory, "run.json");
        // Settings a run does not use are null and left out, so that adding one keeps older folders resumable.
        string text = JsonSerializer.Serialize(settings, new JsonSerializerOptions(Json) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull });
        if (File.Exists(runFile))
        {
            string existing = File.ReadAllText(runFile);
            if (existing != text)
                throw new InvalidOperationException($"'{directory}' holds results made with other settings ({runFile}); choose another output folder or delete it.");
        }
        else WriteAtomically(runFile, text);
    }

    public string Directory { get; }

    private string PathOf(string key)
    {
        if (key.Length == 0 || key.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))) throw new ArgumentException($"Bad result key '{key}'.");
        return Path.Combine(Directory, "cells", key + ".json");
    }

    public bool TryLoad<T>(string key, out T value) where T : class
    {
        string path = PathOf(key);
        if (!File.Exists(path)) { value = null!; return false; }
        try
        {
            value = JsonSerializer.Deserialize<T>(File.ReadAllText(path), Json) ?? throw new JsonException("null");
            return true;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Result file '{path}' is unreadable ({e.Message}); delete it to recompute it.", e);
        }
    }

    public void Save<T>(string key, T value) => WriteAtomically(PathOf(key), JsonSerializer.Serialize(value, Json));

    /// <summary>Raw float32 data (attack query samples) beside the results, written atomically too.</summary>
    public void SaveFloats(string key, ReadOnlySpan<float> values)
        => WriteAtomically(Path.Combine(Directory, "cells", key + ".f32"), System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));

    public float[]? LoadFloats(string key)
    {
        string path = Path.Combine(Directory, "cells", key + ".f32");
        if (!File.Exists(path)) return null;
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length % 4 != 0) throw new InvalidDataException($"'{path}' is truncated; delete it to recompute it.");
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray();
    }

    public void WriteReport(string name, string text) => WriteAtomically(Path.Combine(Directory, name), text);

    public void WriteReport(string name, byte[] data) => WriteAtomically(Path.Combine(Directory, name), data);

    private static void WriteAtomically(string path, string text) => WriteAtomically(path, System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>To a temporary name, flushed to disk, then renamed over the target: readers see the old file or the whole new one.</summary>
    private static void WriteAtomically(string path, ReadOnlySpan<byte> data)
    {
        string tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            f.Write(data);
            f.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }
}
