namespace ModelGuardian.Kernels.Reference;

// Training kernels, plain: double accumulators, no blocking — the yardstick the fast ones are tested against.
public sealed partial class ReferenceKernels
{
    // x: (N, Cin, H, W) · dy: (N, Cout, OH, OW) → dw: (Cout, Cin/G, KH, KW), dbias: (Cout)
    public void Conv2dBackwardWeight(in Conv2dShape s, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, DeviceBuffer? dbias)
    {
        s.Validate();
        var X = A(x, s.InputLength, "conv x"); var DY = A(dy, s.OutputLength, "conv dy"); var DW = A(dw, s.WeightLength, "conv dw");
        var DB = dbias is null ? null : A(dbias, s.Cout, "conv dbias");
        int oh = s.OutH, ow = s.OutW, cinG = s.CinPerGroup, coutG = s.CoutPerGroup;
        for (int co = 0; co < s.Cout; co++)
        {
            int g = co / coutG;
            for (int ci = 0; ci < cinG; ci++)
            for (int ky = 0; ky < s.KH; ky++)
            for (int kx = 0; kx < s.KW; kx++)
            {
                double acc = 0;
                for (int n = 0; n < s.N; n++)
                for (int oy = 0; oy < oh; oy++)
                {
                    int iy = oy * s.StrideH - s.PadH + ky;
                    if ((uint)iy >= (uint)s.H) continue;
                    for (int ox = 0; ox < ow; ox++)
                    {
                        int ix = ox * s.StrideW - s.PadW + kx;
                        if ((uint)ix >= (uint)s.W) continue;
                        acc += (double)DY[((n * s.Cout + co) * oh + oy) * ow + ox] * X[((n * s.Cin + g * cinG + ci) * s.H + iy) * s.W + ix];
                    }
                }
                DW[((co * cinG + ci) * s.KH + ky) * s.KW + kx] = (float)acc;
            }
            if (DB is not null)
            {
                double b = 0;
                for (int n = 0; n < s.N; n++)
                    for (int p = 0; p < oh * ow; p++) b += DY[(n * s.Cout + co) * oh * ow + p];
                DB[co] = (float)b;
            }
        }
    }

    // dy: (N, C, HW) → sum: (C)
    public void ChannelSum(int n, int c, int hw, DeviceBuffer dy, DeviceBuffer sum)
    {
        var DY = A(dy, n * c * hw, "channel-sum dy"); var S = A(sum, c, "channel-sum sum");
        for (int ch = 0; ch < c; ch++)
        {
            double acc = 0;
            for (int i = 0; i < n; i++)
                for (int p = 0; p < hw; p++) acc += DY[(i * c + ch) * hw + p];
            S[ch] = (float)acc;
        }
    }

    // x: (N, In) · dy: (N, Out) → dw: (Out, In), dbias: (Out)
    public void DenseBackwardWeight(int n, int inFeatures, int outFeatures, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, DeviceBuffer? dbias)
    {
        var X = A(x, n * inFeatures, "dense x"); var DY = A(dy, n * outFeatures, "dense dy"); var DW = A(dw, inFeatures * outFeatures, "dense dw");
        var DB = dbias is null ? null : A(dbias, outFeatures, "dense dbias");
        for (int o = 0; o < outFeatures; o++)
        {
            for (int k = 0; k < inFeatures; k++)
            {
                double acc = 0;
                for (int i = 0; i < n; i++) acc += (double)DY[i * outFeatures + o] * X[i * inFeatures + k];
                DW[o * inFeatures + k] = (float)acc;
            }
            if (DB is not null)
            {
                double b = 0;
                for (int i = 0; i < n; i++) b += DY[i * outFeatures + o];
                DB[o] = (float)b;
            }
        }
    }

    // x: (N, C, HW) → y: (N, C, HW); gamma, beta, running*, save*: (C)
    public void BatchNormTrainForward(int n, int c, int hw, float epsilon, float momentum, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta,
                                      DeviceBuffer runningMean, DeviceBuffer runningVar, DeviceBuffer saveMean, DeviceBuffer saveInvStd, DeviceBuffer y)
    {
        int count = n * c * hw;
        var X = A(x, count, "bn x"); var G = A(gamma, c, "bn gamma"); var B = A(beta, c, "bn beta"); var Y = A(y, count, "bn y");
        var RM = A(runningMean, c, "bn running mean"); var RV = A(runningVar, c, "bn running var");
        var SM = A(saveMean, c, "bn save mean"); var SI = A(saveInvStd, c, "bn save istd");
        for (int ch = 0; ch < c; ch++)
        {
            var (mean, variance, istd) = BatchNormStatistics(X, n, c, hw, ch, epsilon, momentum, SM, SI, RM, RV);
            for (int i = 0; i < n; i++)
                for (int p = 0; p < hw; p++) Y[(i * c + ch) * hw + p] = (float)((X[(i * c + ch) * hw + p] - mean) * istd * G[ch] + B[ch]);
        }
    }

    /// <summary>
    /// One channel's batch statistics, in double (two passes: no cancellation), saved for the backward, and PyTorch's
    /// running-statistics update (unbiased variance). Shared by the reference and the CPU backend, which differ only in
    /// how they normalise.
    /// </summary>
    internal static (double Mean, double Variance, double InvStd) BatchNormStatistics(float[] X, int n, int c, int hw, int ch, float epsilon, float momentum,
                                                                                     float[] saveMean, float[] saveInvStd, float[] runningMean, float[] runningVar)
    {
        int m = n * hw;
        double sum = 0, sq = 0;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) sum += X[(i * c + ch) * hw + p];
        double mean = sum / m;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) { double d = X[(i * c + ch) * hw + p] - mean; sq += d * d; }
        double variance = sq / m;
        return (mean, variance, RecordBatchNormStatistics(ch, m, mean, variance, epsilon, momentum, saveMean, saveInvStd, runningMean, runningVar));
    }

    /// <summary>Saves one channel's batch mean and 1/σ for the backward and updates its running statistics; returns 1/σ.</summary>
    internal static double RecordBatchNormStatistics(int ch, int m, double mean, double variance, float epsilon, float momentum,
                                                     float[] saveMean, float[] saveInvStd, float[] runningMean, float[] runningVar)
    {
        double istd = 1 / Math.Sqrt(variance + epsilon);
        saveMean[ch] = (float)mean;
        saveInvStd[ch] = (float)istd;
        runningMean[ch] = (float)((1 - momentum) * runningMean[ch] + momentum * mean);
        runningVar[ch] = (float)((1 - momentum) * runningVar[ch] + momentum * (m > 1 ? variance * m / (m - 1) : variance));
        return istd;
    }

    // dy: (N, C, HW) → dx: (N, C, HW); dgamma, dbeta: (C)
    public void BatchNormTrainBackward(int n, int c, int hw, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer gamma, DeviceBuffer saveMean, DeviceBuffer saveInvStd,
                                       DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta)
    {
        int count = n * c * hw, m = n * hw;
        var X = A(x, count, "bn x"); var DY = A(dy, count, "bn dy"); var G = A(gamma, c, "bn gamma");
        var SM = A(saveMean, c, "bn save mean"); var SI = A(saveInvStd, c, "bn save istd");
        var DX = A(dx, count, "bn dx"); var DG = A(dgamma, c, "bn dgamma"); var DB = A(dbeta, c, "bn dbeta");
        for (int ch = 0; ch < c; ch++)
        {
            // x̂ = (x − μ)·istd; dβ = Σ dy; dγ = Σ dy·x̂; dx = γ·istd/M · (M·dy − dβ − x̂·dγ)
            double sumDy = 0, sumDyXhat = 0;
            for (int i = 0; i < n; i++)
                for (int p = 0; p < hw; p++)
                {
                    int at = (i * c + ch) * hw + p;
                    sumDy += DY[at];
                    sumDyXhat += DY[at] * ((X[at] - (double)SM[ch]) * SI[ch]);
                }
            for (int i = 0; i < n; i++)
                for (int p = 0; p < hw; p++)
                {
                    int at = (i * c + ch) * hw + p;
                    double xhat = (X[at] - (double)SM[ch]) * SI[ch];
                    DX[at] = (float)(G[ch] * (double)SI[ch] / m * (m * (double)DY[at] - sumDy - xhat * sumDyXhat));
                }
            DG[ch] = (float)sumDyXhat;
            DB[ch] = (float)sumDy;
        }
    }

    public void SgdStep(int count, float lr, float momentum, float weightDecay, DeviceBuffer w, DeviceBuffer g, DeviceBuffer velocity)
        => SgdRange(A(w, count, "sgd w"), A(g, count, "sgd g"), A(velocity, count, "sgd velocity"), lr, momentum, weightDecay, 0, count);

    public void AdamStep(int count, float lr, float beta1, float beta2, float epsilon, float weightDecay, int step, DeviceBuffer w, DeviceBuffer g, DeviceBuffer m, DeviceBuffer v)
        => AdamRange(A(w, count, "adam w"), A(g, count, "adam g"), A(m, count, "adam m"), A(v, count, "adam v"), lr, beta1, beta2, epsilon, weightDecay, step, 0, count);

    // Elements [start, start + length) of one SGD step; the CPU backend runs chunks of it in parallel.
    internal static void SgdRange(float[] W, float[] G, float[] V, float lr, float momentum, float weightDecay, int start, int length)
    {
        for (int i = start; i < start + length; i++)
        {
            float grad = G[i] + weightDecay * W[i];
            V[i] = momentum * V[i] + grad;
            W[i] -= lr * V[i];
        }
    }

    // Elements [start, start + length) of one Adam step (step ≥ 1).
    internal static void AdamRange(float[] W, float[] G, float[] M, float[] V, float lr, float beta1, float beta2, float epsilon, float weightDecay, int step, int start, int length)
    {
        if (step < 1) throw new ArgumentException($"Adam steps count from 1, got {step}.");
        float stepSize = lr / (1 - MathF.Pow(beta1, step)), correction2 = MathF.Sqrt(1 - MathF.Pow(beta2, step));
        for (int i = start; i < start + length; i++)
        {
            float grad = G[i] + weightDecay * W[i];
            M[i] = beta1 * M[i] + (1 - beta1) * grad;
            V[i] = beta2 * V[i] + (1 - beta2) * grad * grad;
            W[i] -= stepSize * M[i] / (MathF.Sqrt(V[i]) / correction2 + epsilon);
        }
    }
}
