using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Ilgpu;

namespace ModelGuardian.Tests.Kernels;

/// <summary>
/// The ILGPU kernels, run on ILGPU's CPU accelerator, against the reference: the same kernel code that
/// runs on CUDA, checked on a machine without a GPU. Tiny shapes only (the CPU accelerator is very slow).
/// </summary>
public sealed class IlgpuCpuAgreementTests(IlgpuCpuBackendFixture fixture) : KernelAgreementSuite, IClassFixture<IlgpuCpuBackendFixture>
{
    protected override IKernels CreateBackend() => fixture.Kernels;

    [Fact]
    public void LoadsEveryKernelOnce()
    {
        Assert.Equal(IlgpuKernels.KernelNames, fixture.Kernels.LoadedKernelNames);
        Assert.StartsWith("ilgpu-cpu", fixture.Kernels.Name);
    }

    [Fact]
    public void DisposedBackendRefusesWork()
    {
        var k = IlgpuKernels.CreateCpuAccelerator();
        var b = k.Allocate(4);
        k.Dispose();
        k.Dispose(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => k.Allocate(4));
        Assert.Throws<ObjectDisposedException>(() => k.Fill(b, 4, 1f));
        b.Dispose(); // after the backend: harmless
    }

    [Fact]
    public void BufferOfAnotherIlgpuBackendIsRejected()
    {
        using var other = IlgpuKernels.CreateCpuAccelerator();
        using var foreign = other.Allocate(8);
        using var own = fixture.Kernels.Allocate(8);
        Assert.Throws<ArgumentException>(() => fixture.Kernels.Add(8, own, foreign, own));
    }
}
