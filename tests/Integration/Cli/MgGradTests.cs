using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Tests.Cli;

/// <summary>`mg grad` end to end, in-process: exit codes, the PNG it writes, and what it tells the user.</summary>
[Collection("Console")] // these tests redirect Console.Error
public sealed class MgGradTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-cli-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static (int Code, string Stderr) Mg(params string[] args)
    {
        var (code, _, stderr) = Cli.Mg.Run(args);
        return (code, stderr);
    }

    private string Image(int w, int h)
    {
        var px = new byte[w * h * 3];
        new Random(w * h).NextBytes(px);
        var path = Path.Combine(_dir, $"in{w}x{h}.png");
        File.WriteAllBytes(path, new RgbImage(w, h, px).EncodePng());
        return path;
    }

    [Fact]
    public void WritesAnRgbPngOfTheRequestedSideAndSaysTheWeightsAreRandom()
    {
        string output = Path.Combine(_dir, "g.png");
        var (code, stderr) = Mg("grad", Image(20, 12), "--resolution", "32", "--backend", "cpu", "-o", output);
        Assert.Equal(0, code);
        Assert.Contains("RANDOMLY initialised", stderr);
        var g = RgbImage.Load(output);
        Assert.Equal((32, 32), (g.Width, g.Height));
        Assert.Contains((byte)0, g.Pixels);   // per-image min-max: the minimum maps to 0
        Assert.Contains((byte)255, g.Pixels); // and the maximum to 255
    }

    [Fact]
    public void BicubicAndBilinearDiffer()
    {
        string a = Path.Combine(_dir, "a.png"), b = Path.Combine(_dir, "b.png"), input = Image(9, 9);
        Assert.Equal(0, Mg("grad", input, "--resolution", "32", "--backend", "cpu", "-o", a).Code);
        Assert.Equal(0, Mg("grad", input, "--resolution", "32", "--backend", "cpu", "--bicubic", "-o", b).Code);
        Assert.NotEqual(File.ReadAllBytes(a), File.ReadAllBytes(b));
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("garbage")]
    [InlineData("resolution")]
    public void BadInputExitsNonZeroWithOneLine(string what)
    {
        string input = what switch
        {
            "missing" => Path.Combine(_dir, "nope.png"),
            "garbage" => Path.Combine(_dir, "garbage.png"),
            _ => Image(8, 8),
        };
        if (what == "garbage") File.WriteAllText(input, "this is not an image");
        var (code, stderr) = Mg("grad", input, "--resolution", what == "resolution" ? "48" : "32", "--backend", "cpu", "-o", Path.Combine(_dir, "x.png"));
        Assert.NotEqual(0, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines, l => l.StartsWith("mg: error:", StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(_dir, "x.png")));
    }
}
