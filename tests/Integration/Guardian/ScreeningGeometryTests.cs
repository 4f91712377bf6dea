using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Weights;

namespace ModelGuardian.Tests.Guardian;

/// <summary>
/// The detector screens the query at the victim's input geometry: a native 28² upload, which the default victim's
/// contract pads to 32², gets exactly the verdict of its padded form — not that of a bilinear up-sampling to D's
/// side, which is what the detector is trained to flag — and a colour query keeps its colours for the detector.
/// </summary>
public sealed class ScreeningGeometryTests
{
    private static string Dir => Path.Combine(AppContext.BaseDirectory, "default-models");

    [Fact]
    public void ANative28PixelUploadIsScreenedAsTheVictimSeesIt()
    {
        using var k = new CpuKernels();
        using var victim = ModelFiles.Load(k, Path.Combine(Dir, "victim.mgw")).Network;
        using var d = ModelFiles.LoadTransform(k, Path.Combine(Dir, "transform.mgw")).Network;
        using var det = ModelFiles.Load(k, Directory.GetFiles(Dir, "detector-*.mgw").Order(StringComparer.Ordinal).First()).Network;
        var detector = new DfmsDetector(new GradientTransform(d), [new SubDetector("first", det)]);
        var models = new GuardianModels(new VictimClassifier(victim), detector);
        var test = FashionMnist.Load(DatasetSplit.Test);
        for (int i = 0; i < 20; i++)
        {
            var pixels = test.Image(i).ToArray();
            var native = new PlanarImage(28, 28, Enumerable.Range(0, 3).SelectMany(_ => pixels.Select(b => (float)b)).ToArray());
            var padded = test.ToPlanar32(i);
            var a = models.Evaluate([native])[0];
            var b = models.Evaluate([padded])[0];
            Assert.Equal(b.Verdict.Scores, a.Verdict.Scores);
            Assert.Equal(b.Probabilities, a.Probabilities);
        }
        // A colour query: the victim makes it grey, the detector sees its colours (the same scores as screening it directly).
        var rng = new SeededRandom(5);
        var colour = new PlanarImage(32, 32, Enumerable.Range(0, 3 * 32 * 32).Select(_ => (float)rng.Next(256)).ToArray());
        Assert.Equal(detector.Screen([colour])[0].Scores, models.Evaluate([colour])[0].Verdict.Scores);
    }
}
