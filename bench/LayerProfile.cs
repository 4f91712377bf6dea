using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Cpu;

namespace ModelGuardian.Bench;

/// <summary>
/// `bench -- --layers [resnet50-b1|resnet50-b8|resnet34-cifar-b64] [name filter]`: a diagnostic, not a
/// benchmark. Every distinct convolution of a ResNet forward, ours (CpuKernels under each forward
/// algorithm, weights constant so they are packed once, ReLU fused as the network fuses it) beside ONNX
/// Runtime running that one Conv (+Relu) alone: the fastest Stopwatch time over alternating runs of
/// consecutive calls, and each side's median/fastest; then the whole network timed the same way. It
/// says which layers a whole-network ratio is lost on; the figures for README come from the
/// BenchmarkDotNet run only. With --cold every timed call (both sides) starts after 64 MB have been
/// written elsewhere, so its weights and activations come from memory as they do inside a network
/// (each conv's weights are read once per forward); the cold sums come close to the network's.
/// --threads N runs both sides on N threads (2 by default, as in the benchmark).
/// </summary>
public static class LayerProfile
{
    private sealed record Layer(Conv2dShape Shape, bool Relu, int Count);

    public static int Run(string which, string? only = null, bool cold = false, int threads = 2)
    {
        var (architecture, batch) = DiagnosticArguments.NetworkAndBatch(which);
        s_cold = cold;
        var layers = Convolutions(architecture, batch);
        string network = $"{layers.Sum(l => l.Count)} convolutions, {layers.Count} distinct";
        if (only is not null) layers = layers.Where(l => Name(l).Contains(only, StringComparison.Ordinal)).ToList();
        // Ours under each forward algorithm (Auto picks one of the other two per layer).
        ConvolutionAlgorithm[] algorithms = [ConvolutionAlgorithm.Auto, ConvolutionAlgorithm.Im2Col, ConvolutionAlgorithm.Shifted];
        var backends = algorithms.Select(a => (IKernels)new CpuKernels(threads, convolution: a)).ToArray();
        using var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        Console.WriteLine($"{which}: {network}{(only is null ? "" : $", {layers.Count} matching '{only}'")}{(cold ? ", caches evicted before each call" : "")}, {threads} thread(s) each side; fastest of 5 runs of consecutive calls, alternating (ms)");
        Console.WriteLine($"{"convolution",-44} {"×",3} {"GFLOP",6} {"auto",7} {"im2col",7} {"shifted",7} {"ORT",7} {"ratio",6} {"GF/s",5} {"Σ auto",7} {"Σ ORT",7} {"med/min auto",6} {"ORT",6}");
        try
        {
            double totalOurs = 0, totalTheirs = 0;
            foreach (var layer in layers)
            {
                var s = layer.Shape;
                var x = Workload.RandomInput(s.InputLength, 1, -1f, 1f);
                var w = Workload.RandomInput(s.WeightLength, 2, -0.05f, 0.05f);
                var b = Workload.RandomInput(s.Cout, 3, -0.1f, 0.1f);
                using var session = new InferenceSession(OnnxResNet.BuildConvolution(s, w, b, layer.Relu), options);
                var output = new float[s.OutputLength];
                using var input = OrtValue.CreateTensorValueFromMemory(x, [s.N, s.Cin, s.H, s.W]);
                using var result = OrtValue.CreateTensorValueFromMemory(output, [s.N, s.Cout, s.OutH, s.OutW]);
                using var run = new RunOptions();
                void Theirs() => session.Run(run, [OnnxResNet.InputName], [input], [OnnxResNet.OutputName], [result]);
                Theirs();

                double flops = 2.0 * s.N * s.Cout * s.OutH * s.OutW * s.CinPerGroup * s.KH * s.KW;
                int reps = Math.Clamp((int)(4e9 / flops), 3, 40);
                var ours = new double[backends.Length];
                var theirs = double.MaxValue;
                List<double> autoSamples = [], theirSamples = [];
                var buffers = new List<DeviceBuffer>();
                try
                {
                    var calls = backends.Select(k =>
                    {
                        var X = k.Allocate(s.InputLength); var W = k.AllocateConstant(w); var B = k.AllocateConstant(b); var Y = k.Allocate(s.OutputLength);
                        buffers.AddRange([X, W, B, Y]);
                        k.Upload(x, X);
                        Action call = () => k.Conv2dForward(s, X, W, B, Y, layer.Relu ? 0f : null);
                        call();
                        var y = new float[s.OutputLength];
                        k.Download(Y, y);
                        var agreement = Agreement.Compare($"{k.Name} {s}", y, output, 1e-4);
                        if (!agreement.Passed) throw new InvalidOperationException(agreement.ToString());
                        return call;
                    }).ToArray();
                    Array.Fill(ours, double.MaxValue);
                    // Runs of consecutive calls, alternating: each side's threads stay as warm as within a network.
                    // The fastest call: on this shared VM a slow one says more about the neighbours than the code.
                    for (int round = 0; round < 5; round++)
                    {
                        for (int i = 0; i < calls.Length; i++)
                        {
                            calls[i]();
                            for (int r = 0; r < reps; r++)
                            {
                                double time = Time(calls[i]);
                                ours[i] = Math.Min(ours[i], time);
                                if (i == 0) autoSamples.Add(time);
                            }
                        }
                        Theirs();
                        for (int r = 0; r < reps; r++)
                        {
                            double time = Time(Theirs);
                            theirs = Math.Min(theirs, time);
                            theirSamples.Add(time);
                        }
                    }
                }
                finally
                {
                    foreach (var buffer in buffers) buffer.Dispose();
                }
                double o = ours[0], t = theirs;
                totalOurs += o * layer.Count; totalTheirs += t * layer.Count;
                string name = Name(layer);
                Console.WriteLine($"{name,-44} {layer.Count,3} {flops / 1e9,6:F3} {o,7:F3} {ours[1],7:F3} {ours[2],7:F3} {t,7:F3} {o / t,6:F2} {flops / o / 1e6,5:F0} {o * layer.Count,7:F2} {t * layer.Count,7:F2} {Median(autoSamples) / o,6:F2} {Median(theirSamples) / t,6:F2}");
            }
            Console.WriteLine($"{"all convolutions (auto)",-44} {"",3} {"",6} {"",7} {"",7} {"",7} {"",7} {totalOurs / totalTheirs,6:F2} {"",5} {totalOurs,7:F2} {totalTheirs,7:F2}");
        }
        finally
        {
            foreach (var k in backends) k.Dispose();
        }

        if (only is not null) return 0;

        // The whole forward, same timing rule: what the network adds to its convolutions.
        var kind = DiagnosticArguments.Network(which);
        using var workload = Workload.Create(kind, threads);
        workload.VerifyOrThrow();
        double wholeOurs = double.MaxValue, wholeTheirs = double.MaxValue;
        for (int round = 0; round < 5; round++)
        {
            workload.RunOurs();
            for (int r = 0; r < 5; r++) wholeOurs = Math.Min(wholeOurs, Time(() => workload.RunOurs()));
            workload.RunTheirs();
            for (int r = 0; r < 5; r++) wholeTheirs = Math.Min(wholeTheirs, Time(() => workload.RunTheirs()));
        }
        Console.WriteLine($"{"whole network",-44} {"",3} {"",6} {"",7} {"",7} {"",7} {"",7} {wholeOurs / wholeTheirs,6:F2} {"",5} {wholeOurs,7:F2} {wholeTheirs,7:F2}");
        return 0;
    }

    private static string Name(Layer layer)
    {
        var s = layer.Shape;
        return $"{s.Cin}→{s.Cout} {s.KH}×{s.KW}/{s.StrideH} p{s.PadH} {s.H}²→{s.OutH}² n{s.N}{(layer.Relu ? " relu" : "")}";
    }

    private static double Median(List<double> v)
    {
        v.Sort();
        return v[v.Count / 2];
    }

    private static bool s_cold;
    private static long[]? s_evict;

    private static double Time(Action a)
    {
        if (s_cold)
        {
            s_evict ??= new long[8 << 20]; // 64 MB: more than this VM's share of the last-level cache
            for (int i = 0; i < s_evict.Length; i += 8) s_evict[i]++;
        }
        long start = Stopwatch.GetTimestamp();
        a();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    // The convolutions of a torchvision ResNet, from the descriptor's own block walk, equal ones merged.
    private static List<Layer> Convolutions(ArchitectureDescriptor a, int n)
    {
        var all = new List<(Conv2dShape, bool)>();
        int h = a.InputSide, width = a.Width;
        Conv2dShape Conv(int cin, int cout, int k, int stride, int pad) => new(n, cin, h, h, cout, k, k, stride, stride, pad, pad);
        if (a.Stem == ResNetStem.ImageNet)
        {
            var stem = Conv(a.InputChannels, width, 7, 2, 3);
            all.Add((stem, true));
            h = (stem.OutH + 2 - 3) / 2 + 1; // max-pool 3×3/2 pad 1
        }
        else all.Add((Conv(a.InputChannels, width, 3, 1, 1), true));
        foreach (var block in a.ResNetBlocks())
        {
            int hOut = (h - 1) / block.Stride + 1;
            if (block.HasDownsample) all.Add((Conv(block.InPlanes, block.OutChannels, 1, block.Stride, 0), false));
            if (block.Bottleneck)
            {
                all.Add((Conv(block.InPlanes, block.Width, 1, 1, 0), true));
                all.Add((Conv(block.Width, block.Width, 3, block.Stride, 1), true));
                h = hOut;
                all.Add((Conv(block.Width, block.OutChannels, 1, 1, 0), false));
            }
            else
            {
                all.Add((Conv(block.InPlanes, block.Width, 3, block.Stride, 1), true));
                h = hOut;
                all.Add((Conv(block.Width, block.OutChannels, 3, 1, 1), false));
            }
        }
        return all.GroupBy(l => l).Select(g => new Layer(g.Key.Item1, g.Key.Item2, g.Count())).ToList();
    }
}
