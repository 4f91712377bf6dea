using ModelGuardian.Engine.Core;

namespace ModelGuardian.Weights;

/// <summary>Checks on loaded tensors that warn rather than refuse.</summary>
internal static class TensorChecks
{
    /// <summary>One warning per tensor holding NaN or ±Inf, naming it: such weights load but poison every output they touch.</summary>
    public static IReadOnlyList<string> NonFiniteWarnings(TensorSet tensors)
    {
        var warnings = new List<string>();
        foreach (var (name, t) in tensors.Tensors)
        {
            int nan = 0, inf = 0;
            foreach (float v in t.Data)
            {
                if (float.IsNaN(v)) nan++;
                else if (float.IsInfinity(v)) inf++;
            }
            if (nan + inf > 0) warnings.Add($"tensor '{name}' {t.ShapeText} holds {nan} NaN and {inf} infinite value(s)");
        }
        return warnings;
    }
}
