using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Engine.Attacks;

/// <summary>
/// A baseline defence in front of the victim, for one account: it sees each query (values in 0…1) and the
/// victim's true probabilities, in order, and answers — perturbed, unchanged, or refused. Stateful
/// defences (PRADA) keep their per-account state in the instance.
/// </summary>
public interface IOutputDefense
{
    string Name { get; }

    VictimAnswer Answer(ReadOnlySpan<float> image, double[] probabilities);
}

/// <summary>No defence: the victim's softmax as it is.</summary>
public sealed class NoDefense : IOutputDefense
{
    public string Name => "none";

    public VictimAnswer Answer(ReadOnlySpan<float> image, double[] probabilities) => new(false, probabilities);
}

/// <summary>The victim classifier behind a baseline defence, in process (the Guardian is the other way in).</summary>
public sealed class DefendedVictimClient(VictimClassifier victim, IOutputDefense defense) : IVictimClient
{
    public int Classes => victim.Classes;

    public Task<VictimAnswer[]> QueryAsync(QueryBatch batch, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var p = victim.Predict(Enumerable.Range(0, batch.Count).Select(batch.Planar).ToArray());
        return Task.FromResult(Enumerable.Range(0, batch.Count).Select(i => defense.Answer(batch.Image(i), p[i])).ToArray());
    }
}
