using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Training;
using ModelGuardian.Engine.Data;

namespace ModelGuardian.Engine.Defenses;

/// <param name="Threshold">δ: two queries of one account whose embeddings lie closer than this (L2) form a similar pair.</param>
/// <param name="PairsToFlag">The account is flagged once its queries hold this many similar pairs.</param>
public sealed record SeatOptions(double Threshold, int PairsToFlag = 50);

/// <summary>
/// SEAT (Zhang, Chen and Wagner, AISec 2021) for one account: every query is embedded by a similarity encoder trained so
/// that an image and its small perturbations land close together while different images stay apart; stealing
/// queries — a generator's outputs, or perturbations of a few seeds — come in near-duplicates, natural queries rarely do.
/// The account is flagged, stickily, once the number of its query pairs closer than δ reaches
/// <see cref="SeatOptions.PairsToFlag"/>. Each query is compared with every earlier one of the account (time and memory grow
/// with the stream, as in the paper). Not thread-safe: one instance per account.
/// </summary>
public sealed class SeatDetector
{
    private readonly List<float[]> _seen = new();

    public SeatDetector(SeatOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!(options.Threshold > 0 && double.IsFinite(options.Threshold))) throw new ArgumentException($"SEAT's distance threshold must be positive and finite, got {options.Threshold}.", nameof(options));
        if (options.PairsToFlag < 1) throw new ArgumentException($"SEAT's pair count must be at least 1, got {options.PairsToFlag}.", nameof(options));
        Options = options;
    }

    public SeatOptions Options { get; }
    public long QueriesSeen => _seen.Count;
    /// <summary>Similar pairs among the queries seen so far.</summary>
    public long SimilarPairs { get; private set; }
    public bool Flagged { get; private set; }

    /// <summary>Records one query's embedding; returns whether the account is flagged (now or earlier).</summary>
    public bool Observe(ReadOnlySpan<float> embedding)
    {
        if (_seen.Count > 0 && embedding.Length != _seen[0].Length) throw new ArgumentException($"Embeddings of {_seen[0].Length} values expected, got {embedding.Length}.", nameof(embedding));
        foreach (float v in embedding)
            if (!float.IsFinite(v)) throw new ArgumentException($"Embedding values must be finite, got {v}.", nameof(embedding));
        double limit = Options.Threshold * Options.Threshold;
        foreach (var e in _seen)
            if (SquaredDistance(embedding, e) < limit) SimilarPairs++;
        _seen.Add(embedding.ToArray());
        if (SimilarPairs >= Options.PairsToFlag) Flagged = true;
        return Flagged;
    }

    internal static double SquaredDistance(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) { double d = a[i] - b[i]; sum += d * d; }
        return sum;
    }

    /// <summary>
    /// δ for a chosen pair false-positive rate: the <paramref name="quantile"/> of the L2 distances over all pairs of
    /// <paramref name="benign"/> embeddings (natural images the account holders would send, none of them training images).
    /// </summary>
    public static double CalibrateThreshold(IReadOnlyList<float[]> benign, double quantile)
    {
        if (benign.Count < 2) throw new ArgumentException("Calibration needs at least 2 benign embeddings.", nameof(benign));
        if (!(quantile > 0 && quantile < 1)) throw new ArgumentException($"The quantile must lie in (0, 1), got {quantile}.", nameof(quantile));
        var distances = new double[(long)benign.Count * (benign.Count - 1) / 2];
        long k = 0;
        for (int i = 0; i < benign.Count; i++)
            for (int j = i + 1; j < benign.Count; j++) distances[k++] = Math.Sqrt(SquaredDistance(benign[i], benign[j]));
        Array.Sort(distances);
        return distances[(int)Math.Min(distances.Length - 1, Math.Floor(quantile * distances.Length))];
    }
}

/// <summary>SEAT's similarity encoder: a network whose outputs are an embedding (no softmax), fed queries in 0…1.</summary>
public sealed class SeatEncoder(Network network)
{
    public Network Network { get; } = network;
    public int Dimension => Network.Architecture.Outputs;

    /// <summary>Embeddings of <paramref name="n"/> queries (3×S×S each, values in 0…1, S the network's side), one array per query.</summary>
    public float[][] Embed(ReadOnlySpan<float> unitImages, int n)
    {
        var a = Network.Architecture;
        int per = 3 * a.InputSide * a.InputSide;
        if (unitImages.Length != n * per) throw new ArgumentException($"{n} images of 3×{a.InputSide}×{a.InputSide} are {n * per} values, got {unitImages.Length}.");
        var y = Network.Forward(NetworkInput.FromUnit(a, unitImages, a.InputSide * a.InputSide), new Shape4(n, 3, a.InputSide, a.InputSide));
        int d = Dimension;
        return Enumerable.Range(0, n).Select(i => y.AsSpan(i * d, d).ToArray()).ToArray();
    }
}

/// <param name="Epsilon">The L∞ radius (on the 0…1 scale) of the perturbations the encoder must map close to their image.</param>
/// <param name="AttackSteps">PGD steps that search that ball for the perturbation the encoder moves furthest.</param>
/// <param name="Margin">Different images are pushed at least this far apart (contrastive hinge).</param>
public sealed record SeatTrainingOptions(int Epochs = 1, int BatchSize = 64, float LearningRate = 1e-3f, double Epsilon = 8.0 / 255,
                                         int AttackSteps = 3, double Margin = 1, ulong Seed = 1);

public sealed record SeatTrainingProgress(int Step, int Steps, double PositiveLoss, double NegativeLoss);

/// <summary>
/// Trains a SEAT encoder adversarially (contrastive): for each image x of a batch, x′ is the point of the ε-ball around x
/// (found by PGD from a random start) whose embedding is furthest from x's, and the loss is
/// mean ‖E(x) − E(x′)‖² + mean max(0, m − ‖E(x_i) − E(x_{i+1})‖)², the second term over neighbouring images of the
/// shuffled batch. Perturbing a query therefore cannot move it far from its source, which is what lets the detector see
/// an attacker's near-duplicates.
/// </summary>
public static class SeatTraining
{
    /// <summary>Trains <paramref name="encoder"/> on <paramref name="images"/> (each 3×S×S in 0…1); returns the last step's losses.</summary>
    public static SeatTrainingProgress Train(TrainableNetwork encoder, IReadOnlyList<float[]> images, SeatTrainingOptions o, IProgress<SeatTrainingProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(o);
        if (o.Epochs < 1 || o.BatchSize < 2) throw new ArgumentException("SEAT training needs at least 1 epoch and batches of at least 2.");
        if (!(o.Epsilon > 0 && o.Epsilon < 1) || o.AttackSteps < 1 || !(o.Margin > 0)) throw new ArgumentException("SEAT training needs 0 < ε < 1, at least 1 PGD step and a positive margin.");
        var a = encoder.Architecture;
        int side = a.InputSide, per = 3 * side * side, plane = side * side;
        foreach (var img in images)
            if (img.Length != per) throw new ArgumentException($"Training images must be 3×{side}×{side} ({per} values), got {img.Length}.");
        var optimizer = new AdamOptimizer(encoder.Parameters, o.LearningRate);
        var batches = new BatchIterator(images.Count, o.BatchSize, o.Seed);
        var rng = new SeededRandom(SeededRandom.Mix(o.Seed, 400));
        int steps = o.Epochs * batches.BatchesPerEpoch, step = 0;
        var last = new SeatTrainingProgress(0, steps, double.NaN, double.NaN);
        encoder.Parameters.ZeroGradients();
        for (int epoch = 0; epoch < o.Epochs; epoch++)
            foreach (var batch in batches.Epoch(epoch))
            {
                int n = batch.Indices.Length;
                if (n < 2) continue;
                var x = new float[n * per];
                for (int i = 0; i < n; i++) images[batch.Indices[i]].CopyTo(x, i * per);
                var adversarial = Perturb(encoder, x, n, o, rng);
                var both = new float[2 * n * per];
                x.CopyTo(both, 0);
                adversarial.CopyTo(both, n * per);
                encoder.Mode.IsTraining = true;
                double positive = 0, negative = 0;
                encoder.ForwardBackward(NetworkInput.FromUnit(a, both, plane), new Shape4(2 * n, 3, side, side), y =>
                {
                    var (loss, grad, pos, neg) = ContrastiveLoss(y, n, a.Outputs, o.Margin);
                    (positive, negative) = (pos, neg);
                    return (loss, grad);
                });
                optimizer.Step();
                last = new SeatTrainingProgress(++step, steps, positive, negative);
                progress?.Report(last);
            }
        encoder.Mode.IsTraining = false;
        return last;
    }

    /// <summary>
    /// The loss over 2n embeddings (rows 0…n−1 of the images, n…2n−1 of their perturbations, d values each):
    /// mean_i ‖e_i − a_i‖² + mean_i max(0, m − ‖e_i − e_{(i+1) mod n}‖)², with its gradient; also both terms apart.
    /// </summary>
    public static (double Loss, float[] Gradient, double Positive, double Negative) ContrastiveLoss(ReadOnlySpan<float> y, int n, int d, double margin)
    {
        if (y.Length != 2 * n * d) throw new ArgumentException($"{2 * n} embeddings of {d} values expected, got {y.Length} values.");
        var grad = new float[y.Length];
        double positive = 0, negative = 0;
        for (int i = 0; i < n; i++)
        {
            var e = y.Slice(i * d, d);
            var p = y.Slice((n + i) * d, d);
            for (int k = 0; k < d; k++)
            {
                double diff = e[k] - p[k];
                positive += diff * diff;
                grad[i * d + k] += (float)(2 * diff / n);
                grad[(n + i) * d + k] -= (float)(2 * diff / n);
            }
            int j = (i + 1) % n;
            var f = y.Slice(j * d, d);
            double dist = Math.Sqrt(SeatDetector.SquaredDistance(e, f));
            double hinge = margin - dist;
            if (hinge <= 0 || dist == 0) { negative += Math.Max(0, hinge) * Math.Max(0, hinge); continue; }
            negative += hinge * hinge;
            for (int k = 0; k < d; k++)
            {
                double g = -2 * hinge * (e[k] - f[k]) / dist / n;
                grad[i * d + k] += (float)g;
                grad[j * d + k] -= (float)g;
            }
        }
        return ((positive + negative) / n, grad, positive / n, negative / n);
    }

    /// <summary>PGD in the ε-ball around each image (clipped to 0…1) that maximises ‖E(x′) − E(x)‖², the encoder in evaluation mode.</summary>
    internal static float[] Perturb(TrainableNetwork encoder, float[] x, int n, SeatTrainingOptions o, Random rng)
    {
        var a = encoder.Architecture;
        int side = a.InputSide, plane = side * side, d = a.Outputs;
        var shape = new Shape4(n, 3, side, side);
        encoder.Mode.IsTraining = false;
        var target = encoder.Forward(NetworkInput.FromUnit(a, x, plane), shape);
        float eps = (float)o.Epsilon, alpha = (float)(2.5 * o.Epsilon / o.AttackSteps);
        var adv = new float[x.Length];
        for (int i = 0; i < x.Length; i++) adv[i] = Math.Clamp(x[i] + (float)((rng.NextDouble() * 2 - 1) * eps), 0f, 1f);
        for (int s = 0; s < o.AttackSteps; s++)
        {
            using var pass = encoder.Record(NetworkInput.FromUnit(a, adv, plane), shape);
            var dOut = new float[n * d];
            for (int i = 0; i < dOut.Length; i++) dOut[i] = 2 * (pass.Outputs[i] - target[i]);
            // The unit → network-input map is a positive per-channel scale, so the input gradient's sign is the image's.
            var g = pass.Backward(dOut);
            for (int i = 0; i < adv.Length; i++)
                adv[i] = Math.Clamp(Math.Clamp(adv[i] + alpha * MathF.Sign(g[i]), x[i] - eps, x[i] + eps), 0f, 1f);
        }
        encoder.Parameters.ZeroGradients();
        return adv;
    }
}
