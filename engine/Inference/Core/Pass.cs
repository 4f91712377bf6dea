using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Core;

/// <summary>
/// The backward steps recorded by a forward pass, replayed in reverse. Branches (residual
/// shortcuts) record into child tapes so that each branch is replayed on its own.
/// </summary>
public sealed class Tape
{
    private readonly List<Func<Tensor, Tensor>> _steps = new();

    /// <summary>Records a step that maps the gradient of a layer's output to that of its input.</summary>
    public void Record(Func<Tensor, Tensor> backward) => _steps.Add(backward);

    public Tensor Backward(Tensor outputGradient)
    {
        var g = outputGradient;
        for (int i = _steps.Count - 1; i >= 0; i--) g = _steps[i](g);
        return g;
    }
}

/// <summary>
/// One call of a network: the backend, and every buffer rented during the call, all returned
/// to the pool when the pass is disposed. Passes are not shared between threads.
/// </summary>
public sealed class Pass(BufferPool pool) : IDisposable
{
    private readonly List<DeviceBuffer> _rented = new();

    public IKernels K => pool.Kernels;

    public Tensor New(Shape4 shape)
    {
        var buffer = pool.Rent(shape.Length);
        _rented.Add(buffer);
        return new Tensor(buffer, shape);
    }

    /// <summary>A tensor in a channel-blocked layout (<see cref="IBlockedKernels"/>).</summary>
    public BlockedTensor NewBlocked(BlockedLayout layout)
    {
        var buffer = pool.Rent(layout.Length);
        _rented.Add(buffer);
        return new BlockedTensor(buffer, layout);
    }

    public Tensor Upload(ReadOnlySpan<float> data, Shape4 shape)
    {
        var t = New(shape);
        K.Upload(data, t.Buffer);
        return t;
    }

    /// <summary>
    /// Gives a tensor's buffer back before the pass ends, for the next <see cref="New"/> to reuse while it
    /// is still in cache: an inference pass (no tape) that kept every activation would write each layer's
    /// output into memory not touched since the previous call. Only for a tensor nothing reads again —
    /// never while a tape is recording, since backward steps read the forward's tensors.
    /// </summary>
    public void Release(Tensor t) => Release(t.Buffer);

    /// <summary>As <see cref="Release(Tensor)"/>, for a blocked tensor.</summary>
    public void Release(BlockedTensor t) => Release(t.Buffer);

    private void Release(DeviceBuffer buffer)
    {
        int i = _rented.LastIndexOf(buffer);
        if (i < 0) throw new InvalidOperationException("The tensor's buffer was not rented by this pass (or was released already).");
        _rented.RemoveAt(i);
        pool.Return(buffer);
    }

    public float[] Download(Tensor t)
    {
        var result = new float[t.Length];
        K.Download(t.Buffer, result);
        return result;
    }

    public void Dispose()
    {
        foreach (var b in _rented) pool.Return(b);
        _rented.Clear();
    }
}

/// <summary>A layer: forward, and (when a tape is given) the recording of its backward-to-input.</summary>
public interface ILayer
{
    /// <summary>Output shape for an input shape; throws ArgumentException naming the problem.</summary>
    Shape4 OutputShape(Shape4 input);

    Tensor Forward(Pass pass, Tensor x, Tape? tape);
}
