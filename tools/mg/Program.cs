using System.CommandLine;
using System.Diagnostics;
using ModelGuardian.Engine;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Weights;

namespace ModelGuardian.Tools;

public static class Program
{
    /// <summary>Seed of the random discriminator used until trained weights are given.</summary>
    public const ulong RandomDiscriminatorSeed = 1;

    public static int Main(string[] args)
    {
        var root = new RootCommand("ModelGuardian: screens image-classifier queries for data-free model stealing.");
        root.Subcommands.Add(GradCommand());
        return root.Parse(args).Invoke();
    }

    private static Option<string> BackendOption() => new("--backend")
    {
        Description = "auto (CUDA if present, else CPU), cpu or cuda", DefaultValueFactory = _ => "auto",
    };

    private static Command GradCommand()
    {
        var image = new Argument<string>("image") { Description = "PNG/JPEG/BMP image" };
        var resolution = new Option<int>("--resolution") { Description = "side R of the discriminator and of the output", DefaultValueFactory = _ => 256 };
        var bicubic = new Option<bool>("--bicubic") { Description = "resize with PIL-style bicubic instead of bilinear" };
        var noQuantize = new Option<bool>("--no-quantize") { Description = "keep the 0–255 values unrounded (the PNG still stores 8 bits)" };
        var output = new Option<string>("--output", "-o") { Description = "output PNG", Required = true };
        var backend = BackendOption();
        var cmd = new Command("grad", "Writes the gradient representation ∂(Σ D(x))/∂x of one image as an 8-bit RGB PNG of side R.")
        {
            image, resolution, bicubic, noQuantize, output, backend,
        };
        cmd.SetAction(parse => Run(() =>
        {
            var img = RgbImage.Load(parse.GetValue(image)!);
            int r = parse.GetValue(resolution);
            var arch = ArchitectureDescriptor.StyleGanD(r, mbstdGroupSize: 1); // throws for R not a power of two in 8…1024
            using var kernels = Backends.Create(Backends.Parse(parse.GetValue(backend)!));
            Console.Error.WriteLine($"mg grad: no --model given: using a RANDOMLY initialised StyleGAN discriminator (seed {RandomDiscriminatorSeed}, {arch}); " +
                                    "the output shows the network's structure, not trained up-sampling artifacts.");
            var (d, _) = RandomWeights.Create(kernels, arch, RandomDiscriminatorSeed);
            using var _d = d;
            var transform = new GradientTransform(d, new GradientTransformOptions
            {
                Filter = parse.GetValue(bicubic) ? ResizeFilter.Bicubic : ResizeFilter.Bilinear,
                Quantize = !parse.GetValue(noQuantize),
            });
            var sw = Stopwatch.StartNew();
            var g = transform.Transform(img);
            string path = parse.GetValue(output)!;
            File.WriteAllBytes(path, g.ToRgb().EncodePng());
            Console.Error.WriteLine($"mg grad: {img.Width}×{img.Height} → {path} ({r}×{r}), D score {g.Score:G5}, {sw.ElapsedMilliseconds} ms on {kernels.Name}");
        }));
        return cmd;
    }

    /// <summary>Runs a command body: exit 0, or a one-line reason on stderr and exit 1.</summary>
    private static int Run(Action body)
    {
        try
        {
            body();
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException or InvalidOperationException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"mg: error: {e.Message}");
            return 1;
        }
    }
}
