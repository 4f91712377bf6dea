using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Engine.Defenses;

public enum NoiseKind { Uniform, Gaussian }

/// <param name="Kind">Uniform on [−Scale, Scale] or Gaussian with standard deviation Scale.</param>
public sealed record RandomNoiseOptions(NoiseKind Kind = NoiseKind.Gaussian, double Scale = 0.05);

/// <summary>
/// RS (random noise on the soft labels): p̃ = normalise(max(0, p + noise)). Invariants: every output is
/// ≥ 0 and the output sums to 1 (up to rounding); if the noise clips every entry to 0 the answer is uniform.
/// The argmax is NOT guaranteed to survive — that is the defence's cost to benign users. The caller passes
/// the Random so each query is reproducible from a seed in tests and fresh in production.
/// </summary>
public sealed class RandomNoiseDefense
{
    public RandomNoiseOptions Options { get; }

    public RandomNoiseDefense(RandomNoiseOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!(options.Scale >= 0 && double.IsFinite(options.Scale))) throw new ArgumentException($"The noise scale must be finite and ≥ 0, got {options.Scale}.", nameof(options));
        if (!Enum.IsDefined(options.Kind)) throw new ArgumentException($"Unknown noise kind {options.Kind}.", nameof(options));
        Options = options;
    }

    public double[] Apply(ReadOnlySpan<double> p, Random rng)
    {
        ProbabilityVector.Validate(p, nameof(p));
        ArgumentNullException.ThrowIfNull(rng);
        var q = new double[p.Length];
        for (int i = 0; i < q.Length; i++)
        {
            double noise = Options.Kind == NoiseKind.Uniform
                ? Options.Scale * (2 * rng.NextDouble() - 1)
                : Options.Scale * Gaussian(rng);
            q[i] = Math.Max(0, p[i] + noise);
        }
        ProbabilityVector.Normalise(q);
        return q;
    }

    /// <summary>A standard normal; 1 − U keeps the logarithm's argument in (0, 1].</summary>
    private static double Gaussian(Random rng)
    {
        double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
        return BoxMuller.Normal(u1, u2);
    }
}

/// <summary>β (magnitude) and γ (convergence) of the reverse sigmoid; IBM ART's defaults are 1.0 and 0.1.</summary>
public sealed record ReverseSigmoidOptions(double Beta = 1.0, double Gamma = 0.1);

/// <summary>
/// Reverse sigmoid (Lee et al., "Defending against NN model stealing attacks using deceptive perturbations",
/// 2019), with the formula of IBM ART's ReverseSigmoid postprocessor:
/// r = β·(σ(−γ·ln((1 − p̂)/p̂)) − 0.5) with p̂ = clip(p, 1e-9, 1 − 1e-9) (only inside the logarithm);
/// q = clip(p − r, 0, 1); output q / Σq. σ(−γ ln((1−p)/p)) = σ(γ·logit p), so r has the sign of p − ½:
/// confident entries are pulled down, small ones pushed up (a zero probability gets β(½ − σ(γ·logit 1e-9)),
/// 0.388·β at the defaults). The output sums to 1 and is non-negative, but the ranking is NOT always kept:
/// p − r is not monotone in p (its slope 1 − βγσ'(·)/(p(1−p)) turns negative near 0 and 1 for large βγ),
/// so a zero-probability class can overtake a small-but-positive one.
/// </summary>
public sealed class ReverseSigmoidDefense
{
    /// <summary>ART's clip bound for the logit.</summary>
    public const double ClipMin = 1e-9;

    public ReverseSigmoidOptions Options { get; }

    public ReverseSigmoidDefense(ReverseSigmoidOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!(options.Beta > 0 && double.IsFinite(options.Beta))) throw new ArgumentException($"Magnitude β must be positive and finite, got {options.Beta}.", nameof(options));
        if (!(options.Gamma > 0 && double.IsFinite(options.Gamma))) throw new ArgumentException($"Convergence γ must be positive and finite, got {options.Gamma}.", nameof(options));
        Options = options;
    }

    /// <summary>The perturbation r(p) that ART subtracts.</summary>
    public double Perturbation(double p)
    {
        double c = Math.Clamp(p, ClipMin, 1 - ClipMin);
        double z = -Options.Gamma * Math.Log((1 - c) / c);
        return Options.Beta * (1 / (1 + Math.Exp(-z)) - 0.5);
    }

    /// <summary>A softmax of K ≥ 2 classes.</summary>
    public double[] Apply(ReadOnlySpan<double> p)
    {
        ProbabilityVector.Validate(p, nameof(p));
        if (p.Length < 2) throw new ArgumentException("A softmax needs at least 2 classes; use ApplyBinary for a single sigmoid output.", nameof(p));
        var q = new double[p.Length];
        for (int i = 0; i < q.Length; i++) q[i] = Math.Clamp(p[i] - Perturbation(p[i]), 0, 1);
        // Some entry is always > 0: an entry ≤ ½ has r ≤ 0 so p − r ≥ p, and not all entries can be 0.
        ProbabilityVector.Normalise(q);
        return q;
    }

    /// <summary>
    /// ART's one-output (sigmoid) case: perturb p and 1 − p separately, clip each to [0, 1], and return the
    /// first renormalised by their sum.
    /// </summary>
    public double ApplyBinary(double p)
    {
        if (!(p >= 0 && p <= 1)) throw new ArgumentException($"A sigmoid output must be in [0, 1], got {p}.", nameof(p));
        double q1 = Math.Clamp(p - Perturbation(p), 0, 1);
        // ART clips 1 − p as 1 − clip(p): the same as clipping 1 − p, since the bounds are symmetric.
        double q2 = Math.Clamp(1 - p - Perturbation(1 - p), 0, 1);
        return q1 / (q1 + q2);
    }
}

/// <summary>
/// The adaptive attacker against plain DPreds. A DPreds answer p' = (p + v)/(1 + Kv) has every entry
/// ≥ v/(1 + Kv); a genuine softmax of a confident network has entries far below that. Assuming the victim's
/// smallest true probability is ≈ 0, m = min p' = v/(1 + Kv) gives v̂ = m/(1 − K·m), and
/// p̂ = p'(1 + K·v̂) − v̂ (clipped at 0, renormalised).
/// <para>
/// Exactness: if the true minimum is μ, then m = (μ + v)/(1 + Kv), v̂ = (μ + v)/(1 − Kμ) and
/// p̂ᵢ = (pᵢ − μ)/(1 − Kμ): the true vector shifted down by its minimum and renormalised. So p̂ = p exactly when
/// μ = 0, and otherwise |p̂ᵢ − pᵢ| = μ·|K·pᵢ − 1|/(1 − Kμ) ≤ (K − 1)·μ/(1 − Kμ) — whatever v was.
/// </para>
/// </summary>
public static class DPredsInversion
{
    /// <summary>Default detection floor: DPreds with v ≥ 0.05 on K = 10 classes never answers below 0.033.</summary>
    public const double DefaultFloor = 0.01;

    /// <summary>The attacker's rule: an answer whose smallest probability is ≥ <paramref name="floor"/> is taken for DPreds.</summary>
    public static bool LooksDeceptive(ReadOnlySpan<double> answer, double floor = DefaultFloor)
    {
        ProbabilityVector.Validate(answer, nameof(answer));
        if (!(floor > 0 && floor <= 1.0 / answer.Length)) throw new ArgumentException($"The floor must be in (0, 1/K] = (0, {1.0 / answer.Length}], got {floor}.", nameof(floor));
        return Min(answer) >= floor;
    }

    /// <summary>v̂ = m/(1 − K·m); +∞ for a uniform answer (any v explains it).</summary>
    public static double EstimateV(ReadOnlySpan<double> answer)
    {
        ProbabilityVector.Validate(answer, nameof(answer));
        double m = Min(answer);
        double denominator = 1 - answer.Length * m;
        return denominator > 1e-12 ? m / denominator : double.PositiveInfinity;
    }

    public static double[] Invert(ReadOnlySpan<double> answer)
    {
        double v = EstimateV(answer);
        int k = answer.Length;
        var p = new double[k];
        if (double.IsPositiveInfinity(v)) { Array.Fill(p, 1.0 / k); return p; }
        for (int i = 0; i < k; i++) p[i] = Math.Max(0, answer[i] * (1 + k * v) - v);
        ProbabilityVector.Normalise(p);
        return p;
    }

    private static double Min(ReadOnlySpan<double> x)
    {
        double m = double.PositiveInfinity;
        foreach (double v in x) m = Math.Min(m, v);
        return m;
    }
}
