using System.Collections.Concurrent;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Core;

/// <summary>An NCHW shape; dense activations are (N, F, 1, 1).</summary>
public readonly record struct Shape4(int N, int C, int H, int W)
{
    public int Length => checked(N * C * H * W);
    public int PerImage => C * H * W;
    public override string ToString() => $"({N}, {C}, {H}, {W})";
}

/// <summary>A tensor living in a backend buffer that may be longer than the tensor.</summary>
public sealed class Tensor(DeviceBuffer buffer, Shape4 shape)
{
    public DeviceBuffer Buffer { get; } = buffer;
    public Shape4 Shape { get; } = shape;
    public int Length => Shape.Length;
}

/// <summary>A tensor in a channel-blocked layout: a backend buffer of at least <see cref="BlockedLayout.Length"/> floats.</summary>
public sealed class BlockedTensor(DeviceBuffer buffer, BlockedLayout layout)
{
    public DeviceBuffer Buffer { get; } = buffer;
    public BlockedLayout Layout { get; } = layout;
}

/// <summary>
/// Recycles backend buffers by exact length: a network called again with the same batch size
/// asks for the same lengths, so steady-state calls allocate nothing. Thread-safe.
/// </summary>
public sealed class BufferPool(IKernels kernels) : IDisposable
{
    private readonly ConcurrentDictionary<int, ConcurrentBag<DeviceBuffer>> _free = new();
    private volatile bool _disposed;

    public IKernels Kernels { get; } = kernels;

    public DeviceBuffer Rent(int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_free.TryGetValue(length, out var bag) && bag.TryTake(out var buffer)) return buffer;
        return Kernels.Allocate(length);
    }

    public void Return(DeviceBuffer buffer)
    {
        if (_disposed) { buffer.Dispose(); return; }
        _free.GetOrAdd(buffer.Length, _ => new ConcurrentBag<DeviceBuffer>()).Add(buffer);
    }

    public void Dispose()
    {
        _disposed = true;
        foreach (var bag in _free.Values) while (bag.TryTake(out var b)) b.Dispose();
    }
}
