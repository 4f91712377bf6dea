namespace ModelGuardian.Engine.Defenses;

/// <summary>
/// The Shapiro–Wilk W test of normality with Royston's approximations (Applied Statistics algorithm
/// AS R94, 1995): the coefficients from normal order-statistic scores corrected by two polynomials in
/// 1/√n, and the p-value from a normalising transform of W (n ≤ 11: −log(γ − log(1 − W)); n ≥ 12:
/// log(1 − W)) with polynomial mean and spread. This is what scipy.stats.shapiro and R's shapiro.test
/// compute; PRADA uses W to tell a natural query stream from a synthetic one.
/// Written from the published algorithm in double precision, complete samples only (no censoring).
/// </summary>
public static class ShapiroWilk
{
    public const int MinSize = 3;
    public const int MaxSize = 5000;

    // Royston (1995) polynomial coefficients, lowest order first.
    private static readonly double[] C1 = [0.0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056];
    private static readonly double[] C2 = [0.0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633];
    private static readonly double[] C3 = [0.544, -0.39978, 0.025054, -6.714e-4];
    private static readonly double[] C4 = [1.3822, -0.77857, 0.062767, -0.0020322];
    private static readonly double[] C5 = [-1.5861, -0.31082, -0.083751, 0.0038915];
    private static readonly double[] C6 = [-0.4803, -0.082676, 0.0030302];
    private static readonly double[] G = [-2.273, 0.459];

    /// <summary>
    /// W and its p-value (small p: not normal) for a sample of 3…5000 finite values, in any order.
    /// </summary>
    public static (double W, double PValue) Test(ReadOnlySpan<double> x)
    {
        int n = x.Length;
        if (n < MinSize || n > MaxSize)
            throw new ArgumentException($"Shapiro–Wilk (AS R94) needs {MinSize}…{MaxSize} values, got {n}.", nameof(x));
        var sorted = x.ToArray();
        foreach (double v in sorted)
            if (!double.IsFinite(v)) throw new ArgumentException($"Shapiro–Wilk needs finite values, got {v}.", nameof(x));
        Array.Sort(sorted);
        double range = sorted[n - 1] - sorted[0];
        // A constant sample has no spread to compare with normal scores: W is undefined.
        if (!(range > 1e-19 * Math.Max(1, Math.Abs(sorted[0]))))
            throw new ArgumentException("Shapiro–Wilk is undefined when all values are (nearly) identical.", nameof(x));

        double[] a = Coefficients(n);
        double w = Statistic(sorted, a, range);
        return (w, PValue(w, n));
    }

    /// <summary>
    /// The upper half of the antisymmetric coefficient vector: a[i] weights x₍ₙ₋ᵢ₎ − x₍ᵢ₊₁₎, i = 0…n/2−1.
    /// Σ over the full vector of a² is 1 by construction, so W = (Σ a·x)² / Σ(x − x̄)².
    /// </summary>
    public static double[] Coefficients(int n)
    {
        if (n < MinSize || n > MaxSize) throw new ArgumentException($"Shapiro–Wilk coefficients exist for n = {MinSize}…{MaxSize}, got {n}.", nameof(n));
        int half = n / 2;
        var a = new double[half];
        if (n == 3) { a[0] = Math.Sqrt(0.5); return a; }

        // m: expected normal order statistics by Blom's approximation Φ⁻¹((i − 3/8)/(n + 1/4)), taken as
        // the positive upper-end scores (−m of the lower end) since the vector is antisymmetric.
        var m = new double[half];
        double summ2 = 0;
        for (int i = 0; i < half; i++)
        {
            m[i] = -Normal.Quantile((i + 1 - 0.375) / (n + 0.25));
            summ2 += m[i] * m[i];
        }
        summ2 *= 2;
        double ssumm2 = Math.Sqrt(summ2);
        double rsn = 1 / Math.Sqrt(n);
        // The two extreme coefficients get Royston's polynomial corrections; the rest are the scores
        // rescaled so that the whole vector has unit length.
        double a1 = Poly(C1, rsn) + m[0] / ssumm2;
        double fac;
        int first;
        if (n > 5)
        {
            double a2 = m[1] / ssumm2 + Poly(C2, rsn);
            fac = Math.Sqrt((summ2 - 2 * m[0] * m[0] - 2 * m[1] * m[1]) / (1 - 2 * a1 * a1 - 2 * a2 * a2));
            a[1] = a2;
            first = 2;
        }
        else
        {
            fac = Math.Sqrt((summ2 - 2 * m[0] * m[0]) / (1 - 2 * a1 * a1));
            first = 1;
        }
        a[0] = a1;
        for (int i = first; i < half; i++) a[i] = m[i] / fac;
        return a;
    }

    private static double Statistic(ReadOnlySpan<double> sorted, ReadOnlySpan<double> a, double range)
    {
        int n = sorted.Length;
        // Scale by the range first (as AS R94 does) so that huge or tiny data cannot overflow the squares.
        double mean = 0;
        foreach (double v in sorted) mean += v / range;
        mean /= n;
        double ssx = 0;
        foreach (double v in sorted) { double d = v / range - mean; ssx += d * d; }
        double num = 0;
        for (int i = 0; i < a.Length; i++) num += a[i] * (sorted[n - 1 - i] - sorted[i]) / range;
        double w = num * num / ssx;
        return Math.Min(w, 1.0); // rounding can push a perfectly "normal" sample a hair above 1
    }

    private static double PValue(double w, int n)
    {
        if (n == 3)
        {
            // Exact for n = 3: W ≥ 3/4 and P(W ≤ w) = (6/π)(asin √w − π/3).
            double p3 = 6 / Math.PI * (Math.Asin(Math.Sqrt(w)) - Math.PI / 3);
            return Math.Clamp(p3, 0, 1);
        }
        if (w >= 1) return 1;
        double y = Math.Log(1 - w);
        double mean, sd;
        if (n <= 11)
        {
            double gamma = Poly(G, n);
            // Beyond the transform's support: W so small that the p-value is zero for all practical purposes.
            if (y >= gamma) return 1e-99;
            y = -Math.Log(gamma - y);
            mean = Poly(C3, n);
            sd = Math.Exp(Poly(C4, n));
        }
        else
        {
            double ln = Math.Log(n);
            mean = Poly(C5, ln);
            sd = Math.Exp(Poly(C6, ln));
        }
        return Normal.UpperTail((y - mean) / sd);
    }

    private static double Poly(ReadOnlySpan<double> c, double x)
    {
        double r = 0;
        for (int i = c.Length - 1; i >= 0; i--) r = r * x + c[i];
        return r;
    }
}
