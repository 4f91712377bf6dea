using ModelGuardian.Engine.Defenses;

namespace ModelGuardian.Tests.Defenses;

/// <summary>
/// Shapiro–Wilk (AS R94) against published values and scipy fixtures.
/// Fixtures were generated once with scipy 1.10.1 (/usr/bin/python3) by:
/// <code>
///   import numpy as np, scipy.stats as st
///   r = st.shapiro(np.array(data, dtype=np.float64)); print(repr(float(r.statistic)), repr(float(r.pvalue)))
/// </code>
/// with the data sets below (n20/n100/n500 are the closed-form expressions in <see cref="Closed"/>).
/// scipy 1.10's swilk is the single-precision Fortran AS R94, so its W carries ~1e-7 relative rounding and
/// its p-value a little more: hence W to 1e-6 relative and p to 1e-4 relative (1e-3 for the p ≈ 1e-12 tail
/// at n = 500, where float32 rounding of 1 − W is amplified by the far-tail slope; stated there).
/// </summary>
public sealed class ShapiroWilkTests
{
    private static double[] Closed(int n, Func<int, double> f) => Enumerable.Range(1, n).Select(f).ToArray();

    private static void AssertRel(double expected, double actual, double rel, string what) =>
        Assert.True(Math.Abs(actual - expected) <= rel * Math.Abs(expected),
            $"{what}: expected {expected:R}, got {actual:R} (relative error {Math.Abs(actual - expected) / Math.Abs(expected):E2} > {rel:E0})");

    public static TheoryData<string, double[], double, double, double> Fixtures() => new()
    {
        // Small n (≤ 11): the −log(γ − log(1 − W)) branch.
        { "n5", [2.1, 3.3, 3.9, 5.0, 9.2], 0.885831892490387, 0.33657851815223694, 1e-4 },
        { "n7", [0.5, 0.9, 1.1, 1.4, 1.6, 2.4, 3.0], 0.9478205442428589, 0.7098257541656494, 1e-4 },
        // Shapiro & Wilk (1965)'s own example, weights of 11 men: W ≈ 0.79 in the paper (exact coefficients).
        { "weights11", [148, 154, 158, 160, 161, 162, 166, 170, 182, 195, 236], 0.7888147830963135, 0.006703833118081093, 1e-4 },
        // n ≈ 20: first n ≥ 12 branch.
        { "n20", Closed(20, i => Math.Sin(i * 1.3) + 0.5 * Math.Pow(Math.Cos(i * 0.37), 3) + (i % 7) * 0.1), 0.9431396126747131, 0.27468836307525635, 1e-4 },
        // R: shapiro.test(mtcars$mpg) prints W = 0.94756, p-value = 0.1229 (R documentation examples / textbooks).
        { "mtcars$mpg", [21.0, 21.0, 22.8, 21.4, 18.7, 18.1, 14.3, 24.4, 22.8, 19.2, 17.8, 16.4, 17.3, 15.2, 10.4, 10.4, 14.7, 32.4, 30.4, 33.9, 21.5, 15.5, 15.2, 13.3, 19.2, 27.3, 26.0, 30.4, 15.8, 19.7, 15.0, 21.4], 0.9475648403167725, 0.1228824257850647, 1e-4 },
        // R: shapiro.test(ToothGrowth$len) prints W = 0.96743, p-value = 0.1091.
        { "ToothGrowth$len", [4.2, 11.5, 7.3, 5.8, 6.4, 10, 11.2, 11.2, 5.2, 7, 16.5, 16.5, 15.2, 17.3, 22.5, 17.3, 13.6, 14.5, 18.8, 15.5, 23.6, 18.5, 33.9, 25.5, 26.4, 32.5, 26.7, 21.5, 23.3, 29.5, 15.2, 21.5, 17.6, 9.7, 14.5, 10, 8.2, 9.4, 16.5, 9.7, 19.7, 23.3, 23.6, 26.4, 20, 25.2, 25.8, 21.2, 14.5, 27.3, 25.5, 26.4, 22.4, 24.5, 24.8, 30.9, 26.4, 27.3, 29.4, 23], 0.9674286842346191, 0.10910055041313171, 1e-4 },
        { "n100", Closed(100, i => Math.Sin(i * 0.9) + Math.Sin(i * 2.3) + Math.Sin(i * 5.1)), 0.9883971810340881, 0.5379392504692078, 1e-4 },
        // p ≈ 1e-12: 1e-3 relative (measured 3.0e-4 against scipy's float32 Fortran; see the class comment).
        { "n500", Closed(500, i => Math.Exp(0.3 * (Math.Sin(i * 0.9) + Math.Sin(i * 2.3) + Math.Sin(i * 5.1)))), 0.9445233345031738, 9.976767675889953e-13, 1e-3 },
    };

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void MatchesScipyAndPublishedValues(string name, double[] data, double w, double p, double pRel)
    {
        var (W, P) = ShapiroWilk.Test(data);
        AssertRel(w, W, 1e-6, $"{name} W");
        AssertRel(p, P, pRel, $"{name} p");
    }

    [Fact]
    public void PublishedFourDigitValuesOfR()
    {
        // The numbers R prints (5 significant digits for W, 4 for p): an independent check of the scipy fixtures.
        var (w, p) = ShapiroWilk.Test([21.0, 21.0, 22.8, 21.4, 18.7, 18.1, 14.3, 24.4, 22.8, 19.2, 17.8, 16.4, 17.3, 15.2, 10.4, 10.4, 14.7, 32.4, 30.4, 33.9, 21.5, 15.5, 15.2, 13.3, 19.2, 27.3, 26.0, 30.4, 15.8, 19.7, 15.0, 21.4]);
        Assert.Equal(0.94756, Math.Round(w, 5));
        Assert.Equal(0.1229, Math.Round(p, 4));
    }

    [Fact]
    public void ExactCaseNEquals3()
    {
        // x = (1, 2, 4): a = (−1/√2, 0, 1/√2), Σa·x = 3/√2, Σ(x − x̄)² = 14/3, so W = 4.5/(14/3) = 27/28 exactly,
        // and p = (6/π)(asin √W − π/3). Tolerances 1e-14 (double rounding only).
        var (w, p) = ShapiroWilk.Test([4.0, 1.0, 2.0]);
        Assert.Equal(27.0 / 28.0, w, 1e-14);
        Assert.Equal(6 / Math.PI * (Math.Asin(Math.Sqrt(27.0 / 28.0)) - Math.PI / 3), p, 1e-14);
        // scipy gives p = 0.6368856430053711: its single-precision constants 6/π ≈ 1.909859f and
        // π/3 ≈ 1.047198f shift p by ~1.2e-6, hence 2e-6 here.
        Assert.Equal(0.6368856430053711, p, 2e-6);
        // Equally spaced triple: W = 1, p = 1; the extreme (two equal, one apart) W = 3/4 gives p = 0.
        Assert.Equal(1.0, ShapiroWilk.Test([1.0, 2.0, 3.0]).PValue, 1e-12);
        var extreme = ShapiroWilk.Test([0.0, 0.0, 1.0]);
        Assert.Equal(0.75, extreme.W, 1e-14);
        Assert.Equal(0.0, extreme.PValue, 1e-7);
    }

    [Fact]
    public void InvariantToOrderShiftAndScale()
    {
        double[] x = [5.1, 2.2, 9.7, 3.3, 4.4, 8.0, 1.1, 6.6, 7.2, 2.9, 3.8, 5.5, 4.0];
        var (w, p) = ShapiroWilk.Test(x);
        var (w2, p2) = ShapiroWilk.Test(x.Reverse().Select(v => 100 + 3 * v).ToArray());
        Assert.Equal(w, w2, 1e-12);   // shift/scale/order only change rounding
        Assert.Equal(p, p2, 1e-10);
    }

    [Fact]
    public void CoefficientsHaveUnitLength()
    {
        // AS R94 normalises the antisymmetric vector to Σa² = 1; W = (Σa·x)²/SS relies on it. 1e-12.
        foreach (int n in new[] { 4, 5, 6, 11, 12, 50, 501, 5000 })
        {
            double s = 2 * ShapiroWilk.Coefficients(n).Sum(a => a * a);
            Assert.True(Math.Abs(s - 1) < 1e-12, $"n={n}: Σa² = {s}");
        }
    }

    [Fact]
    public void RejectsBadInput()
    {
        Assert.Contains("3…5000", Assert.Throws<ArgumentException>(() => ShapiroWilk.Test([1.0, 2.0])).Message);
        Assert.Contains("3…5000", Assert.Throws<ArgumentException>(() => ShapiroWilk.Test(new double[5001])).Message);
        Assert.Contains("finite", Assert.Throws<ArgumentException>(() => ShapiroWilk.Test([1.0, double.NaN, 2.0])).Message);
        Assert.Contains("identical", Assert.Throws<ArgumentException>(() => ShapiroWilk.Test([2.0, 2.0, 2.0, 2.0])).Message);
    }
}
