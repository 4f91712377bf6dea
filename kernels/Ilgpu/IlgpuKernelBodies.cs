using ILGPU;

namespace ModelGuardian.Kernels.Ilgpu;

// Device-side parameter blocks. ILGPU passes unmanaged structs by value to kernels; they keep the
// launch signatures under ILGPU's 14-argument limit and precompute the derived sizes once on the host.

/// <summary>Convolution geometry as the device sees it (see <see cref="Conv2dShape"/>).</summary>
internal struct ConvParams
{
    public int N, Cin, H, W, Cout, KH, KW, SH, SW, PH, PW, CinG, CoutG, OH, OW, HasBias;
    public int G, CoutBlocks; // CoutBlocks = ⌈CoutG / 4⌉: the forward kernel computes 4 output channels per thread

    /// <summary>Output channels per forward thread (register blocking).</summary>
    public const int Block = 4;

    /// <summary>Threads of the forward kernel: one per (n, group, block of 4 output channels, oy, ox).</summary>
    public readonly int ForwardThreads => N * G * CoutBlocks * OH * OW;

    public static ConvParams From(in Conv2dShape s, bool hasBias) => new()
    {
        N = s.N, Cin = s.Cin, H = s.H, W = s.W, Cout = s.Cout, KH = s.KH, KW = s.KW,
        SH = s.StrideH, SW = s.StrideW, PH = s.PadH, PW = s.PadW,
        CinG = s.CinPerGroup, CoutG = s.CoutPerGroup, OH = s.OutH, OW = s.OutW, HasBias = hasBias ? 1 : 0,
        G = s.Groups, CoutBlocks = (s.CoutPerGroup + Block - 1) / Block,
    };
}

/// <summary>Pooling geometry (max, average, adaptive); CountIncludePad is 0 or 1.</summary>
internal struct PoolParams
{
    public int NC, H, W, KH, KW, SH, SW, PH, PW, OH, OW, CountIncludePad;

    public static PoolParams From(in Pool2dShape s, bool countIncludePad) => new()
    {
        NC = s.N * s.C, H = s.H, W = s.W, KH = s.KH, KW = s.KW, SH = s.StrideH, SW = s.StrideW,
        PH = s.PadH, PW = s.PadW, OH = s.OutH, OW = s.OutW, CountIncludePad = countIncludePad ? 1 : 0,
    };

    public static PoolParams Adaptive(int n, int c, int h, int w, int outH, int outW) => new()
    {
        NC = n * c, H = h, W = w, OH = outH, OW = outW,
    };
}

/// <summary>Resize geometry; Bilinear is 0 (nearest) or 1 (bilinear, align_corners = false).</summary>
internal struct ResizeParams
{
    public int NC, H, W, OH, OW, Bilinear;

    public static ResizeParams From(in ResizeShape s) => new()
    {
        NC = s.N * s.C, H = s.H, W = s.W, OH = s.OutH, OW = s.OutW, Bilinear = s.Mode == ResizeMode.Bilinear ? 1 : 0,
    };
}

/// <summary>Minibatch-stddev geometry: N images in G groups of M = N / G (n = g·M + m), CHW = C·H·W.</summary>
internal struct MbstdParams
{
    public int N, G, M, CHW, HW;
    public float Epsilon;

    public static MbstdParams From(int n, int c, int h, int w, int groupSize, float epsilon) => new()
    {
        N = n, G = groupSize, M = n / groupSize, CHW = c * h * w, HW = h * w, Epsilon = epsilon,
    };
}

/// <summary>
/// Device helpers shared by several kernels. They must compute exactly what
/// <see cref="Reference.ReferenceKernels"/> computes (same float operations in the same order).
/// Kept apart from <see cref="IlgpuKernelBodies"/> so that every method there is an entry point.
/// </summary>
internal static class IlgpuDevice
{
    // PyTorch 'nearest': src = min(floor(dst · (float)in / out), in − 1).
    public static int NearestSource(int dst, int inSize, int outSize)
        => Math.Min((int)MathF.Floor(dst * ((float)inSize / outSize)), inSize - 1);

    // PyTorch bilinear, align_corners = false: lower source index of one output coordinate.
    public static int LinearLow(int dst, int inSize, int outSize)
        => Math.Min((int)LinearSrc(dst, inSize, outSize), inSize - 1);

    // Clamped half-pixel source coordinate: max((dst + 0.5)·scale − 0.5, 0).
    public static float LinearSrc(int dst, int inSize, int outSize)
    {
        float scale = (float)inSize / outSize;
        return Math.Max((dst + 0.5f) * scale - 0.5f, 0f);
    }

    // Weight that output coordinate dst gives input coordinate i along one axis (0 if none):
    // (1 − λ) to i0 plus λ to i1 = min(i0 + 1, in − 1), both when they coincide at the border.
    public static float LinearWeight(int dst, int i, int inSize, int outSize)
    {
        float src = LinearSrc(dst, inSize, outSize);
        int i0 = Math.Min((int)src, inSize - 1);
        int i1 = Math.Min(i0 + 1, inSize - 1);
        float l1 = src - i0;
        float wgt = 0f;
        if (i0 == i) wgt += 1 - l1;
        if (i1 == i) wgt += l1;
        return wgt;
    }

    // Index (within the plane) of the first maximum of one max-pooling window, −1 if the window is all
    // padding. NaN wins, like PyTorch (and like the reference: every NaN replaces the current best).
    public static int ArgMaxInWindow(PoolParams p, ArrayView<float> x, int plane, int oy, int ox)
    {
        int best = -1;
        float max = float.NegativeInfinity;
        for (int ky = 0; ky < p.KH; ky++)
        {
            int iy = oy * p.SH - p.PH + ky;
            if (iy < 0 || iy >= p.H) continue;
            for (int kx = 0; kx < p.KW; kx++)
            {
                int ix = ox * p.SW - p.PW + kx;
                if (ix < 0 || ix >= p.W) continue;
                float v = x[plane + iy * p.W + ix];
                if (best < 0 || v > max || float.IsNaN(v)) { max = v; best = iy * p.W + ix; }
            }
        }
        return best;
    }

    // PyTorch's avg_pool2d divisor: padding inside [−pad, size + pad) counts when countIncludePad,
    // never beyond it. Returns the divisor; the clipped window is recomputed by the callers.
    public static int AvgDivisor(PoolParams p, int oy, int ox)
    {
        int y0 = oy * p.SH - p.PH, x0 = ox * p.SW - p.PW;
        int y1 = Math.Min(y0 + p.KH, p.H + p.PH), x1 = Math.Min(x0 + p.KW, p.W + p.PW);
        if (p.CountIncludePad != 0) return (y1 - y0) * (x1 - x0);
        y0 = Math.Max(y0, 0); x0 = Math.Max(x0, 0); y1 = Math.Min(y1, p.H); x1 = Math.Min(x1, p.W);
        return (y1 - y0) * (x1 - x0);
    }

    // First output index whose window [o·S − P, o·S − P + K) contains input index i (may exceed the last).
    public static int FirstWindow(int i, int k, int stride, int pad)
    {
        int t = i + pad - k;
        return t < 0 ? 0 : t / stride + 1;
    }

    // Last output index whose window starts at or before input index i, clamped to outSize − 1.
    public static int LastWindow(int i, int stride, int pad, int outSize) => Math.Min(outSize - 1, (i + pad) / stride);
}

/// <summary>
/// Every ILGPU kernel entry point of the backend, and nothing else: <see cref="IlgpuKernels.KernelNames"/>
/// enumerates this class by reflection, the PTX check compiles all of them, and the backend loads exactly
/// these. All are implicitly grouped, one thread per element of the index space named in the comment.
/// Backward passes are written as gathers (one thread per input element), so none needs atomics.
/// </summary>
internal static partial class IlgpuKernelBodies
{
    // ---- memory -----------------------------------------------------------------------

    // buf: (count) ← value · one thread per element
    internal static void Fill(Index1D i, ArrayView<float> buf, float value) => buf[i] = value;

    // ---- convolution ------------------------------------------------------------------

    // x: (N, Cin, H, W) · w: (Cout, Cin/G, KH, KW) · bias: (Cout) → y: (N, Cout, OH, OW)
    // one thread per output pixel and block of 4 output channels of one group (register blocking: each x
    // load feeds 4 FMAs; neighbouring threads share the weights, which the cache broadcasts). The kernel
    // window is clipped to the image once, outside the loops. Channels past the group's end (CoutG not a
    // multiple of 4) re-read the block's first channel and are not stored.
    internal static void Conv2dForward(Index1D index, ConvParams p, ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y)
    {
        int i = index;
        int ox = i % p.OW; int t = i / p.OW;
        int oy = t % p.OH; t /= p.OH;
        int blocks = p.G * p.CoutBlocks;
        int cb = t % blocks; int n = t / blocks;
        int g = cb / p.CoutBlocks;
        int co0 = g * p.CoutG + (cb % p.CoutBlocks) * ConvParams.Block;
        int valid = Math.Min(ConvParams.Block, (g + 1) * p.CoutG - co0);
        int co1 = valid > 1 ? co0 + 1 : co0, co2 = valid > 2 ? co0 + 2 : co0, co3 = valid > 3 ? co0 + 3 : co0;
        int iy0 = oy * p.SH - p.PH, ix0 = ox * p.SW - p.PW;
        int kyLo = Math.Max(0, -iy0), kyHi = Math.Min(p.KH, p.H - iy0);
        int kxLo = Math.Max(0, -ix0), kxHi = Math.Min(p.KW, p.W - ix0);
        float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f;
        if (p.HasBias != 0) { a0 = bias[co0]; a1 = bias[co1]; a2 = bias[co2]; a3 = bias[co3]; }
        int kk = p.KH * p.KW, wStride = p.CinG * kk;
        for (int ci = 0; ci < p.CinG; ci++)
        {
            int xPlane = (n * p.Cin + g * p.CinG + ci) * p.H * p.W;
            int w0 = co0 * wStride + ci * kk, w1 = co1 * wStride + ci * kk, w2 = co2 * wStride + ci * kk, w3 = co3 * wStride + ci * kk;
            for (int ky = kyLo; ky < kyHi; ky++)
            {
                int xRow = xPlane + (iy0 + ky) * p.W + ix0;
                int wRow = ky * p.KW;
                for (int kx = kxLo; kx < kxHi; kx++)
                {
                    float v = x[xRow + kx];
                    int wk = wRow + kx;
                    a0 += v * w[w0 + wk];
                    a1 += v * w[w1 + wk];
                    a2 += v * w[w2 + wk];
                    a3 += v * w[w3 + wk];
                }
            }
        }
        int plane = p.OH * p.OW, o = ((n * p.Cout + co0) * p.OH + oy) * p.OW + ox;
        y[o] = a0;
        if (valid > 1) y[o + plane] = a1;
        if (valid > 2) y[o + 2 * plane] = a2;
        if (valid > 3) y[o + 3 * plane] = a3;
    }

    // dy: (N, Cout, OH, OW) · w: (Cout, Cin/G, KH, KW) → dx: (N, Cin, H, W)
    // one thread per input element, gathering the outputs whose window covers it:
    // oy = (iy + PH − ky) / SH for the ky ≡ iy + PH (mod SH), likewise for x.
    internal static void Conv2dBackwardInput(Index1D index, ConvParams p, ArrayView<float> dy, ArrayView<float> w, ArrayView<float> dx)
    {
        int i = index;
        int ix = i % p.W; int t = i / p.W;
        int iy = t % p.H; t /= p.H;
        int ci = t % p.Cin; int n = t / p.Cin;
        int g = ci / p.CinG, cil = ci % p.CinG;
        float acc = 0f;
        for (int ky = (iy + p.PH) % p.SH; ky < p.KH; ky += p.SH)
        {
            int ty = iy + p.PH - ky;
            if (ty < 0) break;
            int oy = ty / p.SH;
            if (oy >= p.OH) continue;
            for (int kx = (ix + p.PW) % p.SW; kx < p.KW; kx += p.SW)
            {
                int tx = ix + p.PW - kx;
                if (tx < 0) break;
                int ox = tx / p.SW;
                if (ox >= p.OW) continue;
                for (int cog = 0; cog < p.CoutG; cog++)
                {
                    int co = g * p.CoutG + cog;
                    acc += dy[((n * p.Cout + co) * p.OH + oy) * p.OW + ox] * w[((co * p.CinG + cil) * p.KH + ky) * p.KW + kx];
                }
            }
        }
        dx[i] = acc;
    }

    // ---- dense ------------------------------------------------------------------------

    // x: (N, In) · w: (Out, In) · bias: (Out) → y: (N, Out) · one thread per output element
    internal static void DenseForward(Index1D index, int inF, int outF, int hasBias, ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> y)
    {
        int i = index;
        int o = i % outF, n = i / outF;
        float acc = hasBias != 0 ? bias[o] : 0f;
        int xb = n * inF, wb = o * inF;
        for (int k = 0; k < inF; k++) acc += x[xb + k] * w[wb + k];
        y[i] = acc;
    }

    // dy: (N, Out) · w: (Out, In) → dx: (N, In) · one thread per input element
    internal static void DenseBackwardInput(Index1D index, int inF, int outF, ArrayView<float> dy, ArrayView<float> w, ArrayView<float> dx)
    {
        int i = index;
        int k = i % inF, n = i / inF;
        float acc = 0f;
        int db = n * outF;
        for (int o = 0; o < outF; o++) acc += dy[db + o] * w[o * inF + k];
        dx[i] = acc;
    }

    // ---- per-channel affine -------------------------------------------------------------

    // x: (N, C, HW) · scale, shift: (C) → y = x·scale[c] + shift[c] · one thread per element
    internal static void ChannelAffineForward(Index1D i, int c, int hw, ArrayView<float> x, ArrayView<float> scale, ArrayView<float> shift, ArrayView<float> y)
    {
        int ch = i / hw % c;
        y[i] = x[i] * scale[ch] + shift[ch];
    }

    // dy: (N, C, HW) · scale: (C) → dx = dy·scale[c] · one thread per element
    internal static void ChannelAffineBackward(Index1D i, int c, int hw, ArrayView<float> dy, ArrayView<float> scale, ArrayView<float> dx)
        => dx[i] = dy[i] * scale[i / hw % c];

    // ---- activations ------------------------------------------------------------------

    // x, y: (count) → y = x > 0 ? x : slope·x · one thread per element (x may alias y)
    internal static void LeakyReluForward(Index1D i, float slope, ArrayView<float> x, ArrayView<float> y)
    {
        float v = x[i];
        y[i] = v > 0 ? v : slope * v;
    }

    // y, dy: (count) → dx = y > 0 ? dy : slope·dy · one thread per element (dy may alias dx)
    internal static void LeakyReluBackward(Index1D i, float slope, ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx)
    {
        float d = dy[i];
        dx[i] = y[i] > 0 ? d : slope * d;
    }

    // x: (N, C, HW) · bias: (C) → y = lrelu(x + bias[c]) · one thread per element
    internal static void BiasLeakyReluForward(Index1D i, int c, int hw, float slope, ArrayView<float> x, ArrayView<float> bias, ArrayView<float> y)
    {
        float v = x[i] + bias[i / hw % c];
        y[i] = v > 0 ? v : slope * v;
    }

    // x, y: (count) → y = 1 / (1 + e^−x) · one thread per element
    internal static void SigmoidForward(Index1D i, ArrayView<float> x, ArrayView<float> y) => y[i] = 1f / (1f + MathF.Exp(-x[i]));

    // y, dy: (count) → dx = dy·y·(1 − y) · one thread per element
    internal static void SigmoidBackward(Index1D i, ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx)
    {
        float v = y[i];
        dx[i] = dy[i] * v * (1 - v);
    }

    // x, y: (N, K) → softmax over K · one thread per row (max, Σ exp, normalise)
    internal static void SoftmaxForward(Index1D row, int k, ArrayView<float> x, ArrayView<float> y)
    {
        int b = row * k;
        float max = float.NegativeInfinity;
        for (int j = 0; j < k; j++) max = Math.Max(max, x[b + j]);
        float sum = 0f;
        for (int j = 0; j < k; j++) sum += MathF.Exp(x[b + j] - max);
        float inv = 1f / sum;
        for (int j = 0; j < k; j++) y[b + j] = MathF.Exp(x[b + j] - max) * inv;
    }

    // y, dy: (N, K) → dx = y ⊙ (dy − Σ_k dy·y) · one thread per row
    internal static void SoftmaxBackward(Index1D row, int k, ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx)
    {
        int b = row * k;
        float dot = 0f;
        for (int j = 0; j < k; j++) dot += dy[b + j] * y[b + j];
        for (int j = 0; j < k; j++) dx[b + j] = y[b + j] * (dy[b + j] - dot);
    }

    // ---- pooling ------------------------------------------------------------------------

    // x: (N·C, H, W) → y: (N·C, OH, OW), first maximum of the clipped window · one thread per output
    internal static void MaxPool2dForward(Index1D index, PoolParams p, ArrayView<float> x, ArrayView<float> y)
    {
        int i = index;
        int ox = i % p.OW; int t = i / p.OW;
        int oy = t % p.OH; int plane = (t / p.OH) * p.H * p.W;
        int arg = IlgpuDevice.ArgMaxInWindow(p, x, plane, oy, ox);
        y[i] = arg < 0 ? float.NegativeInfinity : x[plane + arg];
    }

    // x: (N·C, H, W) · dy: (N·C, OH, OW) → dx: (N·C, H, W) · one thread per input element: re-finds the
    // argmax of every window covering it and sums the gradients of those it wins, in output order.
    internal static void MaxPool2dBackward(Index1D index, PoolParams p, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx)
    {
        int i = index;
        int ix = i % p.W; int t = i / p.W;
        int iy = t % p.H; int pl = t / p.H;
        int plane = pl * p.H * p.W, self = iy * p.W + ix;
        int oy0 = IlgpuDevice.FirstWindow(iy, p.KH, p.SH, p.PH), oy1 = IlgpuDevice.LastWindow(iy, p.SH, p.PH, p.OH);
        int ox0 = IlgpuDevice.FirstWindow(ix, p.KW, p.SW, p.PW), ox1 = IlgpuDevice.LastWindow(ix, p.SW, p.PW, p.OW);
        float acc = 0f;
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++)
                if (IlgpuDevice.ArgMaxInWindow(p, x, plane, oy, ox) == self)
                    acc += dy[(pl * p.OH + oy) * p.OW + ox];
        dx[i] = acc;
    }

    // x: (N·C, H, W) → y: (N·C, OH, OW), mean over the clipped window / PyTorch divisor · one thread per output
    internal static void AvgPool2dForward(Index1D index, PoolParams p, ArrayView<float> x, ArrayView<float> y)
    {
        int i = index;
        int ox = i % p.OW; int t = i / p.OW;
        int oy = t % p.OH; int pl = t / p.OH;
        int y0 = Math.Max(oy * p.SH - p.PH, 0), y1 = Math.Min(oy * p.SH - p.PH + p.KH, p.H);
        int x0 = Math.Max(ox * p.SW - p.PW, 0), x1 = Math.Min(ox * p.SW - p.PW + p.KW, p.W);
        float sum = 0f;
        for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) sum += x[(pl * p.H + iy) * p.W + ix];
        y[i] = sum / IlgpuDevice.AvgDivisor(p, oy, ox);
    }

    // dy: (N·C, OH, OW) → dx: (N·C, H, W) · one thread per input element, Σ dy / divisor over covering windows
    internal static void AvgPool2dBackward(Index1D index, PoolParams p, ArrayView<float> dy, ArrayView<float> dx)
    {
        int i = index;
        int ix = i % p.W; int t = i / p.W;
        int iy = t % p.H; int pl = t / p.H;
        int oy0 = IlgpuDevice.FirstWindow(iy, p.KH, p.SH, p.PH), oy1 = IlgpuDevice.LastWindow(iy, p.SH, p.PH, p.OH);
        int ox0 = IlgpuDevice.FirstWindow(ix, p.KW, p.SW, p.PW), ox1 = IlgpuDevice.LastWindow(ix, p.SW, p.PW, p.OW);
        float acc = 0f;
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++)
                acc += dy[(pl * p.OH + oy) * p.OW + ox] / IlgpuDevice.AvgDivisor(p, oy, ox);
        dx[i] = acc;
    }

    // x: (N·C, H, W) → y: (N·C, OH, OW), bins [floor(o·H/OH), ceil((o+1)·H/OH)) · one thread per output
    internal static void AdaptiveAvgPool2dForward(Index1D index, PoolParams p, ArrayView<float> x, ArrayView<float> y)
    {
        int i = index;
        int ox = i % p.OW; int t = i / p.OW;
        int oy = t % p.OH; int pl = t / p.OH;
        int y0 = oy * p.H / p.OH, y1 = ((oy + 1) * p.H + p.OH - 1) / p.OH;
        int x0 = ox * p.W / p.OW, x1 = ((ox + 1) * p.W + p.OW - 1) / p.OW;
        float sum = 0f;
        for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) sum += x[(pl * p.H + iy) * p.W + ix];
        y[i] = sum / ((y1 - y0) * (x1 - x0));
    }

    // dy: (N·C, OH, OW) → dx: (N·C, H, W) · one thread per input element over the (contiguous) bins that
    // contain it: the first is floor(iy·OH/H), candidates end at ceil((iy+1)·OH/H) − 1; membership re-checked.
    internal static void AdaptiveAvgPool2dBackward(Index1D index, PoolParams p, ArrayView<float> dy, ArrayView<float> dx)
    {
        int i = index;
        int ix = i % p.W; int t = i / p.W;
        int iy = t % p.H; int pl = t / p.H;
        int oyLo = iy * p.OH / p.H, oyHi = Math.Min(p.OH - 1, ((iy + 1) * p.OH + p.H - 1) / p.H - 1);
        int oxLo = ix * p.OW / p.W, oxHi = Math.Min(p.OW - 1, ((ix + 1) * p.OW + p.W - 1) / p.W - 1);
        float acc = 0f;
        for (int oy = oyLo; oy <= oyHi; oy++)
        {
            int y0 = oy * p.H / p.OH, y1 = ((oy + 1) * p.H + p.OH - 1) / p.OH;
            if (iy < y0 || iy >= y1) continue;
            for (int ox = oxLo; ox <= oxHi; ox++)
            {
                int x0 = ox * p.W / p.OW, x1 = ((ox + 1) * p.W + p.OW - 1) / p.OW;
                if (ix < x0 || ix >= x1) continue;
                acc += dy[(pl * p.OH + oy) * p.OW + ox] / ((y1 - y0) * (x1 - x0));
            }
        }
        dx[i] = acc;
    }

    // ---- element-wise and layout ----------------------------------------------------------

    // a, b, y: (count) → y = a + b · one thread per element (y may alias a or b)
    internal static void Add(Index1D i, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y) => y[i] = a[i] + b[i];

    // x, y: (count) → y = a·x + y · one thread per element
    internal static void Axpy(Index1D i, float a, ArrayView<float> x, ArrayView<float> y) => y[i] += a * x[i];

    // src: (N, srcC, HW)[:, srcCh : srcCh + channels] → dst: (N, dstC, HW)[:, dstCh : …] · one thread per copied element
    internal static void CopyChannels(Index1D index, int hw, int channels, ArrayView<float> src, int srcC, int srcCh, ArrayView<float> dst, int dstC, int dstCh)
    {
        int i = index;
        int r = i % (channels * hw), n = i / (channels * hw);
        dst[(n * dstC + dstCh) * hw + r] = src[(n * srcC + srcCh) * hw + r];
    }

    // ---- resize ---------------------------------------------------------------------------

    // x: (N·C, H, W) → y: (N·C, OH, OW), nearest or bilinear (align_corners = false) · one thread per output
    internal static void ResizeForward(Index1D index, ResizeParams p, ArrayView<float> x, ArrayView<float> y)
    {
        int i = index;
        int ox = i % p.OW; int t = i / p.OW;
        int oy = t % p.OH; int b = (t / p.OH) * p.H * p.W;
        if (p.Bilinear == 0)
        {
            y[i] = x[b + IlgpuDevice.NearestSource(oy, p.H, p.OH) * p.W + IlgpuDevice.NearestSource(ox, p.W, p.OW)];
            return;
        }
        float sy = IlgpuDevice.LinearSrc(oy, p.H, p.OH), sx = IlgpuDevice.LinearSrc(ox, p.W, p.OW);
        int y0 = Math.Min((int)sy, p.H - 1), x0 = Math.Min((int)sx, p.W - 1);
        int y1 = Math.Min(y0 + 1, p.H - 1), x1 = Math.Min(x0 + 1, p.W - 1);
        float ly = sy - y0, lx = sx - x0;
        y[i] = (1 - ly) * ((1 - lx) * x[b + y0 * p.W + x0] + lx * x[b + y0 * p.W + x1])
             + ly * ((1 - lx) * x[b + y1 * p.W + x0] + lx * x[b + y1 * p.W + x1]);
    }

    // dy: (N·C, OH, OW) → dx: (N·C, H, W) · one thread per input element, gathering over the output range
    // that can reach it (a superset computed in integers, with a margin for float rounding); each candidate's
    // source is recomputed with the forward's float arithmetic, so no atomics are needed.
    internal static void ResizeBackward(Index1D index, ResizeParams p, ArrayView<float> dy, ArrayView<float> dx)
    {
        int i = index;
        int ix = i % p.W; int t = i / p.W;
        int iy = t % p.H; int pl = t / p.H;
        int ob = pl * p.OH * p.OW;
        float acc = 0f;
        if (p.Bilinear == 0)
        {
            // floor(o·in/out) = i  ⇔  i·out/in ≤ o < (i+1)·out/in
            int oyLo = Math.Max(0, iy * p.OH / p.H - 2), oyHi = Math.Min(p.OH - 1, ((iy + 1) * p.OH + p.H - 1) / p.H + 1);
            int oxLo = Math.Max(0, ix * p.OW / p.W - 2), oxHi = Math.Min(p.OW - 1, ((ix + 1) * p.OW + p.W - 1) / p.W + 1);
            for (int oy = oyLo; oy <= oyHi; oy++)
            {
                if (IlgpuDevice.NearestSource(oy, p.H, p.OH) != iy) continue;
                for (int ox = oxLo; ox <= oxHi; ox++)
                    if (IlgpuDevice.NearestSource(ox, p.W, p.OW) == ix) acc += dy[ob + oy * p.OW + ox];
            }
        }
        else
        {
            // src = (o + ½)·in/out − ½ ∈ [i − 1, i + 1]  ⇔  (2i − 1)·out − in ≤ 2o·in ≤ (2i + 3)·out − in
            int ly = (2 * iy - 1) * p.OH - p.H, hy = (2 * iy + 3) * p.OH - p.H;
            int lx = (2 * ix - 1) * p.OW - p.W, hx = (2 * ix + 3) * p.OW - p.W;
            int oyLo = ly < 0 ? 0 : ly / (2 * p.H) - 1, oyHi = Math.Min(p.OH - 1, hy / (2 * p.H) + 1);
            int oxLo = lx < 0 ? 0 : lx / (2 * p.W) - 1, oxHi = Math.Min(p.OW - 1, hx / (2 * p.W) + 1);
            oyLo = Math.Max(0, oyLo); oxLo = Math.Max(0, oxLo);
            for (int oy = oyLo; oy <= oyHi; oy++)
            {
                float wy = IlgpuDevice.LinearWeight(oy, iy, p.H, p.OH);
                if (wy == 0f) continue;
                for (int ox = oxLo; ox <= oxHi; ox++)
                {
                    float wx = IlgpuDevice.LinearWeight(ox, ix, p.W, p.OW);
                    if (wx != 0f) acc += dy[ob + oy * p.OW + ox] * wy * wx;
                }
            }
        }
        dx[i] = acc;
    }

    // ---- minibatch standard deviation ----------------------------------------------------------

    // x: (G, M, CHW) → std: (M, CHW) = sqrt(var_g(x) + eps) · one thread per (m, e)
    internal static void MbstdGroupStd(Index1D index, MbstdParams p, ArrayView<float> x, ArrayView<float> std)
    {
        int i = index;
        int e = i % p.CHW, m = i / p.CHW;
        float mean = 0f;
        for (int g = 0; g < p.G; g++) mean += x[(g * p.M + m) * p.CHW + e];
        mean /= p.G;
        float variance = 0f;
        for (int g = 0; g < p.G; g++) { float d = x[(g * p.M + m) * p.CHW + e] - mean; variance += d * d; }
        std[i] = MathF.Sqrt(variance / p.G + p.Epsilon);
    }

    // std: (M, CHW) → stat: (M) = mean over CHW · one thread per group member m (double accumulation)
    internal static void MbstdMean(Index1D m, MbstdParams p, ArrayView<float> std, ArrayView<float> stat)
    {
        double total = 0;
        int b = m * p.CHW;
        for (int e = 0; e < p.CHW; e++) total += std[b + e];
        stat[m] = (float)(total / p.CHW);
    }

    // x: (N, CHW) · stat: (M) → y: (N, CHW + HW): x, then stat[n mod M] in the extra channel · one thread per y element
    internal static void MbstdForwardOutput(Index1D index, MbstdParams p, ArrayView<float> x, ArrayView<float> stat, ArrayView<float> y)
    {
        int i = index;
        int r = i % (p.CHW + p.HW), n = i / (p.CHW + p.HW);
        y[i] = r < p.CHW ? x[n * p.CHW + r] : stat[n % p.M];
    }

    // dy: (N, CHW + HW) → dStd: (M) = Σ_{g, pixels} dy[extra channel] / CHW · one thread per group member m
    internal static void MbstdStatGrad(Index1D m, MbstdParams p, ArrayView<float> dy, ArrayView<float> dStd)
    {
        double total = 0;
        for (int g = 0; g < p.G; g++)
        {
            int b = (g * p.M + m) * (p.CHW + p.HW) + p.CHW;
            for (int q = 0; q < p.HW; q++) total += dy[b + q];
        }
        dStd[m] = (float)(total / p.CHW);
    }

    // x: (N, CHW) · dy: (N, CHW + HW) · dStd: (M) → dx: (N, CHW) = dy + dStd·(x − mean) / (G·std) · one thread per dx element
    internal static void MbstdBackwardInput(Index1D index, MbstdParams p, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dStd, ArrayView<float> dx)
    {
        int i = index;
        int e = i % p.CHW, n = i / p.CHW, m = n % p.M;
        float mean = 0f;
        for (int g = 0; g < p.G; g++) mean += x[(g * p.M + m) * p.CHW + e];
        mean /= p.G;
        float variance = 0f;
        for (int g = 0; g < p.G; g++) { float d = x[(g * p.M + m) * p.CHW + e] - mean; variance += d * d; }
        float std = MathF.Sqrt(variance / p.G + p.Epsilon);
        dx[i] = dy[n * (p.CHW + p.HW) + e] + dStd[m] * (x[i] - mean) / (p.G * std);
    }
}
