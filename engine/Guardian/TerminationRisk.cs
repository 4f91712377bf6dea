namespace ModelGuardian.Engine.Guardian;

/// <summary>
/// How likely the policy is to cut off a benign user whose queries are each flagged independently
/// with probability <c>fpr</c> (the detector's false-positive rate): the exact probability of being
/// terminated within <c>queries</c> queries, by dynamic programming over (queries, flagged) with
/// termination absorbing. This is what τ is chosen from.
/// </summary>
public static class TerminationRisk
{
    public const int MaxQueries = 100_000;

    public static double ProbabilityWithin(TerminationPolicy policy, double fpr, int queries) => ProbabilityWithin(policy.ShouldTerminate, fpr, queries);

    /// <summary>The same for any rule on (total, flagged) — e.g. an SPRT line alone.</summary>
    public static double ProbabilityWithin(Func<long, long, bool> shouldTerminate, double fpr, int queries)
    {
        if (!(fpr >= 0 && fpr <= 1)) throw new ArgumentException($"The false-positive rate must be in [0, 1], got {fpr}.");
        if (queries < 0 || queries > MaxQueries) throw new ArgumentException($"Queries must be in 0…{MaxQueries}, got {queries}.");
        var alive = new double[queries + 2]; // alive[k]: P(not terminated, k flagged) after n queries
        alive[0] = 1;
        double terminated = 0;
        for (int n = 1; n <= queries; n++)
        {
            for (int k = n; k >= 0; k--)
            {
                double p = alive[k] * (1 - fpr) + (k > 0 ? alive[k - 1] * fpr : 0);
                if (shouldTerminate(n, k)) { terminated += p; p = 0; }
                alive[k] = p;
            }
        }
        return terminated;
    }
}
