namespace ModelGuardian.Kernels;

/// <summary>
/// Memory owned by one backend (host array for the CPU backend, device memory for ILGPU).
/// Lengths are in fp32 elements. A buffer may be longer than the tensor stored in it
/// (pooled buffers), so every kernel takes its extent from the shape it is given.
/// </summary>
public abstract class DeviceBuffer : IDisposable
{
    protected DeviceBuffer(IKernels owner, int length)
    {
        Owner = owner;
        Length = length;
    }

    public IKernels Owner { get; }
    public int Length { get; }
    public bool IsDisposed { get; private set; }

    /// <summary>
    /// Set once a buffer is filled by <see cref="IKernels.AllocateConstant"/>: uploads and fills are
    /// refused from then on, so a backend may cache derived forms of it (e.g. packed weights).
    /// </summary>
    public bool IsConstant { get; private set; }

    internal void Freeze() => IsConstant = true;

    /// <summary>Refuses a write into a constant buffer (uploads, fills; kernels never take weights as outputs).</summary>
    public static void ThrowIfConstant(DeviceBuffer buffer, string operation)
    {
        if (buffer.IsConstant) throw new InvalidOperationException($"{operation}: the buffer is constant (network weights) and cannot be written.");
    }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        Release();
        GC.SuppressFinalize(this);
    }

    protected abstract void Release();
}

/// <summary>
/// The layer contract: every network layer's forward pass and backward pass to the input,
/// on NCHW fp32 tensors. Two implementations: <c>CpuKernels</c> (managed SIMD) and
/// <c>IlgpuKernels</c> (CUDA, or ILGPU's CPU accelerator in tests). Kernels know nothing of
/// networks: they see buffers and shapes only.
///
/// Conventions
/// - Backward passes compute the gradient with respect to the layer's input only and
///   <b>overwrite</b> dx (they never accumulate), unless the name says Accumulate.
/// - Activation backward passes take the forward <i>output</i> y: for slope ≥ 0 the sign of
///   y equals the sign of the pre-activation, so the input need not be kept.
/// - Calls are synchronous from the caller's view: when a method returns, results are
///   visible to <see cref="Download"/> and to the next kernel.
/// - Implementations are thread-safe: several networks may run on one backend at once.
/// </summary>
public interface IKernels : IDisposable
{
    /// <summary>Human-readable name, e.g. "cpu-avx512" or "ilgpu-cuda (NVIDIA H100)".</summary>
    string Name { get; }

    /// <summary>Allocates a zero-filled buffer of <paramref name="length"/> floats.</summary>
    DeviceBuffer Allocate(int length);

    /// <summary>
    /// A buffer holding <paramref name="values"/> that is never written again (network weights). The CPU
    /// backend keeps convolution weights packed for its GEMM per such buffer instead of repacking them
    /// on every call.
    /// </summary>
    DeviceBuffer AllocateConstant(ReadOnlySpan<float> values)
    {
        var buffer = Allocate(values.Length);
        Upload(values, buffer);
        buffer.Freeze();
        return buffer;
    }

    void Upload(ReadOnlySpan<float> source, DeviceBuffer destination, int destinationOffset = 0);
    void Download(DeviceBuffer source, Span<float> destination, int sourceOffset = 0);
    void Fill(DeviceBuffer buffer, int count, float value);

    // ---- convolution -------------------------------------------------------------
    // x: (N, Cin, H, W) · w: (Cout, Cin/G, KH, KW) · bias: (Cout) or null · y: (N, Cout, OH, OW)
    // Fused epilogue: y = lrelu(conv + bias + residual), each part optional — residual: (N, Cout, OH, OW),
    // e.g. a ResNet block's shortcut; leakyReluSlope (0 = ReLU), whose backward is LeakyReluBackward on y.
    void Conv2dForward(in Conv2dShape s, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, DeviceBuffer y, float? leakyReluSlope = null, DeviceBuffer? residual = null);
    // dy: (N, Cout, OH, OW) · w: (Cout, Cin/G, KH, KW) → dx: (N, Cin, H, W)
    void Conv2dBackwardInput(in Conv2dShape s, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer dx);

    // ---- dense ---------------------------------------------------------------------
    // x: (N, In) · w: (Out, In) · bias: (Out) or null → y: (N, Out)
    void DenseForward(int n, int inFeatures, int outFeatures, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, DeviceBuffer y);
    // dy: (N, Out) · w: (Out, In) → dx: (N, In)
    void DenseBackwardInput(int n, int inFeatures, int outFeatures, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer dx);

    // ---- per-channel affine (inference batch-norm when it cannot be folded) -------
    // x: (N, C, HW) · scale, shift: (C) → y = x·scale[c] + shift[c]
    void ChannelAffineForward(int n, int c, int hw, DeviceBuffer x, DeviceBuffer scale, DeviceBuffer shift, DeviceBuffer y);
    // dy: (N, C, HW) · scale: (C) → dx = dy·scale[c]
    void ChannelAffineBackward(int n, int c, int hw, DeviceBuffer dy, DeviceBuffer scale, DeviceBuffer dx);

    // ---- activations (slope 0 = ReLU) ---------------------------------------------
    // x, y: (count) → y = x > 0 ? x : slope·x   (in place allowed: x == y)
    void LeakyReluForward(int count, float slope, DeviceBuffer x, DeviceBuffer y);
    // y (forward output), dy → dx = dy · (y > 0 ? 1 : slope)   (in place allowed: dy == dx)
    void LeakyReluBackward(int count, float slope, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx);
    // x: (N, C, HW) · bias: (C) → y = lrelu(x + bias[c])   (StyleGAN: bias after conv/pool)
    void BiasLeakyReluForward(int n, int c, int hw, float slope, DeviceBuffer x, DeviceBuffer bias, DeviceBuffer y);
    // y, dy: (count) → dx = dy · σ'(·) = dy · y · (1 − y)
    void SigmoidForward(int count, DeviceBuffer x, DeviceBuffer y);
    void SigmoidBackward(int count, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx);
    // x, y: (N, K) softmax over K
    void SoftmaxForward(int n, int k, DeviceBuffer x, DeviceBuffer y);
    // y, dy: (N, K) → dx = y ⊙ (dy − Σ_k dy·y)
    void SoftmaxBackward(int n, int k, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx);

    // ---- pooling ---------------------------------------------------------------------
    // x: (N, C, H, W) → y: (N, C, OH, OW); padding never wins the max (PyTorch semantics)
    void MaxPool2dForward(in Pool2dShape s, DeviceBuffer x, DeviceBuffer y);
    // x: forward input, dy: (N, C, OH, OW) → dx: (N, C, H, W); the first maximum in window order gets the gradient
    void MaxPool2dBackward(in Pool2dShape s, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx);
    // countIncludePad = true is PyTorch's default
    void AvgPool2dForward(in Pool2dShape s, bool countIncludePad, DeviceBuffer x, DeviceBuffer y);
    void AvgPool2dBackward(in Pool2dShape s, bool countIncludePad, DeviceBuffer dy, DeviceBuffer dx);
    // x: (N, C, H, W) → y: (N, C, OH, OW), bins [floor(i·H/OH), ceil((i+1)·H/OH))
    void AdaptiveAvgPool2dForward(int n, int c, int h, int w, int outH, int outW, DeviceBuffer x, DeviceBuffer y);
    void AdaptiveAvgPool2dBackward(int n, int c, int h, int w, int outH, int outW, DeviceBuffer dy, DeviceBuffer dx);

    // ---- element-wise and layout -------------------------------------------------
    // y = a + b over count elements (residual add); y may alias a or b
    void Add(int count, DeviceBuffer a, DeviceBuffer b, DeviceBuffer y);
    // y = a·x + y over count elements (gradient accumulation)
    void Axpy(int count, float a, DeviceBuffer x, DeviceBuffer y);
    // Copies channels [srcChannel, srcChannel + channels) of src (N, srcC, HW) into
    // channels [dstChannel, …) of dst (N, dstC, HW): concat forward and backward.
    void CopyChannels(int n, int hw, int channels, DeviceBuffer src, int srcC, int srcChannel, DeviceBuffer dst, int dstC, int dstChannel);

    // ---- resize --------------------------------------------------------------------
    // x: (N, C, H, W) → y: (N, C, OH, OW)
    void ResizeForward(in ResizeShape s, DeviceBuffer x, DeviceBuffer y);
    // dy: (N, C, OH, OW) → dx: (N, C, H, W)
    void ResizeBackward(in ResizeShape s, DeviceBuffer dy, DeviceBuffer dx);

    // ---- StyleGAN minibatch standard deviation -----------------------------------
    // x: (N, C, H, W) → y: (N, C + 1, H, W). Images are grouped as n = g·(N/G) + m (TF's
    // reshape [G, M, …]); the extra channel of image n is mean_{c,h,w} sqrt(var_g(x) + eps)
    // of its group m. groupSize must divide N; groupSize 1 gives each image the constant √eps.
    void MinibatchStddevForward(int n, int c, int h, int w, int groupSize, float epsilon, DeviceBuffer x, DeviceBuffer y);
    // x: forward input, dy: (N, C + 1, H, W) → dx: (N, C, H, W)
    void MinibatchStddevBackward(int n, int c, int h, int w, int groupSize, float epsilon, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx);

    // ---- training: parameter gradients, batch-norm in training mode, optimizer steps ----
    // Like every backward, these overwrite their outputs; callers accumulate with Axpy.

    // x: (N, Cin, H, W) · dy: (N, Cout, OH, OW) → dw: (Cout, Cin/G, KH, KW) = Σ_n dy ⋆ x; dbias: (Cout) = Σ_{n,y,x} dy
    void Conv2dBackwardWeight(in Conv2dShape s, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, DeviceBuffer? dbias);
    // dy: (N, C, HW) → sum: (C) = Σ_{n,p} dy — the gradient of a per-channel bias added after a pool (StyleGAN's
    // bias-leaky-ReLU: the caller first masks dy with LeakyReluBackward in place).
    void ChannelSum(int n, int c, int hw, DeviceBuffer dy, DeviceBuffer sum);
    // x: (N, In) · dy: (N, Out) → dw: (Out, In) = dyᵀ·x; dbias: (Out) = Σ_n dy
    void DenseBackwardWeight(int n, int inFeatures, int outFeatures, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, DeviceBuffer? dbias);

    // x: (N, C, HW) → y: (N, C, HW) = (x − μ_c)·istd_c·γ_c + β_c with μ_c and the biased σ²_c of the batch,
    // istd_c = 1/√(σ²_c + ε); saveMean, saveInvStd: (C) keep μ and istd for the backward; the running
    // statistics move as PyTorch's do: r_mean ← (1 − m)·r_mean + m·μ, r_var ← (1 − m)·r_var + m·σ²·M/(M − 1), M = N·HW.
    void BatchNormTrainForward(int n, int c, int hw, float epsilon, float momentum, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta,
                               DeviceBuffer runningMean, DeviceBuffer runningVar, DeviceBuffer saveMean, DeviceBuffer saveInvStd, DeviceBuffer y);
    // x: forward input, dy: (N, C, HW) → dx: (N, C, HW), dgamma, dbeta: (C)
    void BatchNormTrainBackward(int n, int c, int hw, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer gamma, DeviceBuffer saveMean, DeviceBuffer saveInvStd,
                                DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta);

    // PyTorch's SGD: g ← g + wd·w; v ← μ·v + g; w ← w − lr·v. w, g, velocity: (count); velocity starts at 0.
    void SgdStep(int count, float lr, float momentum, float weightDecay, DeviceBuffer w, DeviceBuffer g, DeviceBuffer velocity);
    // PyTorch's Adam (L2 weight decay, not AdamW), step t ≥ 1: g ← g + wd·w; m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²;
    // w ← w − (lr / (1 − β1ᵗ))·m / (√v / √(1 − β2ᵗ) + ε). w, g, m, v: (count); m and v start at 0.
    void AdamStep(int count, float lr, float beta1, float beta2, float epsilon, float weightDecay, int step, DeviceBuffer w, DeviceBuffer g, DeviceBuffer m, DeviceBuffer v);
}
