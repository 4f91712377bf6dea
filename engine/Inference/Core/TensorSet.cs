namespace ModelGuardian.Engine.Core;

/// <summary>A named host tensor (row-major, PyTorch layout).</summary>
public sealed record HostTensor(int[] Shape, float[] Data)
{
    public int Length => Data.Length;

    public static HostTensor Create(float[] data, params int[] shape)
    {
        long n = 1;
        foreach (int d in shape) n *= d;
        if (n != data.Length) throw new ArgumentException($"Shape [{string.Join(", ", shape)}] needs {n} values, got {data.Length}.");
        return new HostTensor(shape, data);
    }

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// A network's parameters by name, e.g. a state dict (torchvision / genforce names). Networks
/// take what they need and say by name what is missing or mis-shaped.
/// </summary>
public sealed class TensorSet
{
    private readonly Dictionary<string, HostTensor> _tensors = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, HostTensor> Tensors => _tensors;

    public HostTensor this[string name]
    {
        get => _tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"Tensor '{name}' is missing.");
        set => _tensors[name] = value;
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);
}
