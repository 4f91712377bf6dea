using ModelGuardian.Weights.Pickle;

namespace ModelGuardian.Weights.Sources;

/// <summary>
/// numpy's pickled forms as data: <c>_reconstruct(ndarray, (0,), b'b')</c> then BUILD with
/// (version, shape, dtype, is_fortran, raw bytes); <c>dtype('f4', False, True)</c> then BUILD with
/// its byte order; protocol-5 <c>_frombuffer(bytes, dtype, shape, order)</c>; numpy scalars; and,
/// for protocol ≤ 2, raw bytes that arrive as <c>_codecs.encode(text, 'latin1')</c>.
/// numpy 1.x names live in numpy.core, numpy 2.x in numpy._core: both are listed.
/// </summary>
internal static class Numpy
{
    public static readonly string[] Globals =
    [
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
        "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer",
        "numpy.ndarray", "numpy.dtype", "_codecs.encode",
    ];

    /// <summary>An array under construction, then complete after BUILD.</summary>
    public sealed class Array
    {
        public SourceTensor? Tensor { get; set; }
    }

    /// <summary>A dtype: kind+size string such as "f4", and its byte order once built.</summary>
    public sealed class DType(string code)
    {
        public string Code { get; } = code;
        public char ByteOrder { get; set; } = '<';
    }

    public static bool TryReduce(PyGlobal f, PyTuple args, out object? result)
    {
        result = null;
        switch (f.Name)
        {
            case "_reconstruct" when f.Module.EndsWith("multiarray", StringComparison.Ordinal):
                if (args.Count < 1 || args[0] is not PyGlobal { Name: "ndarray" }) throw Bad("_reconstruct of something other than ndarray");
                result = new Array();
                return true;
            case "dtype" when f.Module == "numpy":
                result = new DType(args.Count > 0 && args[0] is string code ? code : throw Bad("dtype without a type code"));
                return true;
            case "scalar" when f.Module.EndsWith("multiarray", StringComparison.Ordinal):
            {
                if (args.Count != 2 || args[0] is not DType dt) throw Bad("scalar needs (dtype, bytes)");
                var bytes = AsBytes(args[1]);
                var type = Parse(dt);
                if (bytes.Length != SourceDTypes.Size(type)) throw Bad("scalar bytes do not match its dtype");
                var v = new float[1];
                SourceDTypes.ToFloat(bytes.Span, type, v);
                result = (double)v[0];
                return true;
            }
            case "_frombuffer" when f.Module.EndsWith("numeric", StringComparison.Ordinal):
            {
                if (args.Count != 4 || args[1] is not DType dt || args[2] is not PyTuple shape) throw Bad("_frombuffer needs (buffer, dtype, shape, order)");
                if (args[3] is not "C") throw Bad("Fortran-ordered arrays are not supported");
                result = new Array { Tensor = Tensor(AsBytes(args[0]), Parse(dt), shape) };
                return true;
            }
            case "encode" when f.Module == "_codecs":
                if (args.Count != 2 || args[0] is not string text || args[1] is not ("latin1" or "latin-1"))
                    throw Bad("_codecs.encode is only accepted as (text, 'latin1'), the form pickle gives raw bytes");
                foreach (char c in text) if (c > 0xff) throw Bad("latin1 text with a character beyond 0xff");
                result = new PyBytes(System.Text.Encoding.Latin1.GetBytes(text));
                return true;
            default:
                return false;
        }
    }

    public static bool TryBuild(object? target, object? state)
    {
        switch (target)
        {
            case DType dt:
                // (version, byteorder, subarray, names, fields, elsize, alignment, flags)
                if (state is PyTuple { Count: >= 2 } t && t[1] is string order && order.Length == 1) dt.ByteOrder = order[0];
                else throw Bad("dtype state without a byte order");
                return true;
            case Array a:
                // (version, shape, dtype, is_fortran, data)
                if (state is not PyTuple { Count: 5 } s || s[1] is not PyTuple shape || s[2] is not DType dtype || s[3] is not bool fortran)
                    throw Bad("ndarray state is not (version, shape, dtype, fortran, data)");
                if (fortran) throw Bad("Fortran-ordered arrays are not supported");
                if (s[4] is PyList) throw Bad("arrays of Python objects are not supported");
                a.Tensor = Tensor(AsBytes(s[4]), Parse(dtype), shape);
                return true;
            default:
                return false;
        }
    }

    private static SourceTensor Tensor(ReadOnlyMemory<byte> bytes, SourceDType type, PyTuple shapeTuple)
    {
        var dims = shapeTuple.Items.Select(d => d is long l ? l : throw Bad("array shape holds a non-integer")).ToArray();
        long count = SourceDTypes.CheckedCount(dims, "numpy array");
        if (bytes.Length != count * SourceDTypes.Size(type))
            throw Bad($"array [{string.Join(", ", dims)}] of {type} needs {count * SourceDTypes.Size(type)} bytes, it holds {bytes.Length}");
        var data = new float[count];
        SourceDTypes.ToFloat(bytes.Span, type, data);
        return new InMemoryTensor(type, dims.Select(d => (int)d).ToArray(), data);
    }

    private static SourceDType Parse(DType dt)
    {
        if (dt.ByteOrder == '>' && dt.Code is not ("u1" or "i1" or "b1")) throw Bad($"big-endian arrays (dtype '>{dt.Code}') are not supported");
        return dt.Code switch
        {
            "f4" => SourceDType.Float32, "f8" => SourceDType.Float64, "f2" => SourceDType.Float16,
            "i8" => SourceDType.Int64, "i4" => SourceDType.Int32, "i2" => SourceDType.Int16, "i1" => SourceDType.Int8,
            "u1" => SourceDType.UInt8, "b1" => SourceDType.Bool,
            _ => throw Bad($"numpy dtype '{dt.Code}' is not supported"),
        };
    }

    private static ReadOnlyMemory<byte> AsBytes(object? v) => v is PyBytes b ? b.Data : throw Bad("array data is not a byte string");

    private static WeightFormatException Bad(string message) => new($"numpy data in the pickle: {message}.");
}
