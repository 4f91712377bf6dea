namespace ModelGuardian.Engine.Guardian;

/// <summary>Checks shared by the output perturbations: a probability vector is what they promise to return.</summary>
public static class ProbabilityVector
{
    public const double SumTolerance = 1e-6;

    /// <summary>Throws unless <paramref name="p"/> is non-empty, finite, non-negative and sums to 1 within 1e-6.</summary>
    public static void Validate(ReadOnlySpan<double> p, string name = "probabilities")
    {
        if (p.IsEmpty) throw new ArgumentException("The probability vector is empty.", name);
        double sum = 0;
        for (int i = 0; i < p.Length; i++)
        {
            if (double.IsNaN(p[i]) || double.IsInfinity(p[i])) throw new ArgumentException($"Probability {i} is not finite ({p[i]}).", name);
            if (p[i] < 0) throw new ArgumentException($"Probability {i} is negative ({p[i]}).", name);
            sum += p[i];
        }
        if (Math.Abs(sum - 1) > SumTolerance) throw new ArgumentException($"Probabilities must sum to 1 within {SumTolerance}, got {sum:R}.", name);
    }

    /// <summary>Divides by the sum in place; an all-zero vector becomes uniform (nothing left to rank).</summary>
    public static void Normalise(Span<double> q)
    {
        double sum = 0;
        foreach (double v in q) sum += v;
        if (sum > 0) { for (int i = 0; i < q.Length; i++) q[i] /= sum; }
        else q.Fill(1.0 / q.Length);
    }
}

/// <summary>
/// A deception that keeps the full ranking yet cannot be undone by an attacker who knows the scheme: per
/// query a fresh temperature T ~ U[tMin, tMax] sharpens or flattens p (pᵢ^{1/T}, renormalised: monotone, so
/// the order survives) and a fresh v ~ U[vMin, vMax] flattens it further with DPreds
/// (<see cref="DeceptivePredictions.Apply"/>). DPreds alone is a fixed affine map that
/// <see cref="DPredsInversion"/> undoes from the smallest entry; with an unknown T the smallest entry no longer
/// pins down v, and even a correct v only yields p^{1/T}.
/// </summary>
public sealed class RandomizedDeception
{
    public double VMin { get; }
    public double VMax { get; }
    public double TMin { get; }
    public double TMax { get; }

    /// <summary>What `mg serve` (policy.deception = "randomized") and `mg eval` use: v over DPreds' Table X sweep (0.05…2), temperatures that flatten up to 4×.</summary>
    public static RandomizedDeception Default { get; } = new(0.05, 2.0, 1.0, 4.0);

    public RandomizedDeception(double vMin, double vMax, double tMin, double tMax)
    {
        if (!(vMin > 0 && vMax >= vMin && double.IsFinite(vMax))) throw new ArgumentException($"Need 0 < vMin ≤ vMax < ∞, got [{vMin}, {vMax}].");
        if (!(tMin > 0 && tMax >= tMin && double.IsFinite(tMax))) throw new ArgumentException($"Need 0 < tMin ≤ tMax < ∞, got [{tMin}, {tMax}].");
        VMin = vMin; VMax = vMax; TMin = tMin; TMax = tMax;
    }

    public double[] Apply(ReadOnlySpan<double> p, Random rng)
    {
        ProbabilityVector.Validate(p, nameof(p));
        ArgumentNullException.ThrowIfNull(rng);
        double v = VMin + (VMax - VMin) * rng.NextDouble();
        double t = TMin + (TMax - TMin) * rng.NextDouble();
        return Apply(p, v, t);
    }

    /// <summary>The deterministic map for a given (v, T), for tests and audits.</summary>
    public static double[] Apply(ReadOnlySpan<double> p, double v, double temperature)
    {
        ProbabilityVector.Validate(p, nameof(p));
        if (!(temperature > 0 && double.IsFinite(temperature))) throw new ArgumentException($"The temperature must be positive and finite, got {temperature}.", nameof(temperature));
        // p^{1/T} in log space relative to the maximum, so tiny probabilities and large 1/T cannot underflow
        // to an all-zero vector; zeros stay zero (ranking ties kept).
        double max = 0;
        foreach (double x in p) max = Math.Max(max, x);
        double logMax = Math.Log(max);
        var tempered = new double[p.Length];
        for (int i = 0; i < p.Length; i++)
            tempered[i] = p[i] > 0 ? Math.Exp((Math.Log(p[i]) - logMax) / temperature) : 0;
        ProbabilityVector.Normalise(tempered);
        return DeceptivePredictions.Apply(tempered, v);
    }
}
