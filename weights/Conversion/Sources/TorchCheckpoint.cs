using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using System.Runtime.InteropServices;
using ModelGuardian.Weights.Format;
using ModelGuardian.Weights.Pickle;

namespace ModelGuardian.Weights.Sources;

/// <summary>
/// Readers of <c>torch.save</c> files: the zip format (PyTorch ≥ 1.6: <c>{archive}/data.pkl</c>
/// plus one entry per storage under <c>{archive}/data/{key}</c>) and the legacy format (a magic
/// number, protocol version and system-info pickle, the object pickle, the storage-key list, then
/// each storage as an 8-byte element count and its raw bytes). Storages are read lazily, once, when
/// a tensor that views them is asked for.
/// </summary>
internal static class TorchCheckpoint
{
    // 0x1950a86a20f9469cfc6c: torch.serialization.MAGIC_NUMBER, the first pickle of a legacy file.
    private static readonly BigInteger LegacyMagic = BigInteger.Parse("119547037146038801333356");
    private const long LegacyProtocolVersion = 1001;
    private const int MaxPickleBytes = 256 << 20;

    private static readonly string[] StorageTypes =
        ["Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool"];

    /// <summary>What a state dict needs: tensors, storages, parameters, ordered dicts, torch.Size, numpy scalars.</summary>
    public static readonly IReadOnlySet<string> AllowedGlobals = new HashSet<string>(
        new[]
        {
            "collections.OrderedDict", "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
            "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state", "torch.Size",
        }
        .Concat(StorageTypes.Select(t => $"torch.{t}Storage"))
        .Concat(Numpy.Globals), StringComparer.Ordinal);

    public static bool LooksLikeZip(ReadOnlySpan<byte> head) => head.Length >= 4 && head[..4].SequenceEqual("PK\x03\x04"u8);

    // ---- zip format ----

    public static Checkpoint OpenZip(string path)
    {
        var stream = File.OpenRead(path);
        try
        {
            var zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: false);
            try
            {
                var pickles = zip.Entries.Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1).ToList();
                if (pickles.Count != 1)
                    throw new WeightFormatException($"'{path}' is a zip but not a torch.save checkpoint: expected one '<archive>/data.pkl' entry, found {pickles.Count}.");
                string prefix = pickles[0].FullName[..^"data.pkl".Length];
                var byteOrder = zip.GetEntry(prefix + "byteorder");
                if (byteOrder != null && ReadEntry(byteOrder, path, 16).AsSpan().SequenceEqual("big"u8))
                    throw new WeightFormatException($"'{path}' was saved on a big-endian machine; only little-endian checkpoints are supported.");
                var pickle = ReadEntry(pickles[0], path, MaxPickleBytes);
                var hooks = new Hooks(path, (key, dtype, numel) => ZipStorageLoader(zip, prefix, path, key, dtype, numel));
                var root = Unpickler.Load(pickle, AllowedGlobals, hooks);
                return new Checkpoint(path, "torch-zip", root, zip);
            }
            catch
            {
                zip.Dispose();
                throw;
            }
        }
        catch (InvalidDataException e)
        {
            stream.Dispose();
            throw new WeightFormatException($"'{path}' is a damaged zip archive: {e.Message}", e);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    private static Func<float[]> ZipStorageLoader(ZipArchive zip, string prefix, string path, string key, SourceDType dtype, long numel) => () =>
    {
        try
        {
            return ReadZipStorage(zip, prefix, path, key, dtype, numel);
        }
        catch (InvalidDataException e) // a damaged local header or deflate stream, found when the entry is opened
        {
            throw new WeightFormatException($"'{path}': storage '{key}' is damaged in the archive: {e.Message}", e);
        }
    };

    private static float[] ReadZipStorage(ZipArchive zip, string prefix, string path, string key, SourceDType dtype, long numel)
    {
        var entry = zip.GetEntry($"{prefix}data/{key}")
                    ?? throw new WeightFormatException($"'{path}': storage '{key}' is referenced by the checkpoint but missing from the archive.");
        long bytes = numel * SourceDTypes.Size(dtype);
        if (entry.Length != bytes)
            throw new WeightFormatException($"'{path}': storage '{key}' should hold {bytes} bytes ({numel} × {dtype}), its entry declares {entry.Length}.");
        CheckDeclaredSize(entry, path);
        var data = new float[numel];
        using var s = entry.Open();
        if (dtype == SourceDType.Float32)
        {
            ReadFully(s, MemoryMarshal.AsBytes(data.AsSpan()), path, key); // one copy: archive → float array
        }
        else
        {
            var raw = new byte[bytes];
            ReadFully(s, raw, path, key);
            SourceDTypes.ToFloat(raw, dtype, data);
        }
        return data;
    }

    /// <summary>Refuses entries whose declared size the archive cannot hold (before anything is allocated).</summary>
    private static void CheckDeclaredSize(ZipArchiveEntry entry, string path)
    {
        long file = new FileInfo(path).Length;
        // Deflate cannot expand more than ~1032:1; stored entries are exactly their compressed size.
        if (entry.CompressedLength > file || entry.Length > entry.CompressedLength * 1100L + 1024)
            throw new WeightFormatException($"'{path}': entry '{entry.FullName}' declares {entry.Length} bytes, more than the {file}-byte file can hold.");
    }

    private static byte[] ReadEntry(ZipArchiveEntry entry, string path, long limit)
    {
        CheckDeclaredSize(entry, path);
        if (entry.Length > limit) throw new WeightFormatException($"'{path}': entry '{entry.FullName}' is {entry.Length} bytes, more than the {limit} allowed.");
        var bytes = new byte[entry.Length];
        try
        {
            using var s = entry.Open();
            ReadFully(s, bytes, path, entry.FullName);
        }
        catch (InvalidDataException e)
        {
            throw new WeightFormatException($"'{path}': entry '{entry.FullName}' is damaged: {e.Message}", e);
        }
        return bytes;
    }

    private static void ReadFully(Stream s, Span<byte> dst, string path, string what)
    {
        try
        {
            s.ReadExactly(dst);
            if (s.ReadByte() != -1) throw new WeightFormatException($"'{path}': entry '{what}' holds more bytes than it declares.");
        }
        catch (EndOfStreamException e)
        {
            throw new WeightFormatException($"'{path}': entry '{what}' is truncated.", e);
        }
        catch (InvalidDataException e)
        {
            throw new WeightFormatException($"'{path}': entry '{what}' is damaged: {e.Message}", e);
        }
    }

    // ---- legacy format ----

    public static bool LooksLikeLegacy(ReadOnlySpan<byte> head)
        // PROTO 2, LONG1 of 10 bytes = the magic number 0x1950a86a20f9469cfc6c (little-endian).
        => head.Length >= 14 && head[0] == 0x80 && head[2] == 0x8a && head[3] == 10
           && head.Slice(4, 10).SequenceEqual(new byte[] { 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19 });

    public static Checkpoint OpenLegacy(string path)
    {
        var map = MappedFile.Open(path);
        try
        {
            var data = map.Memory;
            var none = new Hooks(path, null);
            if (Unpickler.Load(data, AllowedGlobals, none, 0, out int pos) is not BigInteger magic || magic != LegacyMagic)
                throw new WeightFormatException($"'{path}' is not a legacy torch.save file (bad magic number).");
            if (Unpickler.Load(data, AllowedGlobals, none, pos, out pos) is not long protocol || protocol != LegacyProtocolVersion)
                throw new WeightFormatException($"'{path}': unsupported legacy torch.save protocol (expected {LegacyProtocolVersion}).");
            if (Unpickler.Load(data, AllowedGlobals, none, pos, out pos) is not PyDict sysInfo)
                throw new WeightFormatException($"'{path}': the legacy system-info record is missing.");
            if (sysInfo.TryGet("little_endian", out var little) && little is false)
                throw new WeightFormatException($"'{path}' was saved on a big-endian machine; only little-endian checkpoints are supported.");

            var storages = new Dictionary<string, (SourceDType DType, long Numel)>(StringComparer.Ordinal);
            var offsets = new Dictionary<string, int>(StringComparer.Ordinal);
            var hooks = new Hooks(path, (key, dtype, numel) =>
            {
                storages[key] = (dtype, numel);
                return () => LegacyStorage(data, path, key, dtype, numel, offsets);
            });
            var root = Unpickler.Load(data, AllowedGlobals, hooks, pos, out pos);
            if (Unpickler.Load(data, AllowedGlobals, none, pos, out pos) is not PyList keys)
                throw new WeightFormatException($"'{path}': the legacy storage-key list is missing.");
            // Storages follow in key order: an 8-byte element count, then the raw bytes.
            foreach (var k in keys.Items)
            {
                if (k is not string key || !storages.TryGetValue(key, out var s))
                    throw new WeightFormatException($"'{path}': the storage list names '{k}', which no tensor uses.");
                if (data.Length - pos < 8) throw new WeightFormatException($"'{path}' is truncated in storage '{key}'.");
                long numel = BinaryPrimitives.ReadInt64LittleEndian(data.Span[pos..]);
                long bytes = numel * SourceDTypes.Size(s.DType);
                if (numel != s.Numel) throw new WeightFormatException($"'{path}': storage '{key}' holds {numel} elements, the checkpoint says {s.Numel}.");
                if (bytes > data.Length - pos - 8) throw new WeightFormatException($"'{path}': storage '{key}' declares {bytes} bytes beyond the end of the file.");
                offsets[key] = pos + 8;
                pos += 8 + (int)bytes;
            }
            return new Checkpoint(path, "torch-legacy", root, map);
        }
        catch
        {
            map.Dispose();
            throw;
        }
    }

    private static float[] LegacyStorage(ReadOnlyMemory<byte> data, string path, string key, SourceDType dtype, long numel, Dictionary<string, int> offsets)
    {
        if (!offsets.TryGetValue(key, out int offset)) throw new WeightFormatException($"'{path}': storage '{key}' has no data in the file.");
        var result = new float[numel];
        SourceDTypes.ToFloat(data.Span.Slice(offset, (int)(numel * SourceDTypes.Size(dtype))), dtype, result);
        return result;
    }

    // ---- the pickle's rebuild rules ----

    /// <summary>A storage: its element type and count, loaded on first use.</summary>
    private sealed class Storage(string key, SourceDType dtype, long numel, Func<float[]> load)
    {
        private float[]? _data;
        public string Key { get; } = key;
        public SourceDType DType { get; } = dtype;
        public long Numel { get; } = numel;
        public float[] Data => _data ??= load();
    }

    private sealed class TorchTensor(Storage storage, long offset, int[] dims, long[] stride) : SourceTensor(storage.DType, dims)
    {
        public override float[] ReadFloats()
        {
            var shape = Shape;
            var src = storage.Data;
            long count = Count;
            bool contiguous = true;
            for (int d = shape.Length - 1, expected = 1; d >= 0; expected *= shape[d], d--)
                if (shape[d] != 1 && stride[d] != expected) contiguous = false;
            if (contiguous && offset == 0 && count == src.Length) return src;
            var dst = new float[count];
            if (contiguous) { Array.Copy(src, offset, dst, 0, count); return dst; }
            var index = new int[shape.Length];
            for (long i = 0; i < count; i++)
            {
                long at = offset;
                for (int d = 0; d < shape.Length; d++) at += index[d] * stride[d];
                dst[i] = src[at];
                for (int d = shape.Length - 1; d >= 0 && ++index[d] == shape[d]; d--) index[d] = 0;
            }
            return dst;
        }
    }

    private sealed class Hooks(string path, Func<string, SourceDType, long, Func<float[]>>? storageLoader) : PickleHooks
    {
        private readonly Dictionary<string, Storage> _storages = new(StringComparer.Ordinal);

        public override object? PersistentLoad(object? pid)
        {
            if (storageLoader == null) return base.PersistentLoad(pid);
            // zip: ('storage', type, key, location, numel); legacy adds view metadata (None unless a view).
            if (pid is not PyTuple { Count: 5 or 6 } t || t[0] is not "storage" || t[1] is not PyGlobal type || t[2] is not string key || t[4] is not long numel)
                throw new WeightFormatException($"'{path}': a persistent id is not a torch storage reference.");
            if (t.Count == 6 && t[5] != null) throw new WeightFormatException($"'{path}': legacy storage views are not supported.");
            if (numel < 0 || numel > Array.MaxLength) throw new WeightFormatException($"'{path}': storage '{key}' declares {numel} elements.");
            var dtype = StorageDType(type);
            if (_storages.TryGetValue(key, out var known))
            {
                if (known.DType != dtype || known.Numel != numel) throw new WeightFormatException($"'{path}': storage '{key}' is declared twice, differently.");
                return known;
            }
            var s = new Storage(key, dtype, numel, storageLoader(key, dtype, numel));
            _storages[key] = s;
            return s;
        }

        public override object? Reduce(PyGlobal f, PyTuple args)
        {
            if (Numpy.TryReduce(f, args, out var value)) return value;
            switch ($"{f.Module}.{f.Name}")
            {
                case "collections.OrderedDict":
                {
                    var d = new PyDict();
                    if (args.Count == 1 && args[0] is PyList pairs)
                        foreach (var p in pairs.Items)
                            if (p is PyTuple { Count: 2 } kv) d.Set(kv[0], kv[1]);
                            else throw new WeightFormatException($"'{path}': OrderedDict built from something other than pairs.");
                    else if (args.Count != 0) throw new WeightFormatException($"'{path}': OrderedDict with unexpected arguments.");
                    return d;
                }
                case "torch._utils._rebuild_tensor_v2" or "torch._utils._rebuild_tensor":
                    return RebuildTensor(args);
                case "torch._utils._rebuild_parameter" or "torch._utils._rebuild_parameter_with_state":
                    return args.Count >= 1 && args[0] is SourceTensor t ? t : throw new WeightFormatException($"'{path}': a parameter wraps no tensor.");
                case "torch.Size":
                    return args.Count == 1 && args[0] is PyTuple size ? size : throw new WeightFormatException($"'{path}': torch.Size without a tuple.");
                default:
                    return base.Reduce(f, args);
            }
        }

        public override void Build(object? target, object? state)
        {
            if (Numpy.TryBuild(target, state)) return;
            // Parameters and tensors may carry (empty) Python attributes.
            if (target is SourceTensor) return;
            base.Build(target, state);
        }

        private SourceTensor RebuildTensor(PyTuple args)
        {
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            if (args.Count < 4 || args[0] is not Storage storage || args[1] is not long offset || args[2] is not PyTuple size || args[3] is not PyTuple stride || size.Count != stride.Count)
                throw new WeightFormatException($"'{path}': a tensor is rebuilt from unexpected arguments.");
            if (size.Count > 8) throw new WeightFormatException($"'{path}': a tensor of rank {size.Count}.");
            var dims = size.Items.Select(v => v is long l ? l : throw new WeightFormatException($"'{path}': a tensor size is not an integer.")).ToArray();
            var strides = stride.Items.Select(v => v is long l && l >= 0 ? l : throw new WeightFormatException($"'{path}': a tensor stride is not a non-negative integer.")).ToArray();
            long count = SourceDTypes.CheckedCount(dims, $"'{path}': a tensor of storage '{storage.Key}'");
            if (offset < 0) throw new WeightFormatException($"'{path}': a tensor starts at offset {offset}.");
            if (count > 0)
            {
                long last = offset;
                for (int d = 0; d < dims.Length; d++) last += (dims[d] - 1) * strides[d];
                if (last >= storage.Numel)
                    throw new WeightFormatException($"'{path}': a tensor [{string.Join(", ", dims)}] reaches element {last} of storage '{storage.Key}', which has {storage.Numel}.");
            }
            return new TorchTensor(storage, offset, dims.Select(d => (int)d).ToArray(), strides);
        }

        private SourceDType StorageDType(PyGlobal type) => type.Name switch
        {
            "FloatStorage" => SourceDType.Float32, "DoubleStorage" => SourceDType.Float64, "HalfStorage" => SourceDType.Float16,
            "BFloat16Storage" => SourceDType.BFloat16, "LongStorage" => SourceDType.Int64, "IntStorage" => SourceDType.Int32,
            "ShortStorage" => SourceDType.Int16, "CharStorage" => SourceDType.Int8, "ByteStorage" => SourceDType.UInt8,
            "BoolStorage" => SourceDType.Bool,
            _ => throw new WeightFormatException($"'{path}': storage type '{type}' is not supported."),
        };
    }
}
