using System.Diagnostics;
using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Weights;

namespace ModelGuardian.Bench;

/// <summary>
/// `--in-attack &lt;attack&gt; [queries]`: one data-free attack against the default victim (in process,
/// undefended), every kernel call timed through the same decorator as `--in-training`, summed by kind over
/// the whole run — the victim's forwards, the clone's and the generator's training — beside the wall time,
/// so the part spent outside kernels (the attack's host code: replay, losses, the generator's head) shows
/// as the remainder. The clone is measured on 200 bundled test images. Not a benchmark: one run.
/// </summary>
public static class AttackProfile
{
    public static int Run(string attack, long queries, int threads, string models = "weights/default")
    {
        if (!Enum.TryParse<AttackKind>(attack.Replace("-", ""), ignoreCase: true, out var kind) || !Enum.IsDefined(kind) || kind == AttackKind.DfmsHl)
            throw new ArgumentException($"--in-attack: '{attack}' is not one of dfme, maze, dast, disguide, dual-student (DFMS-HL needs its proxy photos).");
        using var timing = new NetworkProfile.TimingKernels(new CpuKernels(threads));
        using var victim = ModelFiles.Load(timing, Path.Combine(models, "victim.mgw")).Network;
        var test = FashionMnist.Load(DatasetSplit.Test, Path.Combine(models, "fashion-mnist-demo"));
        var testSet = new CloneTestSet(Enumerable.Range(0, 200).Select(test.ToPlanar32).ToList(), Enumerable.Range(0, 200).Select(test.Label).ToList());
        var client = new DefendedVictimClient(new VictimClassifier(victim), new NoDefense());
        using var run = AttackFactory.Create(kind, timing, FashionMnist.ClassCount, AttackOptions.For(kind, queries, 1));
        timing.Calls.Clear();
        long t0 = Stopwatch.GetTimestamp();
        var result = run.RunAsync(client, testSet).GetAwaiter().GetResult();
        double wall = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        var calls = timing.Calls.ToArray();
        Console.WriteLine($"{AttackFactory.DisplayName(kind)}: {result.QueriesSpent} queries on {threads} thread(s), clone {result.FinalCloneAccuracy:P1}; every kernel call summed by kind (ms)");
        NetworkProfile.PrintByKind(calls.Select(c => c.Label).ToArray(), calls.Select(c => c.Ms).ToArray());
        double kernels = calls.Sum(c => c.Ms);
        Console.WriteLine($"{"Σ kernel calls",-70} {calls.Length,7} {kernels,10:F1}");
        Console.WriteLine($"{"outside kernels (host code)",-70} {"",7} {wall - kernels,10:F1}");
        Console.WriteLine($"{"wall",-70} {"",7} {wall,10:F1}   ({wall / Math.Max(1, result.QueriesSpent):F2} ms per query)");
        return 0;
    }
}
