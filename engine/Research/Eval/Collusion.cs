using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Engine.Eval;

/// <summary>How many of an attacker's queries are answered when spread over several accounts, under one termination rule.</summary>
public sealed record CollusionRow(string Attack, int Accounts, long PaperRule, long PaperRuleGrouped, long Sequential, long SequentialGrouped);

/// <summary>
/// The paper concedes that an attacker who spreads queries over K accounts evades termination. This
/// replays an attack's real detector verdicts (its sampled queries, in order, repeated as needed) over K accounts in
/// turn — an account that is refused is dropped — and counts the answered queries until the budget is spent or
/// every account is closed, under the paper's rule (τ, δ) and under ours (the same rule plus the SPRT line), each
/// with one ledger per account or with the K accounts grouped into one (same owner or client network).
/// </summary>
public static class CollusionSimulation
{
    public static long Answered(IReadOnlyList<bool> verdicts, int accounts, long budget, TerminationPolicy policy)
    {
        if (verdicts.Count == 0) throw new ArgumentException("No verdicts to replay.");
        if (accounts < 1) throw new ArgumentException($"Accounts must be at least 1, got {accounts}.");
        var total = new long[accounts];
        var flagged = new long[accounts];
        var closed = new bool[accounts];
        int open = accounts, next = 0;
        long answered = 0;
        for (long q = 0; q < budget && open > 0; q++)
        {
            while (closed[next]) next = (next + 1) % accounts;
            int a = next;
            next = (next + 1) % accounts;
            total[a]++;
            if (verdicts[(int)(q % verdicts.Count)]) flagged[a]++;
            answered++; // the query that terminates an account is still answered (Guardian semantics)
            if (policy.ShouldTerminate(total[a], flagged[a])) { closed[a] = true; open--; }
        }
        return answered;
    }

    public static CollusionRow Row(string attack, IReadOnlyList<bool> verdicts, int accounts, long budget, TerminationPolicy paper, TerminationPolicy ours) => new(attack, accounts,
        Answered(verdicts, accounts, budget, paper), Answered(verdicts, 1, budget, paper),
        Answered(verdicts, accounts, budget, ours), Answered(verdicts, 1, budget, ours));

    /// <summary>Our rule: the paper's, plus the SPRT line for the detector's measured false-positive rate (floored at 0.1 %).</summary>
    public static TerminationPolicy Ours(int tau, double delta, double measuredFpr) => TerminationPolicy.WithSequentialTest(tau, delta, measuredFpr);
}
