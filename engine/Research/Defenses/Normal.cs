namespace ModelGuardian.Engine.Defenses;

/// <summary>
/// The standard normal distribution to near machine precision, without a numerics package: the
/// Shapiro–Wilk coefficients need its quantiles and the p-value its upper tail.
/// </summary>
internal static class Normal
{
    private const double SqrtPi = 1.7724538509055160273;
    private const double Sqrt2 = 1.4142135623730950488;

    /// <summary>erfc(x) for x ≥ 0, relative error ≲ 1e-14.</summary>
    private static double ErfcNonNegative(double x)
    {
        if (x < 2.5)
        {
            // erf(x) = 2/√π · e^{−x²} · Σ 2ⁿ x^{2n+1} / (1·3·…·(2n+1)): every term positive, so no
            // cancellation; erfc = 1 − erf loses at most ~1e-11 relative at x = 2.5 (erfc ≈ 4e-4).
            double term = x, sum = x, x2 = x * x;
            for (int n = 1; n < 200; n++)
            {
                term *= 2 * x2 / (2 * n + 1);
                sum += term;
                if (term < sum * 1e-17) break;
            }
            return 1 - 2 / SqrtPi * Math.Exp(-x2) * sum;
        }
        // Continued fraction erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))),
        // evaluated by the modified Lentz method: converges fast for x ≥ 2.5.
        const double tiny = 1e-300;
        double f = x, c = x, d = 0;
        for (int k = 1; k < 500; k++)
        {
            double a = k / 2.0;
            d = x + a * d; if (Math.Abs(d) < tiny) d = tiny; d = 1 / d;
            c = x + a / c; if (Math.Abs(c) < tiny) c = tiny;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < 1e-16) break;
        }
        return Math.Exp(-x * x) / SqrtPi / f;
    }

    /// <summary>P(Z ≤ z).</summary>
    public static double Cdf(double z)
    {
        if (double.IsNaN(z)) return double.NaN;
        return z < 0 ? 0.5 * ErfcNonNegative(-z / Sqrt2) : 1 - 0.5 * ErfcNonNegative(z / Sqrt2);
    }

    /// <summary>P(Z &gt; z), accurate in the far tail (not 1 − Cdf).</summary>
    public static double UpperTail(double z) => Cdf(-z);

    public static double Density(double z) => Math.Exp(-0.5 * z * z) / (Sqrt2 * SqrtPi);

    /// <summary>Φ⁻¹(p) for 0 &lt; p &lt; 1.</summary>
    public static double Quantile(double p)
    {
        if (!(p > 0 && p < 1)) throw new ArgumentException($"A normal quantile needs 0 < p < 1, got {p}.");
        if (p == 0.5) return 0;
        // Start from Abramowitz & Stegun 26.2.23 (|error| < 4.5e-4) on the smaller tail, then polish
        // with Halley steps on the accurate CDF: three steps reach double precision.
        double q = Math.Min(p, 1 - p);
        double t = Math.Sqrt(-2 * Math.Log(q));
        double x = t - (2.515517 + t * (0.802853 + t * 0.010328)) / (1 + t * (1.432788 + t * (0.189269 + t * 0.001308)));
        x = -x; // lower-tail quantile of q
        for (int i = 0; i < 4; i++)
        {
            double e = (Cdf(x) - q) / Density(x);
            x -= e / (1 + x * e / 2);
        }
        return p < 0.5 ? x : -x;
    }
}
