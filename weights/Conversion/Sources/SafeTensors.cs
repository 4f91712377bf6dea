using System.Buffers.Binary;
using System.Text.Json;
using ModelGuardian.Weights.Format;
using ModelGuardian.Weights.Pickle;

namespace ModelGuardian.Weights.Sources;

/// <summary>
/// The safetensors format: an 8-byte little-endian header length, a JSON header
/// <c>{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {…}}</c>, then the raw
/// little-endian data (offsets relative to its start). Memory-mapped; each tensor is copied once.
/// </summary>
internal static class SafeTensors
{
    private const int MaxHeaderBytes = 100 << 20;

    public static bool LooksLikeSafeTensors(ReadOnlySpan<byte> head)
        => head.Length >= 9 && BinaryPrimitives.ReadUInt64LittleEndian(head) is > 1 and < MaxHeaderBytes && head[8] == (byte)'{';

    public static Checkpoint Open(string path)
    {
        var map = MappedFile.Open(path);
        try
        {
            var data = map.Memory;
            if (data.Length < 8) throw Bad(path, "shorter than its 8-byte header length");
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(data.Span);
            if (headerLength > MaxHeaderBytes || headerLength > (ulong)(data.Length - 8))
                throw Bad(path, $"the header declares {headerLength} bytes, the file holds {data.Length - 8} after the length");
            var body = data[(8 + (int)headerLength)..];
            var root = new PyDict();
            JsonDocument doc;
            try { doc = JsonDocument.Parse(data.Slice(8, (int)headerLength), new JsonDocumentOptions { MaxDepth = 8 }); }
            catch (JsonException e) { throw Bad(path, $"the header is not valid JSON ({e.Message})"); }
            using (doc)
            try
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, "the header is not a JSON object");
                var claimed = new List<(long Begin, long End, string Name)>();
                foreach (var entry in doc.RootElement.EnumerateObject())
                {
                    if (entry.Name == "__metadata__") continue;
                    var t = Tensor(path, entry, body, out long begin, out long end);
                    claimed.Add((begin, end, entry.Name));
                    root.Set(entry.Name, t);
                }
                // Overlapping tensors would alias memory; the format forbids them.
                claimed.Sort();
                for (int i = 1; i < claimed.Count; i++)
                    if (claimed[i].Begin < claimed[i - 1].End) throw Bad(path, $"tensors '{claimed[i - 1].Name}' and '{claimed[i].Name}' overlap");
            }
            catch (InvalidOperationException e) // System.Text.Json validates UTF-8 in names and strings only when they are read
            {
                throw Bad(path, $"the header is not valid UTF-8 JSON ({e.Message})");
            }
            return new Checkpoint(path, "safetensors", root, map);
        }
        catch
        {
            map.Dispose();
            throw;
        }
    }

    private static SourceTensor Tensor(string path, JsonProperty entry, ReadOnlyMemory<byte> body, out long begin, out long end)
    {
        string name = entry.Name;
        var e = entry.Value;
        if (e.ValueKind != JsonValueKind.Object
            || !e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String
            || !e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array
            || !e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Bad(path, $"tensor '{name}' lacks dtype, shape or data_offsets");
        var dtype = dt.GetString() switch
        {
            "F32" => SourceDType.Float32, "F64" => SourceDType.Float64, "F16" => SourceDType.Float16, "BF16" => SourceDType.BFloat16,
            "I64" => SourceDType.Int64, "I32" => SourceDType.Int32, "I16" => SourceDType.Int16, "I8" => SourceDType.Int8,
            "U8" => SourceDType.UInt8, "BOOL" => SourceDType.Bool,
            var other => throw Bad(path, $"tensor '{name}' has unsupported dtype '{other}'"),
        };
        if (sh.GetArrayLength() > 8) throw Bad(path, $"tensor '{name}' has rank {sh.GetArrayLength()}");
        var dims = sh.EnumerateArray().Select(d => d.ValueKind == JsonValueKind.Number && d.TryGetInt64(out long v) ? v : throw Bad(path, $"tensor '{name}' has a non-integer dimension")).ToArray();
        long count = SourceDTypes.CheckedCount(dims, $"'{path}': tensor '{name}'");
        if (!off[0].TryGetInt64(out begin) || !off[1].TryGetInt64(out end) || begin < 0 || end < begin || end > body.Length)
            throw Bad(path, $"tensor '{name}' has data offsets outside the {body.Length}-byte data section");
        if (end - begin != count * SourceDTypes.Size(dtype))
            throw Bad(path, $"tensor '{name}' [{string.Join(", ", dims)}] of {dtype} needs {count * SourceDTypes.Size(dtype)} bytes, its offsets span {end - begin}");
        var data = new float[count];
        SourceDTypes.ToFloat(body.Span.Slice((int)begin, (int)(end - begin)), dtype, data);
        return new InMemoryTensor(dtype, dims.Select(d => (int)d).ToArray(), data);
    }

    private static WeightFormatException Bad(string path, string message) => new($"'{path}' is not a valid safetensors file: {message}.");
}
