using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace ModelGuardian.Weights.Sources;

/// <summary>Element types found in checkpoints; everything is converted to float32 on read.</summary>
public enum SourceDType { Float32, Float64, Float16, BFloat16, Int64, Int32, Int16, Int8, UInt8, Bool }

public static class SourceDTypes
{
    public static int Size(SourceDType t) => t switch
    {
        SourceDType.Float64 or SourceDType.Int64 => 8,
        SourceDType.Float32 or SourceDType.Int32 => 4,
        SourceDType.Float16 or SourceDType.BFloat16 or SourceDType.Int16 => 2,
        _ => 1,
    };

    public static bool IsFloatingPoint(SourceDType t) => t is SourceDType.Float32 or SourceDType.Float64 or SourceDType.Float16 or SourceDType.BFloat16;

    /// <summary>Converts <paramref name="count"/> little-endian elements of <paramref name="t"/> to float32.</summary>
    public static void ToFloat(ReadOnlySpan<byte> src, SourceDType t, Span<float> dst)
    {
        int n = dst.Length, size = Size(t);
        if (src.Length < (long)n * size) throw new WeightFormatException($"tensor data holds {src.Length} bytes, {n} {t} elements need {(long)n * size}.");
        switch (t)
        {
            case SourceDType.Float32: src[..(n * 4)].CopyTo(MemoryMarshal.AsBytes(dst)); break;
            case SourceDType.Float64: for (int i = 0; i < n; i++) dst[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src[(i * 8)..]); break;
            case SourceDType.Float16: for (int i = 0; i < n; i++) dst[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(src[(i * 2)..]); break;
            case SourceDType.BFloat16: for (int i = 0; i < n; i++) dst[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src[(i * 2)..]) << 16); break;
            case SourceDType.Int64: for (int i = 0; i < n; i++) dst[i] = BinaryPrimitives.ReadInt64LittleEndian(src[(i * 8)..]); break;
            case SourceDType.Int32: for (int i = 0; i < n; i++) dst[i] = BinaryPrimitives.ReadInt32LittleEndian(src[(i * 4)..]); break;
            case SourceDType.Int16: for (int i = 0; i < n; i++) dst[i] = BinaryPrimitives.ReadInt16LittleEndian(src[(i * 2)..]); break;
            case SourceDType.Int8: for (int i = 0; i < n; i++) dst[i] = (sbyte)src[i]; break;
            case SourceDType.UInt8 or SourceDType.Bool: for (int i = 0; i < n; i++) dst[i] = src[i]; break;
            default: throw new ArgumentOutOfRangeException(nameof(t));
        }
    }

    /// <summary>Element count of a shape, refusing negative dims and totals beyond one array.</summary>
    public static long CheckedCount(IReadOnlyList<long> shape, string what)
    {
        long n = 1;
        foreach (long d in shape)
        {
            if (d < 0 || d > int.MaxValue) throw new WeightFormatException($"{what} has dimension {d}.");
            n *= d;
            if (n > Array.MaxLength) throw new WeightFormatException($"{what} declares more than {Array.MaxLength} elements.");
        }
        return n;
    }
}

/// <summary>
/// A tensor found in a checkpoint, read lazily: shape and type are known at once, the data is
/// only read (and converted to float32) when a mapping asks for it, so optimizer states and other
/// tensors a conversion does not use are never loaded.
/// </summary>
public abstract class SourceTensor
{
    protected SourceTensor(SourceDType dtype, int[] shape)
    {
        DType = dtype;
        Shape = shape;
    }

    public SourceDType DType { get; }
    public int[] Shape { get; }
    public long Count => Shape.Aggregate(1L, (a, b) => a * b);
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";

    /// <summary>The values as float32, row-major. The array may be shared between calls: read it, never write it.</summary>
    public abstract float[] ReadFloats();
}

/// <summary>A tensor whose values are already in memory.</summary>
public sealed class InMemoryTensor(SourceDType dtype, int[] shape, float[] data) : SourceTensor(dtype, shape)
{
    public override float[] ReadFloats() => data;
}
