using System.Diagnostics;
using ModelGuardian.Engine.Core;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Weights;

namespace ModelGuardian.Bench;

/// <summary>
/// A diagnostic (`--blocked-ab`): the same network (same seeded weights) on two CPU backends, blocked
/// inference on and off, called alternately, so that both see the same machine; medians and fastest calls.
/// </summary>
public static class BlockedComparison
{
    public static int Run(string which, int threads, int calls = 60)
    {
        var (architecture, batch) = DiagnosticArguments.NetworkAndBatch(which);
        var (blocked, _) = RandomWeights.Create(new CpuKernels(threads), architecture, Workload.WeightSeed);
        var (nchw, _) = RandomWeights.Create(new CpuKernels(threads) { BlockedInference = false }, architecture, Workload.WeightSeed);
        using var a = blocked;
        using var b = nchw;
        var shape = new Shape4(batch, architecture.InputChannels, architecture.InputSide, architecture.InputSide);
        var input = Workload.RandomInput(shape.Length, Workload.InputSeed, -2f, 2.5f);
        var ya = a.Forward(input, shape); var yb = b.Forward(input, shape);
        double err = ya.Zip(yb, (p, q) => Math.Abs(p - q)).Max() / Math.Max(1e-30, yb.Max(Math.Abs));
        List<double> ta = new(), tb = new();
        for (int i = 0; i < calls; i++)
        {
            long t0 = Stopwatch.GetTimestamp(); a.Forward(input, shape); ta.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            t0 = Stopwatch.GetTimestamp(); b.Forward(input, shape); tb.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        ta.Sort(); tb.Sort();
        Console.WriteLine($"{which}, {threads} thread(s), {calls} calls each, alternating: blocked median {ta[calls / 2]:F2} ms (fastest {ta[0]:F2}), " +
                          $"NCHW median {tb[calls / 2]:F2} ms (fastest {tb[0]:F2}); blocked / NCHW {ta[calls / 2] / tb[calls / 2]:F3}; outputs differ by {err:g2} of max-abs");
        return 0;
    }
}
