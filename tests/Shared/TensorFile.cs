using System.Text;

namespace ModelGuardian.Tests.Oracle;

/// <summary>The oracle's tensor file: uint32 count; per tensor uint16 name length, name, uint8 rank, int32 dims, float32 data.</summary>
public static class TensorFile
{
    public static void Write(string path, IReadOnlyDictionary<string, (int[] Shape, float[] Data)> tensors)
    {
        using var w = new BinaryWriter(File.Create(path));
        w.Write((uint)tensors.Count);
        foreach (var (name, (shape, data)) in tensors)
        {
            var bytes = Encoding.UTF8.GetBytes(name);
            w.Write((ushort)bytes.Length); w.Write(bytes);
            w.Write((byte)shape.Length);
            foreach (int d in shape) w.Write(d);
            foreach (float v in data) w.Write(v);
        }
    }

    public static Dictionary<string, (int[] Shape, float[] Data)> Read(string path)
    {
        using var r = new BinaryReader(File.OpenRead(path));
        uint count = r.ReadUInt32();
        var result = new Dictionary<string, (int[], float[])>();
        for (int i = 0; i < count; i++)
        {
            string name = Encoding.UTF8.GetString(r.ReadBytes(r.ReadUInt16()));
            var shape = new int[r.ReadByte()];
            for (int d = 0; d < shape.Length; d++) shape[d] = r.ReadInt32();
            var data = new float[shape.Aggregate(1, (a, b) => a * b)];
            for (int k = 0; k < data.Length; k++) data[k] = r.ReadSingle();
            result[name] = (shape, data);
        }
        return result;
    }
}
