namespace ModelGuardian.Engine.Guardian;

/// <summary>
/// Parameters of the one-sided sequential probability ratio test on a user's flagged rate.
/// <paramref name="MeasuredFpr"/> is the detector's benign flag rate (H0); it is floored at
/// <paramref name="MinP0"/> because a detector measured at 0 % FPR would otherwise make a single flag
/// infinitely damning (ln(p1/0)). <paramref name="P1"/> is the flagged rate of an attacker (H1).
/// <paramref name="Alpha"/> bounds wrongly terminating a benign user, <paramref name="Beta"/> missing an attacker.
/// </summary>
public sealed record SprtOptions(double MeasuredFpr, double P1 = 0.5, double Alpha = 0.001, double Beta = 0.01, double MinP0 = 0.001);

/// <summary>
/// Wald's SPRT reduced to its straight-line boundary: the log-likelihood ratio after <c>total</c> queries of
/// which <c>flagged</c> were flagged is flagged·ln(p1/p0) + (total − flagged)·ln((1−p1)/(1−p0)), and it
/// reaches ln((1−β)/α) exactly when flagged ≥ <see cref="Intercept"/> + <see cref="Slope"/>·total. Only
/// the two doubles are needed to evaluate it, so a SQL ledger can apply the same rule in a WHERE clause.
/// <para>
/// One-sided and open: there is no "accept H0 and stop watching" branch, because a user who looks benign
/// today may start stealing tomorrow. The price is that α no longer bounds the error exactly: under H0 the
/// likelihood ratio is a non-negative martingale with mean 1, so by Ville's inequality the probability that
/// it EVER reaches A = (1−β)/α is at most 1/A = α/(1−β), over an unbounded horizon. The exact probability
/// within a finite horizon is <see cref="Sprt.FalseTerminationProbability"/>.
/// </para>
/// </summary>
public sealed record SprtRule
{
    public double P0 { get; }
    public double P1 { get; }
    public double Alpha { get; }
    public double Beta { get; }
    /// <summary>Flags needed per query in the long run (between p0 and p1).</summary>
    public double Slope { get; }
    /// <summary>Flags needed at total = 0: ln A / (ln(p1/p0) − ln((1−p1)/(1−p0))).</summary>
    public double Intercept { get; }

    public SprtRule(SprtOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!(options.MeasuredFpr >= 0 && options.MeasuredFpr < 1)) throw new ArgumentException($"The measured false-positive rate must be in [0, 1), got {options.MeasuredFpr}.", nameof(options));
        if (!(options.MinP0 > 0 && options.MinP0 < 1)) throw new ArgumentException($"The p0 floor must be in (0, 1), got {options.MinP0}.", nameof(options));
        double p0 = Math.Max(options.MeasuredFpr, options.MinP0);
        if (!(options.P1 > p0 && options.P1 < 1)) throw new ArgumentException($"p1 must lie in (p0, 1) = ({p0}, 1), got {options.P1}.", nameof(options));
        if (!(options.Alpha > 0 && options.Alpha < 1)) throw new ArgumentException($"α must be in (0, 1), got {options.Alpha}.", nameof(options));
        if (!(options.Beta >= 0 && options.Beta < 1)) throw new ArgumentException($"β must be in [0, 1), got {options.Beta}.", nameof(options));
        if (!(options.Alpha + options.Beta < 1)) throw new ArgumentException($"α + β must be below 1 (else the boundary is at or below zero), got {options.Alpha + options.Beta}.", nameof(options));
        P0 = p0; P1 = options.P1; Alpha = options.Alpha; Beta = options.Beta;
        double up = Math.Log(P1 / P0);                // > 0: what one flagged query adds
        double down = Math.Log((1 - P1) / (1 - P0)); // < 0: what one clean query adds
        double logA = Math.Log((1 - Beta) / Alpha);   // > 0 since α + β < 1
        Intercept = logA / (up - down);
        Slope = -down / (up - down);
    }

    /// <summary>Exactly <c>flagged ≥ Intercept + Slope·total</c> in double, the form a SQL store evaluates.</summary>
    public bool ShouldTerminate(long total, long flagged)
    {
        if (total < 0 || flagged < 0 || flagged > total) throw new ArgumentException($"Need 0 ≤ flagged ≤ total, got flagged = {flagged}, total = {total}.");
        return flagged >= Intercept + Slope * total;
    }

    /// <summary>The fewest queries after which an all-flagged user is terminated.</summary>
    public long FirstTerminationWhenAllFlagged()
    {
        // t ≥ I + S·t ⇔ t ≥ I/(1 − S); start just below and step with the exact rule so rounding agrees.
        long t = Math.Max(0, (long)Math.Floor(Intercept / (1 - Slope)) - 1);
        while (!ShouldTerminate(t, t)) t++;
        return t;
    }
}

public static class Sprt
{
    /// <summary>
    /// Exact probability that a user whose queries are flagged independently with probability <paramref name="p"/>
    /// is terminated within <paramref name="horizon"/> queries: dynamic programming over the flagged count
    /// with termination absorbing, O(horizon²), no simulation.
    /// </summary>
    public static double FalseTerminationProbability(SprtRule rule, double p, int horizon)
    {
        ArgumentNullException.ThrowIfNull(rule);
        if (!(p >= 0 && p <= 1)) throw new ArgumentException($"The flag probability must be in [0, 1], got {p}.", nameof(p));
        if (horizon < 0 || horizon > TerminationRisk.MaxQueries)
            throw new ArgumentException($"The horizon must be in 0…{TerminationRisk.MaxQueries} queries, got {horizon}.", nameof(horizon));
        // The ledger's own dynamic programme over (queries, flagged), with this line as the rule.
        return TerminationRisk.ProbabilityWithin(rule.ShouldTerminate, p, horizon);
    }
}
