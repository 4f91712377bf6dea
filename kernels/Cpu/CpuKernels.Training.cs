using ModelGuardian.Kernels.Reference;
using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;

namespace ModelGuardian.Kernels.Cpu;

// Training kernels on the CPU: parameter gradients as dot products of contiguous rows, batch-norm
// per channel, optimizer steps per chunk. Tested against ReferenceKernels.Training.
public sealed unsafe partial class CpuKernels
{
    // x: (N, Cin, H, W) · dy: (N, Cout, OH, OW) → dw: (Cout, Cin/G, KH, KW), dbias: (Cout)
    // One group (and, by default, ≥ 3 input channels): tap by tap over a padded copy of x (ShiftedWeightGradient.cs);
    // otherwise per image and group over im2col rows, K = Cin/G·KH·KW, P = OH·OW.
    public void Conv2dBackwardWeight(in Conv2dShape s, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, DeviceBuffer? dbias)
    {
        s.Validate();
        var X = A(x, s.InputLength, "conv x"); var DY = A(dy, s.OutputLength, "conv dy"); var DW = A(dw, s.WeightLength, "conv dw");
        var DB = dbias is null ? null : A(dbias, s.Cout, "conv dbias");
        var shape = s;
        int p = s.OutH * s.OutW;
        if (ShiftedWeightGradientFor(s)) ShiftedBackwardWeight(s, X, DY, DW);
        else Im2ColBackwardWeight(s, X, DY, DW);
        if (DB is not null)
            _pool.For(0, s.Cout, co =>
            {
                double b = 0;
                for (int n = 0; n < shape.N; n++) b += TensorPrimitives.Sum(DY.AsSpan((n * shape.Cout + co) * p, p));
                DB[co] = (float)b;
            });
    }

    // Per image and group: col = im2col(x) as (K, P) rows, then dw (Cout/G × K) += dy (Cout/G × P) · colᵀ (P × K).
    private void Im2ColBackwardWeight(in Conv2dShape s, float[] X, float[] DY, float[] DW)
    {
        var shape = s;
        int p = s.OutH * s.OutW, k = s.CinPerGroup * s.KH * s.KW, coutG = s.CoutPerGroup;
        Array.Clear(DW, 0, s.WeightLength);
        var col = ArrayPool<float>.Shared.Rent(k * p);
        try
        {
            for (int n = 0; n < s.N; n++)
            {
                for (int g = 0; g < s.Groups; g++)
                {
                    int image = n, group = g;
                    _pool.For(0, k, row => Im2ColRow(shape, X, image, group, row, col.AsSpan(row * p, p)));
                    fixed (float* colP = col)
                    {
                        var a = new RowMajorA(P(DY) + ((long)image * s.Cout + group * coutG) * p, p);
                        Gemm.Run(_pool, coutG, k, p, a, new TransposedB(colP, p), new AccumulateC(P(DW) + (long)group * coutG * k, k, DirectTileStores));
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(col);
        }
    }

    // One row of im2col: input channel, kernel row and column fixed, every output position.
    private static void Im2ColRow(in Conv2dShape s, float[] X, int n, int g, int row, Span<float> dst)
    {
        int kx = row % s.KW, ky = row / s.KW % s.KH, ci = row / (s.KW * s.KH);
        int plane = (n * s.Cin + g * s.CinPerGroup + ci) * s.H * s.W, ow = s.OutW;
        for (int oy = 0; oy < s.OutH; oy++)
        {
            int iy = oy * s.StrideH - s.PadH + ky;
            var line = dst.Slice(oy * ow, ow);
            if ((uint)iy >= (uint)s.H) { line.Clear(); continue; }
            for (int ox = 0; ox < ow; ox++)
            {
                int ix = ox * s.StrideW - s.PadW + kx;
                line[ox] = (uint)ix < (uint)s.W ? X[plane + iy * s.W + ix] : 0f;
            }
        }
    }

    // dy: (N, C, HW) → sum: (C); each channel's rows summed with SIMD, the rows added in double
    public void ChannelSum(int n, int c, int hw, DeviceBuffer dy, DeviceBuffer sum)
    {
        var DY = A(dy, n * c * hw, "channel-sum dy"); var S = A(sum, c, "channel-sum sum");
        _pool.For(0, c, ch =>
        {
            double acc = 0;
            for (int i = 0; i < n; i++) acc += TensorPrimitives.Sum(DY.AsSpan((i * c + ch) * hw, hw));
            S[ch] = (float)acc;
        });
    }

    // x: (N, In) · dy: (N, Out) → dw: (Out, In), dbias: (Out)
    public void DenseBackwardWeight(int n, int inFeatures, int outFeatures, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, DeviceBuffer? dbias)
    {
        var X = A(x, n * inFeatures, "dense x"); var DY = A(dy, n * outFeatures, "dense dy"); var DW = A(dw, inFeatures * outFeatures, "dense dw");
        var DB = dbias is null ? null : A(dbias, outFeatures, "dense dbias");
        _pool.For(0, outFeatures, o =>
        {
            var row = DW.AsSpan(o * inFeatures, inFeatures);
            row.Clear();
            double b = 0;
            for (int i = 0; i < n; i++)
            {
                float g = DY[i * outFeatures + o];
                b += g;
                if (g != 0) TensorPrimitives.MultiplyAdd(X.AsSpan(i * inFeatures, inFeatures), g, row, row);
            }
            if (DB is not null) DB[o] = (float)b;
        });
    }

    // x: (N, C, HW) → y: (N, C, HW); gamma, beta, running*, save*: (C)
    // Per channel: each image's plane summed in float vectors, the planes added in double; the variance
    // from values centred on the mean (two passes, no cancellation).
    public void BatchNormTrainForward(int n, int c, int hw, float epsilon, float momentum, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta,
                                      DeviceBuffer runningMean, DeviceBuffer runningVar, DeviceBuffer saveMean, DeviceBuffer saveInvStd, DeviceBuffer y)
    {
        int count = n * c * hw;
        var X = A(x, count, "bn x"); var G = A(gamma, c, "bn gamma"); var B = A(beta, c, "bn beta"); var Y = A(y, count, "bn y");
        var RM = A(runningMean, c, "bn running mean"); var RV = A(runningVar, c, "bn running var");
        var SM = A(saveMean, c, "bn save mean"); var SI = A(saveInvStd, c, "bn save istd");
        _pool.For(0, c, ch =>
        {
            // The mean as x₀ + Σ(x − x₀)/M with x₀ one of the channel's values: a float sum of the values themselves
            // loses σ's digits when |μ| ≫ σ.
            float x0 = X[ch * hw];
            double sum = 0, sq = 0;
            for (int i = 0; i < n; i++) sum += PlaneSums.SumAbout(X.AsSpan((i * c + ch) * hw, hw), x0);
            double mean = x0 + sum / (n * hw);
            for (int i = 0; i < n; i++) sq += PlaneSums.SquaresAbout(X.AsSpan((i * c + ch) * hw, hw), (float)mean);
            double istd = ReferenceKernels.RecordBatchNormStatistics(ch, n * hw, mean, sq / (n * hw), epsilon, momentum, SM, SI, RM, RV);
            // y = (x − μ)·scale + β, centred in float: x·scale + (β − μ·scale) cancels when |μ| ≫ σ. μ's float rounding
            // (μ − μf, up to half an ulp of μ, not small against σ then) is folded into the shift in double.
            float meanF = (float)mean, scale = (float)(istd * G[ch]), shift = (float)(B[ch] - (mean - meanF) * istd * G[ch]);
            for (int i = 0; i < n; i++)
            {
                PlaneSums.ScaleCentred(X.AsSpan((i * c + ch) * hw, hw), meanF, scale, shift, Y.AsSpan((i * c + ch) * hw, hw));
            }
        });
    }

    // dy: (N, C, HW) → dx: (N, C, HW); dgamma, dbeta: (C)
    public void BatchNormTrainBackward(int n, int c, int hw, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer gamma, DeviceBuffer saveMean, DeviceBuffer saveInvStd,
                                       DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta)
    {
        int count = n * c * hw, m = n * hw;
        var X = A(x, count, "bn x"); var DY = A(dy, count, "bn dy"); var G = A(gamma, c, "bn gamma");
        var SM = A(saveMean, c, "bn save mean"); var SI = A(saveInvStd, c, "bn save istd");
        var DX = A(dx, count, "bn dx"); var DG = A(dgamma, c, "bn dgamma"); var DB = A(dbeta, c, "bn dbeta");
        _pool.For(0, c, ch =>
        {
            double mean = SM[ch], istd = SI[ch], sumDy = 0, sumDyCentred = 0;
            // Σ dy·(x − μ) directly: expanding it as Σ dy·x − μ·Σ dy cancels badly in fp32.
            for (int i = 0; i < n; i++)
            {
                int at = (i * c + ch) * hw;
                sumDy += TensorPrimitives.Sum(DY.AsSpan(at, hw));
                sumDyCentred += PlaneSums.ProductsAbout(DY.AsSpan(at, hw), X.AsSpan(at, hw), (float)mean);
            }
            double sumDyXhat = sumDyCentred * istd; // Σ dy·x̂ with x̂ = (x − μ)·istd
            // dx = γ·istd/M · (M·dy − Σdy − x̂·Σdy·x̂) = a·dy + b·(x − μ) + c0, in float with x centred: as b·x + c0'
            // the two terms cancel when |μ| ≫ σ.
            double a = G[ch] * istd, b = -G[ch] * istd / m * sumDyXhat * istd, c0 = -G[ch] * istd / m * sumDy;
            for (int i = 0; i < n; i++)
            {
                int at = (i * c + ch) * hw;
                PlaneSums.AffineCentred(DY.AsSpan(at, hw), (float)a, X.AsSpan(at, hw), (float)mean, (float)b, (float)c0, DX.AsSpan(at, hw));
            }
            DG[ch] = (float)sumDyXhat;
            DB[ch] = (float)sumDy;
        });
    }

    public void SgdStep(int count, float lr, float momentum, float weightDecay, DeviceBuffer w, DeviceBuffer g, DeviceBuffer velocity)
    {
        var W = A(w, count, "sgd w"); var Gr = A(g, count, "sgd g"); var V = A(velocity, count, "sgd velocity");
        ForChunks(count, (start, len) => ReferenceKernels.SgdRange(W, Gr, V, lr, momentum, weightDecay, start, len));
    }

    public void AdamStep(int count, float lr, float beta1, float beta2, float epsilon, float weightDecay, int step, DeviceBuffer w, DeviceBuffer g, DeviceBuffer m, DeviceBuffer v)
    {
        if (step < 1) throw new ArgumentException($"Adam steps count from 1, got {step}.");
        var W = A(w, count, "adam w"); var Gr = A(g, count, "adam g"); var M = A(m, count, "adam m"); var V = A(v, count, "adam v");
        ForChunks(count, (start, len) => ReferenceKernels.AdamRange(W, Gr, M, V, lr, beta1, beta2, epsilon, weightDecay, step, start, len));
    }
}

/// <summary>One plane's sums for batch-norm, in float vectors (a plane is at most a few thousand terms); callers add planes in double.</summary>
internal static class PlaneSums
{
    /// <summary>Σ (x − about): with <paramref name="about"/> near the values, the float sums stay small and exact enough.</summary>
    public static double SumAbout(ReadOnlySpan<float> x, float about)
    {
        var m = new Vector<float>(about);
        Vector<float> s0 = Vector<float>.Zero, s1 = Vector<float>.Zero;
        int i = 0, w = Vector<float>.Count;
        for (; i + 2 * w <= x.Length; i += 2 * w)
        {
            s0 += new Vector<float>(x.Slice(i)) - m;
            s1 += new Vector<float>(x.Slice(i + w)) - m;
        }
        double sum = Vector.Sum(s0 + s1);
        for (; i < x.Length; i++) sum += x[i] - about;
        return sum;
    }

    /// <summary>Σ (x − mean)².</summary>
    public static double SquaresAbout(ReadOnlySpan<float> x, float mean)
    {
        var m = new Vector<float>(mean);
        Vector<float> s0 = Vector<float>.Zero, s1 = Vector<float>.Zero;
        int i = 0, w = Vector<float>.Count;
        for (; i + 2 * w <= x.Length; i += 2 * w)
        {
            var d0 = new Vector<float>(x.Slice(i)) - m; var d1 = new Vector<float>(x.Slice(i + w)) - m;
            s0 += d0 * d0; s1 += d1 * d1;
        }
        double sum = Vector.Sum(s0 + s1);
        for (; i < x.Length; i++) { double d = x[i] - mean; sum += d * d; }
        return sum;
    }

    /// <summary>Σ dy·(x − mean).</summary>
    public static double ProductsAbout(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, float mean)
    {
        var m = new Vector<float>(mean);
        Vector<float> s0 = Vector<float>.Zero, s1 = Vector<float>.Zero;
        int i = 0, w = Vector<float>.Count;
        for (; i + 2 * w <= x.Length; i += 2 * w)
        {
            s0 += new Vector<float>(dy.Slice(i)) * (new Vector<float>(x.Slice(i)) - m);
            s1 += new Vector<float>(dy.Slice(i + w)) * (new Vector<float>(x.Slice(i + w)) - m);
        }
        double sum = Vector.Sum(s0 + s1);
        for (; i < x.Length; i++) sum += (double)dy[i] * (x[i] - mean);
        return sum;
    }

    /// <summary>dst = (x − mean)·scale + shift.</summary>
    public static void ScaleCentred(ReadOnlySpan<float> x, float mean, float scale, float shift, Span<float> dst)
    {
        Vector<float> vm = new(mean), vs = new(scale), vt = new(shift);
        int i = 0, w = Vector<float>.Count;
        for (; i + w <= x.Length; i += w) ((new Vector<float>(x.Slice(i)) - vm) * vs + vt).CopyTo(dst.Slice(i));
        for (; i < x.Length; i++) dst[i] = (x[i] - mean) * scale + shift;
    }

    /// <summary>dst = a·u + b·(v − mean) + c.</summary>
    public static void AffineCentred(ReadOnlySpan<float> u, float a, ReadOnlySpan<float> v, float mean, float b, float c, Span<float> dst)
    {
        Vector<float> va = new(a), vb = new(b), vc = new(c), vm = new(mean);
        int i = 0, w = Vector<float>.Count;
        for (; i + w <= u.Length; i += w) (va * new Vector<float>(u.Slice(i)) + vb * (new Vector<float>(v.Slice(i)) - vm) + vc).CopyTo(dst.Slice(i));
        for (; i < u.Length; i++) dst[i] = a * u[i] + b * (v[i] - mean) + c;
    }
}
