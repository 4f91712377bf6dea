using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Defenses;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Eval;

/// <summary>Networks that some baseline defences need besides the victim: MAD's surrogate, AM's misinformation model, SEAT's encoder.</summary>
public sealed record BaselineModels(VictimClassifier? Surrogate = null, VictimClassifier? Misinformation = null, SeatEncoder? SeatEncoder = null)
{
    /// <summary>
    /// MAD's surrogate as the reference's default: the attacker's clone architecture (a CIFAR-stem ResNet-18), randomly
    /// initialised from <paramref name="seed"/>. The caller disposes the network.
    /// </summary>
    public static Network RandomSurrogate(IKernels kernels, int classes, ulong seed, int width = 8)
    {
        var arch = ArchitectureDescriptor.ResNet(18, classes, ResNetStem.Cifar, ImageGenerator.Side, width);
        using var net = TrainableNetwork.ResNet(kernels, arch, seed);
        return Network.Create(kernels, arch, net.Export());
    }
}

/// <summary>The defences that sit in front of the victim without the Guardian, by id; one instance per account.</summary>
public static class BaselineDefenses
{
    public static IOutputDefense Create(string id, double v, ulong seed, int classes, BaselineModels? models = null) => id switch
    {
        DefenseIds.Mad => new MadOutputDefense(new MadDefense(new MadOptions()),
            models?.Surrogate ?? throw new ArgumentException("MAD needs a surrogate model (BaselineModels.Surrogate).")),
        DefenseIds.AdaptiveMisinformation => new AdaptiveMisinformationOutputDefense(new AdaptiveMisinformationDefense(new AdaptiveMisinformationOptions()),
            models?.Misinformation ?? throw new ArgumentException("Adaptive Misinformation needs its misinformation model (BaselineModels.Misinformation; weights/default/misinformation.mgw).")),
        DefenseIds.Seat => new SeatDefense(new SeatDetector(new SeatOptions(Threshold: 1)),
            models?.SeatEncoder ?? throw new ArgumentException("SEAT needs its similarity encoder (BaselineModels.SeatEncoder; weights/default/seat-encoder.mgw).")),
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

/// <summary>MAD: each answer poisoned within an L1 budget against the surrogate's gradient (<see cref="MadDefense"/>).</summary>
public sealed class MadOutputDefense(MadDefense mad, VictimClassifier surrogate) : IOutputDefense
{
    public string Name => DefenseIds.Mad;

    public VictimAnswer Answer(ReadOnlySpan<float> image, double[] probabilities) => new(false, mad.Apply(probabilities, surrogate.Predict([Planar(image)])[0]));

    /// <summary>A query (3×S×S, values in 0…1) as the victim takes it.</summary>
    internal static PlanarImage Planar(ReadOnlySpan<float> image) => QueryBatch.ToPlanar(image, (int)Math.Round(Math.Sqrt(image.Length / 3.0)));
}

/// <summary>Adaptive Misinformation: low-confidence queries get the misinformation model's answer (<see cref="AdaptiveMisinformationDefense"/>).</summary>
public sealed class AdaptiveMisinformationOutputDefense(AdaptiveMisinformationDefense am, VictimClassifier misinformation) : IOutputDefense
{
    public string Name => DefenseIds.AdaptiveMisinformation;

    public VictimAnswer Answer(ReadOnlySpan<float> image, double[] probabilities)
    {
        // The misinformation model runs only where its answer carries weight (α ≥ 1e-9): most benign queries skip it.
        if (am.MisinformationWeight(probabilities) < 1e-9) return new(false, probabilities);
        return new(false, am.Apply(probabilities, misinformation.Predict([MadOutputDefense.Planar(image)])[0]));
    }
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

/// <summary>
/// SEAT as a passive defence: answers truthfully until the account holds enough similar query pairs, then refuses it.
/// The encoder is scaled at training so that its calibrated distance threshold is 1.
/// </summary>
public sealed class SeatDefense(SeatDetector detector, SeatEncoder encoder) : IOutputDefense
{
    public string Name => DefenseIds.Seat;

    public VictimAnswer Answer(ReadOnlySpan<float> image, double[] probabilities)
    {
        if (detector.Flagged) return VictimAnswer.Refusal;
        detector.Observe(encoder.Embed(image, 1)[0]);
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
