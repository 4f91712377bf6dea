namespace ModelGuardian.Tests.Cli;

/// <summary>`mg attack` and `mg eval` in process on the built-in defaults, with budgets of a few dozen queries.</summary>
[Collection("Console")] // Mg.Run swaps Console.Out: beside another class doing the same, one's output lands in the other's capture
public sealed class MgEvalCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-eval-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void AttackRunsInProcessAndLogsEveryQuery()
    {
        string log = Path.Combine(_dir, "queries.jsonl");
        var (code, stdout, stderr) = Mg.Run("attack", "dfme", "--budget", "40", "--log", log, "--backend", "cpu");
        Assert.True(code == 0, stderr);
        Assert.StartsWith("queries,clone_accuracy", stdout);
        Assert.Contains("40 queries sent, 40 answered", stderr);
        Assert.Equal(40, File.ReadAllLines(log).Length);
    }

    [Fact]
    public void AttackRefusesBadArguments()
    {
        Assert.Equal(1, Mg.Run("attack", "quda", "--budget", "10").Code);
        var (code, _, stderr) = Mg.Run("attack", "dfme", "--server", "http://127.0.0.1:9", "--budget", "10");
        Assert.Equal(1, code);
        Assert.Contains("--api-key", stderr);
    }

    [Fact]
    public void EvalWritesTheReportAndResumes()
    {
        string output = Path.Combine(_dir, "eval");
        string[] args = ["eval", "-o", output, "--budget", "30", "--attacks", "dfme", "--defenses", "none,dpreds,mg", "--test-images", "100", "--samples", "20", "--backend", "cpu"];
        var (code, stdout, stderr) = Mg.Run(args);
        Assert.True(code == 0, stderr);
        Assert.Contains("Table I", stdout);
        Assert.True(File.Exists(Path.Combine(output, "plot-dfme.png")));
        // The defaults' sub-detectors each name their families in their provenance: each family can be held out.
        Assert.Contains("### nearest held out: detector-no-nearest", stdout);
        Assert.Contains("| jpeg-30 |", stdout);
        // A second run finds every result and only writes the report again.
        var again = Mg.Run(args);
        Assert.True(again.Code == 0, again.Stderr);
        Assert.Equal(stdout, again.Stdout);
        // Other settings into the same folder are refused.
        var other = Mg.Run(["eval", "-o", output, "--budget", "31", "--attacks", "dfme", "--defenses", "none", "--test-images", "100", "--samples", "20", "--backend", "cpu"]);
        Assert.Equal(1, other.Code);
        Assert.Contains("other settings", other.Stderr);
    }

    [Fact]
    public void PresetsAreNamedAndExplicitOptionsOverrideThem()
    {
        var bad = Mg.Run("eval", "-o", Path.Combine(_dir, "bad"), "--preset", "medium");
        Assert.Equal(1, bad.Code);
        Assert.Contains("--preset", bad.Stderr);
        // The long preset with an explicit budget, attack and defence: that budget for that attack, nothing else run.
        string output = Path.Combine(_dir, "long");
        var (code, _, stderr) = Mg.Run("eval", "-o", output, "--preset", "long", "--budget", "30", "--attacks", "dfme", "--defenses", "none", "--test-images", "100", "--samples", "20",
            "--post-process", "jpeg-50", "--backend", "cpu");
        Assert.True(code == 0, stderr);
        Assert.Contains("30 queries each", stderr);
        Assert.Equal(["attack-dfme-none-naive.json"], Directory.GetFiles(Path.Combine(output, "cells"), "attack-*").Select(Path.GetFileName));
        Assert.Equal(["detect-attack-dfme.jpeg-50.json", "detect-benign.jpeg-50.json"], Directory.GetFiles(Path.Combine(output, "cells"), "detect-*.jpeg-50.json").Select(Path.GetFileName).Order().Take(2));
        // Every source as made and after the one step asked for, no other.
        var detectCells = Directory.GetFiles(Path.Combine(output, "cells"), "detect-*.json").Select(f => Path.GetFileName(f)).ToList();
        var asMade = detectCells.Where(c => c.Count(ch => ch == '.') == 1).ToList();
        Assert.Equal(asMade.Select(c => c.Replace(".json", ".jpeg-50.json")).Order(), detectCells.Except(asMade).Order());
        bad = Mg.Run("eval", "-o", Path.Combine(_dir, "bad"), "--post-process", "sharpen-2");
        Assert.Equal(1, bad.Code);
        Assert.Contains("Unknown post-processing step 'sharpen-2'", bad.Stderr);
        Assert.DoesNotContain("budgets", File.ReadAllText(Path.Combine(output, "run.json")));
    }
}
