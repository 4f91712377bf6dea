using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;

namespace ModelGuardian.Bench;

/// <summary>
/// Ours vs the strongest yardstick, one category per workload; the yardstick is the category's
/// baseline, so the Ratio column reads ours/theirs (below 1 = we are faster).
/// Every GlobalSetup builds (or reuses) the workload, which runs both sides once and throws if
/// they disagree (outputs 1e-4, StyleGAN input gradient 1e-3 of max-abs).
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class OursVsYardstick
{
    public const string ResNet50B1 = "ResNet-50 224² b1 fwd";
    public const string ResNet50B8 = "ResNet-50 224² b8 fwd";
    public const string StyleGan = "StyleGAN D 256² b1 grad";
    public const string Cifar34B64 = "ResNet-34 CIFAR b64 fwd";
    public const string Cifar18Train = "ResNet-18 CIFAR b64 train step";
    public const string CloneTrain = "clone: ResNet-18 width 8 b64 train step";

    private Workload _w = null!;

    [GlobalSetup(Targets = [nameof(ResNet50B1_OnnxRuntime), nameof(ResNet50B1_Ours)])]
    public void SetupResNet50B1() => _w = Workload.Shared(WorkloadKind.ResNet50Batch1);

    [GlobalSetup(Targets = [nameof(ResNet50B8_OnnxRuntime), nameof(ResNet50B8_Ours)])]
    public void SetupResNet50B8() => _w = Workload.Shared(WorkloadKind.ResNet50Batch8);

    [GlobalSetup(Targets = [nameof(StyleGan_LibTorch), nameof(StyleGan_Ours)])]
    public void SetupStyleGan() => _w = Workload.Shared(WorkloadKind.StyleGanGradient);

    [GlobalSetup(Targets = [nameof(Cifar34B64_OnnxRuntime), nameof(Cifar34B64_Ours)])]
    public void SetupCifar34B64() => _w = Workload.Shared(WorkloadKind.ResNet34CifarBatch64);

    [GlobalSetup(Targets = [nameof(Cifar18Train_LibTorch), nameof(Cifar18Train_Ours)])]
    public void SetupCifar18Train() => _w = Workload.Shared(WorkloadKind.ResNet18CifarTrainBatch64);

    [BenchmarkCategory(Cifar18Train), Benchmark(Baseline = true, Description = "libtorch")]
    public float[] Cifar18Train_LibTorch() => _w.RunTheirs();

    [BenchmarkCategory(Cifar18Train), Benchmark(Description = "ours")]
    public float[] Cifar18Train_Ours() => _w.RunOurs();

    [GlobalSetup(Targets = [nameof(CloneTrain_LibTorch), nameof(CloneTrain_Ours)])]
    public void SetupCloneTrain() => _w = Workload.Shared(WorkloadKind.CloneTrainWidth8Batch64);

    [BenchmarkCategory(CloneTrain), Benchmark(Baseline = true, Description = "libtorch")]
    public float[] CloneTrain_LibTorch() => _w.RunTheirs();

    [BenchmarkCategory(CloneTrain), Benchmark(Description = "ours")]
    public float[] CloneTrain_Ours() => _w.RunOurs();

    [BenchmarkCategory(ResNet50B1), Benchmark(Baseline = true, Description = "ONNX Runtime")]
    public float[] ResNet50B1_OnnxRuntime() => _w.RunTheirs();

    [BenchmarkCategory(ResNet50B1), Benchmark(Description = "ours")]
    public float[] ResNet50B1_Ours() => _w.RunOurs();

    [BenchmarkCategory(ResNet50B8), Benchmark(Baseline = true, Description = "ONNX Runtime")]
    public float[] ResNet50B8_OnnxRuntime() => _w.RunTheirs();

    [BenchmarkCategory(ResNet50B8), Benchmark(Description = "ours")]
    public float[] ResNet50B8_Ours() => _w.RunOurs();

    [BenchmarkCategory(StyleGan), Benchmark(Baseline = true, Description = "libtorch")]
    public float[] StyleGan_LibTorch() => _w.RunTheirs();

    [BenchmarkCategory(StyleGan), Benchmark(Description = "ours")]
    public float[] StyleGan_Ours() => _w.RunOurs();

    [BenchmarkCategory(Cifar34B64), Benchmark(Baseline = true, Description = "ONNX Runtime")]
    public float[] Cifar34B64_OnnxRuntime() => _w.RunTheirs();

    [BenchmarkCategory(Cifar34B64), Benchmark(Description = "ours")]
    public float[] Cifar34B64_Ours() => _w.RunOurs();
}
