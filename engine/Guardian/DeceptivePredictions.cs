namespace ModelGuardian.Engine.Guardian;

/// <summary>
/// DPreds (paper §III-E): p' = (p + v) / Σ(p + v) = (p + v) / (1 + K·v). Adding the same v to every
/// class keeps the ranking (and the argmax) and flattens the distribution, so a stolen copy
/// learns little from the soft labels while a flagged user still gets a plausible answer.
/// </summary>
public static class DeceptivePredictions
{
    public static double[] Apply(ReadOnlySpan<double> probabilities, double v)
    {
        if (!(v > 0 && double.IsFinite(v))) throw new ArgumentException($"The DPreds constant v must be positive and finite, got {v}.");
        if (probabilities.IsEmpty) throw new ArgumentException("No probabilities to deceive.");
        double sum = 0;
        foreach (double p in probabilities) sum += p + v;
        var result = new double[probabilities.Length];
        for (int i = 0; i < result.Length; i++) result[i] = (probabilities[i] + v) / sum;
        return result;
    }

    /// <summary>Index of the largest value (the first, on ties).</summary>
    public static int ArgMax(ReadOnlySpan<double> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }
}
