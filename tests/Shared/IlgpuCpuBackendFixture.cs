using ModelGuardian.Kernels.Ilgpu;

namespace ModelGuardian.Tests.Kernels;

/// <summary>One ILGPU CPU-accelerator backend for the whole class (kernel loading takes seconds).</summary>
public sealed class IlgpuCpuBackendFixture : IDisposable
{
    public IlgpuKernels Kernels { get; } = IlgpuKernels.CreateCpuAccelerator();

    public void Dispose() => Kernels.Dispose();
}
