using System.Security.Cryptography;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Engine.Attacks;

/// <summary>
/// A batch of query images as attackers make them: (N, 3, S, S) planar values in 0…1 — exactly what
/// the HTTP API's JSON form takes, so the in-process and HTTP paths send the same numbers.
/// </summary>
public sealed record QueryBatch
{
    public QueryBatch(float[] values, int count, int side)
    {
        if (count < 1 || side < 1) throw new ArgumentException($"A query batch needs at least one image of positive side, got {count} of side {side}.");
        if (values.Length != (long)count * 3 * side * side) throw new ArgumentException($"{count} images of 3×{side}×{side} need {(long)count * 3 * side * side} values, got {values.Length}.");
        foreach (float v in values)
            if (!(v >= 0f && v <= 1f)) throw new ArgumentException($"Query values must lie in 0…1, got {v}.");
        (Values, Count, Side) = (values, count, side);
    }

    public float[] Values { get; }
    public int Count { get; }
    public int Side { get; }
    public int PerImage => 3 * Side * Side;

    public ReadOnlySpan<float> Image(int i) => Values.AsSpan(i * PerImage, PerImage);

    /// <summary>The image on the API's 0…255 scale (the multiplication the JSON endpoint does: v·255f).</summary>
    public PlanarImage Planar(int i) => ToPlanar(Image(i), Side);

    /// <summary>One query (3×side×side, values in 0…1) on the API's 0…255 scale, as the victim takes it.</summary>
    public static PlanarImage ToPlanar(ReadOnlySpan<float> image, int side)
    {
        var values = new float[image.Length];
        for (int j = 0; j < values.Length; j++) values[j] = image[j] * 255f;
        return new PlanarImage(side, side, values);
    }
}

/// <summary>One answer as an attacker receives it: class probabilities, or a refusal (the account is terminated).</summary>
public sealed record VictimAnswer(bool Refused, double[] Probabilities)
{
    public static VictimAnswer Refusal { get; } = new(true, []);
}

/// <summary>How an attacker reaches the victim: one account, batches of queries, answers in order.</summary>
public interface IVictimClient
{
    /// <summary>The number of classes (attackers are assumed to know it).</summary>
    int Classes { get; }

    Task<VictimAnswer[]> QueryAsync(QueryBatch batch, CancellationToken cancellationToken = default);
}

/// <summary>An attacker's account on an in-process <see cref="Guardian.Guardian"/>.</summary>
public sealed class GuardianVictimClient(Guardian.Guardian guardian, string user, int classes) : IVictimClient
{
    public int Classes => classes;

    public async Task<VictimAnswer[]> QueryAsync(QueryBatch batch, CancellationToken cancellationToken = default)
    {
        var images = Enumerable.Range(0, batch.Count).Select(batch.Planar).ToArray();
        var outcomes = await guardian.QueryBatchAsync(user, images, null, cancellationToken).ConfigureAwait(false);
        return outcomes.Select(o => o.Answer.Status == QueryStatus.Answered ? new VictimAnswer(false, o.Answer.Probabilities) : VictimAnswer.Refusal).ToArray();
    }
}

/// <summary>One query as the attacker saw it: what was sent (SHA-256 of the float values) and what came back.</summary>
public sealed record QueryLogEntry(long Index, string ImageSha256, bool Refused, double[] Probabilities);

/// <summary>
/// The attacker's meter: forwards queries while the budget lasts and refuses to send more than it
/// (an attack must plan to spend exactly its budget), counts what was sent and answered, and keeps a
/// log of every query when asked to.
/// </summary>
public sealed class BudgetedClient(IVictimClient inner, long budget, bool keepLog = false) : IVictimClient
{
    private readonly List<QueryLogEntry>? _log = keepLog ? new() : null;

    public int Classes => inner.Classes;
    public long Budget { get; } = budget >= 0 ? budget : throw new ArgumentException($"The query budget must not be negative, got {budget}.");
    public long Spent { get; private set; }
    public long Answered { get; private set; }
    public long Remaining => Budget - Spent;
    /// <summary>True once the victim refused a query: the account is terminated and later queries would be refused too.</summary>
    public bool Terminated { get; private set; }
    public IReadOnlyList<QueryLogEntry> Log => _log ?? throw new InvalidOperationException("This client keeps no log.");

    public async Task<VictimAnswer[]> QueryAsync(QueryBatch batch, CancellationToken cancellationToken = default)
    {
        if (batch.Count > Remaining) throw new InvalidOperationException($"{batch.Count} queries asked with {Remaining} of the budget of {Budget} left.");
        var answers = await inner.QueryAsync(batch, cancellationToken).ConfigureAwait(false);
        if (answers.Length != batch.Count) throw new InvalidOperationException($"The victim gave {answers.Length} answers to {batch.Count} queries.");
        for (int i = 0; i < batch.Count; i++)
        {
            var a = answers[i];
            if (!a.Refused && a.Probabilities.Length != Classes) throw new InvalidOperationException($"The victim answered {a.Probabilities.Length} probabilities; it has {Classes} classes.");
            _log?.Add(new QueryLogEntry(Spent + i, Hash(batch.Image(i)), a.Refused, a.Probabilities));
            if (a.Refused) Terminated = true;
            else Answered++;
        }
        Spent += batch.Count;
        return answers;
    }

    private static string Hash(ReadOnlySpan<float> values) => Convert.ToHexStringLower(SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values)));
}
