namespace ModelGuardian.Engine.Core;

/// <summary>
/// SplitMix64 (Steele, Lea and Flood, 2014): the project's one seeded 64-bit stream. Random weights, the
/// training generator's seeding and the benchmarks' inputs all draw from it, so a seed means the same
/// numbers on every machine and .NET version (the sequence of <c>new Random(seed)</c> is the runtime's detail).
/// A golden-value test pins its output.
/// </summary>
public struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    /// <summary>The next 64 bits.</summary>
    public ulong Next() => Step(ref _state);

    /// <summary>Uniform on [0, 1) from the top 24 bits: every value is an exact float.</summary>
    public float NextSingle() => (Next() >> 40) * (1f / (1 << 24));

    /// <summary>Advances <paramref name="state"/> and returns the next output.</summary>
    public static ulong Step(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>The Box–Muller transform, the one way the project turns uniforms into normal samples.</summary>
public static class BoxMuller
{
    /// <summary>
    /// scale·√(−2 ln u1)·cos(2π u2), multiplied in that order. <paramref name="u1"/> must lie in (0, 1] so the
    /// logarithm is finite (callers map a [0, 1) uniform u to 1 − u, or to (k + 1)/2⁵³).
    /// </summary>
    public static double Normal(double u1, double u2, double scale = 1) => scale * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
}
