using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;

namespace ModelGuardian.Engine.Training;

/// <summary>Labelled 8-bit images, read one at a time (datasets are far larger than their float form should be in memory).</summary>
public interface ILabeledImages
{
    int Count { get; }
    /// <summary>An image and its label (0…Classes−1; for detectors 1 = synthetic).</summary>
    (RgbImage Image, int Label) this[int index] { get; }
}

/// <summary>A list of (image, label) pairs in memory.</summary>
public sealed class LabeledImageList(IReadOnlyList<(RgbImage Image, int Label)> items) : ILabeledImages
{
    public int Count => items.Count;
    public (RgbImage Image, int Label) this[int index] => items[index];
}

/// <summary>What a classifier learns: the labels (cross-entropy), or to avoid them (Adaptive Misinformation's misinformation model).</summary>
public enum TrainingObjective { CrossEntropy, Misinformation }

/// <summary>How to train; immutable. Defaults follow the detector recipe (docs/design.md) (Adam 5e-4, ×0.9 every 10 epochs).</summary>
public sealed record TrainingOptions
{
    public int Epochs { get; init; } = 5;
    public int BatchSize { get; init; } = 32;
    public float LearningRate { get; init; } = 5e-4f;
    public string Optimizer { get; init; } = "adam";
    public float Momentum { get; init; } = 0.9f;
    public float WeightDecay { get; init; }
    public int LrStepEpochs { get; init; } = 10;
    public float LrGamma { get; init; } = 0.9f;
    public ulong Seed { get; init; } = 1;
    /// <summary>Multi-class networks only; one-logit detectors always learn BCE-with-logits.</summary>
    public TrainingObjective Objective { get; init; } = TrainingObjective.CrossEntropy;
    /// <summary>Applied to each training image (never to validation images) with a generator seeded by (seed, epoch, item): reproducible in any order.</summary>
    public Func<RgbImage, Random, RgbImage>? Augment { get; init; }
}

/// <summary>Where training is, for a progress bar.</summary>
public sealed record TrainingProgress(int Epoch, int Epochs, int Step, int StepsPerEpoch, double Loss, double Accuracy);

/// <summary>Validation results. For one-logit detectors: DAcc = share of positives (label 1) flagged, FPR = share of negatives flagged.</summary>
public sealed record ValidationMetrics(int Samples, double Accuracy, double? DetectionAccuracy = null, double? FalsePositiveRate = null);

/// <summary>
/// The training loop shared by `mg train classifier` (softmax cross-entropy) and `mg train detector`
/// (one logit, BCE-with-logits): seeded shuffling and augmentation, mini-batches, Adam or SGD with
/// a step schedule, then validation in evaluation mode. Deterministic for a seed on the CPU backend.
/// </summary>
public static class SupervisedTrainer
{
    public static ValidationMetrics Train(TrainableNetwork net, ILabeledImages train, ILabeledImages? validation, TrainingOptions o, IProgress<TrainingProgress>? progress = null)
    {
        if (train.Count == 0) throw new ArgumentException("No training images.");
        if (o.Epochs < 1 || o.BatchSize < 1) throw new ArgumentException("Epochs and batch size must be positive.");
        var a = net.Architecture;
        bool binary = a.Outputs == 1;
        if (binary && o.Objective != TrainingObjective.CrossEntropy) throw new ArgumentException($"A one-logit detector learns BCE-with-logits, not {o.Objective}.");
        Optimizer opt = o.Optimizer switch
        {
            "adam" => new AdamOptimizer(net.Parameters, o.LearningRate, weightDecay: o.WeightDecay),
            "sgd" => new SgdOptimizer(net.Parameters, o.LearningRate, o.Momentum, o.WeightDecay),
            _ => throw new ArgumentException($"Unknown optimizer '{o.Optimizer}' (adam or sgd)."),
        };
        var schedule = new StepLrSchedule(opt, o.LrStepEpochs, o.LrGamma);
        var batches = new BatchIterator(train.Count, o.BatchSize, o.Seed);
        net.Parameters.ZeroGradients();
        for (int epoch = 0; epoch < o.Epochs; epoch++)
        {
            schedule.SetEpoch(epoch);
            net.Mode.IsTraining = true;
            double lossSum = 0;
            long correct = 0, seen = 0;
            foreach (var batch in batches.Epoch(epoch))
            {
                var idx = batch.Indices;
                var (x, labels) = Batch(net, train, idx, o.Augment is null ? null : (image, i) => o.Augment(image, SeededRandom.ForItem(o.Seed, batch.Epoch, idx[i])));
                var shape = new Shape4(idx.Length, 3, a.InputSide, a.InputSide);
                var (loss, outputs) = net.ForwardBackward(x, shape, y => binary
                    ? Losses.BceWithLogits(y, labels.Select(l => (float)l).ToArray())
                    : o.Objective == TrainingObjective.Misinformation ? Losses.Misinformation(y, labels, a.Outputs) : Losses.CrossEntropy(y, labels, a.Outputs));
                opt.Step();
                lossSum += loss * idx.Length;
                seen += idx.Length;
                correct += CountCorrect(outputs, labels, a.Outputs);
                progress?.Report(new TrainingProgress(epoch + 1, o.Epochs, batch.Number + 1, batches.BatchesPerEpoch, lossSum / seen, (double)correct / seen));
            }
        }
        net.Mode.IsTraining = false;
        return validation is { Count: > 0 } ? Evaluate(net, validation, o.BatchSize) : new ValidationMetrics(0, double.NaN);
    }

    /// <summary>Accuracy in evaluation mode; for detectors also DAcc and FPR at sigmoid &gt; 0.5.</summary>
    public static ValidationMetrics Evaluate(TrainableNetwork net, ILabeledImages data, int batchSize = 64)
    {
        var a = net.Architecture;
        bool wasTraining = net.Mode.IsTraining;
        net.Mode.IsTraining = false;
        long correct = 0, positives = 0, truePositives = 0, negatives = 0, falsePositives = 0;
        for (int start = 0; start < data.Count; start += batchSize)
        {
            var idx = Enumerable.Range(start, Math.Min(batchSize, data.Count - start)).ToArray();
            var (x, labels) = Batch(net, data, idx, null);
            var y = net.Forward(x, new Shape4(idx.Length, 3, a.InputSide, a.InputSide));
            correct += CountCorrect(y, labels, a.Outputs);
            if (a.Outputs == 1)
                for (int i = 0; i < idx.Length; i++)
                {
                    bool flagged = y[i] > 0;
                    if (labels[i] == 1) { positives++; if (flagged) truePositives++; }
                    else { negatives++; if (flagged) falsePositives++; }
                }
        }
        net.Mode.IsTraining = wasTraining;
        return a.Outputs == 1
            ? new ValidationMetrics(data.Count, (double)correct / data.Count, positives > 0 ? (double)truePositives / positives : null, negatives > 0 ? (double)falsePositives / negatives : null)
            : new ValidationMetrics(data.Count, (double)correct / data.Count);
    }

    private static (float[] X, int[] Labels) Batch(TrainableNetwork net, ILabeledImages data, int[] idx, Func<RgbImage, int, RgbImage>? augment)
    {
        var a = net.Architecture;
        int per = 3 * a.InputSide * a.InputSide;
        var x = new float[idx.Length * per];
        var labels = new int[idx.Length];
        for (int i = 0; i < idx.Length; i++)
        {
            var (image, label) = data[idx[i]];
            if (augment != null) image = augment(image, i);
            NetworkInput.FromPlanar(a, net.Kernels, PlanarImage.From(image)).CopyTo(x, i * per);
            labels[i] = label;
        }
        return (x, labels);
    }

    private static long CountCorrect(float[] outputs, int[] labels, int classes)
    {
        long correct = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            int predicted;
            if (classes == 1) predicted = outputs[i] > 0 ? 1 : 0;
            else
            {
                predicted = 0;
                for (int k = 1; k < classes; k++) if (outputs[i * classes + k] > outputs[i * classes + predicted]) predicted = k;
            }
            if (predicted == labels[i]) correct++;
        }
        return correct;
    }
}
