namespace ModelGuardian.Kernels.Cpu;

/// <summary>A buffer in managed host memory, used by the reference and CPU backends.</summary>
public sealed class HostBuffer : DeviceBuffer
{
    private float[]? _data;

    public HostBuffer(IKernels owner, int length) : base(owner, length)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, "Buffer length must be ≥ 0.");
        // Pinned so that the SIMD kernels may take raw pointers without fixed blocks on hot paths.
        _data = GC.AllocateArray<float>(length, pinned: true);
    }

    public float[] Data => _data ?? throw new ObjectDisposedException(nameof(HostBuffer), "This buffer was disposed.");

    public Span<float> Span => Data.AsSpan();

    protected override void Release() => _data = null;

    /// <summary>The host array behind <paramref name="buffer"/>, checking it belongs to <paramref name="owner"/>.</summary>
    internal static float[] Of(IKernels owner, DeviceBuffer buffer, int needed, string name)
    {
        if (buffer is not HostBuffer host)
            throw new ArgumentException($"{name}: buffer of backend '{buffer.Owner.Name}' passed to '{owner.Name}'.");
        if (buffer.IsDisposed) throw new ObjectDisposedException(name, $"{name}: buffer was disposed.");
        if (needed > buffer.Length)
            throw new ArgumentException($"{name}: buffer holds {buffer.Length} floats, the shape needs {needed}.");
        return host.Data;
    }
}
