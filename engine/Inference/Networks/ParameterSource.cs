using ModelGuardian.Engine.Core;

namespace ModelGuardian.Engine.Networks;

/// <summary>What a network builder asks for, by name and shape (PyTorch layout, unscaled).</summary>
public enum ParameterRole { ConvWeight, DenseWeight, Bias, BatchNormWeight, BatchNormBias, BatchNormMean, BatchNormVariance }

/// <summary>Where a builder's parameters come from: a loaded state dict, or a seeded initialiser.</summary>
public interface IParameterSource
{
    float[] Take(string name, int[] shape, ParameterRole role);
}

/// <summary>
/// Parameters from a <see cref="TensorSet"/>. Every problem is collected and reported at once by
/// <see cref="ThrowIfIncomplete"/>: a missing or mis-shaped tensor is named, never guessed.
/// </summary>
public sealed class TensorSetSource(TensorSet tensors) : IParameterSource
{
    private readonly List<string> _problems = new();

    public float[] Take(string name, int[] shape, ParameterRole role)
    {
        if (!tensors.Contains(name)) { _problems.Add($"missing '{name}' {Fmt(shape)}"); return new float[Count(shape)]; }
        var t = tensors[name];
        if (!t.Shape.AsSpan().SequenceEqual(shape))
        {
            _problems.Add($"'{name}' has shape {t.ShapeText}, expected {Fmt(shape)}");
            return new float[Count(shape)];
        }
        return t.Data;
    }

    public void ThrowIfIncomplete()
    {
        if (_problems.Count > 0)
            throw new ArgumentException($"Weights do not fit the architecture ({_problems.Count} problem(s)): {string.Join("; ", _problems)}.");
    }

    private static string Fmt(int[] shape) => "[" + string.Join(", ", shape) + "]";
    private static int Count(int[] shape) => shape.Aggregate(1, (a, b) => a * b);
}
