namespace ModelGuardian.Engine.Networks;

/// <summary>Probabilities from a network's raw outputs: softmax over several, sigmoid of a single logit.</summary>
public static class OutputProbabilities
{
    public static double[] From(ReadOnlySpan<float> logits)
    {
        if (logits.Length == 0) throw new ArgumentException("No outputs to turn into probabilities.");
        if (logits.Length == 1) return [Sigmoid(logits[0])];
        double max = double.NegativeInfinity;
        foreach (float v in logits) max = Math.Max(max, v);
        var p = new double[logits.Length];
        double sum = 0;
        for (int i = 0; i < p.Length; i++) sum += p[i] = Math.Exp(logits[i] - max); // shifted: no overflow
        for (int i = 0; i < p.Length; i++) p[i] /= sum;
        return p;
    }

    public static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));
}
