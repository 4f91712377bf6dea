using ModelGuardian.Engine.Networks;
using System.Text.Json;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Weights;

namespace ModelGuardian.Tests.Training;

/// <summary>
/// The built-in defaults (weights/default, made by make-defaults.sh) load, and reproduce what their
/// .metrics.json files — and README — record: the victim's accuracy on 1,000 Fashion-MNIST test
/// images within 3 points of the full test set's; each detector's DAcc on fresh samples of its own
/// sources (a trained generator of one of its two families, and an untrained instance no detector saw of the
/// other) and its FPR on Fashion-MNIST test images within the stated bounds.
/// </summary>
public sealed class DefaultModelsTests
{
    private static string Dir => Path.Combine(AppContext.BaseDirectory, "default-models");

    private static JsonElement Metrics(string name) => JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, name + ".metrics.json"))).RootElement;

    /// <summary>
    /// The victim, and Adaptive Misinformation's misinformation model (trained to avoid the true class: its accuracy is near 0
    /// and it gives the true class little probability), reproduce their recorded accuracy.
    /// </summary>
    [Theory]
    [InlineData("victim")]
    [InlineData("misinformation")]
    public void TheClassifiersReproduceTheirRecordedAccuracy(string name)
    {
        using var k = new CpuKernels();
        var (net, contents) = ModelFiles.Load(k, Path.Combine(Dir, name + ".mgw"));
        using var _n = net;
        Assert.Contains(contents.Provenance.Notes, n => n.StartsWith("command: mg train classifier", StringComparison.Ordinal));
        var classifier = new VictimClassifier(net);
        var test = FashionMnist.Load(DatasetSplit.Test);
        int correct = 0;
        double trueProbability = 0;
        for (int start = 0; start < 1000; start += 50)
        {
            var p = classifier.Predict(Enumerable.Range(start, 50).Select(test.ToPlanar32).ToList());
            for (int i = 0; i < 50; i++)
            {
                if (DeceptivePredictions.ArgMax(p[i]) == test.Label(start + i)) correct++;
                trueProbability += p[i][test.Label(start + i)] / 1000;
            }
        }
        double recorded = Metrics(name).GetProperty("accuracy").GetDouble();
        Assert.InRange(correct / 1000.0, recorded - 0.03, recorded + 0.03);
        if (name == "misinformation") Assert.True(trueProbability < 0.05, $"the misinformation model gives the true class {trueProbability:P1} on average");
    }

    /// <summary>
    /// SEAT's encoder (threshold 1, 50 pairs) leaves a natural stream alone — the 1,000 test images that mg eval's benign user
    /// sends — and flags a near-duplicate one: 10 test images sent 10 times each with ±4 grey levels of uniform noise.
    /// </summary>
    [Fact]
    public void TheSeatEncoderFlagsNearDuplicatesAndNotANaturalStream()
    {
        using var k = new CpuKernels();
        var (net, contents) = ModelFiles.Load(k, Path.Combine(Dir, "seat-encoder.mgw"));
        using var _n = net;
        Assert.Contains(contents.Provenance.Notes, n => n.StartsWith("command: mg train seat-encoder", StringComparison.Ordinal));
        var encoder = new Engine.Defenses.SeatEncoder(net);
        var test = FashionMnist.Load(DatasetSplit.Test);
        float[] Unit(int i) => test.ToPlanar32(i).Values.Select(v => v / 255f).ToArray();
        var natural = new Engine.Defenses.SeatDetector(new Engine.Defenses.SeatOptions(1));
        for (int start = 0; start < 1000; start += 100)
            foreach (var e in encoder.Embed(Enumerable.Range(start, 100).SelectMany(Unit).ToArray(), 100)) natural.Observe(e);
        Assert.False(natural.Flagged, $"{natural.SimilarPairs} similar pairs among 1,000 test images");
        var rng = new Random(4);
        var duplicates = new Engine.Defenses.SeatDetector(new Engine.Defenses.SeatOptions(1));
        var stream = Enumerable.Range(0, 100).SelectMany(q => Unit(q / 10).Select(v => Math.Clamp(v + (float)((rng.NextDouble() * 2 - 1) * 4 / 255), 0f, 1f))).ToArray();
        foreach (var e in encoder.Embed(stream, 100)) duplicates.Observe(e);
        Assert.True(duplicates.Flagged, $"only {duplicates.SimilarPairs} similar pairs among 10 images sent 10 times with noise");
    }

    [Theory]
    [InlineData("no-transposed", GeneratorFamily.NearestConv, "bilinear")]
    [InlineData("no-nearest", GeneratorFamily.TransposedConv, "bilinear")]
    [InlineData("no-bilinear", GeneratorFamily.NearestConv, "transposed")]
    public void EachDetectorReproducesItsRecordedDAccAndFpr(string name, GeneratorFamily family, string trainedFamily)
    {
        using var k = new CpuKernels();
        using var d = ModelFiles.LoadTransform(k, Path.Combine(Dir, "transform.mgw")).Network;
        using var det = ModelFiles.Load(k, Path.Combine(Dir, $"detector-{name}.mgw")).Network;
        var detector = new DfmsDetector(new GradientTransform(d), [new SubDetector(name, det)]);
        using var g = ImageGenerator.Create(k, family, 77_000); // an instance (no detector saw) of one of the detector's two families
        // Half fresh samples of the other family's trained generator (noise it never saw), half the untrained instance: two of its sources.
        var (trained, _) = GeneratorFiles.Load(k, Path.Combine(Dir, $"gan-{trainedFamily}", "generator.mgw"));
        using var _t = trained;
        var synthetic = g.Generate(75, 78_000).Concat(trained.Generate(75, 79_000)).Select(PlanarImage.From).ToList();
        var test = FashionMnist.Load(DatasetSplit.Test);
        var benign = Enumerable.Range(0, 150).Select(test.ToPlanar32).ToList();
        double dacc = detector.Screen(synthetic).Count(v => v.Flagged) / 150.0;
        double fpr = detector.Screen(benign).Count(v => v.Flagged) / 150.0;
        var m = Metrics($"detector-{name}");
        double recordedDacc = m.GetProperty("dacc").GetDouble(), recordedFpr = m.GetProperty("fpr").GetDouble();
        Assert.True(dacc >= recordedDacc - 0.10, $"{name}: DAcc {dacc:P1} on a new generator instance, {recordedDacc:P1} recorded");
        Assert.True(fpr <= recordedFpr + 0.05, $"{name}: FPR {fpr:P1} on Fashion-MNIST test images, {recordedFpr:P1} recorded");
    }
}
