namespace ModelGuardian.Weights.Pickle;

// The values an unpickled stream is made of. Nothing here can run code: a "class" is only a
// name that passed the allow-list, an "object" only that name with the data it was given.

/// <summary>A module-level name the pickle referred to (GLOBAL / STACK_GLOBAL), already allow-listed.</summary>
public sealed record PyGlobal(string Module, string Name)
{
    public override string ToString() => $"{Module}.{Name}";
}

/// <summary>A tuple (immutable in Python; the array is ours and never handed out for writing).</summary>
public sealed class PyTuple(object?[] items)
{
    public IReadOnlyList<object?> Items => items;
    public int Count => items.Length;
    public object? this[int i] => items[i];
}

/// <summary>A list, also what a set/frozenset becomes (order kept, no hashing of unknown values).</summary>
public sealed class PyList
{
    public List<object?> Items { get; } = new();
}

/// <summary>A dict or OrderedDict: insertion order kept; lookups by string key.</summary>
public sealed class PyDict
{
    private readonly List<KeyValuePair<object?, object?>> _items = new();
    private readonly Dictionary<string, int> _byString = new(StringComparer.Ordinal);

    public IReadOnlyList<KeyValuePair<object?, object?>> Items => _items;
    public int Count => _items.Count;

    public void Set(object? key, object? value)
    {
        if (key is string s)
        {
            if (_byString.TryGetValue(s, out int i)) { _items[i] = new(key, value); return; }
            _byString[s] = _items.Count;
        }
        _items.Add(new(key, value));
    }

    public bool TryGet(string key, out object? value)
    {
        if (_byString.TryGetValue(key, out int i)) { value = _items[i].Value; return true; }
        value = null;
        return false;
    }

    public IEnumerable<string> StringKeys => _items.Select(kv => kv.Key).OfType<string>();
}

/// <summary>An instance of an allow-listed class: its class name, constructor arguments and BUILD state, as data.</summary>
public sealed class PyObject(PyGlobal type, PyTuple args)
{
    public PyGlobal Type { get; } = type;
    public PyTuple Args { get; } = args;
    public object? State { get; set; }
}

/// <summary>Raw bytes, a slice of the pickle's own buffer (no copy).</summary>
public sealed record PyBytes(ReadOnlyMemory<byte> Data);
