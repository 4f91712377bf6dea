using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Cpu;

namespace ModelGuardian.Tests.Kernels;

/// <summary>The fast CPU backend against the reference, through the same suite as ILGPU.</summary>
public sealed class CpuAgreementTests : KernelAgreementSuite
{
    protected override IKernels CreateBackend() => new CpuKernels();
}

/// <summary>
/// The CPU backend with every convolution forced onto one algorithm: the automatic choice picks by
/// output width, so the suite's small shapes would otherwise test only im2col.
/// </summary>
public sealed class CpuShiftedConvolutionTests : KernelAgreementSuite
{
    protected override IKernels CreateBackend() => new CpuKernels(convolution: ConvolutionAlgorithm.Shifted);
}

/// <inheritdoc cref="CpuShiftedConvolutionTests"/>
public sealed class CpuIm2ColConvolutionTests : KernelAgreementSuite
{
    protected override IKernels CreateBackend() => new CpuKernels(convolution: ConvolutionAlgorithm.Im2Col);
}
