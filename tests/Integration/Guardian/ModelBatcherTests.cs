using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Weights;

namespace ModelGuardian.Tests.Guardian;

public sealed class ModelBatcherTests
{
    internal static GuardianModels TinyModels(CpuKernels k, double threshold = 0.5)
    {
        var victim = RandomWeights.Create(k, ArchitectureDescriptor.ResNet(18, 3, ResNetStem.Cifar, width: 4), 1).Network;
        var d = RandomWeights.Create(k, ArchitectureDescriptor.StyleGanD(32, 256, 16, mbstdGroupSize: 1), 2).Network;
        var det = RandomWeights.Create(k, ArchitectureDescriptor.ResNet(18, 1, ResNetStem.Cifar, width: 4), 3).Network;
        return new GuardianModels(new VictimClassifier(victim), new DfmsDetector(new GradientTransform(d), [new SubDetector("a", det, threshold)]));
    }

    internal static PlanarImage Noise(int seed, int w = 37, int h = 29)
    {
        var rng = new Random(seed);
        return new PlanarImage(w, h, Enumerable.Range(0, 3 * w * h).Select(_ => (float)rng.Next(256)).ToArray());
    }

    /// <summary>Queries that arrive together are batched, and each gets bit for bit what it would get alone.</summary>
    [Fact]
    public async Task ConcurrentQueriesAreBatchedWithResultsIdenticalToOneAtATime()
    {
        using var k = new CpuKernels();
        var models = TinyModels(k);
        var images = Enumerable.Range(0, 12).Select(i => Noise(i)).ToArray();
        var alone = images.Select(i => models.Evaluate([i])[0]).ToArray();
        using var batcher = new ModelBatcher(models, new BatchingOptions { MaxBatch = 8, MaxWait = TimeSpan.FromMilliseconds(500) }); // generous: 12 Task.Run starts on a busy 2-core machine
        var together = await Task.WhenAll(images.Select(i => Task.Run(() => batcher.EvaluateAsync([i]))));
        Assert.True(batcher.BatchesRun < images.Length, $"{batcher.BatchesRun} batches for {images.Length} queries: nothing was batched");
        for (int i = 0; i < images.Length; i++)
        {
            Assert.Equal(alone[i].Probabilities, together[i][0].Probabilities);
            Assert.Equal(alone[i].Verdict.Scores, together[i][0].Verdict.Scores);
            Assert.Equal(alone[i].Verdict.DiscriminatorScore, together[i][0].Verdict.DiscriminatorScore);
        }
    }

    [Fact]
    public async Task AFullQueueRefusesInsteadOfWaiting()
    {
        using var gate = new ManualResetEventSlim();
        using var entered = new ManualResetEventSlim();
        using var batcher = new ModelBatcher(images =>
        {
            entered.Set();
            gate.Wait();
            return images.Select(_ => new Evaluation([1.0], new DetectorVerdict(false, [0.0], 0f))).ToArray();
        }, new BatchingOptions { MaxBatch = 1, MaxWait = TimeSpan.Zero, QueueCapacity = 2 });
        var first = batcher.EvaluateAsync([Noise(1)]); // taken by the worker, which then blocks
        // Wait until the worker holds it (not a fixed delay: on a loaded machine the worker may take longer,
        // and the first query would still fill a queue slot).
        Assert.True(entered.Wait(TimeSpan.FromSeconds(30)), "the worker never took the first query");
        var queued = new[] { batcher.EvaluateAsync([Noise(2)]), batcher.EvaluateAsync([Noise(3)]) };
        await Assert.ThrowsAsync<GuardianOverloadedException>(() => batcher.EvaluateAsync([Noise(4)]));
        gate.Set();
        await first;
        await Task.WhenAll(queued);
    }

    [Fact]
    public async Task ACancelledQueryIsDroppedAndOthersGoOn()
    {
        using var k = new CpuKernels();
        using var batcher = new ModelBatcher(TinyModels(k));
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => batcher.EvaluateAsync([Noise(1)], cts.Token));
        Assert.Single(await batcher.EvaluateAsync([Noise(2)]));
    }
}
