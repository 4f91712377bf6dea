namespace ModelGuardian.Engine.Guardian;

/// <summary>
/// A straight-line sequential boundary on a user's counts: terminate as soon as flagged ≥ Intercept + Slope·total,
/// at any count. Wald's SPRT on the flagged rate is such a line (<see cref="SprtRule"/>); it stops an
/// attacker after a handful of queries, long before τ, which is what defeats spreading queries over many accounts.
/// </summary>
public sealed record SequentialBoundary
{
    public SequentialBoundary(double slope, double intercept)
    {
        if (!(slope > 0 && slope < 1)) throw new ArgumentException($"The boundary's slope must be in (0, 1), got {slope}.");
        if (!(intercept > 0 && double.IsFinite(intercept))) throw new ArgumentException($"The boundary's intercept must be positive and finite, got {intercept} (a benign first query must never terminate).");
        Slope = slope;
        Intercept = intercept;
    }

    public double Slope { get; }
    public double Intercept { get; }

    public static SequentialBoundary From(SprtRule rule) => new(rule.Slope, rule.Intercept);
}

/// <summary>
/// The termination rule (paper §III-E): once a user has made at least <see cref="Tau"/> queries and
/// more than <see cref="Delta"/> of them were flagged, every further query is refused; optionally also
/// as soon as the counts cross a <see cref="SequentialBoundary"/>.
/// </summary>
public sealed record TerminationPolicy
{
    /// <summary>Stands for "no sequential boundary" in the one expression every store evaluates: no count reaches it.</summary>
    internal const double NoBoundaryIntercept = 1e300;

    public TerminationPolicy(int tau, double delta, SequentialBoundary? sequential = null)
    {
        if (tau < 1) throw new ArgumentException($"τ must be at least 1, got {tau}.");
        if (!(delta >= 0 && delta < 1)) throw new ArgumentException($"δ must be in [0, 1), got {delta}.");
        Tau = tau;
        Delta = delta;
        Sequential = sequential;
    }

    public int Tau { get; }
    public double Delta { get; }
    public SequentialBoundary? Sequential { get; }

    /// <summary>The paper's rule plus Wald's SPRT line for a detector of the measured false-positive rate (SprtOptions' defaults: H1 0.5, α 0.001, β 0.01).</summary>
    public static TerminationPolicy WithSequentialTest(int tau, double delta, double measuredFpr)
        => new(tau, delta, SequentialBoundary.From(new SprtRule(new SprtOptions(measuredFpr))));

    internal double BoundarySlope => Sequential?.Slope ?? 0;
    internal double BoundaryIntercept => Sequential?.Intercept ?? NoBoundaryIntercept;

    /// <summary>
    /// (total ≥ τ and flagged > δ·total) or flagged ≥ intercept + slope·total, in double arithmetic. Ledger
    /// stores evaluate exactly this expression (SQL REAL / double precision are the same IEEE doubles), so
    /// every store agrees; without a boundary the second part is flagged ≥ 1e300 + 0·total, never true.
    /// </summary>
    public bool ShouldTerminate(long total, long flagged) => (total >= Tau && flagged > Delta * total) || flagged >= BoundaryIntercept + BoundarySlope * total;

    public string Reason(long total, long flagged) => total >= Tau && flagged > Delta * total
        ? $"{flagged} of {total} queries flagged (more than δ = {Delta:P1} after at least τ = {Tau})"
        : $"{flagged} of {total} queries flagged (sequential test: at least {BoundaryIntercept:G4} + {BoundarySlope:G4}·total, incompatible with a benign user's false-positive rate)";
}

/// <summary>One user's counts and, once terminated, when and why.</summary>
public sealed record LedgerEntry(string User, long Total, long Flagged, DateTimeOffset? TerminatedAt, string? TerminationReason)
{
    public bool IsTerminated => TerminatedAt != null;
}

public enum RecordOutcome
{
    /// <summary>The query was counted (and may have terminated the user: see <see cref="RecordResult.TerminatedNow"/>).</summary>
    Counted,
    /// <summary>The request id was already recorded for this user: nothing changed (a client retry after a lost answer).</summary>
    AlreadyCounted,
    /// <summary>The user was terminated before this query was recorded: nothing changed, the query must be refused.</summary>
    Refused,
}

public sealed record RecordResult(RecordOutcome Outcome, LedgerEntry Entry, bool TerminatedNow);

/// <summary>
/// Per-user query counts, durable and atomic. Every implementation must make
/// <see cref="RecordAsync"/> one atomic step — check not terminated, count, maybe terminate — that
/// is on disk before it returns, and correct with any number of concurrent callers, in one process
/// or (for shared stores) across replicas: no lost and no double-counted updates.
/// </summary>
public interface ILedger : IDisposable
{
    /// <summary>
    /// Unless <paramref name="user"/> is terminated: total += 1, flagged += (flagged ? 1 : 0), and if
    /// the policy then says so, the user is terminated at <paramref name="now"/> with the policy's
    /// reason — all in one transaction. A non-null <paramref name="requestId"/> already recorded for
    /// this user changes nothing (<see cref="RecordOutcome.AlreadyCounted"/>). A user seen for the first time is created.
    /// </summary>
    Task<RecordResult> RecordAsync(string user, bool flagged, string? requestId, TerminationPolicy policy, DateTimeOffset now, CancellationToken cancellationToken = default);

    /// <summary>The user's entry, or null if the user has never been recorded.</summary>
    Task<LedgerEntry?> GetAsync(string user, CancellationToken cancellationToken = default);

    /// <summary>Lifts a termination and resets the counts to zero; false if the user was not terminated.</summary>
    Task<bool> ReinstateAsync(string user, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<LedgerEntry>> ListTerminatedAsync(CancellationToken cancellationToken = default);

    /// <summary>Throws if the store cannot be reached (readiness probe).</summary>
    Task CheckReachableAsync(CancellationToken cancellationToken = default);
}

/// <summary>An API user; the key itself is never stored, only its SHA-256.</summary>
public sealed record ApiUser(string Name, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt)
{
    public bool IsActive => RevokedAt == null;
}

/// <summary>API users and their hashed keys, kept in the same store as the ledger.</summary>
public interface IUserStore
{
    /// <summary>Adds a user; throws <see cref="InvalidOperationException"/> if the name exists (revoked or not).</summary>
    Task AddAsync(string name, byte[] keySha256, DateTimeOffset now, CancellationToken cancellationToken = default);

    /// <summary>The active user whose key hash equals <paramref name="keySha256"/>, with the stored hash, or null.</summary>
    Task<(string Name, byte[] KeySha256)?> FindActiveByKeyHashAsync(byte[] keySha256, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<ApiUser>> ListAsync(CancellationToken cancellationToken = default);

    /// <summary>Revokes a user's key; false if no such active user.</summary>
    Task<bool> RevokeAsync(string name, DateTimeOffset now, CancellationToken cancellationToken = default);
}
