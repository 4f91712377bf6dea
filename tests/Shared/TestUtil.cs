namespace ModelGuardian.Tests;

internal static class TestUtil
{
    public static float[] Random(int count, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var a = new float[count];
        for (int i = 0; i < count; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    public static float MaxAbs(ReadOnlySpan<float> a)
    {
        float m = 0;
        foreach (var v in a) m = Math.Max(m, Math.Abs(v));
        return m;
    }

    /// <summary>
    /// For input gradients of big leaky-ReLU networks, where a handful of pre-activations within fp32
    /// rounding of zero flip their slope between two correct fp32 implementations (each flip moves the
    /// gradient of a few input pixels by a few 1e-3 of the max): at most <paramref name="outlierShare"/> of the
    /// elements may exceed <paramref name="tolerance"/> × max-abs, and the relative L2 error must stay ≤ tolerance.
    /// </summary>
    public static void AssertCloseAllowingFlips(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tolerance, double outlierShare, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: length {actual.Length}, expected {expected.Length}");
        double scale = Math.Max(MaxAbs(expected), 1e-12), l2d = 0, l2 = 0; int over = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (!float.IsFinite(actual[i])) Assert.Fail($"{what}: {actual[i]} at {i}");
            double d = actual[i] - expected[i];
            l2d += d * d; l2 += (double)expected[i] * expected[i];
            if (Math.Abs(d) > tolerance * scale) over++;
        }
        double rel = Math.Sqrt(l2d / Math.Max(l2, 1e-30));
        Assert.True(over <= outlierShare * expected.Length && rel <= tolerance,
            $"{what}: {over} of {expected.Length} elements beyond {tolerance:E1} × max-abs (allowed {outlierShare:P2}), relative L2 {rel:E2} (allowed {tolerance:E1})");
    }

    /// <summary>
    /// Asserts max |actual − expected| ≤ tolerance · max(|expected|), i.e. an error relative to the
    /// tensor's largest magnitude (a floor of 1e-12 avoids dividing by an all-zero tensor).
    /// </summary>
    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tolerance, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: length {actual.Length}, expected {expected.Length}");
        double scale = Math.Max(MaxAbs(expected), 1e-12), worst = 0; int at = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            if (float.IsNaN(actual[i])) Assert.Fail($"{what}: NaN at {i}");
            double d = Math.Abs(actual[i] - expected[i]);
            if (d > worst) { worst = d; at = i; }
        }
        int over = 0; double l2d = 0, l2 = 0;
        for (int i = 0; i < expected.Length; i++) { double d = actual[i] - expected[i]; l2d += d * d; l2 += (double)expected[i] * expected[i]; if (Math.Abs(d) > tolerance * scale) over++; }
        Assert.True(worst <= tolerance * scale,
            $"{what}: {over} of {expected.Length} elements off, relative L2 {Math.Sqrt(l2d / Math.Max(l2, 1e-30)):E2}; max error {worst:E3} at [{at}] (expected {(at >= 0 ? expected[at] : 0)}, got {(at >= 0 ? actual[at] : 0)}) exceeds {tolerance:E1} × max-abs {scale:E3}");
    }

    /// <summary>‖actual − expected‖₂ ≤ tolerance · ‖expected‖₂ (a floor of 1e-30 avoids dividing by an all-zero tensor).</summary>
    public static void AssertRelativeL2(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tolerance, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: length {actual.Length}, expected {expected.Length}");
        double l2d = 0, l2 = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = actual[i] - expected[i];
            l2d += d * d;
            l2 += (double)expected[i] * expected[i];
        }
        double rel = Math.Sqrt(l2d / Math.Max(l2, 1e-30));
        Assert.True(rel <= tolerance, $"{what}: relative L2 error {rel:E2} exceeds {tolerance:E1}");
    }
}
