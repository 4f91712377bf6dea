using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Cpu;

namespace ModelGuardian.Tests.Kernels;

/// <summary>The fast CPU backend against the reference, through the same suite as ILGPU.</summary>
public sealed class CpuAgreementTests : KernelAgreementSuite
{
    protected override IKernels CreateBackend() => new CpuKernels();
}
