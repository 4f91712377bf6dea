// ModelGuardian.Bench: our CPU backend beside the strongest yardstick (ONNX Runtime for forwards, libtorch
// for gradients and training) in one BenchmarkDotNet run, on the same seeded weights and inputs; per category
// the yardstick is the baseline, so Ratio = ours / theirs. Workloads, options and dated runs: docs/benchmarks.md.
//
// TorchSharp 0.107's libLibTorchSharp.so asks for GLIBCXX_3.4.32, which Debian 12 lacks, for one symbol it
// never calls: before any TorchSharp call, ElfVersionPatcher marks that requirement weak in the copy of the
// .so in this program's output folder (never in the NuGet cache).

using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using ModelGuardian.Bench;

var outcome = TorchSharpNative.EnsurePatched();

if (args.Contains("--patch-torchsharp"))
{
    Console.WriteLine($"{TorchSharpNative.LibraryPath}: {TorchSharpNative.Version} requirement {outcome}");
    return 0;
}

if (args.Contains("--verify")) return VerifyMode.Run();

if (Array.IndexOf(args, "--layers") is var layersAt and >= 0)
{
    // Positional: network, then an optional name filter; flags anywhere after --layers.
    var options = DiagnosticArguments.Parse(args, layersAt, "--cold");
    return LayerProfile.Run(options.At(0, "resnet50-b1")!, options.At(1), options.Flags.Contains("--cold"), options.Threads);
}

if (Array.IndexOf(args, "--in-network") is var inNetworkAt and >= 0)
{
    var options = DiagnosticArguments.Parse(args, inNetworkAt, "--nodes");
    return NetworkProfile.Run(options.At(0, "resnet50-b1")!, options.Threads, options.Flags.Contains("--nodes"));
}

if (Array.IndexOf(args, "--in-training") is var inTrainingAt and >= 0)
{
    var options = DiagnosticArguments.Parse(args, inTrainingAt);
    return NetworkProfile.RunTraining(int.Parse(options.At(0, "8")!, System.Globalization.CultureInfo.InvariantCulture),
        int.Parse(options.At(1, "64")!, System.Globalization.CultureInfo.InvariantCulture), options.Threads);
}

if (Array.IndexOf(args, "--in-attack") is var inAttackAt and >= 0)
{
    var options = DiagnosticArguments.Parse(args, inAttackAt);
    return AttackProfile.Run(options.At(0, "dfme")!, long.Parse(options.At(1, "2048")!, System.Globalization.CultureInfo.InvariantCulture), options.Threads);
}

if (Array.IndexOf(args, "--blocked-ab") is var abAt and >= 0)
{
    var options = DiagnosticArguments.Parse(args, abAt);
    return BlockedComparison.Run(options.At(0, "resnet50-b1")!, options.Threads);
}

if (Array.IndexOf(args, "--loop") is var loopAt and >= 0)
{
    // --loop <resnet50-b1|resnet50-b8|resnet34-cifar-b64> [seconds] [--theirs] [--threads N]: one side,
    // called back to back for that long — something for a sampling profiler to attach to (README). Prints
    // the median, mean and fastest call; not a benchmark.
    var options = DiagnosticArguments.Parse(args, loopAt, "--theirs");
    bool theirs = options.Flags.Contains("--theirs");
    if (!double.TryParse(options.At(1, "20"), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double seconds) || !(seconds > 0))
        throw new ArgumentException($"--loop: seconds must be a positive number, got '{options.At(1)}'.");
    using var workload = Workload.Create(DiagnosticArguments.Network(options.At(0, "resnet50-b1")!), options.Threads);
    workload.VerifyOrThrow();
    Action call = theirs ? () => workload.RunTheirs() : () => workload.RunOurs();
    for (int i = 0; i < 3; i++) call();
    var clock = System.Diagnostics.Stopwatch.StartNew();
    var times = new List<double>();
    while (clock.Elapsed.TotalSeconds < seconds)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        call();
        times.Add(System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    }
    times.Sort();
    Console.WriteLine($"{(theirs ? workload.Yardstick : "ours")}: {times.Count} calls, median {times[times.Count / 2]:F2} ms, mean {times.Average():F2}, fastest {times[0]:F2}");
    return 0;
}

var bdnArgs = args.ToList();
if (!bdnArgs.Any(a => a is "--inProcess" or "-i")) bdnArgs.Add("--inProcess");

// Our job unless the command line names one (--job dry|short|…): BenchmarkDotNet would otherwise
// apply the command-line job's settings on top of ours instead of replacing it.
IConfig config = DefaultConfig.Instance;
if (!bdnArgs.Any(a => a is "--job" or "-j" || a.StartsWith("--job=", StringComparison.Ordinal)))
    config = config.AddJob(Job.Default
        .WithWarmupCount(2)
        .WithIterationCount(8)
        .WithLaunchCount(1)
        .WithToolchain(InProcessEmitToolchain.Instance)
        .WithId("ours-vs-yardstick")
        .AsDefault());
config = config
    .WithOptions(ConfigOptions.JoinSummary)
    .AddColumn(BenchmarkDotNet.Columns.StatisticColumn.Median, new MedianRatioColumn())
    .WithSummaryStyle(BenchmarkDotNet.Reports.SummaryStyle.Default.WithRatioStyle(BenchmarkDotNet.Columns.RatioStyle.Value));

var summaries = BenchmarkSwitcher.FromAssembly(typeof(OursVsYardstick).Assembly).Run(bdnArgs.ToArray(), config);
Workload.ReleaseShared();
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
