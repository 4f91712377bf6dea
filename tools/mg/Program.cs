using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ModelGuardian.Engine;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Weights;
using ModelGuardian.Weights.Format;
using ModelGuardian.Weights.Mapping;

namespace ModelGuardian.Tools;

public static class Program
{
    /// <summary>Seed of the random discriminator used until trained weights are given.</summary>
    public const ulong RandomDiscriminatorSeed = 1;

    /// <summary>The arguments of the running command (what `mg train` records as its command line in a weight file's provenance).</summary>
    internal static IReadOnlyList<string> Arguments { get; private set; } = [];

    public static int Main(string[] args)
    {
        Arguments = args;
        var root = new RootCommand("ModelGuardian: screens image-classifier queries for data-free model stealing.");
        root.Subcommands.Add(GradCommand());
        root.Subcommands.Add(ConvertCommand());
        root.Subcommands.Add(InspectCommand());
        root.Subcommands.Add(PredictCommand());
        foreach (var c in GuardianCommands.All()) root.Subcommands.Add(c);
        root.Subcommands.Add(TrainCommands.Create());
        root.Subcommands.Add(DemoCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(AttackCommand.Create());
        return root.Parse(args).Invoke();
    }

    private static Option<string> BackendOption() => new("--backend")
    {
        Description = "auto (CUDA if present, else CPU), cpu or cuda", DefaultValueFactory = _ => "auto",
    };

    private static Option<string?> ModelOption(string description) => new("--model") { Description = description };

    private static Command GradCommand()
    {
        var image = new Argument<string>("image") { Description = "PNG/JPEG/BMP image" };
        var resolution = new Option<int?>("--resolution") { Description = "side R of a random discriminator (default 256; a --model fixes its own)" };
        var model = ModelOption("StyleGAN discriminator weight file (.mgw from mg convert); without it a seeded random D is used");
        var bicubic = new Option<bool>("--bicubic") { Description = "resize with PIL-style bicubic instead of bilinear" };
        var noQuantize = new Option<bool>("--no-quantize") { Description = "keep the 0–255 values unrounded (the PNG still stores 8 bits)" };
        var output = new Option<string>("--output", "-o") { Description = "output PNG", Required = true };
        var backend = BackendOption();
        var cmd = new Command("grad", "Writes the gradient representation ∂(Σ D(x))/∂x of one image as an 8-bit RGB PNG of side R.")
        {
            image, resolution, model, bicubic, noQuantize, output, backend,
        };
        cmd.SetAction(parse => Run(() =>
        {
            var img = RgbImage.Load(parse.GetValue(image)!);
            using var kernels = Backends.Create(Backends.Parse(parse.GetValue(backend)!));
            string? modelPath = parse.GetValue(model);
            Network d;
            if (modelPath != null)
            {
                if (parse.GetValue(resolution) != null) throw new ArgumentException("--resolution applies to the random discriminator only; a --model has its own resolution.");
                var (net, contents) = ModelFiles.LoadTransform(kernels, modelPath);
                Warn(contents.Warnings);
                d = net;
            }
            else
            {
                var arch = ArchitectureDescriptor.StyleGanD(parse.GetValue(resolution) ?? 256, mbstdGroupSize: 1); // throws for R not a power of two in 8…1024
                Console.Error.WriteLine($"mg grad: no --model given: using a RANDOMLY initialised StyleGAN discriminator (seed {RandomDiscriminatorSeed}, {arch}); " +
                                        "the output shows the network's structure, not trained up-sampling artifacts.");
                d = RandomWeights.Create(kernels, arch, RandomDiscriminatorSeed).Network;
            }
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
            int r = transform.Resolution;
            Console.Error.WriteLine($"mg grad: {img.Width}×{img.Height} → {path} ({r}×{r}), D score {g.Score:G5}, {sw.ElapsedMilliseconds} ms on {kernels.Name}");
        }));
        return cmd;
    }

    private static Command ConvertCommand()
    {
        var source = new Argument<string>("source") { Description = "torch.save checkpoint (.pt/.pth, zip or legacy), .safetensors, NVIDIA StyleGAN TF pickle (.pkl), or a .mgw file to re-record with other input settings" };
        var arch = new Option<string>("--arch") { Description = "resnet18|resnet34|resnet50 (each also -cifar) or stylegan-d", Required = true };
        var classes = new Option<int>("--classes") { Description = "outputs of a ResNet's final layer (1 = a single logit)", DefaultValueFactory = _ => 1 };
        var resolution = new Option<int>("--resolution") { Description = "StyleGAN discriminator resolution", DefaultValueFactory = _ => 256 };
        var width = new Option<int>("--width") { Description = "ResNet stem/first-stage width (torchvision: 64)", DefaultValueFactory = _ => 64 };
        var fmapBase = new Option<int>("--fmap-base") { Description = "StyleGAN channel rule nf(res) = min(base/res, max)", DefaultValueFactory = _ => 16384 };
        var fmapMax = new Option<int>("--fmap-max") { Description = "StyleGAN maximum channels", DefaultValueFactory = _ => 512 };
        var inputSide = new Option<int?>("--input-side") { Description = "ResNet input side images are resized to (default 224, CIFAR stem 32)" };
        var mean = new Option<string?>("--mean") { Description = "per-channel input mean, e.g. 0.485,0.456,0.406 (record another normalisation)" };
        var std = new Option<string?>("--std") { Description = "per-channel input std, e.g. 0.229,0.224,0.225" };
        var key = new Option<string?>("--key") { Description = "where the state dict is (e.g. model, state_dict) or which TF network (default D)" };
        var allowMissing = new Option<bool>("--allow-missing") { Description = "initialise missing tensors randomly instead of failing (they are listed)" };
        var ignoreUnexpected = new Option<bool>("--ignore-unexpected") { Description = "drop tensors the network does not use instead of failing (they are listed)" };
        var output = new Option<string>("--output", "-o") { Description = "weight file to write (.mgw)", Required = true };
        var contract = new InputContractOptions();
        var cmd = new Command("convert", "Converts a PyTorch, safetensors or StyleGAN TF checkpoint into a ModelGuardian weight file, strictly checked against the architecture.")
        {
            source, arch, classes, resolution, width, fmapBase, fmapMax, inputSide, mean, std, key, allowMissing, ignoreUnexpected, output,
        };
        contract.AddTo(cmd);
        cmd.SetAction(parse => Run(() =>
        {
            var a = ArchitectureDescriptor.Parse(parse.GetValue(arch)!, parse.GetValue(classes), parse.GetValue(resolution), parse.GetValue(width),
                                                 parse.GetValue(fmapBase), parse.GetValue(fmapMax));
            if (parse.GetValue(inputSide) is int side)
            {
                if (a.Kind != NetworkKind.ResNet) throw new ArgumentException("--input-side applies to ResNets; a StyleGAN discriminator's input side is its resolution.");
                a = ArchitectureDescriptor.ResNet(a.Depth, a.Outputs, a.Stem, side, a.Width);
                if (side < a.MinimumInputSide || side > 4096) throw new ArgumentException($"--input-side must be in {a.MinimumInputSide}…4096, got {side}.");
            }
            string? m = parse.GetValue(mean), s = parse.GetValue(std);
            if ((m == null) != (s == null)) throw new ArgumentException("--mean and --std go together.");
            if (m != null) a = a with { Normalization = InputNormalization.Validated(ParseFloats(m, "--mean"), ParseFloats(s!, "--std")) };
            if (contract.Read(parse, a.InputSide) is { } input) a = a with { Input = input };
            string src = parse.GetValue(source)!, outPath = parse.GetValue(output)!;
            if (!File.Exists(src)) throw new FileNotFoundException($"'{src}' does not exist.");
            if (IsWeightFile(src))
            {
                Rerecord(src, a, outPath);
                return;
            }
            using var bar = ProgressBar.ForFile(src, "reading");
            var report = WeightConverter.Convert(src, a, outPath, new MappingOptions
            {
                AllowMissing = parse.GetValue(allowMissing), IgnoreUnexpected = parse.GetValue(ignoreUnexpected), Key = parse.GetValue(key),
            }, bar);
            bar?.Dispose();
            foreach (var note in report.Provenance.Notes) Console.Error.WriteLine($"mg convert: {note}");
            Warn(report.Warnings);
            Console.Error.WriteLine($"mg convert: {src} ({report.SourceFormat}) → {outPath}: {a}, {report.ParameterCount:N0} parameters");
        }));
        return cmd;
    }

    private static bool IsWeightFile(string path)
    {
        Span<byte> head = stackalloc byte[32];
        using var f = File.OpenRead(path);
        return WeightFile.LooksLikeWeightFile(head[..f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false)]);
    }

    /// <summary>
    /// A .mgw source: the same tensors under <paramref name="a"/>, which must be the file's own architecture with only its
    /// input settings (side, normalisation, contract) changed; the provenance keeps the original source and says so.
    /// </summary>
    private static void Rerecord(string src, ArchitectureDescriptor a, string outPath)
    {
        var c = ModelFiles.LoadChecked(src);
        var old = c.Architecture;
        if (old with { Normalization = null, Input = null } != a with { Normalization = null, Input = null })
            throw new ArgumentException($"'{src}' holds a {old}; re-recording keeps the architecture and changes only --mean/--std and the input contract, but --arch etc. describe a {a}.");
        a = a with { Normalization = a.Normalization ?? old.Normalization, Input = a.Input ?? old.Input };
        var notes = c.Provenance.Notes.Append($"re-recorded by mg convert from {Path.GetFileName(src)}: input {a.Input?.ToString() ?? "resized"}").ToList();
        WeightFile.Save(outPath, a, c.Tensors, c.Provenance with { Notes = notes });
        Console.Error.WriteLine($"mg convert: {src} → {outPath}: {a}, queries {a.Input?.ToString() ?? "resized"}");
    }

    private static Command InspectCommand()
    {
        var file = new Argument<string>("file") { Description = "ModelGuardian weight file (.mgw)" };
        var cmd = new Command("inspect", "Shows a weight file's architecture, tensors, parameter count, checksum state and provenance.") { file };
        cmd.SetAction(parse => Run(() =>
        {
            string path = parse.GetValue(file)!;
            var c = WeightFile.Load(path, requireValidChecksum: false);
            var a = c.Architecture;
            var o = Console.Out;
            o.WriteLine($"file:          {path}");
            o.WriteLine($"format:        ModelGuardian weights, version {c.Version}");
            o.WriteLine($"checksum:      {(c.ChecksumValid ? "valid (SHA-256 of the payload)" : "MISMATCH: the file was changed after it was written")}");
            o.WriteLine($"architecture:  {a}");
            if (a.Kind == NetworkKind.ImageGenerator) o.WriteLine($"output:        3×{a.Resolution}×{a.Resolution} through a sigmoid (0…1 = pixel/255), from {Engine.Training.ImageGenerator.NoiseSize} N(0, 1) noise values");
            else
            {
                o.WriteLine($"input:         {a.InputChannels}×{a.InputSide}×{a.InputSide}, mean [{Floats(a.EffectiveNormalization.Mean)}], std [{Floats(a.EffectiveNormalization.Std)}]");
                o.WriteLine($"queries:       {(a.Input is { } contract ? contract.ToString() : "resized (no contract recorded: bilinear unless the caller says otherwise)")}");
            }
            o.WriteLine($"parameters:    {c.Tensors.Tensors.Values.Sum(t => (long)t.Length):N0} in {c.Tensors.Tensors.Count} tensors");
            var p = c.Provenance;
            o.WriteLine($"source:        {p.SourceFile} ({p.SourceFormat}), SHA-256 {p.SourceSha256}");
            o.WriteLine($"converted:     {p.ConvertedAt:O} by {p.Converter}");
            foreach (var note in p.Notes) o.WriteLine($"note:          {note}");
            o.WriteLine();
            int nameWidth = Math.Max(4, c.Tensors.Tensors.Keys.Select(k => k.Length).DefaultIfEmpty(0).Max());
            o.WriteLine($"{"name".PadRight(nameWidth)}  {"shape",-20} {"count",12}");
            foreach (var (name, t) in c.Tensors.Tensors) o.WriteLine($"{name.PadRight(nameWidth)}  {t.ShapeText,-20} {t.Length,12:N0}");
            Warn(c.Warnings);
            if (!c.ChecksumValid) throw new InvalidDataException($"'{path}': checksum mismatch (contents shown above are not trustworthy).");
        }));
        return cmd;
    }

    private static Command PredictCommand()
    {
        var image = new Argument<string>("image") { Description = "PNG/JPEG/BMP image" };
        var model = new Option<string>("--model") { Description = "weight file (.mgw)", Required = true };
        var json = new Option<bool>("--json") { Description = "print one JSON object {\"outputs\":[…],\"probabilities\":[…]}" };
        var backend = BackendOption();
        var cmd = new Command("predict", "Runs a network on one image (resized to its input side, normalised as its descriptor says) and prints raw outputs and probabilities.")
        {
            image, model, json, backend,
        };
        cmd.SetAction(parse => Run(() =>
        {
            var img = RgbImage.Load(parse.GetValue(image)!);
            using var kernels = Backends.Create(Backends.Parse(parse.GetValue(backend)!));
            var (net, contents) = ModelFiles.Load(kernels, parse.GetValue(model)!);
            using var _net = net;
            Warn(contents.Warnings);
            int side = net.Architecture.InputSide;
            var input = NetworkInput.FromImage(net, img);
            var outputs = net.Forward(input, new Engine.Core.Shape4(1, 3, side, side));
            var probabilities = OutputProbabilities.From(outputs);
            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(new { outputs, probabilities }));
                return;
            }
            Console.Out.WriteLine($"{net.Architecture}, input {side}×{side}");
            Console.Out.WriteLine(outputs.Length == 1 ? "output  logit         sigmoid" : "class   output        softmax");
            for (int i = 0; i < outputs.Length; i++)
                Console.Out.WriteLine($"{i,5}   {outputs[i],12:G7}  {probabilities[i]:F6}");
            if (outputs.Length > 1) Console.Out.WriteLine($"top class: {Array.IndexOf(probabilities, probabilities.Max())}");
        }));
        return cmd;
    }

    private static float[] ParseFloats(string text, string option)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var values = new float[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]))
                throw new ArgumentException($"{option}: '{parts[i]}' is not a number.");
        return values;
    }

    private static string Floats(float[] v) => string.Join(", ", v.Select(x => x.ToString("G4", CultureInfo.InvariantCulture)));

    private static void Warn(IEnumerable<string> warnings)
    {
        foreach (var w in warnings) Console.Error.WriteLine($"mg: warning: {w}");
    }

    /// <summary>Runs a command body: exit 0, or a one-line reason on stderr and exit 1.</summary>
    internal static int Run(Action body)
    {
        try
        {
            body();
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException or InvalidOperationException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"mg: error: {e.Message.ReplaceLineEndings(" ")}");
            return 1;
        }
    }
}
