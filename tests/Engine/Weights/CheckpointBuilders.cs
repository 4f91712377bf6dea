using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace ModelGuardian.Tests.Weights;

/// <summary>Writes pickle opcodes by hand, for streams no honest pickler would produce.</summary>
internal sealed class PickleBuilder
{
    private readonly MemoryStream _s = new();

    public PickleBuilder Op(char op) { _s.WriteByte((byte)op); return this; }
    public PickleBuilder Op(byte op) { _s.WriteByte(op); return this; }
    public PickleBuilder Proto(byte p) => Op(0x80).Op(p);
    public PickleBuilder Global(string module, string name) { Op('c'); Raw(Encoding.ASCII.GetBytes($"{module}\n{name}\n")); return this; }
    public PickleBuilder Str(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        Op('X');
        Span<byte> n = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(n, b.Length);
        Raw(n);
        return Raw(b);
    }
    public PickleBuilder Int(long v)
    {
        Op(0x8a).Op(8); // LONG1, 8 bytes
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(b, v);
        return Raw(b);
    }
    public PickleBuilder Mark() => Op('(');
    public PickleBuilder Tuple() => Op('t');
    public PickleBuilder Raw(ReadOnlySpan<byte> b) { _s.Write(b); return this; }
    public byte[] Stop() { Op('.'); return _s.ToArray(); }

    /// <summary>
    /// A torch.save data.pkl: an OrderedDict {name: tensor} whose one tensor is a 1-D view of
    /// <paramref name="viewCount"/> elements of a FloatStorage '0' that declares <paramref name="storageNumel"/>.
    /// </summary>
    public static byte[] TorchStateDict(string name, long storageNumel, long viewCount)
    {
        var p = new PickleBuilder().Proto(2).Global("collections", "OrderedDict").Op(')').Op('R').Mark().Str(name);
        p.Global("torch._utils", "_rebuild_tensor_v2").Mark()
            .Mark().Str("storage").Global("torch", "FloatStorage").Str("0").Str("cpu").Int(storageNumel).Tuple().Op('Q')
            .Int(0).Mark().Int(viewCount).Tuple().Mark().Int(1).Tuple().Op(0x89).Global("collections", "OrderedDict").Op(')').Op('R')
            .Tuple().Op('R');
        return p.Op('u').Stop();
    }
}

internal static class CheckpointFiles
{
    /// <summary>A torch.save-style zip: archive/data.pkl, then archive/data/{key} entries.</summary>
    public static void WriteTorchZip(string path, byte[] dataPkl, IReadOnlyDictionary<string, byte[]> storages)
    {
        using var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create);
        void Add(string name, byte[] bytes)
        {
            var e = zip.CreateEntry(name, CompressionLevel.NoCompression);
            using var s = e.Open();
            s.Write(bytes);
        }
        Add("archive/data.pkl", dataPkl);
        foreach (var (key, bytes) in storages) Add($"archive/data/{key}", bytes);
        Add("archive/version", "3\n"u8.ToArray());
    }

    /// <summary>A safetensors file of float32 tensors.</summary>
    public static void WriteSafeTensors(string path, IReadOnlyDictionary<string, (int[] Shape, float[] Data)> tensors)
    {
        var header = new Dictionary<string, object>();
        long offset = 0;
        foreach (var (name, t) in tensors)
        {
            header[name] = new { dtype = "F32", shape = t.Shape, data_offsets = new[] { offset, offset + 4L * t.Data.Length } };
            offset += 4L * t.Data.Length;
        }
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        using var f = File.Create(path);
        Span<byte> n = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(n, (ulong)json.Length);
        f.Write(n);
        f.Write(json);
        foreach (var (_, t) in tensors) f.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.Data.AsSpan()));
    }
}
