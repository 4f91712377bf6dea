using ModelGuardian.Kernels.Reference;
using System.Buffers;
using System.Numerics.Tensors;

namespace ModelGuardian.Kernels.Cpu;

// Training kernels on the CPU: parameter gradients as dot products of contiguous rows, batch-norm
// per channel, optimizer steps per chunk. Tested against ReferenceKernels.Training.
public sealed unsafe partial class CpuKernels
{
    // x: (N, Cin, H, W) · dy: (N, Cout, OH, OW) → dw: (Cout, Cin/G, KH, KW), dbias: (Cout)
    // Per image and group: col = im2col(x) as (K, P) rows, K = Cin/G·KH·KW, P = OH·OW; then the
    // packed GEMM dw (Cout/G × K) += dy (Cout/G × P) · colᵀ (P × K), accumulating over the batch.
    public void Conv2dBackwardWeight(in Conv2dShape s, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, DeviceBuffer? dbias)
    {
        s.Validate();
        var X = A(x, s.InputLength, "conv x"); var DY = A(dy, s.OutputLength, "conv dy"); var DW = A(dw, s.WeightLength, "conv dw");
        var DB = dbias is null ? null : A(dbias, s.Cout, "conv dbias");
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
        if (DB is not null)
            _pool.For(0, s.Cout, co =>
            {
                double b = 0;
                for (int n = 0; n < shape.N; n++) b += TensorPrimitives.Sum(DY.AsSpan((n * shape.Cout + co) * p, p));
                DB[co] = (float)b;
            });
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
    public void BatchNormTrainForward(int n, int c, int hw, float epsilon, float momentum, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta,
                                      DeviceBuffer runningMean, DeviceBuffer runningVar, DeviceBuffer saveMean, DeviceBuffer saveInvStd, DeviceBuffer y)
    {
        int count = n * c * hw;
        var X = A(x, count, "bn x"); var G = A(gamma, c, "bn gamma"); var B = A(beta, c, "bn beta"); var Y = A(y, count, "bn y");
        var RM = A(runningMean, c, "bn running mean"); var RV = A(runningVar, c, "bn running var");
        var SM = A(saveMean, c, "bn save mean"); var SI = A(saveInvStd, c, "bn save istd");
        _pool.For(0, c, ch =>
        {
            var (mean, _, istd) = ReferenceKernels.BatchNormStatistics(X, n, c, hw, ch, epsilon, momentum, SM, SI, RM, RV);
            float scale = (float)(istd * G[ch]), shift = (float)(B[ch] - mean * istd * G[ch]);
            for (int i = 0; i < n; i++)
            {
                var dst = Y.AsSpan((i * c + ch) * hw, hw);
                TensorPrimitives.Multiply(X.AsSpan((i * c + ch) * hw, hw), scale, dst);
                TensorPrimitives.Add(dst, shift, dst);
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
            // Σ dy·(x − μ) directly, in double: expanding it as Σ dy·x − μ·Σ dy cancels badly in fp32.
            for (int i = 0; i < n; i++)
            {
                int at = (i * c + ch) * hw;
                for (int p = 0; p < hw; p++)
                {
                    double d = DY[at + p];
                    sumDy += d;
                    sumDyCentred += d * (X[at + p] - mean);
                }
            }
            double sumDyXhat = sumDyCentred * istd; // Σ dy·x̂ with x̂ = (x − μ)·istd
            // dx = γ·istd/M · (M·dy − Σdy − x̂·Σdy·x̂) = a·dy + b·x + c0
            double a = G[ch] * istd, bx = -G[ch] * istd / m * sumDyXhat * istd, c0 = -G[ch] * istd / m * (sumDy - mean * istd * sumDyXhat);
            for (int i = 0; i < n; i++)
            {
                int at = (i * c + ch) * hw;
                for (int p = 0; p < hw; p++) DX[at + p] = (float)(a * DY[at + p] + bx * X[at + p] + c0);
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
