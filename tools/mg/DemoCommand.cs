using ModelGuardian.Engine.Networks;
using System.CommandLine;
using System.Diagnostics;
using ModelGuardian.Engine;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Training;
using ModelGuardian.Weights;

namespace ModelGuardian.Tools;

/// <summary>
/// The main job: the built-in defaults behind an in-process Guardian, a benign client sending
/// Fashion-MNIST test images and a data-free-stealing-style client sending generator samples
/// (generator instances no detector was trained on), and what each of them experienced.
/// </summary>
internal static class DemoCommand
{
    public static string DefaultModels => Path.Combine(AppContext.BaseDirectory, "default-models");

    public static Command Create()
    {
        var models = new Option<string>("--models") { Description = "folder with victim.mgw, transform.mgw and detector-*.mgw", DefaultValueFactory = _ => DefaultModels };
        var benign = new Option<int>("--benign") { Description = "queries of the benign client", DefaultValueFactory = _ => 400 };
        var synthetic = new Option<int>("--synthetic") { Description = "queries of the synthetic client", DefaultValueFactory = _ => 200 };
        var tau = new Option<int>("--tau") { DefaultValueFactory = _ => GuardianOptions.DefaultTau };
        var benignData = new Option<string?>("--benign-data") { Description = "folder of Fashion-MNIST test IDX files, or 'debian' for dataset-fashion-mnist (default: the 1,000 test images bundled with the models)" };
        var backend = new Option<string>("--backend") { DefaultValueFactory = _ => "auto" };
        var cmd = new Command("demo", "Runs a benign and a synthetic-query client through a Guardian built from the default models and prints BAcc, DAcc, FPR and when the synthetic client was cut off.")
        {
            models, benign, synthetic, tau, benignData, backend,
        };
        cmd.SetAction(parse => Program.Run(() => Run(parse.GetValue(models)!, parse.GetValue(benign), parse.GetValue(synthetic), parse.GetValue(tau),
            parse.GetValue(benignData), parse.GetValue(backend)!)));
        return cmd;
    }

    private static void Run(string folder, int benignCount, int syntheticCount, int tau, string? benignData, string backend)
    {
        if (benignCount < 1 || syntheticCount < 1) throw new ArgumentException("--benign and --synthetic must be positive.");
        var clock = Stopwatch.StartNew();
        using var kernels = Backends.Create(Backends.Parse(backend));
        using var loaded = ModelFolder.Load(kernels, folder);
        var (victim, d, detectors) = (loaded.Victim, loaded.Transform, loaded.Detectors);
        var models = loaded.GuardianModels();
        using var ledger = new InMemoryLedger();
        string auditPath = Path.Combine(Path.GetTempPath(), $"mg-demo-audit-{Environment.ProcessId}.jsonl");
        try
        {
            using var audit = new FileAuditLog(auditPath);
            var guardian = new Guardian(models, ledger, audit, new GuardianOptions { Policy = new TerminationPolicy(tau, 0.5) });
            Console.Error.WriteLine($"mg demo: victim {victim.Architecture}, transform {d.Architecture}, {detectors.Count} sub-detectors ({string.Join(", ", detectors.Select(x => x.Name))}), τ = {tau}, δ = 0.5, v = 0.5, {kernels.Name}");

            // Benign: Fashion-MNIST test images (never trained on), in a seeded order.
            var test = loaded.TestImages(benignData);
            if (benignCount > test.Count) throw new ArgumentException($"--benign {benignCount}: only {test.Count} test images are available.");
            var order = new BatchIterator(test.Count, test.Count, 7).Order(0);
            int answered = 0, correct = 0, flaggedBenign = 0, undefendedCorrect = 0;
            using (var bar = new CountBar("benign client   ", benignCount))
                for (int i = 0; i < benignCount; i++)
                {
                    int idx = order[i];
                    var image = test.ToPlanar32(idx);
                    var o = guardian.QueryAsync("benign-alice", image).GetAwaiter().GetResult();
                    if (o.Answer.Status == QueryStatus.Answered)
                    {
                        answered++;
                        if (o.Answer.Label == test.Label(idx)) correct++;
                        if (o.Evaluation!.Verdict.Flagged) flaggedBenign++;
                        if (DeceptivePredictions.ArgMax(o.Evaluation.Probabilities) == test.Label(idx)) undefendedCorrect++;
                    }
                    bar.Step();
                }

            // Synthetic: generator samples of the three families the defaults' detectors know, instances (seeds) no detector saw.
            GeneratorFamily[] families = [GeneratorFamily.TransposedConv, GeneratorFamily.NearestConv, GeneratorFamily.BilinearConv];
            var generators = families.Select((f, i) => ImageGenerator.Create(kernels, f, 90_000 + (ulong)i)).ToList();
            int flaggedSynthetic = 0, screened = 0, terminatedAt = 0;
            try
            {
                var samples = generators.Select((g, i) => g.Generate((syntheticCount + families.Length - 1) / families.Length, 91_000 + (ulong)i)).ToList();
                using var bar = new CountBar("synthetic client", syntheticCount);
                for (int i = 0; i < syntheticCount; i++)
                {
                    var image = PlanarImage.From(samples[i % families.Length][i / families.Length]);
                    var o = guardian.QueryAsync("stealer-mallory", image).GetAwaiter().GetResult();
                    bar.Step();
                    if (o.Answer.Status == QueryStatus.Refused)
                    {
                        // Once cut off, the rest would be refused too; screen them for DAcc without the ledger.
                        var e = models.Evaluate([image])[0];
                        screened++;
                        if (e.Verdict.Flagged) flaggedSynthetic++;
                        continue;
                    }
                    screened++;
                    if (o.Evaluation!.Verdict.Flagged) flaggedSynthetic++;
                    if (o.Record!.TerminatedNow) terminatedAt = i + 1;
                }
            }
            finally
            {
                foreach (var g in generators) g.Dispose();
            }

            var alice = ledger.GetAsync("benign-alice").GetAwaiter().GetResult()!;
            var mallory = ledger.GetAsync("stealer-mallory").GetAwaiter().GetResult()!;
            Console.Out.WriteLine();
            Console.Out.WriteLine($"benign client   : {benignCount} Fashion-MNIST test queries, {answered} answered");
            Console.Out.WriteLine($"  BAcc           {Pct(correct, answered)}  (victim alone: {Pct(undefendedCorrect, answered)}; DPreds keeps every label)");
            Console.Out.WriteLine($"  FPR            {Pct(flaggedBenign, answered)}  ({flaggedBenign} benign queries flagged; terminated: {(alice.IsTerminated ? "YES" : "no")})");
            Console.Out.WriteLine($"synthetic client: {syntheticCount} generator queries (transposed-conv, nearest+conv, bilinear+conv)");
            Console.Out.WriteLine($"  DAcc           {Pct(flaggedSynthetic, screened)}  ({flaggedSynthetic} of {screened} flagged)");
            Console.Out.WriteLine(terminatedAt > 0
                ? $"  terminated     after query {terminatedAt} ({mallory.Flagged} of {mallory.Total} flagged); the remaining {syntheticCount - terminatedAt} were refused"
                : $"  terminated     no ({mallory.Flagged} of {mallory.Total} flagged)");
            Console.Out.WriteLine($"time            {clock.Elapsed.TotalSeconds:F1} s");
        }
        finally
        {
            System.IO.File.Delete(auditPath);
            System.IO.File.Delete(auditPath + ".lock");
        }
    }

    private static string Pct(int part, int whole) => whole == 0 ? "n/a" : $"{100.0 * part / whole,6:F2} %";

    /// <summary>A one-line progress bar over a known number of steps, on stderr.</summary>
    private sealed class CountBar(string label, int total) : IDisposable
    {
        private int _done, _shown = -1;

        public void Step()
        {
            int percent = 100 * ++_done / total;
            if (percent == _shown) return;
            _shown = percent;
            ProgressBar.Draw(label, percent, $"({_done}/{total})");
        }

        public void Dispose() => ProgressBar.EndLine();
    }
}
