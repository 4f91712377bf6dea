namespace ModelGuardian.Engine.Attacks;

/// <summary>
/// The losses data-free attacks train with that are not plain supervised ones, on row-major (N, K)
/// outputs, in double on the host (outputs are small); each gives the loss and its gradient with
/// respect to the logits it was handed. FD-checked in the tests.
/// </summary>
public static class AttackLosses
{
    /// <summary>Probabilities are clamped at this before a logarithm: a victim's softmax may hold exact zeros.</summary>
    public const double ProbabilityFloor = 1e-30;

    /// <summary>DFME's logits from probabilities: log p − mean_k log p, per row (the victim's logits up to the constant DFME cannot know).</summary>
    public static float[] ReconstructedLogits(IReadOnlyList<double[]> probabilities, int classes)
    {
        var r = new float[probabilities.Count * classes];
        for (int i = 0; i < probabilities.Count; i++)
        {
            var p = probabilities[i];
            if (p.Length != classes) throw new ArgumentException($"Answer {i} has {p.Length} probabilities for {classes} classes.");
            double mean = 0;
            for (int k = 0; k < classes; k++) mean += Math.Log(Math.Max(p[k], ProbabilityFloor));
            mean /= classes;
            for (int k = 0; k < classes; k++) r[i * classes + k] = (float)(Math.Log(Math.Max(p[k], ProbabilityFloor)) - mean);
        }
        return r;
    }

    /// <summary>Row-wise softmax in double.</summary>
    public static double[] Softmax(ReadOnlySpan<float> logits, int row, int classes)
    {
        var z = logits.Slice(row * classes, classes);
        double max = double.NegativeInfinity, sum = 0;
        foreach (float v in z) max = Math.Max(max, v);
        var p = new double[classes];
        for (int k = 0; k < classes; k++) sum += p[k] = Math.Exp(z[k] - max);
        for (int k = 0; k < classes; k++) p[k] /= sum;
        return p;
    }

    /// <summary>Per row: mean_k |a − b| (DFME's disagreement for one query, used by the zeroth-order estimate).</summary>
    public static double[] RowL1(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int classes)
    {
        if (a.Length != b.Length || a.Length % classes != 0) throw new ArgumentException($"Row L1 of {a.Length} and {b.Length} values in rows of {classes}.");
        var d = new double[a.Length / classes];
        for (int i = 0; i < d.Length; i++)
        {
            double s = 0;
            for (int k = 0; k < classes; k++) s += Math.Abs((double)a[i * classes + k] - b[i * classes + k]);
            d[i] = s / classes;
        }
        return d;
    }

    /// <summary>Per row: KL(target ‖ softmax(logits)) (MAZE's disagreement for one query).</summary>
    public static double[] RowKl(ReadOnlySpan<float> logits, IReadOnlyList<double[]> target, int classes)
    {
        var d = new double[target.Count];
        for (int i = 0; i < d.Length; i++)
        {
            var q = Softmax(logits, i, classes);
            double s = 0;
            for (int k = 0; k < classes; k++)
            {
                double t = target[i][k];
                if (t > 0) s += t * (Math.Log(t) - Math.Log(Math.Max(q[k], ProbabilityFloor)));
            }
            d[i] = s;
        }
        return d;
    }

    /// <summary>
    /// Class-diversity loss (DFMS, DisGUIDE): Σ_k p̄_k log p̄_k with p̄ the batch mean of softmax(logits) —
    /// the negative entropy of the predicted class mix, minimal when the generator covers every class evenly.
    /// </summary>
    public static (double Loss, float[] Gradient) ClassDiversity(ReadOnlySpan<float> logits, int classes)
    {
        int n = logits.Length / classes;
        if (n < 1 || n * classes != logits.Length) throw new ArgumentException($"{logits.Length} logits do not form rows of {classes}.");
        var p = new double[n][];
        var mean = new double[classes];
        for (int i = 0; i < n; i++)
        {
            p[i] = Softmax(logits, i, classes);
            for (int k = 0; k < classes; k++) mean[k] += p[i][k] / n;
        }
        double loss = 0;
        var dMean = new double[classes];
        for (int k = 0; k < classes; k++)
        {
            double m = Math.Max(mean[k], ProbabilityFloor);
            loss += mean[k] * Math.Log(m);
            dMean[k] = Math.Log(m) + 1;
        }
        var grad = new float[logits.Length];
        for (int i = 0; i < n; i++)
        {
            double dot = 0;
            for (int k = 0; k < classes; k++) dot += p[i][k] * dMean[k];
            for (int j = 0; j < classes; j++) grad[i * classes + j] = (float)(p[i][j] * (dMean[j] - dot) / n);
        }
        return (loss, grad);
    }

    /// <summary>
    /// Disagreement of two students (DisGUIDE): mean over rows of Σ_k |softmax(a)_k − softmax(b)_k|, with the
    /// gradients with respect to both students' logits.
    /// </summary>
    public static (double Loss, float[] GradientA, float[] GradientB) SoftmaxDisagreement(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int classes)
    {
        if (a.Length != b.Length || a.Length % classes != 0 || a.IsEmpty) throw new ArgumentException($"Disagreement of {a.Length} and {b.Length} logits in rows of {classes}.");
        int n = a.Length / classes;
        var ga = new float[a.Length];
        var gb = new float[b.Length];
        double loss = 0;
        for (int i = 0; i < n; i++)
        {
            double[] pa = Softmax(a, i, classes), pb = Softmax(b, i, classes);
            var s = new double[classes];
            for (int k = 0; k < classes; k++)
            {
                loss += Math.Abs(pa[k] - pb[k]) / n;
                s[k] = Math.Sign(pa[k] - pb[k]) / (double)n;
            }
            SoftmaxChain(pa, s, ga.AsSpan(i * classes, classes), 1);
            SoftmaxChain(pb, s, gb.AsSpan(i * classes, classes), -1);
        }
        return (loss, ga, gb);
    }

    /// <summary>
    /// DaST's imitation distance: mean over rows of Σ_k (softmax(logits)_k − target_k)², gradient with respect to the logits.
    /// </summary>
    public static (double Loss, float[] Gradient) ProbabilityMse(ReadOnlySpan<float> logits, IReadOnlyList<double[]> target, int classes)
    {
        int n = target.Count;
        if (n < 1 || logits.Length != n * classes) throw new ArgumentException($"{logits.Length} logits for {n} targets of {classes} classes.");
        var grad = new float[logits.Length];
        double loss = 0;
        for (int i = 0; i < n; i++)
        {
            var p = Softmax(logits, i, classes);
            var dp = new double[classes];
            for (int k = 0; k < classes; k++)
            {
                double d = p[k] - target[i][k];
                loss += d * d / n;
                dp[k] = 2 * d / n;
            }
            SoftmaxChain(p, dp, grad.AsSpan(i * classes, classes), 1);
        }
        return (loss, grad);
    }

    // ∂/∂z of a function of p = softmax(z), given ∂/∂p: p ⊙ (dp − Σ p·dp), times sign, into g.
    private static void SoftmaxChain(double[] p, double[] dp, Span<float> g, int sign)
    {
        double dot = 0;
        for (int k = 0; k < p.Length; k++) dot += p[k] * dp[k];
        for (int k = 0; k < p.Length; k++) g[k] = (float)(sign * p[k] * (dp[k] - dot));
    }
}
