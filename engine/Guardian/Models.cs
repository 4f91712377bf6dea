using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;

namespace ModelGuardian.Engine.Guardian;

/// <summary>The protected classifier and how its inputs are made.</summary>
public sealed class VictimClassifier
{
    public VictimClassifier(Network network, ResizeFilter filter = ResizeFilter.Bilinear)
    {
        if (network.Architecture.Kind != NetworkKind.ResNet || network.Architecture.Outputs < 2)
            throw new ArgumentException($"The victim must be a classifier with at least 2 classes, got {network.Architecture}.");
        Network = network;
        Filter = filter;
    }

    public Network Network { get; }
    public ResizeFilter Filter { get; }
    public int Classes => Network.Architecture.Outputs;

    /// <summary>
    /// The image brought to the victim's input geometry by its input contract (padding, cropping or resizing), colours kept;
    /// the image itself when the weight file states no contract. The detector screens this, so that an upload's own size
    /// never adds a resampling the victim does not make: a 28² query padded for the victim must not reach the detector
    /// up-sampled, as up-sampling is what the detector looks for. Colour stays: it is evidence, and making it grey is the
    /// victim's own preprocessing.
    /// </summary>
    public PlanarImage AtInputGeometry(PlanarImage image) => Network.Architecture.Input is { } contract
        ? (contract with { Grey = false }).Apply(image, Network.Architecture.InputSide, Network.Kernels)
        : image;

    /// <summary>Softmax probabilities per image.</summary>
    public double[][] Predict(IReadOnlyList<PlanarImage> images)
    {
        int side = Network.Architecture.InputSide, per = 3 * side * side, k = Classes;
        var batch = new float[images.Count * per];
        for (int i = 0; i < images.Count; i++) NetworkInput.FromPlanar(Network, images[i], Filter).CopyTo(batch, i * per);
        var logits = Network.Forward(batch, new Shape4(images.Count, 3, side, side));
        return Enumerable.Range(0, images.Count).Select(i => OutputProbabilities.From(logits.AsSpan(i * k, k))).ToArray();
    }
}

/// <summary>One binary sub-detector: a single-logit network on gradient images, flagging when sigmoid(logit) > threshold.</summary>
public sealed record SubDetector(string Name, Network Network, double Threshold = 0.5);

/// <summary>What the detector saw: the OR of the sub-detectors, each one's sigmoid score, and D's raw score.</summary>
public sealed record DetectorVerdict(bool Flagged, double[] Scores, float DiscriminatorScore);

/// <summary>
/// DFMS-Detector: the gradient representation of each image (a StyleGAN D, forward and backward
/// to the input, per-image min-max to 0…255), fed to N sub-detectors, OR-ensembled.
/// </summary>
public sealed class DfmsDetector
{
    public DfmsDetector(GradientTransform transform, IReadOnlyList<SubDetector> detectors)
    {
        if (detectors.Count == 0) throw new ArgumentException("DFMS-Detector needs at least one sub-detector.");
        if (transform.Discriminator.Architecture.MbstdGroupSize != 1)
            throw new ArgumentException("The transformation D must run in per-image mode (minibatch-stddev group 1): a query's verdict must not depend on its batch-mates.");
        foreach (var d in detectors)
        {
            if (d.Network.Architecture.Outputs != 1) throw new ArgumentException($"Sub-detector '{d.Name}' must have a single logit, it has {d.Network.Architecture.Outputs} outputs.");
            if (!(d.Threshold > 0 && d.Threshold < 1)) throw new ArgumentException($"Sub-detector '{d.Name}' threshold must be in (0, 1), got {d.Threshold}.");
        }
        Transform = transform;
        Detectors = detectors;
    }

    public GradientTransform Transform { get; }
    public IReadOnlyList<SubDetector> Detectors { get; }

    public DetectorVerdict[] Screen(IReadOnlyList<PlanarImage> images)
    {
        var d = Transform.Discriminator;
        var inputs = images.Select(i => NetworkInput.FromPlanar(d, i, Transform.Options.Filter)).ToArray();
        var gradients = Transform.TransformPreprocessed(inputs);
        var scores = new double[images.Count][];
        for (int i = 0; i < images.Count; i++) scores[i] = new double[Detectors.Count];
        for (int j = 0; j < Detectors.Count; j++)
        {
            var net = Detectors[j].Network;
            int side = net.Architecture.InputSide, per = 3 * side * side;
            var batch = new float[images.Count * per];
            for (int i = 0; i < images.Count; i++)
            {
                var g = new PlanarImage(gradients[i].Resolution, gradients[i].Resolution, gradients[i].Values);
                NetworkInput.FromPlanar(net, g).CopyTo(batch, i * per);
            }
            var logits = net.Forward(batch, new Shape4(images.Count, 3, side, side));
            for (int i = 0; i < images.Count; i++) scores[i][j] = OutputProbabilities.Sigmoid(logits[i]);
        }
        return Enumerable.Range(0, images.Count).Select(i => new DetectorVerdict(
            Detectors.Select((det, j) => scores[i][j] > det.Threshold).Any(f => f), scores[i], gradients[i].Score)).ToArray();
    }
}

/// <summary>What the models say about one query: the victim's true probabilities and the detector's verdict.</summary>
public sealed record Evaluation(double[] Probabilities, DetectorVerdict Verdict);

/// <summary>Runs the models on images, however it batches them.</summary>
public interface IModelEvaluator
{
    Task<Evaluation[]> EvaluateAsync(IReadOnlyList<PlanarImage> images, CancellationToken cancellationToken = default);
}

/// <summary>The victim and the detector, run together on a batch, on the caller's thread.</summary>
public sealed class GuardianModels(VictimClassifier victim, DfmsDetector detector) : IModelEvaluator
{
    public VictimClassifier Victim { get; } = victim;
    public DfmsDetector Detector { get; } = detector;

    public Evaluation[] Evaluate(IReadOnlyList<PlanarImage> images)
    {
        if (images.Count == 0) return [];
        var p = Victim.Predict(images);
        var v = Detector.Screen(images.Select(Victim.AtInputGeometry).ToList());
        return Enumerable.Range(0, images.Count).Select(i => new Evaluation(p[i], v[i])).ToArray();
    }

    public Task<Evaluation[]> EvaluateAsync(IReadOnlyList<PlanarImage> images, CancellationToken cancellationToken = default)
        => Task.FromResult(Evaluate(images));
}
