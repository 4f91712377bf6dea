// ModelGuardian.Bench — our CPU backend side by side with the strongest yardstick, in ONE
// BenchmarkDotNet run; per category the yardstick is the baseline, so Ratio = ours / theirs (of means;
// "Ratio (median)" divides medians, the statistic issue 2 gives its yardstick figures in).
//
//   (a) ResNet-50 (1 logit, ImageNet stem) 224² forward, batch 1 and 8: ours vs ONNX Runtime 1.31.1
//       (ONNX graph written here from the same TensorSet, BN folded; 2 intra-op threads, 1 inter-op,
//       all graph optimisations)
//   (b) StyleGAN v1 D 256² (fmap base 16384, max 512, mbstd group 1), gradient of Σ outputs to the
//       input, batch 1: ours vs libtorch 2.10 through TorchSharp 0.107 (2 threads)
//   (c) ResNet-34 CIFAR stem (10 classes) 32² forward, batch 64: ours vs ONNX Runtime
// Same seeded random weights (RandomWeights.Create(kernels, arch, seed)) and input on both sides;
// ours = Network on CpuKernels: 2 threads for the ResNet forwards (as ONNX Runtime), Environment.ProcessorCount
// threads for the StyleGAN gradient and the training step (libtorch: 2; the same on this 2-core machine).
//
// Usage (from the repository root):
//   dotnet run -c Release --project bench -- --verify
//       builds every workload, runs ours and the yardstick once each, prints max errors relative to
//       max-abs (outputs ≤ 1e-4, StyleGAN input gradient ≤ 1e-3); exit code 1 on a mismatch.
//   dotnet run -c Release --project bench -- --filter '*'
//       the full benchmark (warm-up 2, 8 iterations, 1 launch, in-process); takes several minutes
//       and wants an otherwise idle machine. Every GlobalSetup verifies as --verify does and throws
//       on a mismatch. Subsets: --filter '*ResNet50B1*', '*StyleGan*', '*Cifar34*', …;
//       or --anyCategories 'StyleGAN D 256² b1 grad'.
//   dotnet run -c Release --project bench -- --filter '*' --job dry
//       one invocation per benchmark: proves the harness works (results are not timings).
//   dotnet run -c Release --project bench -- --layers [resnet50-b1|resnet50-b8|resnet34-cifar-b64] [name filter, e.g. "3×3/1"] [--cold] [--threads N]
//       a diagnostic: every distinct convolution of that forward, ours beside ONNX Runtime running it
//       alone (fastest Stopwatch times; --cold evicts the caches before each call, as inside a network;
//       --threads N: both sides on N threads instead of 2;
//       they say where a ratio is lost, not what goes in README).
//   dotnet run -c Release --project bench -- --loop [resnet50-b1|resnet50-b8|resnet34-cifar-b64] [seconds] [--theirs] [--threads N]
//       one side's forward back to back (default 20 s), then its median, mean and fastest call: a target
//       for a sampling profiler (README, "Profiling"), not a benchmark.
//   dotnet run -c Release --project bench -- --in-network [resnet50-b1|resnet50-b8|resnet34-cifar-b64] [--nodes] [--threads N]
//       a diagnostic: each kernel call of our forward timed inside the network, beside ONNX Runtime's own
//       per-node profile of its forward (--nodes: every call in order, not only the sums by kind).
//   dotnet run -c Release --project bench -- --blocked-ab [resnet50-b1|resnet50-b8|resnet34-cifar-b64] [--threads N]
//       a diagnostic: our forward with the channel-blocked kernels and without (NCHW), called alternately.
//   dotnet run -c Release --project bench -- --patch-torchsharp
//       only patches the output folder's libLibTorchSharp.so and prints its path (for `ldd`).
// Other BenchmarkDotNet options pass through (--list flat, --exporters json, …). Benchmarks always
// run in-process (--inProcess is added when absent): out-of-process would rebuild the project and
// copy libtorch's ~600 MB of native libraries for every benchmark.
//
// TorchSharp on Debian 12 (SPECS §8): libLibTorchSharp.so requires GLIBCXX_3.4.32 (Debian has
// 3.4.30) though the one symbol behind it is never called. At startup, before any TorchSharp call,
// ElfVersionPatcher marks that requirement weak (VER_FLG_WEAK) in the COPY of the .so in this
// program's output folder (never in the NuGet cache); idempotent.

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
