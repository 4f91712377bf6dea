using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Kernels.Ilgpu;

namespace ModelGuardian.Engine;

public enum BackendChoice { Auto, Cpu, Cuda }

/// <summary>Picks the backend: CUDA (ILGPU) when a GPU is present, else the managed SIMD CPU backend.</summary>
public static class Backends
{
    public static IKernels Create(BackendChoice choice = BackendChoice.Auto) => choice switch
    {
        BackendChoice.Cpu => new CpuKernels(),
        BackendChoice.Cuda => IlgpuKernels.CreateCuda(), // throws, naming the reason, when there is no CUDA device
        _ => IlgpuKernels.IsCudaAvailable() ? IlgpuKernels.CreateCuda() : new CpuKernels(),
    };

    public static BackendChoice Parse(string name) => name.ToLowerInvariant() switch
    {
        "auto" => BackendChoice.Auto,
        "cpu" => BackendChoice.Cpu,
        "cuda" => BackendChoice.Cuda,
        _ => throw new ArgumentException($"Unknown backend '{name}': use auto, cpu or cuda."),
    };
}
