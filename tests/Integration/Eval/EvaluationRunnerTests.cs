using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Defenses;
using ModelGuardian.Engine.Eval;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Tests.Attacks;
using ModelGuardian.Weights;

namespace ModelGuardian.Tests.Eval;

/// <summary>The whole `mg eval` pipeline on tiny random models and budgets: every cell, the report files, resuming, and refusing mixed settings.</summary>
public sealed class EvaluationRunnerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-eval-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private sealed class Models : IDisposable
    {
        public Models(CpuKernels k)
        {
            Victim = TinyAttack.Victim(k);
            D = RandomWeights.Create(k, ArchitectureDescriptor.StyleGanD(32, 256, 16, mbstdGroupSize: 1), 2).Network;
            Detector = RandomWeights.Create(k, ArchitectureDescriptor.ResNet(18, 1, ResNetStem.Cifar, 32, width: 2), 3).Network;
            Generator = Engine.Training.ImageGenerator.Create(k, Engine.Networks.GeneratorFamily.BilinearConv, 4, width: 8);
            Surrogate = BaselineModels.RandomSurrogate(k, TinyAttack.Classes, 5, width: 2);
            Misinformation = BaselineModels.RandomSurrogate(k, TinyAttack.Classes, 6, width: 2);
            SeatEncoder = BaselineModels.RandomSurrogate(k, 4, 7, width: 2);
        }

        public Network Misinformation { get; }
        /// <summary>A random 4-dimensional embedding: SEAT's wiring is what is under test here, not its encoder.</summary>
        public Network SeatEncoder { get; }

        public Network Surrogate { get; }

        public Engine.Training.ImageGenerator Generator { get; }

        public Network Victim { get; }
        public Network D { get; }
        public Network Detector { get; }

        public EvaluationSetup Setup(CpuKernels k) => new(k, new VictimClassifier(Victim), new DfmsDetector(new GradientTransform(D), [new SubDetector("random", Detector)]),
            TinyAttack.TestSet(10), new TinyAttack.SmoothProxy(), [("bilinear", Generator)], Baselines: new BaselineModels(new VictimClassifier(Surrogate), new VictimClassifier(Misinformation), new SeatEncoder(SeatEncoder)));

        public void Dispose()
        {
            Victim.Dispose();
            D.Dispose();
            Detector.Dispose();
            Generator.Dispose();
            Surrogate.Dispose();
            Misinformation.Dispose();
            SeatEncoder.Dispose();
        }
    }

    private static EvaluationOptions Options => new()
    {
        Budget = 24, Attacks = [AttackKind.Dfme, AttackKind.Dast], DetectionSamples = 5, FamilySamples = 4, StudentWidth = 2,
    };

    [Fact]
    public async Task RunsEveryCellWritesTheReportAndResumesWithoutRecomputing()
    {
        using var k = new CpuKernels();
        using var m = new Models(k);
        var store = new ResultStore(_dir, new { Options.Budget, test = 1 });
        var results = await new EvaluationRunner(m.Setup(k), Options, store).RunAsync();

        // 2 attacks × 12 defences naively, plus the adaptive attacker against the 2 deception modes and the two evasive ones
        // against Model-Guardian under each rule.
        Assert.Equal(2 * (12 + 2 + 4), results.Attacks.Count);
        Assert.Equal(["attack-dast-mg-evasive-blur1", "attack-dast-mg-evasive-jpeg50", "attack-dast-mg-sprt-evasive-blur1", "attack-dast-mg-sprt-evasive-jpeg50",
                      "attack-dfme-mg-evasive-blur1", "attack-dfme-mg-evasive-jpeg50", "attack-dfme-mg-sprt-evasive-blur1", "attack-dfme-mg-sprt-evasive-jpeg50"],
                     results.Attacks.Where(c => c.Attacker == AttackerKind.Evasive).Select(c => c.Key).Order());
        // The Guardian's cells carry the ledger's flagged count, at most what was answered (plus the query that terminated); the others none.
        Assert.All(results.Attacks, c => Assert.Equal(c.Defense.StartsWith("mg"), c.Flagged.HasValue));
        Assert.All(results.Attacks.Where(c => c.Flagged.HasValue), c => Assert.InRange(c.Flagged!.Value, 0, c.Spent));
        Assert.All(results.Attacks, c => Assert.True(c.Terminated ? c.Spent <= 24 : c.Spent == 24, $"{c.Key}: spent {c.Spent}"));
        Assert.Equal(12, results.Benign.Count);
        // Benign, each generator family with a colour and with the attacks' grey head, one trained generator, two attacks' samples:
        // each as made and after every post-processing step.
        int families = Enum.GetValues<GeneratorFamily>().Length, sources = 1 + 2 * families + 1 + 2;
        Assert.Equal(sources * (1 + PostProcess.Protocol.Count), results.Detection.Count);
        Assert.Equal(sources, results.Detection.Count(d => d.PostProcess is null));
        Assert.All(PostProcess.Protocol, step => Assert.Equal(sources, results.Detection.Count(d => d.PostProcess == step.Name)));
        Assert.Equal(Enum.GetValues<GeneratorFamily>().Select(GeneratorFamilies.Name),
                     results.Detection.Where(d => d.PostProcess is null && d.Source.StartsWith("grey generator: ")).Select(d => d.Family));
        Assert.All(results.Detection, d => Assert.Equal(d.Samples, d.DetectorFlags!.Count));
        Assert.All(results.Detection, d => Assert.Equal(d.FlaggedByEnsemble, d.DetectorFlags!.Count(f => f != 0)));
        Assert.Equal(["bilinear", "nearest", "nearest"], results.Detection.Where(d => d.PostProcess is null && d.Synthetic && !d.Source.StartsWith("generator:") && !d.Source.StartsWith("grey generator:")).Select(d => d.Family));
        Assert.Contains(results.Detection, d => d.Source == "trained generator: bilinear" && d.Samples == 4);
        Assert.All(results.Detection.Where(d => d.Source.StartsWith("attack")), d => Assert.Equal(5, d.Samples));
        // A benign user's labels survive DPreds and the Guardian unchanged (ranking kept); the victim's own accuracy is the "none" row.
        double plain = results.Benign.Single(b => b.Defense == DefenseIds.None).BenignAccuracy;
        foreach (var d in new[] { DefenseIds.DPreds, DefenseIds.DPredsRandomized, DefenseIds.ModelGuardianNoTermination, DefenseIds.ModelGuardianSequential })
            Assert.Equal(plain, results.Benign.Single(b => b.Defense == d).BenignAccuracy);

        string report = EvaluationReport.Write(store, Options, results);
        Assert.Contains("Table I", report);
        Assert.Contains("adaptive", report);
        Assert.Contains("collusion", report);
        Assert.Contains("the evasive attacker: a step at the end of its generator", report);
        Assert.Contains("| JPEG 50", report);
        Assert.Contains("Detection under post-processing", report);
        foreach (var f in new[] { "report.md", "results.csv", "curves.csv", "detection.csv", "plot-dfme.png", "plot-dast.png" }) Assert.True(File.Exists(Path.Combine(_dir, f)), f);
        Assert.Equal(1 + results.Attacks.Count, Engine.Reports.Csv.Parse(File.ReadAllText(Path.Combine(_dir, "results.csv"))).Count);
        Assert.Equal(1 + results.Detection.Count, Engine.Reports.Csv.Parse(File.ReadAllText(Path.Combine(_dir, "detection.csv"))).Count);

        // Resume: delete one result; only it is computed again, the others are read back as they were.
        var cells = Directory.GetFiles(Path.Combine(_dir, "cells"), "*.json");
        var stamps = cells.ToDictionary(f => f, File.GetLastWriteTimeUtc);
        string removed = Path.Combine(_dir, "cells", "attack-dast-rs-naive.json");
        File.Delete(removed);
        // A detection result written before per-detector verdicts were kept is screened again.
        string stale = Path.Combine(_dir, "cells", "detect-benign.jpeg-75.json");
        var staleJson = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(stale))!.AsObject();
        staleJson.Remove("detector_flags");
        File.WriteAllText(stale, staleJson.ToJsonString());
        stamps[stale] = File.GetLastWriteTimeUtc(stale);
        await Task.Delay(20);
        var again = await new EvaluationRunner(m.Setup(k), Options, new ResultStore(_dir, new { Options.Budget, test = 1 })).RunAsync();
        Assert.True(File.Exists(removed));
        Assert.Contains("detector_flags", File.ReadAllText(stale));
        Assert.Equal(results.Detection.Single(d => d.Source == "benign test images" && d.PostProcess == "jpeg-75").DetectorFlags,
                     again.Detection.Single(d => d.Source == "benign test images" && d.PostProcess == "jpeg-75").DetectorFlags);
        Assert.All(stamps.Where(s => s.Key != removed && s.Key != stale), s => Assert.Equal(s.Value, File.GetLastWriteTimeUtc(s.Key)));
        Assert.Equal(results.Attacks.Where(c => c.Key != "attack-dast-rs-naive").Select(c => c.FinalCloneAccuracy),
                     again.Attacks.Where(c => c.Key != "attack-dast-rs-naive").Select(c => c.FinalCloneAccuracy));
        // Recomputed with the same seed: the same result.
        Assert.Equal(results.Attacks.Single(c => c.Key == "attack-dast-rs-naive").Curve, again.Attacks.Single(c => c.Key == "attack-dast-rs-naive").Curve);
    }

    [Fact]
    public void OtherSettingsInTheSameFolderAreRefused()
    {
        _ = new ResultStore(_dir, new { budget = 10 });
        _ = new ResultStore(_dir, new { budget = 10 });
        var e = Assert.Throws<InvalidOperationException>(() => new ResultStore(_dir, new { budget = 11 }));
        Assert.Contains("other settings", e.Message);
    }

    [Fact]
    public void BadOptionsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => (Options with { Defenses = [DefenseIds.ModelGuardian] }).Validate());
        Assert.Throws<ArgumentException>(() => (Options with { Defenses = [DefenseIds.None, "magic"] }).Validate());
        Assert.Throws<ArgumentException>(() => (Options with { Budget = 0 }).Validate());
        Assert.Throws<ArgumentException>(() => (Options with { AttackBudgets = new Dictionary<AttackKind, long> { [AttackKind.Dast] = 0 } }).Validate());
        EvaluationOptions.Long.Validate();
    }

    [Fact]
    public async Task EachAttackSpendsItsOwnBudget()
    {
        using var k = new CpuKernels();
        using var m = new Models(k);
        var options = Options with { Defenses = [DefenseIds.None], AttackBudgets = new Dictionary<AttackKind, long> { [AttackKind.Dast] = 16 } };
        var results = await new EvaluationRunner(m.Setup(k), options, new ResultStore(_dir, new { test = 2 })).RunAsync();
        Assert.Equal((24L, 24L), results.Attacks.Where(c => c.Attack == AttackKind.Dfme).Select(c => (c.Budget, c.Spent)).Single());
        Assert.Equal((16L, 16L), results.Attacks.Where(c => c.Attack == AttackKind.Dast).Select(c => (c.Budget, c.Spent)).Single());
        Assert.Contains("DaST 16", EvaluationReport.Write(new ResultStore(_dir, new { test = 2 }), options, results));
    }

    [Fact]
    public void TheAdaptiveInterpreterInvertsDPredsAndLeavesTrueAnswers()
    {
        var f = AdaptiveAttacker.Interpreter(4);
        double[] p = [0.9, 0.1, 0, 0];
        var inverted = f(DeceptivePredictions.Apply(p, 0.5));
        for (int i = 0; i < 4; i++) Assert.Equal(p[i], inverted[i], 12);
        Assert.Same(p, f(p));
    }
}

/// <summary>The generalisation tables from hand-made verdicts: which sub-detectors a held-out family leaves, and the targets checked per cell.</summary>
public sealed class DetectionReportTests
{
    private static DetectionResult Result(string source, bool synthetic, string? family, string? step, params int[] flags)
        => new(source, synthetic, flags.Length, ["detector-a", "detector-b", "detector-c"], Enumerable.Range(0, 3).Select(j => flags.Count(f => (f & (1 << j)) != 0)).ToList(),
               flags.Count(f => f != 0), flags.Select(f => f != 0).ToList(), family, step, flags);

    private static readonly IReadOnlySet<GeneratorFamily> Nearest = new HashSet<GeneratorFamily> { GeneratorFamily.NearestConv },
        Bilinear = new HashSet<GeneratorFamily> { GeneratorFamily.BilinearConv }, Both = new HashSet<GeneratorFamily> { GeneratorFamily.NearestConv, GeneratorFamily.BilinearConv };

    [Fact]
    public void AHeldOutFamilyKeepsOnlyTheSubDetectorsThatNeverSawIt()
    {
        var held = DetectionReport.HeldOutFamilies(["a", "b", "c"], [Nearest, Bilinear, Both]);
        // nearest: only b never saw it; bilinear: only a; no sub-detector was trained on transposed, so there is nothing to hold out.
        Assert.Equal([("nearest", 0b010), ("bilinear", 0b001)], held.Select(h => (h.Family, h.Mask)));
        Assert.Equal(["b"], held[0].Detectors);
        // Every sub-detector saw the family: it cannot be held out. An unknown training set: no table at all.
        Assert.Empty(DetectionReport.HeldOutFamilies(["a", "b"], [Both, Both]));
        Assert.Empty(DetectionReport.HeldOutFamilies(["a", "b"], [Nearest, null]));
        Assert.Empty(DetectionReport.HeldOutFamilies(["a", "b"], null));
    }

    [Fact]
    public void HeldOutRatesUseOnlyTheRemainingSubDetectorsAndMissesAreListed()
    {
        // Four images of a nearest-family attack: a flags all (it was trained on nearest), b two, c one of those two.
        var results = new EvaluationResults([], [],
        [
            Result("benign test images", false, null, null, 0, 0, 0, 0),
            Result("benign test images", false, null, "blur-1", 0b010, 0, 0, 0),
            Result("attack: X", true, "nearest", null, 0b111, 0b011, 0b001, 0b001),
            Result("attack: X", true, "nearest", "blur-1", 0b001, 0b001, 0b001, 0b001),
        ], [Nearest, Bilinear, Both]);
        Assert.Equal(0.5, results.Detection[2].RateOf(0b010));
        Assert.Equal(1.0, results.Detection[2].RateOf(0b111));
        string md = DetectionReport.Sections(results);
        Assert.Contains("### nearest held out: detector-b", md);
        // Ensemble: the attack is flagged 100 % as made and after blur; the benign blur cell is 25 % (a miss).
        Assert.Contains("ensemble, benign test images, blur-1: 25.0 % (24.0 points over 1.0 %)", md);
        // Without nearest (b alone): 50 % as made, 0 % after blur — both misses; the benign blur row's 25 % is b's too.
        Assert.Contains("without nearest, attack: X, as made: 50.0 % (40.0 points under 90.0 %)", md);
        Assert.Contains("without nearest, attack: X, blur-1: 0.0 % (90.0 points under 90.0 %)", md);
        Assert.Contains("without nearest, benign test images, blur-1: 25.0 %", md);
        Assert.DoesNotContain("ensemble, attack: X", md);
        var csv = Engine.Reports.Csv.Parse(DetectionReport.CsvText(results));
        Assert.Equal(["source", "synthetic", "family", "post_process", "samples", "detector-a", "detector-b", "detector-c", "ensemble"], csv[0]);
        Assert.Equal(["attack: X", "true", "nearest", "blur-1", "4", "1", "0", "0", "1"], csv[4]);
    }
}

/// <summary>The collusion replay against hand-counted cases.</summary>
public sealed class CollusionSimulationTests
{
    [Fact]
    public void AllFlaggedAttackerIsCutOffPerAccountAtTauOrAtTheSprtCrossing()
    {
        var paper = new TerminationPolicy(20, 0.5);
        var ours = CollusionSimulation.Ours(20, 0.5, 0.01); // SPRT: an all-flagged account is closed at its 2nd query
        var row = CollusionSimulation.Row("x", [true], 10, 10_000, paper, ours);
        Assert.Equal(new CollusionRow("x", 10, 200, 20, 20, 2), row);
    }

    [Fact]
    public void AnUndetectedAttackerSpendsItsBudgetAndMixedVerdictsFollowTheRule()
    {
        var paper = new TerminationPolicy(4, 0.5);
        Assert.Equal(1000, CollusionSimulation.Answered([false], 3, 1000, paper));
        // Verdicts T,F repeated on one account: after 4 queries 2 of 4 flagged (not > ½); after 5, 3 of 5 > ½ → closed at the 5th.
        Assert.Equal(5, CollusionSimulation.Answered([true, false], 1, 1000, paper));
        // Two accounts take alternate verdicts: one sees only T (closed at its 4th), the other only F (never), until the budget.
        Assert.Equal(100, CollusionSimulation.Answered([true, false], 2, 100, paper));
        Assert.Throws<ArgumentException>(() => CollusionSimulation.Answered([], 1, 10, paper));
        Assert.Throws<ArgumentException>(() => CollusionSimulation.Answered([true], 0, 10, paper));
    }
}
