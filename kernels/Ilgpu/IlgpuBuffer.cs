using ILGPU;
using ILGPU.Runtime;

namespace ModelGuardian.Kernels.Ilgpu;

/// <summary>Device memory of an <see cref="IlgpuKernels"/> backend (CUDA memory, or host memory for ILGPU's CPU accelerator).</summary>
public sealed class IlgpuBuffer : DeviceBuffer
{
    private MemoryBuffer1D<float, Stride1D.Dense>? _memory;

    private readonly IlgpuKernels _owner;

    internal IlgpuBuffer(IlgpuKernels owner, MemoryBuffer1D<float, Stride1D.Dense> memory, int length) : base(owner, length)
    {
        _owner = owner;
        _memory = memory;
    }

    /// <summary>The ILGPU memory behind this buffer (it may be longer than <see cref="DeviceBuffer.Length"/>).</summary>
    public MemoryBuffer1D<float, Stride1D.Dense> Memory
        => _memory ?? throw new ObjectDisposedException(nameof(IlgpuBuffer), "This buffer was disposed.");

    /// <summary>A view of the first <see cref="DeviceBuffer.Length"/> floats.</summary>
    internal ArrayView<float> View => Memory.View.SubView(0, Length);

    protected override void Release()
    {
        var memory = _memory;
        _memory = null;
        if (memory is not null) _owner.ReleaseMemory(memory);
    }
}
