using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace ModelGuardian.Weights.Pickle;

/// <summary>
/// How a reader turns the few allow-listed calls of a pickle into data. The unpickler never calls
/// anything itself: REDUCE, NEWOBJ and BUILD only reach these methods, which build values.
/// </summary>
public abstract class PickleHooks
{
    /// <summary>REDUCE of an allow-listed callable: the reader's rebuild rule for it, or a refusal.</summary>
    public virtual object? Reduce(PyGlobal callable, PyTuple args)
        => throw new WeightFormatException($"pickle calls '{callable}', which this reader has no rebuild rule for.");

    /// <summary>NEWOBJ / INST / OBJ of an allow-listed class: an inert <see cref="PyObject"/> by default.</summary>
    public virtual object? NewObject(PyGlobal type, PyTuple args) => new PyObject(type, args);

    /// <summary>BUILD: state for an object made by <see cref="NewObject"/>; a dict's attributes are dropped.</summary>
    public virtual void Build(object? target, object? state)
    {
        switch (target)
        {
            case PyObject o: o.State = state; break;
            // A dict subclass's BUILD state is its instance attributes (torch's state_dict._metadata,
            // EasyDict's __dict__), not items: dropped, so they never pose as tensors.
            case PyDict: break;
            default: throw new WeightFormatException($"pickle BUILD on a {Unpickler.Describe(target)}, which takes no state.");
        }
    }

    /// <summary>A persistent id (PERSID / BINPERSID): torch's storages; refused where the format has none.</summary>
    public virtual object? PersistentLoad(object? pid)
        => throw new WeightFormatException("pickle refers to external (persistent) data, which this format does not have.");
}

/// <summary>
/// A pickle virtual machine (protocols 0–5) that only builds data. Every global the stream names
/// (GLOBAL, STACK_GLOBAL, INST) must be on the reader's allow-list or loading stops with an error
/// naming it; calls go to <see cref="PickleHooks"/>, which rebuild tensors, storages, ordered dicts
/// and numpy arrays as values. Every length is checked against the bytes left before it is used,
/// so a crafted stream can neither allocate beyond its own size nor loop: each opcode consumes input.
/// </summary>
public sealed class Unpickler
{
    private const byte HighestProtocol = 5;
    private const int MaxLine = 1 << 16, MaxLongBytes = 1024;

    private readonly ReadOnlyMemory<byte> _data;
    private readonly IReadOnlySet<string> _allowed;
    private readonly PickleHooks _hooks;
    private int _pos;
    private readonly List<object?> _stack = new();
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = new();

    private Unpickler(ReadOnlyMemory<byte> data, int start, IReadOnlySet<string> allowedGlobals, PickleHooks hooks)
    {
        _data = data;
        _pos = start;
        _allowed = allowedGlobals;
        _hooks = hooks;
    }

    /// <summary>Loads one pickle starting at <paramref name="start"/>; <paramref name="end"/> is the offset after its STOP.</summary>
    public static object? Load(ReadOnlyMemory<byte> data, IReadOnlySet<string> allowedGlobals, PickleHooks hooks, int start, out int end)
    {
        var u = new Unpickler(data, start, allowedGlobals, hooks);
        var result = u.Run();
        end = u._pos;
        return result;
    }

    public static object? Load(ReadOnlyMemory<byte> data, IReadOnlySet<string> allowedGlobals, PickleHooks hooks)
        => Load(data, allowedGlobals, hooks, 0, out _);

    private ReadOnlySpan<byte> Span => _data.Span;

    private object? Run()
    {
        while (true)
        {
            if (_pos >= _data.Length) throw Truncated();
            byte op = Span[_pos++];
            switch (op)
            {
                case 0x80: // PROTO
                    if (ReadByte() > HighestProtocol) throw Bad($"pickle protocol {Span[_pos - 1]} is newer than {HighestProtocol}");
                    break;
                case 0x95: Take(8); break; // FRAME: a length hint only
                case (byte)'.': // STOP
                    if (_stack.Count != 1 || _marks.Count != 0) throw Bad("pickle stops with an unbalanced stack");
                    return _stack[0];

                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case (byte)'I': Push(ParseIntLine(ReadLine())); break;
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break;
                case (byte)'K': Push((long)ReadByte()); break;
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break;
                case (byte)'L': Push(ParseLongLine(ReadLine())); break;
                case 0x8a: Push(ReadLong(ReadByte())); break; // LONG1
                case 0x8b: Push(ReadLong(ReadLength4())); break; // LONG4
                case (byte)'F': Push(ParseFloat(ReadLine())); break;
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break;

                case (byte)'S': Push(ParseQuotedString(ReadLine())); break;
                case (byte)'T': Push(Latin1(Take(ReadLength4()))); break; // BINSTRING (Python 2 str)
                case (byte)'U': Push(Latin1(Take(ReadByte()))); break; // SHORT_BINSTRING
                case (byte)'V': Push(ParseRawUnicodeEscape(ReadLine())); break;
                case (byte)'X': Push(Utf8(Take(ReadLength4()))); break;
                case 0x8c: Push(Utf8(Take(ReadByte()))); break;
                case 0x8d: Push(Utf8(Take(ReadLength8()))); break;
                case (byte)'B': Push(TakeBytes(ReadLength4())); break;
                case (byte)'C': Push(TakeBytes(ReadByte())); break;
                case 0x8e: Push(TakeBytes(ReadLength8())); break;
                case 0x96: Push(TakeBytes(ReadLength8())); break; // BYTEARRAY8

                case (byte)']': Push(new PyList()); break;
                case (byte)')': Push(new PyTuple([])); break;
                case (byte)'}': Push(new PyDict()); break;
                case 0x8f: Push(new PyList()); break; // EMPTY_SET: a list of its items
                case 0x90: // ADDITEMS
                {
                    var items = PopMarked();
                    ((Peek() as PyList) ?? throw Bad("ADDITEMS on a non-set")).Items.AddRange(items);
                    break;
                }
                case 0x91: { var l = new PyList(); l.Items.AddRange(PopMarked()); Push(l); break; } // FROZENSET
                case (byte)'(': _marks.Push(_stack.Count); break;
                case (byte)'l': { var l = new PyList(); l.Items.AddRange(PopMarked()); Push(l); break; }
                case (byte)'t': Push(new PyTuple(PopMarked())); break;
                case 0x85: Push(new PyTuple([Pop()])); break;
                case 0x86: { var b = Pop(); var a = Pop(); Push(new PyTuple([a, b])); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new PyTuple([a, b, c])); break; }
                case (byte)'d': Push(MakeDict(PopMarked())); break;
                case (byte)'a': { var v = Pop(); AsList(Peek()).Items.Add(v); break; }
                case (byte)'e': { var items = PopMarked(); AsList(Peek()).Items.AddRange(items); break; }
                case (byte)'s': { var v = Pop(); var k = Pop(); AsDict(Peek()).Set(k, v); break; }
                case (byte)'u':
                {
                    var items = PopMarked();
                    var d = AsDict(Peek());
                    if (items.Length % 2 != 0) throw Bad("SETITEMS with an odd number of items");
                    for (int i = 0; i < items.Length; i += 2) d.Set(items[i], items[i + 1]);
                    break;
                }

                case (byte)'0': Pop(); break;
                case (byte)'1': PopMarked(); break;
                case (byte)'2': Push(Peek()); break;

                case (byte)'p': _memo[ParseMemoIndex(ReadLine())] = Peek(); break;
                case (byte)'q': _memo[ReadByte()] = Peek(); break;
                case (byte)'r': _memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(4))] = Peek(); break;
                case 0x94: _memo[_memo.Count] = Peek(); break; // MEMOIZE
                case (byte)'g': Push(Recall(ParseMemoIndex(ReadLine()))); break;
                case (byte)'h': Push(Recall(ReadByte())); break;
                case (byte)'j': Push(Recall(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break;

                case (byte)'c': // GLOBAL module\nname\n
                {
                    string module = Utf8(ReadLine()), name = Utf8(ReadLine());
                    Push(Global(module, name));
                    break;
                }
                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop() as string ?? throw Bad("STACK_GLOBAL name is not a string");
                    var module = Pop() as string ?? throw Bad("STACK_GLOBAL module is not a string");
                    Push(Global(module, name));
                    break;
                }
                case (byte)'R': // REDUCE
                {
                    var args = Pop() as PyTuple ?? throw Bad("REDUCE arguments are not a tuple");
                    var callable = Pop() as PyGlobal ?? throw Bad("REDUCE of something that is not an allow-listed global");
                    Push(_hooks.Reduce(callable, args));
                    break;
                }
                case 0x81: // NEWOBJ
                {
                    var args = Pop() as PyTuple ?? throw Bad("NEWOBJ arguments are not a tuple");
                    var type = Pop() as PyGlobal ?? throw Bad("NEWOBJ of something that is not an allow-listed class");
                    Push(_hooks.NewObject(type, args));
                    break;
                }
                case 0x92: // NEWOBJ_EX
                {
                    var kwargs = Pop() as PyDict ?? throw Bad("NEWOBJ_EX keyword arguments are not a dict");
                    var args = Pop() as PyTuple ?? throw Bad("NEWOBJ_EX arguments are not a tuple");
                    var type = Pop() as PyGlobal ?? throw Bad("NEWOBJ_EX of something that is not an allow-listed class");
                    if (kwargs.Count != 0) throw Bad($"NEWOBJ_EX of '{type}' with keyword arguments");
                    Push(_hooks.NewObject(type, args));
                    break;
                }
                case (byte)'i': // INST module\nname\n, arguments after the mark
                {
                    string module = Utf8(ReadLine()), name = Utf8(ReadLine());
                    var type = Global(module, name);
                    Push(_hooks.NewObject(type, new PyTuple(PopMarked())));
                    break;
                }
                case (byte)'o': // OBJ: class and arguments after the mark
                {
                    var items = PopMarked();
                    if (items.Length == 0 || items[0] is not PyGlobal type) throw Bad("OBJ of something that is not an allow-listed class");
                    Push(_hooks.NewObject(type, new PyTuple(items[1..])));
                    break;
                }
                case (byte)'b': { var state = Pop(); _hooks.Build(Peek(), state); break; }
                case (byte)'P': Push(_hooks.PersistentLoad(Utf8(ReadLine()))); break;
                case (byte)'Q': Push(_hooks.PersistentLoad(Pop())); break;
                case 0x82 or 0x83 or 0x84: throw Bad("pickle uses the copyreg extension registry (EXT1/2/4), which is refused");
                case 0x97 or 0x98: throw Bad("pickle uses out-of-band buffers (protocol 5 NEXT_BUFFER), which are not supported");
                default: throw Bad($"unknown pickle opcode 0x{op:x2}");
            }
        }
    }

    private PyGlobal Global(string module, string name)
    {
        string full = $"{module}.{name}";
        if (!_allowed.Contains(full))
            throw new WeightFormatException($"pickle refers to the global '{full}', which is not on this reader's allow-list; nothing was executed. " +
                                            "Weight files only need tensor, storage, ordered-dict and numpy-array globals.");
        return new PyGlobal(module, name);
    }

    // ---- stack and memo ----

    private void Push(object? v) => _stack.Add(v);

    private object? Pop()
    {
        if (_stack.Count == 0 || (_marks.Count > 0 && _marks.Peek() == _stack.Count)) throw Bad("pickle stack underflow");
        var v = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return v;
    }

    private object? Peek()
    {
        if (_stack.Count == 0 || (_marks.Count > 0 && _marks.Peek() == _stack.Count)) throw Bad("pickle stack underflow");
        return _stack[^1];
    }

    private object?[] PopMarked()
    {
        if (_marks.Count == 0) throw Bad("pickle pops to a mark that was never set");
        int mark = _marks.Pop();
        var items = _stack.GetRange(mark, _stack.Count - mark).ToArray();
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private object? Recall(long index) => _memo.TryGetValue(index, out var v) ? v : throw Bad($"pickle recalls memo entry {index}, which was never stored");

    private static PyDict MakeDict(object?[] items)
    {
        if (items.Length % 2 != 0) throw Bad("DICT with an odd number of items");
        var d = new PyDict();
        for (int i = 0; i < items.Length; i += 2) d.Set(items[i], items[i + 1]);
        return d;
    }

    private static PyList AsList(object? v) => v as PyList ?? throw Bad($"APPEND to a {Describe(v)}");
    private static PyDict AsDict(object? v) => v as PyDict ?? throw Bad($"SETITEM on a {Describe(v)}");

    // ---- input ----

    private byte ReadByte()
    {
        if (_pos >= _data.Length) throw Truncated();
        return Span[_pos++];
    }

    private ReadOnlySpan<byte> Take(long n)
    {
        if (n < 0 || n > _data.Length - _pos) throw Truncated();
        var s = Span.Slice(_pos, (int)n);
        _pos += (int)n;
        return s;
    }

    private PyBytes TakeBytes(long n)
    {
        if (n < 0 || n > _data.Length - _pos) throw Truncated();
        var m = _data.Slice(_pos, (int)n);
        _pos += (int)n;
        return new PyBytes(m);
    }

    private long ReadLength4() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    private long ReadLength8()
    {
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
        return n > int.MaxValue ? throw Truncated() : (long)n;
    }

    private ReadOnlySpan<byte> ReadLine()
    {
        var rest = Span[_pos..];
        int nl = rest[..Math.Min(rest.Length, MaxLine)].IndexOf((byte)'\n');
        if (nl < 0) throw rest.Length < MaxLine ? Truncated() : Bad("pickle text line too long");
        _pos += nl + 1;
        return rest[..nl];
    }

    private object ReadLong(long n)
    {
        if (n > MaxLongBytes) throw Bad($"pickle integer of {n} bytes");
        var bytes = Take(n);
        var big = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        return big >= long.MinValue && big <= long.MaxValue ? (object)(long)big : big; // small ones as long, like every other integer
    }

    // ---- text forms (protocol 0) ----

    private static object ParseIntLine(ReadOnlySpan<byte> line)
    {
        string s = Ascii(line);
        if (s == "00") return false;
        if (s == "01") return true;
        return ParseInteger(s);
    }

    private static object ParseLongLine(ReadOnlySpan<byte> line)
    {
        string s = Ascii(line);
        return ParseInteger(s.EndsWith('L') ? s[..^1] : s);
    }

    private static object ParseInteger(string s)
    {
        if (s.Length > MaxLongBytes * 3) throw Bad("pickle integer literal too long");
        if (long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v)) return v;
        if (BigInteger.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var big)) return big;
        throw Bad($"pickle integer literal '{Clip(s)}' is not a number");
    }

    private static long ParseMemoIndex(ReadOnlySpan<byte> line)
        => long.TryParse(Ascii(line), NumberStyles.None, CultureInfo.InvariantCulture, out long v) ? v : throw Bad("pickle memo index is not a number");

    private static double ParseFloat(ReadOnlySpan<byte> line)
    {
        string s = Ascii(line);
        return s switch
        {
            "nan" => double.NaN,
            "inf" => double.PositiveInfinity,
            "-inf" => double.NegativeInfinity,
            _ => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : throw Bad($"pickle float literal '{Clip(s)}' is not a number"),
        };
    }

    /// <summary>STRING: a Python repr in quotes, with backslash escapes.</summary>
    private static string ParseQuotedString(ReadOnlySpan<byte> line)
    {
        string s = Latin1(line);
        if (s.Length < 2 || s[0] != s[^1] || (s[0] != '\'' && s[0] != '"')) throw Bad("pickle STRING is not quoted");
        return Unescape(s[1..^1], unicodeEscapesOnly: false);
    }

    private static string ParseRawUnicodeEscape(ReadOnlySpan<byte> line) => Unescape(Latin1(line), unicodeEscapesOnly: true);

    private static string Unescape(string s, bool unicodeEscapesOnly)
    {
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c != '\\' || i + 1 >= s.Length) { sb.Append(c); continue; }
            char e = s[i + 1];
            int hex = e switch { 'x' when !unicodeEscapesOnly => 2, 'u' => 4, 'U' => 8, _ => 0 };
            if (hex > 0)
            {
                if (i + 2 + hex > s.Length || !int.TryParse(s.AsSpan(i + 2, hex), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int cp) || cp > 0x10FFFF)
                    throw Bad("pickle string has a broken escape");
                sb.Append(cp < 0x10000 ? ((char)cp).ToString() : char.ConvertFromUtf32(cp));
                i += 1 + hex;
                continue;
            }
            if (unicodeEscapesOnly) { sb.Append(c); continue; }
            sb.Append(e switch { 'n' => '\n', 'r' => '\r', 't' => '\t', '0' => '\0', _ => e });
            i++;
        }
        return sb.ToString();
    }

    private static string Ascii(ReadOnlySpan<byte> b) => Encoding.ASCII.GetString(b).Trim();
    private static string Latin1(ReadOnlySpan<byte> b) => Encoding.Latin1.GetString(b);

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static string Utf8(ReadOnlySpan<byte> b)
    {
        try { return StrictUtf8.GetString(b); }
        catch (DecoderFallbackException) { throw Bad("pickle string is not valid UTF-8"); }
    }

    private static string Clip(string s) => s.Length <= 40 ? s : s[..40] + "…";

    internal static string Describe(object? v) => v switch
    {
        null => "None",
        PyObject o => $"'{o.Type}' object",
        PyGlobal g => $"global '{g}'",
        _ => v.GetType().Name,
    };

    private static WeightFormatException Bad(string message) => new($"malformed pickle: {message}.");
    private WeightFormatException Truncated() => new($"malformed pickle: truncated at byte {_pos} of {_data.Length}.");
}
