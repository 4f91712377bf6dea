using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Defenses;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels.Cpu;

namespace ModelGuardian.Tests.Defenses;

public sealed class SeatTests
{
    /// <summary>Pairs are counted against every earlier query: k identical embeddings hold k(k−1)/2 pairs; flagging is sticky.</summary>
    [Fact]
    public void AnAccountIsFlaggedWhenItsSimilarPairsReachTheCount()
    {
        var seat = new SeatDetector(new SeatOptions(Threshold: 0.5, PairsToFlag: 10));
        float[] same = [1f, 2f, 3f];
        for (int q = 1; q <= 4; q++) Assert.False(seat.Observe(same), $"flagged after {q} queries");
        Assert.Equal(6, seat.SimilarPairs);
        Assert.True(seat.Observe([1f, 2f, 3.49f])); // 0.49 from each earlier query: 4 more pairs, 10 in all.
        Assert.Equal(10, seat.SimilarPairs);
        Assert.True(seat.Observe([100f, 0f, 0f]));
        Assert.Equal(10, seat.SimilarPairs);
    }

    [Fact]
    public void DistancesAtOrBeyondTheThresholdAreNotPairs()
    {
        var seat = new SeatDetector(new SeatOptions(Threshold: 1, PairsToFlag: 1));
        for (int i = 0; i < 50; i++) Assert.False(seat.Observe([i * 1f, 0f]));
        Assert.Equal(0, seat.SimilarPairs);
        Assert.Equal(50, seat.QueriesSeen);
        Assert.Throws<ArgumentException>(() => seat.Observe([1f]));
        Assert.Throws<ArgumentException>(() => seat.Observe([float.NaN, 0f]));
        Assert.Throws<ArgumentException>(() => new SeatDetector(new SeatOptions(0)));
        Assert.Throws<ArgumentException>(() => new SeatDetector(new SeatOptions(1, 0)));
    }

    /// <summary>Points 0, 1, 3, 6 on a line: pair distances 1, 2, 3, 3, 5, 6; the quantile picks among them.</summary>
    [Fact]
    public void TheThresholdIsTheChosenQuantileOfBenignPairDistances()
    {
        var points = new[] { 0f, 1f, 3f, 6f }.Select(v => new[] { v, 0f }).ToList();
        Assert.Equal(1, SeatDetector.CalibrateThreshold(points, 0.1), 12);
        Assert.Equal(3, SeatDetector.CalibrateThreshold(points, 0.5), 12);
        Assert.Equal(6, SeatDetector.CalibrateThreshold(points, 0.99), 12);
        Assert.Throws<ArgumentException>(() => SeatDetector.CalibrateThreshold(points.Take(1).ToList(), 0.5));
        Assert.Throws<ArgumentException>(() => SeatDetector.CalibrateThreshold(points, 0));
    }

    /// <summary>The contrastive loss's gradient against central differences (float64 loss; tolerance 1e-3 relative + 1e-5).</summary>
    [Fact]
    public void TheContrastiveGradientMatchesFiniteDifferences()
    {
        const int n = 3, d = 4;
        var rng = new Random(7);
        var y = Enumerable.Range(0, 2 * n * d).Select(_ => (float)(rng.NextDouble() * 0.6 - 0.3)).ToArray();
        var (loss, grad, positive, negative) = SeatTraining.ContrastiveLoss(y, n, d, margin: 1);
        Assert.Equal(loss, (positive + negative), 12);
        Assert.True(negative > 0, "the random points should lie inside the margin");
        const float h = 1e-3f;
        for (int i = 0; i < y.Length; i++)
        {
            var plus = (float[])y.Clone();
            var minus = (float[])y.Clone();
            plus[i] += h;
            minus[i] -= h;
            double numeric = (SeatTraining.ContrastiveLoss(plus, n, d, 1).Loss - SeatTraining.ContrastiveLoss(minus, n, d, 1).Loss) / (2 * h);
            Assert.True(Math.Abs(numeric - grad[i]) <= 1e-3 * Math.Abs(numeric) + 1e-5, $"component {i}: analytic {grad[i]}, numeric {numeric}");
        }
    }

    /// <summary>PGD stays in the ε-ball and in 0…1, and moves the embedding further than the random start alone.</summary>
    [Fact]
    public void ThePerturbationStaysWithinEpsilonAndMovesTheEmbedding()
    {
        using var k = new CpuKernels();
        var arch = ArchitectureDescriptor.ResNet(18, 8, ResNetStem.Cifar, 32, width: 2);
        using var encoder = TrainableNetwork.ResNet(k, arch, 5);
        const int n = 4;
        var rng = new Random(3);
        var x = Enumerable.Range(0, n * 3 * 32 * 32).Select(_ => (float)rng.NextDouble()).ToArray();
        double Moved(float[] adv)
        {
            var shape = new Engine.Core.Shape4(n, 3, 32, 32);
            var e = encoder.Forward(NetworkInput.FromUnit(arch, x, 32 * 32), shape);
            var a = encoder.Forward(NetworkInput.FromUnit(arch, adv, 32 * 32), shape);
            return e.Zip(a, (p, q) => (double)(p - q) * (p - q)).Sum();
        }
        var options = new SeatTrainingOptions(Epsilon: 8.0 / 255, AttackSteps: 3);
        var adv = SeatTraining.Perturb(encoder, x, n, options, new SeededRandom(1));
        for (int i = 0; i < x.Length; i++)
        {
            Assert.InRange(adv[i], 0f, 1f);
            Assert.True(Math.Abs(adv[i] - x[i]) <= 8f / 255 + 1e-6f, $"value {i} moved {adv[i] - x[i]}");
        }
        var start = SeatTraining.Perturb(encoder, x, n, options with { AttackSteps = 1, Epsilon = 1e-6 }, new SeededRandom(1));
        Assert.True(Moved(adv) > 10 * Moved(start), $"PGD moved the embeddings by {Moved(adv)}, a 1e-6 ball by {Moved(start)}");
    }

    /// <summary>A few training steps on a tiny encoder bring perturbed images closer to their source than to other images.</summary>
    [Fact]
    public void TrainingPullsPerturbationsInAndPushesOthersOut()
    {
        using var k = new CpuKernels();
        var arch = ArchitectureDescriptor.ResNet(18, 8, ResNetStem.Cifar, 32, width: 2);
        using var encoder = TrainableNetwork.ResNet(k, arch, 5);
        var rng = new Random(11);
        // Smooth random blobs: distinct images with structure, as natural images have.
        var images = Enumerable.Range(0, 32).Select(_ =>
        {
            double cx = rng.NextDouble() * 32, cy = rng.NextDouble() * 32, r = 4 + rng.NextDouble() * 8;
            var img = new float[3 * 32 * 32];
            for (int c = 0; c < 3; c++)
                for (int yy = 0; yy < 32; yy++)
                    for (int xx = 0; xx < 32; xx++)
                        img[(c * 32 + yy) * 32 + xx] = (float)Math.Exp(-((xx - cx) * (xx - cx) + (yy - cy) * (yy - cy)) / (r * r));
            return img;
        }).ToList();
        var options = new SeatTrainingOptions(Epochs: 12, BatchSize: 16, LearningRate: 3e-3f, AttackSteps: 2, Seed: 2);
        var first = SeatTraining.Train(encoder, images, options with { Epochs = 1 });
        var last = SeatTraining.Train(encoder, images, options);
        Assert.True(double.IsFinite(first.PositiveLoss) && double.IsFinite(last.NegativeLoss));
        Assert.True(last.PositiveLoss + last.NegativeLoss < first.PositiveLoss + first.NegativeLoss,
            $"loss did not fall: first epoch {first.PositiveLoss} + {first.NegativeLoss}, last {last.PositiveLoss} + {last.NegativeLoss}");
    }
}
