using System.Text.Json;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Weights;
using ModelGuardian.Weights.Format;

namespace ModelGuardian.Tests.Cli;

/// <summary>`mg train init | classifier | detector` end to end on tiny data: files that load, metrics beside them, the command in the provenance.</summary>
[Collection("Console")]
public sealed class MgTrainCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-cli-train-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private string Path(params string[] parts) => System.IO.Path.Combine([_dir, .. parts]);

    private void WriteImages(string folder, int count, int seed, Func<Random, byte> pixel)
    {
        Directory.CreateDirectory(folder);
        var rng = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            var px = new byte[32 * 32 * 3];
            for (int p = 0; p < px.Length; p++) px[p] = pixel(rng);
            File.WriteAllBytes(System.IO.Path.Combine(folder, $"{i}.png"), new RgbImage(32, 32, px).EncodePng());
        }
    }

    [Fact]
    public void InitClassifierAndDetectorWriteLoadableModelsWithMetrics()
    {
        string transform = Path("d.mgw");
        var (code, _, stderr) = Mg.Run("train", "init", "--arch", "stylegan-d", "--resolution", "32", "--fmap-base", "512", "--fmap-max", "16", "--seed", "3", "-o", transform);
        Assert.True(code == 0, stderr);
        Assert.Equal(NetworkKind.StyleGanDiscriminator, WeightFile.Load(transform).Architecture.Kind);

        // Two classes told apart by brightness.
        WriteImages(Path("classes", "dark"), 10, 1, r => (byte)r.Next(0, 100));
        WriteImages(Path("classes", "light"), 10, 2, r => (byte)r.Next(156, 256));
        string victim = Path("victim.mgw");
        (code, _, stderr) = Mg.Run("train", "classifier", "--data", Path("classes"), "--width", "4", "--epochs", "2", "--batch", "6", "--backend", "cpu", "-o", victim);
        Assert.True(code == 0, stderr);
        using var k = new CpuKernels();
        var (net, contents) = ModelFiles.Load(k, victim);
        net.Dispose();
        Assert.Equal(2, contents.Architecture.Outputs);
        Assert.Contains(contents.Provenance.Notes, n => n.StartsWith("command: mg train classifier", StringComparison.Ordinal));
        var metrics = JsonDocument.Parse(File.ReadAllText(Path("victim.metrics.json"))).RootElement;
        Assert.InRange(metrics.GetProperty("accuracy").GetDouble(), 0, 1);

        WriteImages(Path("real"), 12, 3, r => (byte)r.Next(256));
        string detector = Path("det.mgw");
        (code, _, stderr) = Mg.Run("train", "detector", "--real", Path("real"), "--fake", "generator:nearest", "--count", "12", "--generators", "3",
            "--transform", transform, "--width", "4", "--epochs", "1", "--batch", "8", "--post-process", "0.5", "--post-process-resampling", "--backend", "cpu", "-o", detector);
        Assert.True(code == 0, stderr);
        Assert.Contains("DAcc", stderr);
        var saved = WeightFile.Load(detector);
        var d = saved.Architecture;
        Assert.Equal((1, 32), (d.Outputs, d.InputSide)); // one logit, at D's resolution
        // The provenance says what the detector was trained on, post-processing included; `mg eval` reads its families from it.
        Assert.EndsWith("fake generator:nearest, transform " + transform + ", post-processed p 0.5 with resampling", saved.Provenance.SourceFile);
        Assert.Equal([GeneratorFamily.NearestConv], ModelGuardian.Tools.ModelFolder.TrainingFamilies(k, _dir, saved.Provenance.SourceFile)!);
        Assert.True(File.Exists(Path("det.metrics.json")));

        // Grey-headed instances as a source, and a calibrated operating point on fresh real images (a folder has none to spare).
        (code, _, stderr) = Mg.Run("train", "detector", "--real", "photos", "--fake", "generator-grey:bilinear", "--count", "12", "--generators", "3",
            "--transform", transform, "--width", "4", "--epochs", "1", "--batch", "8", "--target-fpr", "0.1", "--calibration-count", "100", "--backend", "cpu", "-o", Path("det2.mgw"));
        Assert.True(code == 0, stderr);
        Assert.Contains("of 100 fresh real images flagged", stderr);
        var calibrated = WeightFile.Load(Path("det2.mgw")).Provenance.SourceFile;
        Assert.Contains("calibrated to FPR 0.1 on 100 fresh real images (photos)", calibrated);
        Assert.Equal([GeneratorFamily.BilinearConv], ModelGuardian.Tools.ModelFolder.TrainingFamilies(k, _dir, calibrated)!);
        (code, _, stderr) = Mg.Run("train", "detector", "--real", Path("real"), "--fake", "generator:nearest", "--count", "12", "--target-fpr", "0.1", "--backend", "cpu", "-o", Path("det3.mgw"));
        Assert.Equal(1, code);
        Assert.Contains("a folder has none to spare", stderr);
    }

    [Fact]
    public void GanWritesLoadableGeneratorAndDiscriminatorMetricsAndSamples()
    {
        WriteImages(Path("photos"), 6, 4, r => (byte)r.Next(256));
        string prefix = Path("gan", "run");
        var (code, _, stderr) = Mg.Run("train", "gan", "--family", "transposed", "--iterations", "2", "--batch", "4", "--width", "4",
            "--d-fmap-base", "256", "--d-fmap-max", "8", "--real", Path("photos"), "--seed", "5", "--backend", "cpu", "-o", prefix);
        Assert.True(code == 0, stderr);
        Assert.Contains("D(real)", stderr);
        using var k = new CpuKernels();
        var (g, contents) = GeneratorFiles.Load(k, prefix + "-generator.mgw");
        g.Dispose();
        Assert.Equal((GeneratorFamily.TransposedConv, 4), (contents.Architecture.GeneratorFamily, contents.Architecture.Width));
        Assert.Contains(contents.Provenance.Notes, n => n.StartsWith("command: mg train gan", StringComparison.Ordinal));
        var (d, dc) = ModelFiles.LoadTransform(k, prefix + "-discriminator.mgw");
        d.Dispose();
        Assert.Equal((32, 256, 8), (dc.Architecture.Resolution, dc.Architecture.FmapBase, dc.Architecture.FmapMax));
        var metrics = JsonDocument.Parse(File.ReadAllText(prefix + "-metrics.json")).RootElement;
        Assert.Equal(2, metrics.GetProperty("iterations").GetInt32());
        Assert.Equal(5UL, metrics.GetProperty("seed").GetUInt64());
        Assert.True(double.IsFinite(metrics.GetProperty("d_loss").GetDouble()) && double.IsFinite(metrics.GetProperty("g_loss").GetDouble()));
        Assert.StartsWith("mg train gan --family transposed", metrics.GetProperty("command").GetString());
        var samples = RgbImage.Load(prefix + "-samples.png");
        Assert.Equal((274, 274), (samples.Width, samples.Height)); // 8 × 8 samples of 32², 2-pixel gutters

        // The discriminator is a transformation model for mg grad; the generator a source of fakes for a detector.
        (code, _, stderr) = Mg.Run("grad", Path("photos", "0.png"), "--model", prefix + "-discriminator.mgw", "--backend", "cpu", "-o", Path("g.png"));
        Assert.True(code == 0, stderr);
        (code, _, stderr) = Mg.Run("train", "detector", "--real", Path("photos"), "--fake", "generator-file:" + prefix + "-generator.mgw", "--count", "6",
            "--transform", prefix + "-discriminator.mgw", "--width", "4", "--epochs", "1", "--batch", "4", "--backend", "cpu", "-o", Path("det.mgw"));
        Assert.True(code == 0, stderr);
        Assert.Contains("image generator transposed width 4", stderr);

        // A folder as the output.
        (code, _, stderr) = Mg.Run("train", "gan", "--family", "bilinear", "--iterations", "1", "--batch", "2", "--width", "4",
            "--d-fmap-base", "256", "--d-fmap-max", "8", "--real", Path("photos"), "--backend", "cpu", "-o", Path("ganfolder") + "/");
        Assert.True(code == 0, stderr);
        Assert.True(File.Exists(Path("ganfolder", "generator.mgw")) && File.Exists(Path("ganfolder", "samples.png")));
    }

    [Fact]
    public void BadTrainingArgumentsExitNonZeroWithOneLine()
    {
        var (code, _, stderr) = Mg.Run("train", "detector", "--fake", "generator:cubic", "--count", "4", "--backend", "cpu", "-o", Path("x.mgw"));
        Assert.Equal(1, code);
        Assert.Contains("Unknown generator family 'cubic'", stderr);
        (code, _, stderr) = Mg.Run("train", "detector", "--fake", "generator:nearest", "--post-process", "1.5", "--count", "4", "--backend", "cpu", "-o", Path("x.mgw"));
        Assert.Equal(1, code);
        Assert.Contains("--post-process must lie in [0, 1]", stderr);
        (code, _, stderr) = Mg.Run("train", "detector", "--fake", "generator:nearest", "--post-process-resampling", "--count", "4", "--backend", "cpu", "-o", Path("x.mgw"));
        Assert.Equal(1, code);
        Assert.Contains("needs a --post-process probability", stderr);
        (code, _, stderr) = Mg.Run("train", "gan", "--family", "cubic", "--backend", "cpu", "-o", Path("z"));
        Assert.Equal(1, code);
        Assert.Contains("Unknown generator family 'cubic'", stderr);
        (code, _, stderr) = Mg.Run("train", "classifier", "--data", Path("nowhere"), "-o", Path("y.mgw"));
        Assert.Equal(1, code);
        Assert.StartsWith("mg: error:", stderr.Trim());
    }
}
