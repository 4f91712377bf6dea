using ModelGuardian.Kernels.Cpu;

namespace ModelGuardian.Kernels.Reference;

/// <summary>
/// The plain reference implementation of the layer contract: scalar loops, one thread,
/// written to be obviously right rather than fast. The fast CPU backend and the ILGPU
/// backend are tested against it (and all three against libtorch).
/// </summary>
public sealed partial class ReferenceKernels : IKernels
{
    public string Name => "reference";

    public DeviceBuffer Allocate(int length) => new HostBuffer(this, length);

    private float[] A(DeviceBuffer b, int needed, string name) => HostBuffer.Of(this, b, needed, name);

    public void Upload(ReadOnlySpan<float> source, DeviceBuffer destination, int destinationOffset = 0)
    {
        DeviceBuffer.ThrowIfConstant(destination, nameof(Upload));
        source.CopyTo(A(destination, destinationOffset + source.Length, nameof(Upload)).AsSpan(destinationOffset));
    }

    public void Download(DeviceBuffer source, Span<float> destination, int sourceOffset = 0)
        => A(source, sourceOffset + destination.Length, nameof(Download)).AsSpan(sourceOffset, destination.Length).CopyTo(destination);

    public void Fill(DeviceBuffer buffer, int count, float value)
    {
        DeviceBuffer.ThrowIfConstant(buffer, nameof(Fill));
        A(buffer, count, nameof(Fill)).AsSpan(0, count).Fill(value);
    }

    // x: (N, Cin, H, W) · w: (Cout, Cin/G, KH, KW) · bias: (Cout) → y: (N, Cout, OH, OW)
    public void Conv2dForward(in Conv2dShape s, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, DeviceBuffer y, float? leakyReluSlope = null, DeviceBuffer? residual = null)
    {
        s.Validate();
        var X = A(x, s.InputLength, "conv x"); var Wt = A(w, s.WeightLength, "conv w");
        var B = bias is null ? null : A(bias, s.Cout, "conv bias"); var Y = A(y, s.OutputLength, "conv y");
        int oh = s.OutH, ow = s.OutW, cinG = s.CinPerGroup, coutG = s.CoutPerGroup;
        for (int n = 0; n < s.N; n++)
        for (int co = 0; co < s.Cout; co++)
        {
            int g = co / coutG;
            for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
            {
                double acc = B is null ? 0 : B[co];
                for (int ci = 0; ci < cinG; ci++)
                for (int ky = 0; ky < s.KH; ky++)
                {
                    int iy = oy * s.StrideH - s.PadH + ky;
                    if ((uint)iy >= (uint)s.H) continue;
                    for (int kx = 0; kx < s.KW; kx++)
                    {
                        int ix = ox * s.StrideW - s.PadW + kx;
                        if ((uint)ix >= (uint)s.W) continue;
                        acc += (double)X[((n * s.Cin + g * cinG + ci) * s.H + iy) * s.W + ix]
                             * Wt[((co * cinG + ci) * s.KH + ky) * s.KW + kx];
                    }
                }
                Y[((n * s.Cout + co) * oh + oy) * ow + ox] = (float)acc;
            }
        }
        if (residual is not null) Add(s.OutputLength, y, residual, y);
        if (leakyReluSlope is { } slope) LeakyReluForward(s.OutputLength, slope, y, y);
    }

    // dy: (N, Cout, OH, OW) · w: (Cout, Cin/G, KH, KW) → dx: (N, Cin, H, W)
    public void Conv2dBackwardInput(in Conv2dShape s, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer dx)
    {
        s.Validate();
        var DY = A(dy, s.OutputLength, "conv dy"); var Wt = A(w, s.WeightLength, "conv w"); var DX = A(dx, s.InputLength, "conv dx");
        int oh = s.OutH, ow = s.OutW, cinG = s.CinPerGroup, coutG = s.CoutPerGroup;
        var acc = new double[s.InputLength];
        for (int n = 0; n < s.N; n++)
        for (int co = 0; co < s.Cout; co++)
        {
            int g = co / coutG;
            for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
            {
                double d = DY[((n * s.Cout + co) * oh + oy) * ow + ox];
                for (int ci = 0; ci < cinG; ci++)
                for (int ky = 0; ky < s.KH; ky++)
                {
                    int iy = oy * s.StrideH - s.PadH + ky;
                    if ((uint)iy >= (uint)s.H) continue;
                    for (int kx = 0; kx < s.KW; kx++)
                    {
                        int ix = ox * s.StrideW - s.PadW + kx;
                        if ((uint)ix >= (uint)s.W) continue;
                        acc[((n * s.Cin + g * cinG + ci) * s.H + iy) * s.W + ix] += d * Wt[((co * cinG + ci) * s.KH + ky) * s.KW + kx];
                    }
                }
            }
        }
        for (int i = 0; i < acc.Length; i++) DX[i] = (float)acc[i];
    }

    // x: (N, In) · w: (Out, In) · bias: (Out) → y: (N, Out)
    public void DenseForward(int n, int inFeatures, int outFeatures, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, DeviceBuffer y)
    {
        var X = A(x, n * inFeatures, "dense x"); var Wt = A(w, inFeatures * outFeatures, "dense w");
        var B = bias is null ? null : A(bias, outFeatures, "dense bias"); var Y = A(y, n * outFeatures, "dense y");
        for (int i = 0; i < n; i++)
        for (int o = 0; o < outFeatures; o++)
        {
            double acc = B is null ? 0 : B[o];
            for (int k = 0; k < inFeatures; k++) acc += (double)X[i * inFeatures + k] * Wt[o * inFeatures + k];
            Y[i * outFeatures + o] = (float)acc;
        }
    }

    // dy: (N, Out) · w: (Out, In) → dx: (N, In)
    public void DenseBackwardInput(int n, int inFeatures, int outFeatures, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer dx)
    {
        var DY = A(dy, n * outFeatures, "dense dy"); var Wt = A(w, inFeatures * outFeatures, "dense w"); var DX = A(dx, n * inFeatures, "dense dx");
        for (int i = 0; i < n; i++)
        for (int k = 0; k < inFeatures; k++)
        {
            double acc = 0;
            for (int o = 0; o < outFeatures; o++) acc += (double)DY[i * outFeatures + o] * Wt[o * inFeatures + k];
            DX[i * inFeatures + k] = (float)acc;
        }
    }

    public void ChannelAffineForward(int n, int c, int hw, DeviceBuffer x, DeviceBuffer scale, DeviceBuffer shift, DeviceBuffer y)
    {
        var X = A(x, n * c * hw, "affine x"); var S = A(scale, c, "affine scale"); var T = A(shift, c, "affine shift"); var Y = A(y, n * c * hw, "affine y");
        for (int i = 0; i < n * c * hw; i++) { int ch = i / hw % c; Y[i] = X[i] * S[ch] + T[ch]; }
    }

    public void ChannelAffineBackward(int n, int c, int hw, DeviceBuffer dy, DeviceBuffer scale, DeviceBuffer dx)
    {
        var DY = A(dy, n * c * hw, "affine dy"); var S = A(scale, c, "affine scale"); var DX = A(dx, n * c * hw, "affine dx");
        for (int i = 0; i < n * c * hw; i++) DX[i] = DY[i] * S[i / hw % c];
    }

    public void LeakyReluForward(int count, float slope, DeviceBuffer x, DeviceBuffer y)
    {
        var X = A(x, count, "lrelu x"); var Y = A(y, count, "lrelu y");
        for (int i = 0; i < count; i++) Y[i] = X[i] > 0 ? X[i] : slope * X[i];
    }

    public void LeakyReluBackward(int count, float slope, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx)
    {
        var Y = A(y, count, "lrelu y"); var DY = A(dy, count, "lrelu dy"); var DX = A(dx, count, "lrelu dx");
        for (int i = 0; i < count; i++) DX[i] = Y[i] > 0 ? DY[i] : slope * DY[i];
    }

    public void BiasLeakyReluForward(int n, int c, int hw, float slope, DeviceBuffer x, DeviceBuffer bias, DeviceBuffer y)
    {
        var X = A(x, n * c * hw, "bias-lrelu x"); var B = A(bias, c, "bias-lrelu bias"); var Y = A(y, n * c * hw, "bias-lrelu y");
        for (int i = 0; i < n * c * hw; i++) { float v = X[i] + B[i / hw % c]; Y[i] = v > 0 ? v : slope * v; }
    }

    public void SigmoidForward(int count, DeviceBuffer x, DeviceBuffer y)
    {
        var X = A(x, count, "sigmoid x"); var Y = A(y, count, "sigmoid y");
        for (int i = 0; i < count; i++) Y[i] = (float)(1.0 / (1.0 + Math.Exp(-X[i])));
    }

    public void SigmoidBackward(int count, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx)
    {
        var Y = A(y, count, "sigmoid y"); var DY = A(dy, count, "sigmoid dy"); var DX = A(dx, count, "sigmoid dx");
        for (int i = 0; i < count; i++) DX[i] = DY[i] * Y[i] * (1 - Y[i]);
    }

    public void SoftmaxForward(int n, int k, DeviceBuffer x, DeviceBuffer y)
    {
        var X = A(x, n * k, "softmax x"); var Y = A(y, n * k, "softmax y");
        for (int i = 0; i < n; i++)
        {
            double max = double.NegativeInfinity;
            for (int j = 0; j < k; j++) max = Math.Max(max, X[i * k + j]);
            double sum = 0;
            for (int j = 0; j < k; j++) sum += Math.Exp(X[i * k + j] - max);
            for (int j = 0; j < k; j++) Y[i * k + j] = (float)(Math.Exp(X[i * k + j] - max) / sum);
        }
    }

    public void SoftmaxBackward(int n, int k, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx)
    {
        var Y = A(y, n * k, "softmax y"); var DY = A(dy, n * k, "softmax dy"); var DX = A(dx, n * k, "softmax dx");
        for (int i = 0; i < n; i++)
        {
            double dot = 0;
            for (int j = 0; j < k; j++) dot += (double)DY[i * k + j] * Y[i * k + j];
            for (int j = 0; j < k; j++) DX[i * k + j] = (float)(Y[i * k + j] * (DY[i * k + j] - dot));
        }
    }

    // Index of the (first) maximum of one pooling window in the input plane, or −1 if the window is all padding.
    private static int ArgMaxInWindow(in Pool2dShape s, float[] X, int plane, int oy, int ox)
    {
        int best = -1; float max = float.NegativeInfinity;
        for (int ky = 0; ky < s.KH; ky++)
        {
            int iy = oy * s.StrideH - s.PadH + ky;
            if ((uint)iy >= (uint)s.H) continue;
            for (int kx = 0; kx < s.KW; kx++)
            {
                int ix = ox * s.StrideW - s.PadW + kx;
                if ((uint)ix >= (uint)s.W) continue;
                int idx = plane + iy * s.W + ix;
                if (best < 0 || X[idx] > max || float.IsNaN(X[idx])) { max = X[idx]; best = idx; }
            }
        }
        return best;
    }

    // PyTorch's avg_pool2d window: the divisor counts padding inside [−pad, size + pad) but never beyond it.
    private static (int y0, int y1, int x0, int x1, int divisor) AvgWindow(in Pool2dShape s, bool countIncludePad, int oy, int ox)
    {
        int y0 = oy * s.StrideH - s.PadH, x0 = ox * s.StrideW - s.PadW;
        int y1 = Math.Min(y0 + s.KH, s.H + s.PadH), x1 = Math.Min(x0 + s.KW, s.W + s.PadW);
        int padded = (y1 - y0) * (x1 - x0);
        y0 = Math.Max(y0, 0); x0 = Math.Max(x0, 0); y1 = Math.Min(y1, s.H); x1 = Math.Min(x1, s.W);
        return (y0, y1, x0, x1, countIncludePad ? padded : (y1 - y0) * (x1 - x0));
    }

    public void MaxPool2dForward(in Pool2dShape s, DeviceBuffer x, DeviceBuffer y)
    {
        s.Validate();
        var X = A(x, s.InputLength, "maxpool x"); var Y = A(y, s.OutputLength, "maxpool y");
        for (int p = 0; p < s.N * s.C; p++) MaxPoolPlane(s, X, Y, p);
    }

    public void MaxPool2dBackward(in Pool2dShape s, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx)
    {
        s.Validate();
        var X = A(x, s.InputLength, "maxpool x"); var DY = A(dy, s.OutputLength, "maxpool dy"); var DX = A(dx, s.InputLength, "maxpool dx");
        for (int p = 0; p < s.N * s.C; p++) MaxPoolBackwardPlane(s, X, DY, DX, p);
    }

    public void AvgPool2dForward(in Pool2dShape s, bool countIncludePad, DeviceBuffer x, DeviceBuffer y)
    {
        s.Validate();
        var X = A(x, s.InputLength, "avgpool x"); var Y = A(y, s.OutputLength, "avgpool y");
        for (int p = 0; p < s.N * s.C; p++) AvgPoolPlane(s, countIncludePad, X, Y, p);
    }

    public void AvgPool2dBackward(in Pool2dShape s, bool countIncludePad, DeviceBuffer dy, DeviceBuffer dx)
    {
        s.Validate();
        var DY = A(dy, s.OutputLength, "avgpool dy"); var DX = A(dx, s.InputLength, "avgpool dx");
        for (int p = 0; p < s.N * s.C; p++) AvgPoolBackwardPlane(s, countIncludePad, DY, DX, p);
    }

    // ---- per-plane pooling (p = n·C + c); the CPU backend runs these planes in parallel ----

    // x: plane p of (N, C, H, W) → y: plane p of (N, C, OH, OW)
    internal static void MaxPoolPlane(in Pool2dShape s, float[] X, float[] Y, int p)
    {
        int oh = s.OutH, ow = s.OutW;
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        {
            int arg = ArgMaxInWindow(s, X, p * s.H * s.W, oy, ox);
            Y[(p * oh + oy) * ow + ox] = arg < 0 ? float.NegativeInfinity : X[arg];
        }
    }

    // x, dy → dx: plane p; the plane of dx is overwritten
    internal static void MaxPoolBackwardPlane(in Pool2dShape s, float[] X, float[] DY, float[] DX, int p)
    {
        int oh = s.OutH, ow = s.OutW;
        Array.Clear(DX, p * s.H * s.W, s.H * s.W);
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        {
            int arg = ArgMaxInWindow(s, X, p * s.H * s.W, oy, ox);
            if (arg >= 0) DX[arg] += DY[(p * oh + oy) * ow + ox];
        }
    }

    internal static void AvgPoolPlane(in Pool2dShape s, bool countIncludePad, float[] X, float[] Y, int p)
    {
        int oh = s.OutH, ow = s.OutW;
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        {
            var (y0, y1, x0, x1, div) = AvgWindow(s, countIncludePad, oy, ox);
            double sum = 0;
            for (int iy = y0; iy < y1; iy++) for (int ix = x0; ix < x1; ix++) sum += X[(p * s.H + iy) * s.W + ix];
            Y[(p * oh + oy) * ow + ox] = (float)(sum / div);
        }
    }

    internal static void AvgPoolBackwardPlane(in Pool2dShape s, bool countIncludePad, float[] DY, float[] DX, int p)
    {
        int oh = s.OutH, ow = s.OutW;
        Array.Clear(DX, p * s.H * s.W, s.H * s.W);
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        {
            var (y0, y1, x0, x1, div) = AvgWindow(s, countIncludePad, oy, ox);
            float g = DY[(p * oh + oy) * ow + ox] / div;
            for (int iy = y0; iy < y1; iy++) for (int ix = x0; ix < x1; ix++) DX[(p * s.H + iy) * s.W + ix] += g;
        }
    }

    public void AdaptiveAvgPool2dForward(int n, int c, int h, int w, int outH, int outW, DeviceBuffer x, DeviceBuffer y)
    {
        var X = A(x, n * c * h * w, "adaptive x"); var Y = A(y, n * c * outH * outW, "adaptive y");
        for (int p = 0; p < n * c; p++)
        for (int oy = 0; oy < outH; oy++)
        for (int ox = 0; ox < outW; ox++)
        {
            int y0 = oy * h / outH, y1 = ((oy + 1) * h + outH - 1) / outH;
            int x0 = ox * w / outW, x1 = ((ox + 1) * w + outW - 1) / outW;
            double sum = 0;
            for (int iy = y0; iy < y1; iy++) for (int ix = x0; ix < x1; ix++) sum += X[(p * h + iy) * w + ix];
            Y[(p * outH + oy) * outW + ox] = (float)(sum / ((y1 - y0) * (x1 - x0)));
        }
    }

    public void AdaptiveAvgPool2dBackward(int n, int c, int h, int w, int outH, int outW, DeviceBuffer dy, DeviceBuffer dx)
    {
        var DY = A(dy, n * c * outH * outW, "adaptive dy"); var DX = A(dx, n * c * h * w, "adaptive dx");
        Array.Clear(DX, 0, n * c * h * w);
        for (int p = 0; p < n * c; p++)
        for (int oy = 0; oy < outH; oy++)
        for (int ox = 0; ox < outW; ox++)
        {
            int y0 = oy * h / outH, y1 = ((oy + 1) * h + outH - 1) / outH;
            int x0 = ox * w / outW, x1 = ((ox + 1) * w + outW - 1) / outW;
            float g = DY[(p * outH + oy) * outW + ox] / ((y1 - y0) * (x1 - x0));
            for (int iy = y0; iy < y1; iy++) for (int ix = x0; ix < x1; ix++) DX[(p * h + iy) * w + ix] += g;
        }
    }

    public void Add(int count, DeviceBuffer a, DeviceBuffer b, DeviceBuffer y)
    {
        var Aa = A(a, count, "add a"); var B = A(b, count, "add b"); var Y = A(y, count, "add y");
        for (int i = 0; i < count; i++) Y[i] = Aa[i] + B[i];
    }

    public void Axpy(int count, float a, DeviceBuffer x, DeviceBuffer y)
    {
        var X = A(x, count, "axpy x"); var Y = A(y, count, "axpy y");
        for (int i = 0; i < count; i++) Y[i] += a * X[i];
    }

    public void CopyChannels(int n, int hw, int channels, DeviceBuffer src, int srcC, int srcChannel, DeviceBuffer dst, int dstC, int dstChannel)
    {
        if (srcChannel < 0 || srcChannel + channels > srcC || dstChannel < 0 || dstChannel + channels > dstC)
            throw new ArgumentException($"CopyChannels: channels [{srcChannel}, +{channels}) of {srcC} into [{dstChannel}, +{channels}) of {dstC} is out of range.");
        var S = A(src, n * srcC * hw, "copy src"); var D = A(dst, n * dstC * hw, "copy dst");
        for (int i = 0; i < n; i++)
            Array.Copy(S, (i * srcC + srcChannel) * hw, D, (i * dstC + dstChannel) * hw, channels * hw);
    }

    /// <summary>Source coordinate and weights of one output coordinate (PyTorch, align_corners = false).</summary>
    internal static (int i0, int i1, float l1) LinearSource(int dst, int inSize, int outSize)
    {
        float scale = (float)inSize / outSize;
        float src = Math.Max((dst + 0.5f) * scale - 0.5f, 0f);
        int i0 = Math.Min((int)src, inSize - 1);
        int i1 = Math.Min(i0 + 1, inSize - 1);
        return (i0, i1, src - i0);
    }

    internal static int NearestSource(int dst, int inSize, int outSize)
        => Math.Min((int)MathF.Floor(dst * ((float)inSize / outSize)), inSize - 1);

    public void ResizeForward(in ResizeShape s, DeviceBuffer x, DeviceBuffer y)
    {
        s.Validate();
        var X = A(x, s.InputLength, "resize x"); var Y = A(y, s.OutputLength, "resize y");
        for (int p = 0; p < s.N * s.C; p++) ResizePlane(s, X, Y, p);
    }

    public void ResizeBackward(in ResizeShape s, DeviceBuffer dy, DeviceBuffer dx)
    {
        s.Validate();
        var DY = A(dy, s.OutputLength, "resize dy"); var DX = A(dx, s.InputLength, "resize dx");
        for (int p = 0; p < s.N * s.C; p++) ResizeBackwardPlane(s, DY, DX, p);
    }

    // x: plane p of (N, C, H, W) → y: plane p of (N, C, OH, OW)
    internal static void ResizePlane(in ResizeShape s, float[] X, float[] Y, int p)
    {
        int b = p * s.H * s.W;
        for (int oy = 0; oy < s.OutH; oy++)
        for (int ox = 0; ox < s.OutW; ox++)
        {
            float v;
            if (s.Mode == ResizeMode.Nearest)
                v = X[b + NearestSource(oy, s.H, s.OutH) * s.W + NearestSource(ox, s.W, s.OutW)];
            else
            {
                var (y0, y1, ly) = LinearSource(oy, s.H, s.OutH);
                var (x0, x1, lx) = LinearSource(ox, s.W, s.OutW);
                v = (1 - ly) * ((1 - lx) * X[b + y0 * s.W + x0] + lx * X[b + y0 * s.W + x1])
                  + ly * ((1 - lx) * X[b + y1 * s.W + x0] + lx * X[b + y1 * s.W + x1]);
            }
            Y[(p * s.OutH + oy) * s.OutW + ox] = v;
        }
    }

    // dy: plane p of (N, C, OH, OW) → dx: plane p of (N, C, H, W), overwritten
    internal static void ResizeBackwardPlane(in ResizeShape s, float[] DY, float[] DX, int p)
    {
        int b = p * s.H * s.W;
        Array.Clear(DX, b, s.H * s.W);
        for (int oy = 0; oy < s.OutH; oy++)
        for (int ox = 0; ox < s.OutW; ox++)
        {
            float g = DY[(p * s.OutH + oy) * s.OutW + ox];
            if (s.Mode == ResizeMode.Nearest)
                DX[b + NearestSource(oy, s.H, s.OutH) * s.W + NearestSource(ox, s.W, s.OutW)] += g;
            else
            {
                var (y0, y1, ly) = LinearSource(oy, s.H, s.OutH);
                var (x0, x1, lx) = LinearSource(ox, s.W, s.OutW);
                DX[b + y0 * s.W + x0] += g * (1 - ly) * (1 - lx);
                DX[b + y0 * s.W + x1] += g * (1 - ly) * lx;
                DX[b + y1 * s.W + x0] += g * ly * (1 - lx);
                DX[b + y1 * s.W + x1] += g * ly * lx;
            }
        }
    }

    internal static void CheckGroup(int n, int groupSize)
    {
        if (groupSize < 1 || n % groupSize != 0)
            throw new ArgumentException($"Minibatch-stddev: group size {groupSize} must be ≥ 1 and divide the batch size {n}.");
    }

    public void MinibatchStddevForward(int n, int c, int h, int w, int groupSize, float epsilon, DeviceBuffer x, DeviceBuffer y)
    {
        CheckGroup(n, groupSize);
        var X = A(x, n * c * h * w, "mbstd x"); var Y = A(y, n * (c + 1) * h * w, "mbstd y");
        int chw = c * h * w, hw = h * w, m = n / groupSize;
        for (int i = 0; i < n; i++) Array.Copy(X, i * chw, Y, i * (chw + hw), chw);
        for (int mi = 0; mi < m; mi++)
        {
            double total = 0;
            for (int e = 0; e < chw; e++)
            {
                double mean = 0;
                for (int g = 0; g < groupSize; g++) mean += X[(g * m + mi) * chw + e];
                mean /= groupSize;
                double variance = 0;
                for (int g = 0; g < groupSize; g++) { double d = X[(g * m + mi) * chw + e] - mean; variance += d * d; }
                total += Math.Sqrt(variance / groupSize + epsilon);
            }
            float stat = (float)(total / chw);
            for (int g = 0; g < groupSize; g++)
                Array.Fill(Y, stat, (g * m + mi) * (chw + hw) + chw, hw);
        }
    }

    public void MinibatchStddevBackward(int n, int c, int h, int w, int groupSize, float epsilon, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx)
    {
        CheckGroup(n, groupSize);
        var X = A(x, n * c * h * w, "mbstd x"); var DY = A(dy, n * (c + 1) * h * w, "mbstd dy"); var DX = A(dx, n * c * h * w, "mbstd dx");
        int chw = c * h * w, hw = h * w, m = n / groupSize;
        for (int i = 0; i < n; i++) Array.Copy(DY, i * (chw + hw), DX, i * chw, chw);
        for (int mi = 0; mi < m; mi++)
        {
            // d(stat) = Σ over the group's images and pixels of the extra channel's gradient.
            double dStat = 0;
            for (int g = 0; g < groupSize; g++)
                for (int p = 0; p < hw; p++) dStat += DY[(g * m + mi) * (chw + hw) + chw + p];
            double dStd = dStat / chw;
            for (int e = 0; e < chw; e++)
            {
                double mean = 0;
                for (int g = 0; g < groupSize; g++) mean += X[(g * m + mi) * chw + e];
                mean /= groupSize;
                double variance = 0;
                for (int g = 0; g < groupSize; g++) { double d = X[(g * m + mi) * chw + e] - mean; variance += d * d; }
                double std = Math.Sqrt(variance / groupSize + epsilon);
                // ∂std/∂x_g = (x_g − mean) / (G · std): the mean's own dependence cancels since Σ(x − mean) = 0.
                for (int g = 0; g < groupSize; g++)
                {
                    int idx = (g * m + mi) * chw + e;
                    DX[idx] += (float)(dStd * (X[idx] - mean) / (groupSize * std));
                }
            }
        }
    }

    public void Dispose() { }
}
