using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Training;

/// <summary>
/// A named tensor of a trainable network: its value, and for trainable ones a gradient that backward
/// steps accumulate into and the optimizer's state. Batch-norm running statistics are parameters
/// too (they are saved), but not trainable.
/// </summary>
public sealed class Parameter : IDisposable
{
    internal Parameter(IKernels kernels, string name, int[] shape, ParameterRole role, bool trainable, ReadOnlySpan<float> initial)
    {
        Name = name;
        Shape = shape;
        Role = role;
        Trainable = trainable;
        Length = initial.Length;
        Value = kernels.Allocate(Length);
        kernels.Upload(initial, Value);
        Gradient = trainable ? kernels.Allocate(Length) : null;
    }

    public string Name { get; }
    public int[] Shape { get; }
    public ParameterRole Role { get; }
    public bool Trainable { get; }
    public int Length { get; }
    public DeviceBuffer Value { get; }
    /// <summary>Σ of every backward step's contribution since the last <see cref="ParameterStore.ZeroGradients"/>.</summary>
    public DeviceBuffer? Gradient { get; }
    internal DeviceBuffer? State1 { get; set; }
    internal DeviceBuffer? State2 { get; set; }

    public void Dispose()
    {
        Value.Dispose();
        Gradient?.Dispose();
        State1?.Dispose();
        State2?.Dispose();
    }
}

/// <summary>The parameters of one trainable network, by name, on one backend.</summary>
public sealed class ParameterStore(IKernels kernels) : IDisposable
{
    private readonly List<Parameter> _all = new();

    public IKernels Kernels { get; } = kernels;
    public IReadOnlyList<Parameter> All => _all;
    public IEnumerable<Parameter> Trainable => _all.Where(p => p.Trainable);

    public Parameter Add(string name, int[] shape, ParameterRole role, bool trainable, ReadOnlySpan<float> initial)
    {
        if (_all.Any(p => p.Name == name)) throw new ArgumentException($"Parameter '{name}' exists already.");
        var p = new Parameter(Kernels, name, shape, role, trainable, initial);
        _all.Add(p);
        return p;
    }

    public void ZeroGradients()
    {
        foreach (var p in Trainable) Kernels.Fill(p.Gradient!, p.Length, 0f);
    }

    /// <summary>
    /// Forgets every optimizer's moments, so that the next optimizer over these parameters starts as a fresh one would
    /// (e.g. after a pre-training phase with optimizers of its own).
    /// </summary>
    public void ResetOptimizerState()
    {
        foreach (var p in _all)
        {
            p.State1?.Dispose();
            p.State2?.Dispose();
            (p.State1, p.State2) = (null, null);
        }
    }

    public float[] Download(Parameter p)
    {
        var values = new float[p.Length];
        Kernels.Download(p.Value, values);
        return values;
    }

    /// <summary>Every parameter's current value under its (torchvision / genforce) name.</summary>
    public TensorSet ToTensorSet()
    {
        var set = new TensorSet();
        foreach (var p in _all) set[p.Name] = new HostTensor(p.Shape, Download(p));
        return set;
    }

    /// <summary>Overwrites every parameter from <paramref name="tensors"/>, which must hold each by name with its shape.</summary>
    public void Load(TensorSet tensors)
    {
        foreach (var p in _all)
        {
            if (!tensors.Contains(p.Name)) throw new ArgumentException($"Tensor '{p.Name}' is missing.");
            var t = tensors[p.Name];
            if (!t.Shape.AsSpan().SequenceEqual(p.Shape)) throw new ArgumentException($"'{p.Name}' is {t.ShapeText}, expected [{string.Join(", ", p.Shape)}].");
            Kernels.Upload(t.Data, p.Value);
        }
    }

    public void Dispose()
    {
        foreach (var p in _all) p.Dispose();
        _all.Clear();
    }
}
