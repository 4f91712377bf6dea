using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Engine.Guardian;

/// <summary>Policy settings of a Guardian. Defaults: δ = 0.5 and v = 0.5 (paper, Table V); τ = 20 (README explains why).</summary>
public sealed record GuardianOptions
{
    public const int DefaultTau = 20;

    public TerminationPolicy Policy { get; init; } = new(DefaultTau, 0.5);

    /// <summary>The DPreds constant v.</summary>
    public double DeceptionV { get; init; } = 0.5;

    /// <summary>
    /// Null: the paper's DPreds with the constant <see cref="DeceptionV"/> — which an attacker who knows the scheme can
    /// invert exactly (README, "adaptive attacker"). Set: a fresh v and temperature per flagged answer, drawn from a
    /// cryptographic generator, so no fixed transformation is left to undo; the ranking is kept either way.
    /// </summary>
    public RandomizedDeception? RandomizedDeception { get; init; }
}

public enum QueryStatus
{
    Answered,
    /// <summary>The user is terminated: no model ran (or, if terminated while this query ran, it was not counted).</summary>
    Refused,
}

/// <summary>
/// What the user receives. For a flagged query the probabilities are DPreds; nothing else differs
/// (same fields, same shape, same label): the user cannot tell from the answer's form.
/// </summary>
public sealed record GuardianAnswer(QueryStatus Status, double[] Probabilities, int Label)
{
    public static GuardianAnswer Refusal { get; } = new(QueryStatus.Refused, [], -1);
}

/// <summary>An answer plus what the operator may see: the models' evaluation and the ledger's record (both null when refused up front).</summary>
public sealed record QueryOutcome(GuardianAnswer Answer, Evaluation? Evaluation, RecordResult? Record);

/// <summary>
/// Model-Guardian for one protected classifier: per query, refuse terminated users before any model
/// runs; otherwise evaluate (victim softmax p, detector verdict f), record (total + 1, flagged + f)
/// durably — possibly terminating the user — and only then answer p, or DPreds(p) when flagged.
/// No web types here; the HTTP service and the CLI compose it.
/// </summary>
public sealed class Guardian(IModelEvaluator models, ILedger ledger, IAuditLog audit, GuardianOptions? options = null, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public GuardianOptions Options { get; } = Validate(options ?? new GuardianOptions());
    public ILedger Ledger => ledger;

    private static GuardianOptions Validate(GuardianOptions o)
        => o.DeceptionV > 0 && double.IsFinite(o.DeceptionV) ? o : throw new ArgumentException($"The DPreds constant v must be positive and finite, got {o.DeceptionV}.");

    /// <param name="requestId">Optional idempotency key: a retried request with the same id is answered again but counted once.</param>
    public async Task<QueryOutcome> QueryAsync(string user, PlanarImage image, string? requestId = null, CancellationToken cancellationToken = default)
        => (await QueryBatchAsync(user, [image], [requestId], cancellationToken).ConfigureAwait(false))[0];

    /// <summary>
    /// Several queries of one user, evaluated as one batch and recorded in order: exactly the
    /// outcomes of calling <see cref="QueryAsync"/> for each in turn (once the user is terminated,
    /// the rest are refused).
    /// </summary>
    public async Task<QueryOutcome[]> QueryBatchAsync(string user, IReadOnlyList<PlanarImage> images, IReadOnlyList<string?>? requestIds = null, CancellationToken cancellationToken = default)
    {
        if (requestIds != null && requestIds.Count != images.Count) throw new ArgumentException($"{images.Count} images but {requestIds.Count} request ids.");
        var outcomes = new QueryOutcome[images.Count];
        var entry = await ledger.GetAsync(user, cancellationToken).ConfigureAwait(false);
        if (entry is { IsTerminated: true })
        {
            Array.Fill(outcomes, new QueryOutcome(GuardianAnswer.Refusal, null, null));
            return outcomes;
        }
        var evaluations = await models.EvaluateAsync(images, cancellationToken).ConfigureAwait(false);
        bool refused = false;
        for (int i = 0; i < images.Count; i++)
        {
            if (refused)
            {
                outcomes[i] = new QueryOutcome(GuardianAnswer.Refusal, null, null);
                continue;
            }
            var e = evaluations[i];
            bool flagged = e.Verdict.Flagged;
            // From here on the query is being counted: no cancellation, so a count is never half-made.
            var record = await ledger.RecordAsync(user, flagged, requestIds?[i], Options.Policy, _time.GetUtcNow(), CancellationToken.None).ConfigureAwait(false);
            if (record.Outcome == RecordOutcome.Refused)
            {
                refused = true;
                outcomes[i] = new QueryOutcome(GuardianAnswer.Refusal, e, record);
                continue;
            }
            if (record.Outcome == RecordOutcome.Counted)
            {
                if (flagged) await audit.AppendAsync("flag", user, Details(e, record), CancellationToken.None).ConfigureAwait(false);
                if (record.TerminatedNow)
                    await audit.AppendAsync("termination", user, new Dictionary<string, object?>
                    {
                        ["total"] = record.Entry.Total, ["flagged"] = record.Entry.Flagged, ["reason"] = record.Entry.TerminationReason,
                    }, CancellationToken.None).ConfigureAwait(false);
            }
            outcomes[i] = new QueryOutcome(Answer(e), e, record);
        }
        return outcomes;
    }

    /// <summary>Both answers are always computed and one is chosen, so benign and flagged queries take the same path and time.</summary>
    private GuardianAnswer Answer(Evaluation e)
    {
        var truthful = e.Probabilities;
        var deceptive = Options.RandomizedDeception is { } r ? r.Apply(truthful, CryptoRandom.Instance) : DeceptivePredictions.Apply(truthful, Options.DeceptionV);
        return new GuardianAnswer(QueryStatus.Answered, e.Verdict.Flagged ? deceptive : truthful, DeceptivePredictions.ArgMax(truthful));
    }

    private static Dictionary<string, object?> Details(Evaluation e, RecordResult r) => new()
    {
        ["scores"] = e.Verdict.Scores, ["total"] = r.Entry.Total, ["flagged"] = r.Entry.Flagged,
    };
}

/// <summary>A <see cref="Random"/> over the operating system's cryptographic generator: deception draws an attacker cannot reconstruct from answers.</summary>
internal sealed class CryptoRandom : Random
{
    public static CryptoRandom Instance { get; } = new();

    public override double NextDouble()
    {
        Span<byte> b = stackalloc byte[8];
        System.Security.Cryptography.RandomNumberGenerator.Fill(b);
        return (BitConverter.ToUInt64(b) >> 11) * (1.0 / (1UL << 53));
    }

    protected override double Sample() => NextDouble();

    public override int Next(int maxValue) => System.Security.Cryptography.RandomNumberGenerator.GetInt32(maxValue);

    public override int Next(int minValue, int maxValue) => System.Security.Cryptography.RandomNumberGenerator.GetInt32(minValue, maxValue);
}
