using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Defenses;
using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Engine.Eval;

/// <summary>The defences that sit in front of the victim without the Guardian, by id; one instance per account.</summary>
public static class BaselineDefenses
{
    public static IOutputDefense Create(string id, double v, ulong seed, int classes) => id switch
    {
        DefenseIds.None => new NoDefense(),
        DefenseIds.DPreds => new DPredsDefense(v),
        DefenseIds.DPredsRandomized => new RandomizedDeceptionDefense(RandomizedDeception.Default, seed),
        DefenseIds.RandomNoise => new RandomNoiseOutputDefense(new RandomNoiseDefense(new RandomNoiseOptions()), seed),
        DefenseIds.ReverseSigmoid => new ReverseSigmoidOutputDefense(new ReverseSigmoidDefense(new ReverseSigmoidOptions())),
        DefenseIds.Prada => new PradaDefense(new PradaDetector(new PradaOptions(3 * 32 * 32, classes))),
        _ => throw new ArgumentException($"'{id}' is not a baseline defence."),
    };
}

/// <summary>DPreds on every answer (Table V: the perturbation without the detector).</summary>
public sealed class DPredsDefense(double v) : IOutputDefense
{
    public string Name => DefenseIds.DPreds;

    public VictimAnswer Answer(ReadOnlySpan<float> image, double[] probabilities) => new(false, DeceptivePredictions.Apply(probabilities, v));
}

/// <summary>The deception the adaptive attacker cannot invert: a fresh v and temperature per answer (ranking kept).</summary>
public sealed class RandomizedDeceptionDefense(RandomizedDeception deception, ulong seed) : IOutputDefense
{
    private readonly SeededRandom _rng = new(seed);

    public string Name => DefenseIds.DPredsRandomized;

    public VictimAnswer Answer(ReadOnlySpan<float> image, double[] probabilities) => new(false, deception.Apply(probabilities, _rng));
}

/// <summary>RS: Gaussian noise (σ 0.05) on the probabilities, clipped and renormalised.</summary>
public sealed class RandomNoiseOutputDefense(RandomNoiseDefense noise, ulong seed) : IOutputDefense
{
    private readonly SeededRandom _rng = new(seed);

    public string Name => DefenseIds.RandomNoise;

    public VictimAnswer Answer(ReadOnlySpan<float> image, double[] probabilities) => new(false, noise.Apply(probabilities, _rng));
}

/// <summary>Reverse sigmoid (Lee et al.; ART's defaults β = 1, γ = 0.1).</summary>
public sealed class ReverseSigmoidOutputDefense(ReverseSigmoidDefense defense) : IOutputDefense
{
    public string Name => DefenseIds.ReverseSigmoid;

    public VictimAnswer Answer(ReadOnlySpan<float> image, double[] probabilities) => new(false, defense.Apply(probabilities));
}

/// <summary>PRADA (docs/design.md) as a passive defence: answers truthfully until the account's stream fails the normality test, then refuses it.</summary>
public sealed class PradaDefense(PradaDetector detector) : IOutputDefense
{
    public string Name => DefenseIds.Prada;

    public VictimAnswer Answer(ReadOnlySpan<float> image, double[] probabilities)
    {
        if (detector.Flagged) return VictimAnswer.Refusal;
        detector.Observe(image, DeceptivePredictions.ArgMax(probabilities));
        return new(false, probabilities);
    }
}

/// <summary>The adaptive attacker's view of answers: an answer at DPreds' probability floor is inverted, others are kept.</summary>
public static class AdaptiveAttacker
{
    public static Func<double[], double[]> Interpreter(int classes) => answer =>
    {
        if (answer.Length != classes) throw new ArgumentException($"An answer of {answer.Length} probabilities for {classes} classes.");
        return DPredsInversion.LooksDeceptive(answer) ? DPredsInversion.Invert(answer) : answer;
    };
}
