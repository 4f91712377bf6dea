namespace ModelGuardian.Engine.Training;

/// <summary>
/// Losses on a batch of outputs (row-major (N, K)), as PyTorch defines them with mean reduction:
/// each returns the loss and its gradient with respect to the outputs. Computed on the host in
/// double: outputs are small (N·K), and it keeps every backend's losses identical.
/// </summary>
public static class Losses
{
    /// <summary>F.cross_entropy(logits, labels): mean over the batch of −log softmax(logits)[label].</summary>
    public static (double Loss, float[] Gradient) CrossEntropy(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int classes)
    {
        int n = Rows(logits.Length, classes, labels.Length);
        var grad = new float[logits.Length];
        double loss = 0;
        for (int i = 0; i < n; i++)
        {
            var row = logits.Slice(i * classes, classes);
            if ((uint)labels[i] >= (uint)classes) throw new ArgumentException($"Label {labels[i]} of sample {i} is outside 0…{classes - 1}.");
            double max = double.NegativeInfinity, sum = 0;
            foreach (float v in row) max = Math.Max(max, v);
            foreach (float v in row) sum += Math.Exp(v - max);
            double logSum = max + Math.Log(sum);
            loss += logSum - row[labels[i]];
            for (int k = 0; k < classes; k++)
                grad[i * classes + k] = (float)((Math.Exp(row[k] - logSum) - (k == labels[i] ? 1 : 0)) / n);
        }
        return (loss / n, grad);
    }

    /// <summary>
    /// Adaptive Misinformation's training loss for its misinformation model: mean over the batch of −log(1 − softmax(z)[label]),
    /// which drives the true class's probability to 0. Computed as LSE(z) − LSE(z without the label) so that it stays finite
    /// as the label's probability nears 1; the gradient is softmax(z) − softmax over the other classes (0 at the label).
    /// </summary>
    public static (double Loss, float[] Gradient) Misinformation(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int classes)
    {
        int n = Rows(logits.Length, classes, labels.Length);
        if (classes < 2) throw new ArgumentException("The misinformation loss needs at least 2 classes.");
        var grad = new float[logits.Length];
        double loss = 0;
        for (int i = 0; i < n; i++)
        {
            var row = logits.Slice(i * classes, classes);
            int y = labels[i];
            if ((uint)y >= (uint)classes) throw new ArgumentException($"Label {y} of sample {i} is outside 0…{classes - 1}.");
            double max = double.NegativeInfinity;
            foreach (float v in row) max = Math.Max(max, v);
            double all = 0, others = 0;
            for (int k = 0; k < classes; k++)
            {
                double e = Math.Exp(row[k] - max);
                all += e;
                if (k != y) others += e;
            }
            loss += Math.Log(all) - Math.Log(others);
            for (int k = 0; k < classes; k++)
            {
                double e = Math.Exp(row[k] - max);
                grad[i * classes + k] = (float)((e / all - (k == y ? 0 : e / others)) / n);
            }
        }
        return (loss / n, grad);
    }

    /// <summary>F.binary_cross_entropy_with_logits(logits, targets): mean of −[t·log σ(z) + (1 − t)·log(1 − σ(z))], computed stably.</summary>
    public static (double Loss, float[] Gradient) BceWithLogits(ReadOnlySpan<float> logits, ReadOnlySpan<float> targets)
    {
        if (logits.Length != targets.Length || logits.IsEmpty) throw new ArgumentException($"{logits.Length} logits for {targets.Length} targets.");
        int n = logits.Length;
        var grad = new float[n];
        double loss = 0;
        for (int i = 0; i < n; i++)
        {
            double z = logits[i], t = targets[i];
            loss += Math.Max(z, 0) - z * t + Math.Log(1 + Math.Exp(-Math.Abs(z)));
            double sigmoid = z >= 0 ? 1 / (1 + Math.Exp(-z)) : Math.Exp(z) / (1 + Math.Exp(z));
            grad[i] = (float)((sigmoid - t) / n);
        }
        return (loss / n, grad);
    }

    /// <summary>F.l1_loss(a, b): mean |a − b|; gradient with respect to a (sign, 0 where equal).</summary>
    public static (double Loss, float[] Gradient) L1(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length || a.IsEmpty) throw new ArgumentException($"L1 of {a.Length} and {b.Length} values.");
        var grad = new float[a.Length];
        double loss = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = (double)a[i] - b[i];
            loss += Math.Abs(d);
            grad[i] = (float)(Math.Sign(d) / (double)a.Length);
        }
        return (loss / a.Length, grad);
    }

    /// <summary>
    /// KL(target ‖ softmax(logits)) averaged over the batch (F.kl_div(log_softmax(logits), target,
    /// reduction="batchmean")); target rows are probability vectors. Gradient with respect to the logits.
    /// </summary>
    public static (double Loss, float[] Gradient) KlDivergence(ReadOnlySpan<float> logits, ReadOnlySpan<float> target, int classes)
    {
        int n = Rows(logits.Length, classes, target.Length / Math.Max(1, classes));
        if (target.Length != logits.Length) throw new ArgumentException($"{target.Length} target values for {logits.Length} logits.");
        var grad = new float[logits.Length];
        double loss = 0;
        for (int i = 0; i < n; i++)
        {
            var row = logits.Slice(i * classes, classes);
            double max = double.NegativeInfinity, sum = 0, mass = 0;
            foreach (float v in row) max = Math.Max(max, v);
            foreach (float v in row) sum += Math.Exp(v - max);
            double logSum = max + Math.Log(sum);
            for (int k = 0; k < classes; k++)
            {
                double t = target[i * classes + k];
                if (t < 0) throw new ArgumentException($"Target probability {t} of sample {i} is negative.");
                if (t > 0) loss += t * (Math.Log(t) - (row[k] - logSum));
                mass += t;
            }
            for (int k = 0; k < classes; k++)
                grad[i * classes + k] = (float)((mass * Math.Exp(row[k] - logSum) - target[i * classes + k]) / n);
        }
        return (loss / n, grad);
    }

    private static int Rows(int values, int classes, int rows)
    {
        if (classes < 1 || values != rows * classes || rows < 1)
            throw new ArgumentException($"{values} outputs do not form {rows} rows of {classes} classes.");
        return rows;
    }
}
