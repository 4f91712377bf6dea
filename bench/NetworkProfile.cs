using System.Diagnostics;
using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Weights;

namespace ModelGuardian.Bench;

/// <summary>
/// A diagnostic (`--in-network <net> [--nodes] [--threads N]`): our whole forward, every kernel call timed where
/// it runs — inside the network, after the layer before it — through a timing decorator over
/// <see cref="CpuKernels"/>; then ONNX Runtime's own profile of the same forwards, node by node. Per call the
/// fastest of 40 forwards, summed by kind (--nodes: also each call in order); the whole forward's fastest and
/// median beside the sum, and the time between kernel calls (the host's composing, buffer renting). It showed
/// that ONNX Runtime's convolutions run faster inside its network than alone — it keeps its channel-blocked
/// layout between them, and `--layers` times each one with the reorders in and out — so the per-layer
/// ratios flattered us. Not a benchmark.
/// </summary>
public static class NetworkProfile
{
    public static int Run(string which, int threads, bool nodes, int forwards = 40)
    {
        var (architecture, batch) = DiagnosticArguments.NetworkAndBatch(which);
        using var timing = new TimingKernels(new CpuKernels(threads));
        var (net, tensors) = RandomWeights.Create(timing, architecture, Workload.WeightSeed);
        using var _net = net;
        var shape = new Shape4(batch, architecture.InputChannels, architecture.InputSide, architecture.InputSide);
        var input = Workload.RandomInput(shape.Length, Workload.InputSeed, -2f, 2.5f);

        double[]? fastest = null;
        string[]? labels = null;
        var wholes = new List<double>();
        List<double> gapSums = new(), maxGaps = new();
        for (int f = 0; f < forwards + 3; f++)
        {
            timing.Calls.Clear(); timing.Gaps.Clear(); timing.LastEnd = 0;
            long t0 = Stopwatch.GetTimestamp();
            net.Forward(input, shape);
            double whole = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            if (f < 3) continue; // warm-up (and tiering)
            wholes.Add(whole);
            gapSums.Add(timing.Gaps.Sum()); maxGaps.Add(timing.Gaps.Max());
            KeepFastest(timing, ref labels, ref fastest);
        }
        wholes.Sort();
        Console.WriteLine($"{which}: {forwards} forwards on {threads} thread(s); per kernel call its fastest (ms), summed by kind");
        PrintByKind(labels!, fastest!);
        double sum = fastest!.Sum();
        if (nodes)
            for (int i = 0; i < labels!.Length; i++) Console.WriteLine($"  {labels[i],-60} {fastest![i],8:F3}");
        Console.WriteLine($"{"Σ kernel calls (fastest each)",-70} {fastest!.Length,3} {sum,8:F3}");
        Console.WriteLine($"{"whole forward: fastest / median",-70} {"",3} {wholes[0],8:F3} {wholes[wholes.Count / 2],8:F3}");
        gapSums.Sort(); maxGaps.Sort();
        Console.WriteLine($"{"between kernel calls: Σ gaps fastest / median; largest gap median",-70} {"",3} {gapSums[0],8:F3} {gapSums[gapSums.Count / 2],8:F3} {maxGaps[maxGaps.Count / 2],8:F3}");
        TheirsByNode(architecture, tensors, shape, input, threads, forwards, nodes);
        return 0;
    }

    /// <summary>
    /// `--in-training &lt;width&gt; [batch]`: one SGD step of a CIFAR-stem ResNet-18 of that width (forward, backward,
    /// update) on 32² inputs, every kernel call timed as in <see cref="Run"/>: the shape the attacks' clones and the
    /// default victim train at. Fastest of <paramref name="steps"/> steps per call, summed by kind. Not a benchmark.
    /// </summary>
    public static int RunTraining(int width, int batch, int threads, int steps = 20)
    {
        using var timing = new TimingKernels(new CpuKernels(threads));
        var architecture = ArchitectureDescriptor.ResNet(18, 10, ResNetStem.Cifar, 32, width);
        using var net = ModelGuardian.Engine.Training.TrainableNetwork.ResNet(timing, architecture, Workload.WeightSeed);
        var optimizer = new ModelGuardian.Engine.Training.SgdOptimizer(net.Parameters, 0.01f, 0.9f, 5e-4f);
        var shape = new Shape4(batch, 3, 32, 32);
        var input = Workload.RandomInput(shape.Length, Workload.InputSeed, -2f, 2.5f);
        var labels = Enumerable.Range(0, batch).Select(i => i % 10).ToArray();
        double[]? fastest = null;
        string[]? labelsOf = null;
        var wholes = new List<double>();
        for (int f = 0; f < steps + 3; f++)
        {
            timing.Calls.Clear(); timing.Gaps.Clear(); timing.LastEnd = 0;
            long t0 = Stopwatch.GetTimestamp();
            net.ForwardBackward(input, shape, y => ModelGuardian.Engine.Training.Losses.CrossEntropy(y, labels, 10));
            optimizer.Step();
            double whole = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            if (f < 3) continue;
            wholes.Add(whole);
            KeepFastest(timing, ref labelsOf, ref fastest);
        }
        wholes.Sort();
        Console.WriteLine($"resnet18-cifar width {width} batch {batch}: {steps} SGD steps on {threads} thread(s); per kernel call its fastest (ms), summed by kind");
        PrintByKind(labelsOf!, fastest!);
        Console.WriteLine($"{"Σ kernel calls (fastest each)",-70} {fastest!.Length,3} {fastest.Sum(),8:F3}");
        Console.WriteLine($"{"whole step: fastest / median",-70} {"",3} {wholes[0],8:F3} {wholes[wholes.Count / 2],8:F3}");
        return 0;
    }

    // Per kernel call, in call order, the fastest time seen so far (the first run sets the labels).
    private static void KeepFastest(TimingKernels timing, ref string[]? labels, ref double[]? fastest)
    {
        if (fastest is null)
        {
            labels = timing.Calls.Select(c => c.Label).ToArray();
            fastest = timing.Calls.Select(c => c.Ms).ToArray();
            return;
        }
        if (fastest.Length != timing.Calls.Count) throw new InvalidOperationException($"A run made {timing.Calls.Count} kernel calls, the first {fastest.Length}.");
        for (int i = 0; i < fastest.Length; i++) fastest[i] = Math.Min(fastest[i], timing.Calls[i].Ms);
    }

    internal static void PrintByKind(string[] labels, double[] fastest)
    {
        foreach (var g in labels.Select((l, i) => (l, t: fastest[i])).GroupBy(x => x.l).OrderByDescending(g => g.Sum(x => x.t)))
            Console.WriteLine($"{g.Key,-70} {g.Count(),3} {g.Sum(x => x.t),8:F3}");
    }

    // ONNX Runtime's own profiler on the same graph as the benchmark: per node its fastest time over the
    // forwards (µs in the profile's "dur"), summed by operator.
    private static void TheirsByNode(ArchitectureDescriptor a, ModelGuardian.Engine.Core.TensorSet tensors, Shape4 shape, float[] input, int threads, int forwards, bool nodes)
    {
        using var options = new Microsoft.ML.OnnxRuntime.SessionOptions
        {
            IntraOpNumThreads = threads, InterOpNumThreads = 1, EnableProfiling = true,
            ProfileOutputPathPrefix = Path.Combine(Path.GetTempPath(), "mg-ort-profile"),
            GraphOptimizationLevel = Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(OnnxResNet.Build(a, tensors, shape.N, shape.H), options);
        var output = new float[shape.N * a.Outputs];
        using var x = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(input, [shape.N, shape.C, shape.H, shape.W]);
        using var y = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(output, [shape.N, a.Outputs]);
        using var run = new Microsoft.ML.OnnxRuntime.RunOptions();
        var wholes = new List<double>();
        for (int f = 0; f < forwards + 3; f++)
        {
            long t0 = Stopwatch.GetTimestamp();
            session.Run(run, [OnnxResNet.InputName], [x], [OnnxResNet.OutputName], [y]);
            if (f >= 3) wholes.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        string file = session.EndProfiling();
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(file));
        File.Delete(file);
        var fastest = new Dictionary<string, (string Op, double Us)>();
        var order = new List<string>();
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            if (e.GetProperty("cat").GetString() != "Node" || !e.GetProperty("name").GetString()!.EndsWith("_kernel_time", StringComparison.Ordinal)) continue;
            string node = e.GetProperty("name").GetString()!, op = e.GetProperty("args").GetProperty("op_name").GetString()!;
            double us = e.GetProperty("dur").GetDouble();
            if (!fastest.ContainsKey(node)) order.Add(node);
            fastest[node] = fastest.TryGetValue(node, out var seen) ? (op, Math.Min(seen.Us, us)) : (op, us);
        }
        wholes.Sort();
        Console.WriteLine($"ONNX Runtime, same forwards: per node its fastest (ms), summed by operator");
        foreach (var g in fastest.Values.GroupBy(v => v.Op).OrderByDescending(g => g.Sum(v => v.Us)))
            Console.WriteLine($"{g.Key,-70} {g.Count(),3} {g.Sum(v => v.Us) / 1000,8:F3}");
        if (nodes)
            foreach (var n in order) Console.WriteLine($"  {n,-60} {fastest[n].Us / 1000,8:F3}");
        Console.WriteLine($"{"Σ nodes (fastest each)",-70} {fastest.Count,3} {fastest.Values.Sum(v => v.Us) / 1000,8:F3}");
        Console.WriteLine($"{"whole forward: fastest / median",-70} {"",3} {wholes[0],8:F3} {wholes[wholes.Count / 2],8:F3}");
    }

    /// <summary>Every kernel call forwarded to the inner backend, its time logged.</summary>
    internal sealed class TimingKernels(IKernels inner) : IKernels, IBlockedKernels
    {
        private IBlockedKernels Blocked => (IBlockedKernels)inner;
        public bool BlockedInference => inner is IBlockedKernels { BlockedInference: true };
        public bool SupportsBlockedConv2d(in Conv2dShape s, in BlockedLayout input) => Blocked.SupportsBlockedConv2d(s, input);
        public void ToBlocked(in BlockedLayout layout, DeviceBuffer x, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); Blocked.ToBlocked(layout, x, y); Log("ToBlocked", t0); }
        public void BlockedConv2dForward(in Conv2dShape s, in BlockedLayout input, in BlockedLayout output, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias,
            DeviceBuffer y, float? leakyReluSlope = null, DeviceBuffer? residual = null)
        { long t0 = Stopwatch.GetTimestamp(); Blocked.BlockedConv2dForward(s, input, output, x, w, bias, y, leakyReluSlope, residual); Log(Label("BlockedConv", s, residual), t0); }
        public void BlockedMaxPool2dForward(in Pool2dShape s, in BlockedLayout input, in BlockedLayout output, DeviceBuffer x, DeviceBuffer y)
        { long t0 = Stopwatch.GetTimestamp(); Blocked.BlockedMaxPool2dForward(s, input, output, x, y); Log("BlockedMaxPool", t0); }
        public void BlockedGlobalAveragePool(in BlockedLayout input, DeviceBuffer x, DeviceBuffer y)
        { long t0 = Stopwatch.GetTimestamp(); Blocked.BlockedGlobalAveragePool(input, x, y); Log("BlockedGlobalAveragePool", t0); }

        public readonly List<(string Label, double Ms)> Calls = new();
        public string Name => inner.Name;
        public DeviceBuffer AllocateConstant(ReadOnlySpan<float> values) => inner.AllocateConstant(values);
        public void Dispose() => inner.Dispose();

        public long LastEnd;
        public readonly List<double> Gaps = new();
        private void Log(string label, long t0)
        {
            long now = Stopwatch.GetTimestamp();
            if (LastEnd != 0) Gaps.Add(Stopwatch.GetElapsedTime(LastEnd, t0).TotalMilliseconds);
            Calls.Add((label, Stopwatch.GetElapsedTime(t0, now).TotalMilliseconds));
            LastEnd = Stopwatch.GetTimestamp();
        }

        internal static string Label(string name, in Conv2dShape s, DeviceBuffer? residual)
            => $"{name} {s.Cin}→{s.Cout} {s.KH}×{s.KW}/{s.StrideH} {s.H}²→{s.OutH}²{(residual is null ? "" : " +res")}";

        public DeviceBuffer Allocate(int length) => inner.Allocate(length);
        public void Upload(ReadOnlySpan<float> source, DeviceBuffer destination, int destinationOffset = 0) { long t0 = Stopwatch.GetTimestamp(); inner.Upload(source, destination, destinationOffset); Log("Upload", t0); }
        public void Download(DeviceBuffer source, Span<float> destination, int sourceOffset = 0) { long t0 = Stopwatch.GetTimestamp(); inner.Download(source, destination, sourceOffset); Log("Download", t0); }
        public void Fill(DeviceBuffer buffer, int count, float value) { long t0 = Stopwatch.GetTimestamp(); inner.Fill(buffer, count, value); Log("Fill", t0); }
        public void Conv2dForward(in Conv2dShape s, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, DeviceBuffer y, float? leakyReluSlope = null, DeviceBuffer? residual = null) { long t0 = Stopwatch.GetTimestamp(); inner.Conv2dForward(in s, x, w, bias, y, leakyReluSlope, residual); Log(Label("Conv2dForward", s, residual), t0); }
        public void Conv2dBackwardInput(in Conv2dShape s, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer dx) { long t0 = Stopwatch.GetTimestamp(); inner.Conv2dBackwardInput(in s, dy, w, dx); Log(Label("Conv2dBackwardInput", s, null), t0); }
        public void DenseForward(int n, int inFeatures, int outFeatures, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.DenseForward(n, inFeatures, outFeatures, x, w, bias, y); Log("DenseForward", t0); }
        public void DenseBackwardInput(int n, int inFeatures, int outFeatures, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer dx) { long t0 = Stopwatch.GetTimestamp(); inner.DenseBackwardInput(n, inFeatures, outFeatures, dy, w, dx); Log("DenseBackwardInput", t0); }
        public void ChannelAffineForward(int n, int c, int hw, DeviceBuffer x, DeviceBuffer scale, DeviceBuffer shift, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.ChannelAffineForward(n, c, hw, x, scale, shift, y); Log("ChannelAffineForward", t0); }
        public void ChannelAffineBackward(int n, int c, int hw, DeviceBuffer dy, DeviceBuffer scale, DeviceBuffer dx) { long t0 = Stopwatch.GetTimestamp(); inner.ChannelAffineBackward(n, c, hw, dy, scale, dx); Log("ChannelAffineBackward", t0); }
        public void LeakyReluForward(int count, float slope, DeviceBuffer x, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.LeakyReluForward(count, slope, x, y); Log("LeakyReluForward", t0); }
        public void LeakyReluBackward(int count, float slope, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx) { long t0 = Stopwatch.GetTimestamp(); inner.LeakyReluBackward(count, slope, y, dy, dx); Log("LeakyReluBackward", t0); }
        public void BiasLeakyReluForward(int n, int c, int hw, float slope, DeviceBuffer x, DeviceBuffer bias, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.BiasLeakyReluForward(n, c, hw, slope, x, bias, y); Log("BiasLeakyReluForward", t0); }
        public void SigmoidForward(int count, DeviceBuffer x, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.SigmoidForward(count, x, y); Log("SigmoidForward", t0); }
        public void SigmoidBackward(int count, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx) { long t0 = Stopwatch.GetTimestamp(); inner.SigmoidBackward(count, y, dy, dx); Log("SigmoidBackward", t0); }
        public void SoftmaxForward(int n, int k, DeviceBuffer x, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.SoftmaxForward(n, k, x, y); Log("SoftmaxForward", t0); }
        public void SoftmaxBackward(int n, int k, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx) { long t0 = Stopwatch.GetTimestamp(); inner.SoftmaxBackward(n, k, y, dy, dx); Log("SoftmaxBackward", t0); }
        public void MaxPool2dForward(in Pool2dShape s, DeviceBuffer x, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.MaxPool2dForward(in s, x, y); Log("MaxPool2dForward " + s, t0); }
        public void MaxPool2dBackward(in Pool2dShape s, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx) { long t0 = Stopwatch.GetTimestamp(); inner.MaxPool2dBackward(in s, x, dy, dx); Log("MaxPool2dBackward " + s, t0); }
        public void AvgPool2dForward(in Pool2dShape s, bool countIncludePad, DeviceBuffer x, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.AvgPool2dForward(in s, countIncludePad, x, y); Log("AvgPool2dForward " + s, t0); }
        public void AvgPool2dBackward(in Pool2dShape s, bool countIncludePad, DeviceBuffer dy, DeviceBuffer dx) { long t0 = Stopwatch.GetTimestamp(); inner.AvgPool2dBackward(in s, countIncludePad, dy, dx); Log("AvgPool2dBackward " + s, t0); }
        public void AdaptiveAvgPool2dForward(int n, int c, int h, int w, int outH, int outW, DeviceBuffer x, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.AdaptiveAvgPool2dForward(n, c, h, w, outH, outW, x, y); Log("AdaptiveAvgPool2dForward", t0); }
        public void AdaptiveAvgPool2dBackward(int n, int c, int h, int w, int outH, int outW, DeviceBuffer dy, DeviceBuffer dx) { long t0 = Stopwatch.GetTimestamp(); inner.AdaptiveAvgPool2dBackward(n, c, h, w, outH, outW, dy, dx); Log("AdaptiveAvgPool2dBackward", t0); }
        public void Add(int count, DeviceBuffer a, DeviceBuffer b, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.Add(count, a, b, y); Log("Add", t0); }
        public void Axpy(int count, float a, DeviceBuffer x, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.Axpy(count, a, x, y); Log("Axpy", t0); }
        public void CopyChannels(int n, int hw, int channels, DeviceBuffer src, int srcC, int srcChannel, DeviceBuffer dst, int dstC, int dstChannel) { long t0 = Stopwatch.GetTimestamp(); inner.CopyChannels(n, hw, channels, src, srcC, srcChannel, dst, dstC, dstChannel); Log("CopyChannels", t0); }
        public void ResizeForward(in ResizeShape s, DeviceBuffer x, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.ResizeForward(in s, x, y); Log("ResizeForward", t0); }
        public void ResizeBackward(in ResizeShape s, DeviceBuffer dy, DeviceBuffer dx) { long t0 = Stopwatch.GetTimestamp(); inner.ResizeBackward(in s, dy, dx); Log("ResizeBackward", t0); }
        public void MinibatchStddevForward(int n, int c, int h, int w, int groupSize, float epsilon, DeviceBuffer x, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.MinibatchStddevForward(n, c, h, w, groupSize, epsilon, x, y); Log("MinibatchStddevForward", t0); }
        public void MinibatchStddevBackward(int n, int c, int h, int w, int groupSize, float epsilon, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx) { long t0 = Stopwatch.GetTimestamp(); inner.MinibatchStddevBackward(n, c, h, w, groupSize, epsilon, x, dy, dx); Log("MinibatchStddevBackward", t0); }
        public void Conv2dBackwardWeight(in Conv2dShape s, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, DeviceBuffer? dbias) { long t0 = Stopwatch.GetTimestamp(); inner.Conv2dBackwardWeight(in s, x, dy, dw, dbias); Log(Label("Conv2dBackwardWeight", s, null), t0); }
        public void ChannelSum(int n, int c, int hw, DeviceBuffer dy, DeviceBuffer sum) { long t0 = Stopwatch.GetTimestamp(); inner.ChannelSum(n, c, hw, dy, sum); Log("ChannelSum", t0); }
        public void DenseBackwardWeight(int n, int inFeatures, int outFeatures, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, DeviceBuffer? dbias) { long t0 = Stopwatch.GetTimestamp(); inner.DenseBackwardWeight(n, inFeatures, outFeatures, x, dy, dw, dbias); Log("DenseBackwardWeight", t0); }
        public void BatchNormTrainForward(int n, int c, int hw, float epsilon, float momentum, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer runningMean, DeviceBuffer runningVar, DeviceBuffer saveMean, DeviceBuffer saveInvStd, DeviceBuffer y) { long t0 = Stopwatch.GetTimestamp(); inner.BatchNormTrainForward(n, c, hw, epsilon, momentum, x, gamma, beta, runningMean, runningVar, saveMean, saveInvStd, y); Log("BatchNormTrainForward", t0); }
        public void BatchNormTrainBackward(int n, int c, int hw, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer gamma, DeviceBuffer saveMean, DeviceBuffer saveInvStd, DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta) { long t0 = Stopwatch.GetTimestamp(); inner.BatchNormTrainBackward(n, c, hw, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta); Log("BatchNormTrainBackward", t0); }
        public void SgdStep(int count, float lr, float momentum, float weightDecay, DeviceBuffer w, DeviceBuffer g, DeviceBuffer velocity) { long t0 = Stopwatch.GetTimestamp(); inner.SgdStep(count, lr, momentum, weightDecay, w, g, velocity); Log("SgdStep", t0); }
        public void AdamStep(int count, float lr, float beta1, float beta2, float epsilon, float weightDecay, int step, DeviceBuffer w, DeviceBuffer g, DeviceBuffer m, DeviceBuffer v) { long t0 = Stopwatch.GetTimestamp(); inner.AdamStep(count, lr, beta1, beta2, epsilon, weightDecay, step, w, g, m, v); Log("AdamStep", t0); }
    }
}
