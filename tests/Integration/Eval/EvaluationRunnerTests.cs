using ModelGuardian.Engine.Attacks;
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
        }

        public Engine.Training.ImageGenerator Generator { get; }

        public Network Victim { get; }
        public Network D { get; }
        public Network Detector { get; }

        public EvaluationSetup Setup(CpuKernels k) => new(k, new VictimClassifier(Victim), new DfmsDetector(new GradientTransform(D), [new SubDetector("random", Detector)]),
            TinyAttack.TestSet(10), new TinyAttack.SmoothProxy(), [("bilinear", Generator)]);

        public void Dispose()
        {
            Victim.Dispose();
            D.Dispose();
            Detector.Dispose();
            Generator.Dispose();
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

        // 2 attacks × 8 defences naively, plus the adaptive attacker against the 2 deception modes.
        Assert.Equal(2 * (8 + 2), results.Attacks.Count);
        Assert.All(results.Attacks, c => Assert.True(c.Terminated ? c.Spent <= 24 : c.Spent == 24, $"{c.Key}: spent {c.Spent}"));
        Assert.Equal(8, results.Benign.Count);
        Assert.Equal(1 + 3 + 1 + 2, results.Detection.Count); // benign, three generator families, one trained generator, two attacks' samples
        Assert.Contains(results.Detection, d => d.Source == "trained generator: bilinear" && d.Samples == 4);
        Assert.All(results.Detection.Where(d => d.Source.StartsWith("attack")), d => Assert.Equal(5, d.Samples));
        // A benign user's labels survive DPreds and the Guardian unchanged (ranking kept); the victim's own accuracy is the "none" row.
        double plain = results.Benign.Single(b => b.Defense == DefenseIds.None).BenignAccuracy;
        foreach (var d in new[] { DefenseIds.DPreds, DefenseIds.DPredsRandomized, DefenseIds.ModelGuardianNoTermination })
            Assert.Equal(plain, results.Benign.Single(b => b.Defense == d).BenignAccuracy);

        string report = EvaluationReport.Write(store, Options, results);
        Assert.Contains("Table I", report);
        Assert.Contains("adaptive", report);
        Assert.Contains("collusion", report);
        foreach (var f in new[] { "report.md", "results.csv", "curves.csv", "plot-dfme.png", "plot-dast.png" }) Assert.True(File.Exists(Path.Combine(_dir, f)), f);
        Assert.Equal(1 + results.Attacks.Count, Engine.Reports.Csv.Parse(File.ReadAllText(Path.Combine(_dir, "results.csv"))).Count);

        // Resume: delete one result; only it is computed again, the others are read back as they were.
        var cells = Directory.GetFiles(Path.Combine(_dir, "cells"), "*.json");
        var stamps = cells.ToDictionary(f => f, File.GetLastWriteTimeUtc);
        string removed = Path.Combine(_dir, "cells", "attack-dast-rs-naive.json");
        File.Delete(removed);
        await Task.Delay(20);
        var again = await new EvaluationRunner(m.Setup(k), Options, new ResultStore(_dir, new { Options.Budget, test = 1 })).RunAsync();
        Assert.True(File.Exists(removed));
        Assert.All(stamps.Where(s => s.Key != removed), s => Assert.Equal(s.Value, File.GetLastWriteTimeUtc(s.Key)));
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
