using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Weights;
using ModelGuardian.Weights.Format;

namespace ModelGuardian.Tests.Training;

/// <summary>GAN training on tiny widths (generator width 4, D 8 channels at 32²) with synthetic "real" images.</summary>
public sealed class GanTrainerTests
{
    private static readonly ArchitectureDescriptor D = ArchitectureDescriptor.StyleGanD(32, 256, 8, mbstdGroupSize: 1);

    /// <summary>Smooth colour ramps with noise: a learnable real distribution that needs no photo package.</summary>
    private static RgbImage Ramp(Random rng)
    {
        var px = new byte[32 * 32 * 3];
        int r0 = rng.Next(256), g0 = rng.Next(256), b0 = rng.Next(256);
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
            {
                int at = (y * 32 + x) * 3;
                px[at] = (byte)((r0 + 4 * x) % 256);
                px[at + 1] = (byte)((g0 + 4 * y) % 256);
                px[at + 2] = (byte)Math.Clamp(b0 + rng.Next(-8, 9), 0, 255);
            }
        return new RgbImage(32, 32, px);
    }

    private sealed record Run(List<GanProgress> Progress, TensorSetBits G, TensorSetBits Dd);
    private sealed record TensorSetBits(Dictionary<string, float[]> Tensors);

    private static Run Train(ulong seed, int iterations, GeneratorFamily family = GeneratorFamily.NearestConv)
    {
        using var k = new CpuKernels();
        using var g = ImageGenerator.Create(k, family, seed + 1, width: 4);
        using var d = TrainableStyleGanDiscriminator.Create(k, D, seed + 2);
        var trainer = new GanTrainer(g, d, Ramp, new GanOptions { Iterations = iterations, BatchSize = 4, Seed = seed });
        var progress = new List<GanProgress>();
        trainer.Train(new SyncProgress(progress.Add));
        static TensorSetBits Bits(Engine.Core.TensorSet t) => new(t.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.Data));
        return new Run(progress, Bits(g.Export()), Bits(d.Export()));
    }

    [Fact]
    public void AFewIterationsRunAndReportEachOne()
    {
        foreach (var family in Enum.GetValues<GeneratorFamily>())
        {
            var run = Train(5, 3, family);
            Assert.Equal([1, 2, 3], run.Progress.Select(p => p.Iteration));
            Assert.All(run.Progress, p =>
            {
                Assert.Equal(3, p.Iterations);
                Assert.True(double.IsFinite(p.DiscriminatorLoss) && double.IsFinite(p.GeneratorLoss), $"{family}: {p}");
                Assert.InRange(p.RealScore, 0, 1);
                Assert.InRange(p.FakeScore, 0, 1);
            });
        }
    }

    [Fact]
    public void TwoRunsWithOneSeedAreEqualBitForBit()
    {
        var a = Train(7, 3);
        var b = Train(7, 3);
        Assert.Equal(a.Progress, b.Progress);
        foreach (var (name, values) in a.G.Tensors) Assert.Equal(values, b.G.Tensors[name]);
        foreach (var (name, values) in a.Dd.Tensors) Assert.Equal(values, b.Dd.Tensors[name]);
        Assert.NotEqual(a.Progress, Train(8, 3).Progress);
    }

    [Fact]
    public void DiscriminatorStepsLowerItsLossOnAFixedBatch()
    {
        using var k = new CpuKernels();
        using var g = ImageGenerator.Create(k, GeneratorFamily.TransposedConv, 1, width: 4);
        using var d = TrainableStyleGanDiscriminator.Create(k, D, 2);
        var trainer = new GanTrainer(g, d, Ramp, new GanOptions { BatchSize = 8, LearningRate = 1e-3f, Seed = 3 });
        var real = trainer.RealBatch(0);
        var noise = trainer.Noise(0, 0);
        var losses = Enumerable.Range(0, 8).Select(_ => trainer.DiscriminatorStep(real, noise).Loss).ToList();
        Assert.True(losses[^1] < losses[0] - 0.05, $"D loss {string.Join(" → ", losses.Select(l => l.ToString("F4")))}");
        Assert.Equal(0, g.Parameters.Trainable.Sum(p => MaxAbs(k, p.Gradient!, p.Length))); // a D step trains D only
    }

    [Fact]
    public void GeneratorStepsRaiseTheDiscriminatorsScoreAndLeaveItUntouched()
    {
        using var k = new CpuKernels();
        using var g = ImageGenerator.Create(k, GeneratorFamily.BilinearConv, 1, width: 4);
        using var d = TrainableStyleGanDiscriminator.Create(k, D, 2);
        var trainer = new GanTrainer(g, d, Ramp, new GanOptions { BatchSize = 8, LearningRate = 1e-3f, Seed = 3 });
        var noise = trainer.Noise(0, 0);
        var shape = new Engine.Core.Shape4(8, ImageGenerator.NoiseSize, 1, 1);
        double Score() => trainer.Score(trainer.ToDiscriminatorInput(g.Forward(noise, shape))).Average();
        var dBefore = d.Export();
        double before = Score();
        for (int i = 0; i < 5; i++) trainer.GeneratorStep(noise);
        double after = Score();
        Assert.True(after > before, $"mean D(G(z)) {before:F5} → {after:F5}");
        foreach (var (name, t) in d.Export().Tensors) Assert.Equal(dBefore[name].Data, t.Data);
        Assert.Equal(0, d.Parameters.Trainable.Sum(p => MaxAbs(k, p.Gradient!, p.Length))); // G-step gradients discarded
    }

    [Fact]
    public void FakesEnterTheDiscriminatorAsScreeningFeedsAnImage()
    {
        using var k = new CpuKernels();
        using var g = ImageGenerator.Create(k, GeneratorFamily.NearestConv, 1, width: 4);
        using var d = TrainableStyleGanDiscriminator.Create(k, D, 2);
        var trainer = new GanTrainer(g, d, Ramp, new GanOptions { BatchSize = 1 });
        var image = Ramp(new Random(4));
        var s = PlanarImage.From(image).Values.Select(v => v / 255f).ToArray(); // what a generator output p/255 would be
        TestUtil.AssertClose(NetworkInput.FromPlanar(D, k, PlanarImage.From(image)), trainer.ToDiscriminatorInput(s), 1e-6, "D input");
    }

    [Fact]
    public void TrainedGeneratorRoundTripsThroughAWeightFile()
    {
        using var k = new CpuKernels();
        string dir = Directory.CreateTempSubdirectory("mg-gan-").FullName;
        try
        {
            foreach (var family in Enum.GetValues<GeneratorFamily>())
            {
                using var g = ImageGenerator.Create(k, family, 3, width: 4);
                using var d = TrainableStyleGanDiscriminator.Create(k, D, 4);
                new GanTrainer(g, d, Ramp, new GanOptions { Iterations = 2, BatchSize = 4 }).Train(); // running statistics and weights moved
                string path = Path.Combine(dir, $"{family}.mgw");
                WeightFile.Save(path, g.Architecture, g.Export(), new Provenance("test", "", "test", "test", DateTimeOffset.UnixEpoch, []));
                var (loaded, contents) = GeneratorFiles.Load(k, path);
                using var _l = loaded;
                Assert.Equal((family, 4), (contents.Architecture.GeneratorFamily, contents.Architecture.Width));
                var a = g.Generate(6, 11, batch: 3);
                var b = loaded.Generate(6, 11, batch: 3);
                for (int i = 0; i < a.Count; i++) Assert.Equal(a[i].Pixels, b[i].Pixels);
                Assert.Throws<ArgumentException>(() => ModelFiles.LoadTransform(k, path));
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData(GeneratorFamily.TransposedConv, 4)]
    [InlineData(GeneratorFamily.NearestConv, 32)]
    [InlineData(GeneratorFamily.BilinearConv, 9)]
    public void GeneratorSchemaIsWhatTheGeneratorHolds(GeneratorFamily family, int width)
    {
        using var k = new CpuKernels();
        using var g = ImageGenerator.Create(k, family, 1, width);
        Assert.Equal(g.Parameters.All.Select(p => (p.Name, string.Join(",", p.Shape))),
                     ParameterSchema.For(g.Architecture).Select(s => (s.Name, string.Join(",", s.Shape))));
    }

    private static float MaxAbs(ModelGuardian.Kernels.IKernels k, ModelGuardian.Kernels.DeviceBuffer b, int n)
    {
        var a = new float[n];
        k.Download(b, a);
        return a.Max(Math.Abs);
    }

    private sealed class SyncProgress(Action<GanProgress> report) : IProgress<GanProgress>
    {
        public void Report(GanProgress value) => report(value);
    }
}
