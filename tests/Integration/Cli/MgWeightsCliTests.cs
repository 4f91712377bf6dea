using System.Text.Json;
using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Tests.Weights;
using ModelGuardian.Weights;

namespace ModelGuardian.Tests.Cli;

/// <summary>
/// LGrad's genforce StyleGAN .pth, NVIDIA's TF .pkl and a CNNDetection
/// ResNet-50 .pth convert with `mg convert`, and what they become is usable by `mg inspect`,
/// `mg grad --model` and `mg predict`.
/// </summary>
[Collection("Console")]
public sealed class MgWeightsCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-cli-w-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private string Path(string name) => System.IO.Path.Combine(_dir, name);

    private string Convert(string fixture, params string[] extra)
    {
        var f = WeightFixtures.Named(fixture);
        string output = Path(fixture + ".mgw");
        var (code, _, stderr) = Mg.Run([.. new[] { "convert", f.Path }, .. WeightFixtures.ArchArgs(f.Architecture), .. extra, "-o", output]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"→ {output}", stderr);
        return output;
    }

    private string Image(int w, int h)
    {
        var px = new byte[w * h * 3];
        new Random(w + h).NextBytes(px);
        string path = Path($"img{w}x{h}.png");
        File.WriteAllBytes(path, new RgbImage(w, h, px).EncodePng());
        return path;
    }

    [Theory]
    [InlineData("stylegan-d128-genforce.pth", "state dict under 'discriminator'")]
    [InlineData("stylegan-d128-karras.pkl", "variables of TF network 'D'")]
    [InlineData("resnet50w4-cnndetection.pth", "state dict under 'model'")]
    public void ConvertsAndInspects(string fixture, string note)
    {
        string file = Convert(fixture);
        var (code, stdout, stderr) = Mg.Run("inspect", file);
        Assert.True(code == 0, stderr);
        var f = WeightFixtures.Named(fixture);
        Assert.Contains($"architecture:  {f.Architecture}", stdout);
        Assert.Contains("checksum:      valid", stdout);
        Assert.Contains($"source:        {fixture}", stdout);
        Assert.Contains(note, stdout);
        Assert.Contains($"parameters:    {ParameterSchema.ParameterCount(f.Architecture):N0} in", stdout);
        foreach (var p in ParameterSchema.For(f.Architecture)) Assert.Contains(p.Name, stdout);
    }

    [Fact]
    public void InspectReportsAChangedFileAndFails()
    {
        string file = Convert("stylegan-d32-genforce.pth");
        var bytes = File.ReadAllBytes(file);
        bytes[bytes.Length / 2] ^= 1;
        File.WriteAllBytes(file, bytes);
        var (code, stdout, stderr) = Mg.Run("inspect", file);
        Assert.Equal(1, code);
        Assert.Contains("MISMATCH", stdout);
        Assert.Contains("mg: error:", stderr);
        Assert.Contains("checksum mismatch", stderr);
    }

    [Fact]
    public void GradWithAConvertedDiscriminatorUsesIt()
    {
        string d = Convert("stylegan-d128-karras.pkl");
        string output = Path("g.png");
        var (code, _, stderr) = Mg.Run("grad", Image(40, 30), "--model", d, "--backend", "cpu", "-o", output);
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain("RANDOMLY", stderr);
        var g = RgbImage.Load(output);
        Assert.Equal((128, 128), (g.Width, g.Height));

        // A classifier is not a transformation model; --resolution belongs to the random D only.
        string r = Convert("resnet50w4-cnndetection.pth");
        Assert.Contains("not a StyleGAN discriminator", Mg.Run("grad", Image(8, 8), "--model", r, "-o", output).Stderr);
        Assert.Contains("--resolution", Mg.Run("grad", Image(8, 8), "--model", d, "--resolution", "64", "-o", output).Stderr);
    }

    [Fact]
    public void PredictJsonMatchesTheEngineAndItsProbabilities()
    {
        string model = Convert("resnet18w8-cifar.pt");
        string image = Image(50, 40);
        var (code, stdout, stderr) = Mg.Run("predict", image, "--model", model, "--json", "--backend", "cpu");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var outputs = doc.RootElement.GetProperty("outputs").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var probabilities = doc.RootElement.GetProperty("probabilities").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(10, outputs.Length);
        Assert.Equal(1.0, probabilities.Sum(), 1e-9);
        Assert.Equal(Array.IndexOf(outputs, outputs.Max()), Array.IndexOf(probabilities, probabilities.Max()));

        using var k = new CpuKernels();
        var (net, _) = ModelFiles.Load(k, model);
        using var _n = net;
        var expected = net.Forward(NetworkInput.FromImage(net, RgbImage.Load(image)), new Shape4(1, 3, 32, 32));
        Assert.Equal(expected, outputs);

        string detector = Convert("resnet50w4-cnndetection.pth");
        (code, stdout, _) = Mg.Run("predict", image, "--model", detector, "--json", "--backend", "cpu");
        Assert.Equal(0, code);
        using var single = JsonDocument.Parse(stdout);
        float logit = single.RootElement.GetProperty("outputs")[0].GetSingle();
        Assert.Equal(1 / (1 + Math.Exp(-logit)), single.RootElement.GetProperty("probabilities")[0].GetDouble(), 1e-12); // one output: sigmoid

        (code, stdout, _) = Mg.Run("predict", image, "--model", detector, "--backend", "cpu");
        Assert.Equal(0, code);
        Assert.Contains("sigmoid", stdout);
    }

    [Fact]
    public void ConvertRecordsAnotherNormalisation()
    {
        string file = Convert("resnet18w8-cifar.safetensors", "--mean", "0.4914,0.4822,0.4465", "--std", "0.247,0.243,0.261");
        Assert.Contains("mean [0.4914, 0.4822, 0.4465], std [0.247, 0.243, 0.261]", Mg.Run("inspect", file).Stdout);
    }

    [Theory]
    [InlineData("hostile", "'os.system'")]
    [InlineData("mismatch", "does not fit")]
    [InlineData("meanonly", "--mean and --std go together")]
    [InlineData("badmean", "not a number")]
    [InlineData("missing", "does not exist")]
    [InlineData("arch", "Unknown architecture")]
    public void ConvertErrorsExitNonZeroWithOneLine(string what, string message)
    {
        var f = WeightFixtures.Named("resnet18w8-cifar.pt");
        string[] args = what switch
        {
            "hostile" => ["convert", WeightFixtures.PathOf(System.IO.Path.Combine("hostile", "os-system.pt")), "--arch", "resnet18"],
            "mismatch" => ["convert", f.Path, "--arch", "resnet18-cifar", "--classes", "10"], // width 64, the file has 8
            "meanonly" => ["convert", f.Path, .. WeightFixtures.ArchArgs(f.Architecture), "--mean", "0.5,0.5,0.5"],
            "badmean" => ["convert", f.Path, .. WeightFixtures.ArchArgs(f.Architecture), "--mean", "0.5,x,0.5", "--std", "1,1,1"],
            "missing" => ["convert", Path("nope.pt"), "--arch", "resnet18"],
            _ => ["convert", f.Path, "--arch", "vgg16"],
        };
        string output = Path("out.mgw");
        var (code, _, stderr) = Mg.Run([.. args, "-o", output]);
        Assert.Equal(1, code);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("mg: error:", line);
        Assert.Contains(message, line);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void Convert_records_an_input_contract_that_inspect_and_predict_apply()
    {
        string victim = System.IO.Path.Combine(AppContext.BaseDirectory, "default-models", "victim.mgw"), output = Path("victim-resized.mgw");
        // Re-recorded with a plain resize, then back with the padding it was trained with: the tensors never change.
        var (code, _, stderr) = Mg.Run("convert", victim, "--arch", "resnet18-cifar", "--classes", "10", "--width", "16", "--fit", "resize", "-o", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("queries:       resized (bilinear)", Mg.Run("inspect", output).Stdout);
        (code, _, stderr) = Mg.Run("convert", output, "--arch", "resnet18-cifar", "--classes", "10", "--width", "16", "--fit", "pad", "--content-side", "28", "--grey", "-o", Path("victim-padded.mgw"));
        Assert.True(code == 0, stderr);
        Assert.Contains("grey (luma), square, resized (bilinear) to 28² if another size, padded with 0", Mg.Run("inspect", Path("victim-padded.mgw")).Stdout);
        // A 40×20 query cannot be padded to a square: a one-line reason, exit 1.
        string wide = Path("wide.png");
        File.WriteAllBytes(wide, new RgbImage(40, 20, new byte[40 * 20 * 3]).EncodePng());
        (code, _, stderr) = Mg.Run("predict", wide, "--model", Path("victim-padded.mgw"));
        Assert.Equal(1, code);
        Assert.Contains("square", stderr);
        // Contract settings without --fit, or another architecture than the file's, are refused.
        Assert.Contains("give --fit too", Mg.Run("convert", victim, "--arch", "resnet18-cifar", "--classes", "10", "--width", "16", "--grey", "-o", Path("x.mgw")).Stderr);
        Assert.Contains("re-recording keeps the architecture", Mg.Run("convert", victim, "--arch", "resnet18-cifar", "--classes", "10", "--width", "8", "-o", Path("x.mgw")).Stderr);
    }
}
