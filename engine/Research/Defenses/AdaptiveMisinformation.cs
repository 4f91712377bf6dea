using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Engine.Defenses;

/// <param name="Threshold">τ: queries whose out-of-distribution score (the victim's top probability) falls below it get misinformation.</param>
/// <param name="Steepness">ν: how sharply the blend switches around τ.</param>
public sealed record AdaptiveMisinformationOptions(double Threshold = 0.4, double Steepness = 1000);

/// <summary>
/// Adaptive Misinformation (Kariyappa and Qureshi, CVPR 2020): an out-of-distribution score S(x) — here the maximum
/// softmax probability, the paper's baseline score — decides, through α = σ(ν (τ − S(x))), how much of the answer comes
/// from a misinformation model f̂ trained to put little probability on the true class: y = (1 − α) f(x) + α f̂(x).
/// In-distribution queries (confident victim) get the truth; stealing queries, mostly out of distribution, get answers
/// that teach the clone the wrong classes.
/// </summary>
public sealed class AdaptiveMisinformationDefense
{
    public AdaptiveMisinformationOptions Options { get; }

    public AdaptiveMisinformationDefense(AdaptiveMisinformationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!(options.Threshold >= 0 && options.Threshold <= 1)) throw new ArgumentException($"The threshold τ must lie in [0, 1], got {options.Threshold}.", nameof(options));
        if (!(options.Steepness > 0 && double.IsFinite(options.Steepness))) throw new ArgumentException($"The steepness ν must be positive and finite, got {options.Steepness}.", nameof(options));
        Options = options;
    }

    /// <summary>α for a query whose victim answer is <paramref name="victim"/>: near 0 when its top probability is well above τ, near 1 well below.</summary>
    public double MisinformationWeight(ReadOnlySpan<double> victim)
    {
        double score = victim[DeceptivePredictions.ArgMax(victim)];
        return 1 / (1 + Math.Exp(Options.Steepness * (score - Options.Threshold)));
    }

    /// <summary>The blended answer from the victim's and the misinformation model's softmax on the same query.</summary>
    public double[] Apply(ReadOnlySpan<double> victim, ReadOnlySpan<double> misinformation)
    {
        ProbabilityVector.Validate(victim, nameof(victim));
        ProbabilityVector.Validate(misinformation, nameof(misinformation));
        if (victim.Length != misinformation.Length) throw new ArgumentException($"{victim.Length} victim and {misinformation.Length} misinformation probabilities.");
        double alpha = MisinformationWeight(victim);
        var y = new double[victim.Length];
        for (int k = 0; k < y.Length; k++) y[k] = (1 - alpha) * victim[k] + alpha * misinformation[k];
        return y;
    }
}
