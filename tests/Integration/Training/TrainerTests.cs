using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Weights;

namespace ModelGuardian.Tests.Training;

public sealed class TrainerTests
{
    [Fact]
    public void GeneratorFamiliesMakeDistinctReproducibleImages()
    {
        using var k = new CpuKernels();
        var samples = new Dictionary<GeneratorFamily, IReadOnlyList<RgbImage>>();
        foreach (var family in Enum.GetValues<GeneratorFamily>())
        {
            using var g = ImageGenerator.Create(k, family, seed: 3, width: 16);
            var a = g.Generate(5, seed: 9, batch: 5);
            Assert.All(a, img => Assert.Equal((32, 32), (img.Width, img.Height)));
            Assert.Equal(a.Select(i => i.Pixels), g.Generate(5, seed: 9, batch: 5).Select(i => i.Pixels)); // same seed, same images
            Assert.NotEqual(a[0].Pixels, g.Generate(5, seed: 10, batch: 5)[0].Pixels);
            Assert.True(a[0].Pixels.Distinct().Count() > 20, $"{family}: the image is nearly flat");
            samples[family] = a;
        }
        Assert.NotEqual(samples[GeneratorFamily.NearestConv][0].Pixels, samples[GeneratorFamily.BilinearConv][0].Pixels);
    }

    /// <summary>A few hundred Fashion-MNIST images, two epochs: well above chance on held-out images, and the same numbers on a rerun.</summary>
    [Fact]
    public void AClassifierLearnsFashionMnist()
    {
        var train = FashionMnist.Load(DatasetSplit.Train);
        var test = FashionMnist.Load(DatasetSplit.Test);
        LabeledImageList Subset(FashionMnist d, int count) => new(Enumerable.Range(0, count)
            .Select(i => (RgbImage.FromPlanar(d.ToPlanar32(i).Values, 32, 32), d.Label(i))).ToList());
        var (trainSet, testSet) = (Subset(train, 512), Subset(test, 256));
        ValidationMetrics Run()
        {
            using var k = new CpuKernels();
            using var net = TrainableNetwork.ResNet(k, ArchitectureDescriptor.ResNet(18, 10, ResNetStem.Cifar, width: 4), seed: 1);
            return SupervisedTrainer.Train(net, trainSet, testSet, new TrainingOptions { Epochs = 2, BatchSize = 32, LearningRate = 2e-3f, Seed = 5 });
        }
        var m = Run();
        Assert.True(m.Accuracy > 0.4, $"held-out accuracy {m.Accuracy:P1} after 2 short epochs (chance is 10%)");
        Assert.Equal(m, Run());
    }

    /// <summary>Gradient images of photo crops (real) and generator samples (synthetic) train a detector whose DAcc and FPR add up.</summary>
    [Fact]
    public void ADetectorTrainsOnGradientImages()
    {
        using var k = new CpuKernels();
        var pool = PhotoPool.Load();
        var real = pool.Crops(96, new PhotoCropOptions(32), seed: 1).ToList();
        using var gen = ImageGenerator.Create(k, GeneratorFamily.TransposedConv, seed: 2, width: 16);
        var fake = gen.Generate(96, seed: 3);
        using var d = RandomWeights.Create(k, ArchitectureDescriptor.StyleGanD(32, 512, 32, mbstdGroupSize: 1), 4).Network;
        var data = GradientDataset.Build(new GradientTransform(d), real, fake);
        Assert.Equal(192, data.Count);
        var order = Enumerable.Range(0, data.Count).OrderBy(i => (i * 7919) % data.Count).ToArray();
        var train = new LabeledImageList(order.Take(144).Select(i => data[i]).ToList());
        var held = new LabeledImageList(order.Skip(144).Select(i => data[i]).ToList());
        using var det = TrainableNetwork.ResNet(k, ArchitectureDescriptor.ResNet(18, 1, ResNetStem.Cifar, width: 4), seed: 6);
        var m = SupervisedTrainer.Train(det, train, held, new TrainingOptions { Epochs = 3, BatchSize = 16, LearningRate = 2e-3f });
        int positives = Enumerable.Range(0, held.Count).Count(i => held[i].Label == 1);
        Assert.Equal(m.Accuracy, (m.DetectionAccuracy!.Value * positives + (1 - m.FalsePositiveRate!.Value) * (held.Count - positives)) / held.Count, 9);
        Assert.True(m.Accuracy > 0.75, $"held-out accuracy {m.Accuracy:P1}, DAcc {m.DetectionAccuracy:P1}, FPR {m.FalsePositiveRate:P1}");
    }

    [Fact]
    public void CalibrationShiftsTheBiasSoThatTheAskedShareOfRealImagesIsFlagged()
    {
        using var k = new CpuKernels();
        using var det = TrainableNetwork.ResNet(k, ArchitectureDescriptor.ResNet(18, 1, ResNetStem.Cifar, width: 2), seed: 3);
        var rng = new SeededRandom(4);
        var images = Enumerable.Range(0, 200).Select(_ => { var px = new byte[32 * 32 * 3]; rng.NextBytes(px); return new RgbImage(32, 32, px); }).ToList();
        var before = DetectorCalibration.Logits(det, images);
        var r = DetectorCalibration.ShiftToFalsePositiveRate(det, images, 0.05);
        // floor(0.05 · 200) = 10 images stay above zero: the ten largest logits, every logit moved by the same shift.
        var after = DetectorCalibration.Logits(det, images);
        Assert.Equal(10, after.Count(l => l > 0));
        Assert.Equal(0.05, r.FalsePositiveRate);
        Assert.Equal(before.OrderDescending().ElementAt(10), r.LogitShift, 4);
        for (int i = 0; i < before.Length; i++) Assert.Equal(before[i] - r.LogitShift, after[i], 3);
        var top = Enumerable.Range(0, 200).OrderByDescending(i => before[i]).Take(10).ToHashSet();
        Assert.Equal(top, Enumerable.Range(0, 200).Where(i => after[i] > 0).ToHashSet());
        // Rate 0: nothing flagged; bad rates and non-binary networks are refused.
        Assert.Equal(0, DetectorCalibration.ShiftToFalsePositiveRate(det, images, 0).FalsePositiveRate);
        Assert.Throws<ArgumentException>(() => DetectorCalibration.ShiftToFalsePositiveRate(det, images, 1));
        using var classifier = TrainableNetwork.ResNet(k, ArchitectureDescriptor.ResNet(18, 3, ResNetStem.Cifar, width: 2), seed: 3);
        Assert.Throws<ArgumentException>(() => DetectorCalibration.ShiftToFalsePositiveRate(classifier, images, 0.1));
    }
}
