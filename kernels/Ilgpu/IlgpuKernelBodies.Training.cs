using ILGPU;
using ILGPU.Algorithms;

namespace ModelGuardian.Kernels.Ilgpu;

// Training kernels: gathers again (one thread per output element), so no atomics are needed.
internal static partial class IlgpuKernelBodies
{
    // x: (N, Cin, H, W) · dy: (N, Cout, OH, OW) → dw: (Cout, Cin/G, KH, KW) · one thread per weight
    internal static void Conv2dBackwardWeight(Index1D index, ConvParams p, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dw)
    {
        int i = index;
        int kx = i % p.KW; int t = i / p.KW;
        int ky = t % p.KH; t /= p.KH;
        int ci = t % p.CinG; int co = t / p.CinG;
        int g = co / p.CoutG;
        float acc = 0f;
        for (int n = 0; n < p.N; n++)
        {
            int xPlane = (n * p.Cin + g * p.CinG + ci) * p.H * p.W, dyPlane = (n * p.Cout + co) * p.OH * p.OW;
            for (int oy = 0; oy < p.OH; oy++)
            {
                int iy = oy * p.SH - p.PH + ky;
                if (iy < 0 || iy >= p.H) continue;
                for (int ox = 0; ox < p.OW; ox++)
                {
                    int ix = ox * p.SW - p.PW + kx;
                    if (ix < 0 || ix >= p.W) continue;
                    acc += dy[dyPlane + oy * p.OW + ox] * x[xPlane + iy * p.W + ix];
                }
            }
        }
        dw[i] = acc;
    }

    // dy: (N, C, HW) → sums: (C) = Σ_{n,p} dy · one thread per channel (conv bias gradient; IKernels.ChannelSum)
    internal static void ChannelSum(Index1D ch, int n, int c, int hw, ArrayView<float> dy, ArrayView<float> sums)
    {
        float acc = 0f;
        for (int i = 0; i < n; i++)
        {
            int plane = (i * c + ch) * hw;
            for (int q = 0; q < hw; q++) acc += dy[plane + q];
        }
        sums[ch] = acc;
    }

    // x: (N, In) · dy: (N, Out) → dw: (Out, In) · one thread per weight
    internal static void DenseBackwardWeight(Index1D index, int n, int inF, int outF, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dw)
    {
        int i = index;
        int k = i % inF, o = i / inF;
        float acc = 0f;
        for (int j = 0; j < n; j++) acc += dy[j * outF + o] * x[j * inF + k];
        dw[i] = acc;
    }

    // x: (N, C, HW) → saveMean, saveInvStd, meanResidual: (C); running statistics updated · one thread per channel.
    // μ = x₀ + Σ(x − x₀)/M with x₀ the channel's first value, so the float sum stays small; μ is kept as the float
    // saveMean plus its rounding error meanResidual (TwoSum, exact): when |μ| ≫ σ half an ulp of μ is not small against σ.
    internal static void BatchNormStatistics(Index1D ch, int n, int c, int hw, float epsilon, float momentum, ArrayView<float> x,
                                             ArrayView<float> runningMean, ArrayView<float> runningVar, ArrayView<float> saveMean, ArrayView<float> saveInvStd,
                                             ArrayView<float> meanResidual)
    {
        int m = n * hw;
        float x0 = x[ch * hw], sum = 0f;
        for (int i = 0; i < n; i++)
            for (int q = 0; q < hw; q++) sum += x[(i * c + ch) * hw + q] - x0;
        float shifted = sum / m, mean = x0 + shifted, back = mean - x0;
        float residual = (x0 - (mean - back)) + (shifted - back), sq = 0f;
        for (int i = 0; i < n; i++)
            for (int q = 0; q < hw; q++) { float d = x[(i * c + ch) * hw + q] - mean - residual; sq += d * d; }
        float variance = sq / m;
        saveMean[ch] = mean;
        meanResidual[ch] = residual;
        saveInvStd[ch] = 1f / XMath.Sqrt(variance + epsilon);
        runningMean[ch] = (1f - momentum) * runningMean[ch] + momentum * mean;
        runningVar[ch] = (1f - momentum) * runningVar[ch] + momentum * (m > 1 ? variance * m / (m - 1) : variance);
    }

    // x: (N, C, HW) → y = (x − μ)·istd·γ + β, with μ = saveMean + meanResidual · one thread per element
    internal static void BatchNormNormalize(Index1D i, int c, int hw, ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta,
                                            ArrayView<float> saveMean, ArrayView<float> meanResidual, ArrayView<float> saveInvStd, ArrayView<float> y)
    {
        int ch = i / hw % c;
        y[i] = (x[i] - saveMean[ch] - meanResidual[ch]) * saveInvStd[ch] * gamma[ch] + beta[ch];
    }

    // dy, x: (N, C, HW) → dbeta = Σ dy, dgamma = Σ dy·x̂: (C) · one thread per channel
    internal static void BatchNormParameterGradients(Index1D ch, int n, int c, int hw, ArrayView<float> x, ArrayView<float> dy,
                                                     ArrayView<float> saveMean, ArrayView<float> saveInvStd, ArrayView<float> dgamma, ArrayView<float> dbeta)
    {
        float sumDy = 0f, sumDyXhat = 0f, mean = saveMean[ch], istd = saveInvStd[ch];
        for (int i = 0; i < n; i++)
            for (int q = 0; q < hw; q++)
            {
                int at = (i * c + ch) * hw + q;
                sumDy += dy[at];
                sumDyXhat += dy[at] * (x[at] - mean) * istd;
            }
        dgamma[ch] = sumDyXhat;
        dbeta[ch] = sumDy;
    }

    // dx = γ·istd/M · (M·dy − Σdy − x̂·Σdy·x̂) · one thread per element
    internal static void BatchNormBackwardInput(Index1D i, int n, int c, int hw, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> gamma,
                                                ArrayView<float> saveMean, ArrayView<float> saveInvStd, ArrayView<float> dgamma, ArrayView<float> dbeta, ArrayView<float> dx)
    {
        int ch = i / hw % c;
        float m = n * hw, istd = saveInvStd[ch], xhat = (x[i] - saveMean[ch]) * istd;
        dx[i] = gamma[ch] * istd / m * (m * dy[i] - dbeta[ch] - xhat * dgamma[ch]);
    }

    // w, g, velocity: (count) · one thread per element
    internal static void SgdStep(Index1D i, float lr, float momentum, float weightDecay, ArrayView<float> w, ArrayView<float> g, ArrayView<float> velocity)
    {
        float grad = g[i] + weightDecay * w[i];
        float v = momentum * velocity[i] + grad;
        velocity[i] = v;
        w[i] -= lr * v;
    }

    // w, g, m, v: (count) · one thread per element; stepSize = lr/(1 − β1ᵗ), correction2 = √(1 − β2ᵗ)
    internal static void AdamStep(Index1D i, float beta1, float beta2, float epsilon, float weightDecay, float stepSize, float correction2,
                                  ArrayView<float> w, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v)
    {
        float grad = g[i] + weightDecay * w[i];
        float mi = beta1 * m[i] + (1f - beta1) * grad;
        float vi = beta2 * v[i] + (1f - beta2) * grad * grad;
        m[i] = mi;
        v[i] = vi;
        w[i] -= stepSize * mi / (XMath.Sqrt(vi) / correction2 + epsilon);
    }
}
