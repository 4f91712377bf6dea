using ModelGuardian.Kernels.Ilgpu;

namespace ModelGuardian.Tests.Kernels;

/// <summary>Every CUDA kernel of the ILGPU backend compiles to PTX, with no GPU present.</summary>
public sealed class IlgpuPtxTests
{
    [Fact]
    public void EveryKernelCompilesToPtx()
    {
        var ptx = IlgpuKernels.CompileAllKernelsToPtx();
        // The PTX check covers exactly the kernel list the backend loads from (IlgpuKernelBodies);
        // IlgpuCpuAgreementTests.LoadsEveryKernelOnce checks that the backend loads exactly that list.
        Assert.Equal(IlgpuKernels.KernelNames, ptx.Keys.ToArray());
        Assert.True(IlgpuKernels.KernelNames.Count >= 30, $"only {IlgpuKernels.KernelNames.Count} kernels found");
        foreach (var (name, assembly) in ptx)
        {
            // ILGPU targets the lowest architecture the kernel needs (sm_80 here), which the driver JITs for sm_90.
            Assert.Contains(".version 8.0", assembly);
            Assert.Contains(".target sm_", assembly);
            Assert.Contains(".entry", assembly);
        }
        foreach (var op in new[] { "Conv2dForward", "Conv2dBackwardInput", "MaxPool2dBackward", "ResizeBackward", "MbstdBackwardInput", "SoftmaxForward", "ChannelSum" })
            Assert.Contains(op, ptx.Keys);
    }
}
