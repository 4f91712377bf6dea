using ModelGuardian.Kernels.Cpu;

namespace ModelGuardian.Tests.Kernels;

/// <summary>The im2col gather of a stride-2 row (vector permutes inside the row, zeros outside it) against the plain definition, exactly.</summary>
public sealed unsafe class StridedGatherTests
{
    [Fact]
    public void EveryOtherElementEqualsThePlainGatherAtEveryOffsetAndEdge()
    {
        var rng = new Random(5);
        foreach (int w in new[] { 1, 7, 31, 32, 33, 56, 64, 113 })
            for (int ix0 = -5; ix0 <= w + 2; ix0++)
                foreach (int len in new[] { 1, 15, 16, 17, 32 })
                {
                    var buffer = new float[w];
                    for (int i = 0; i < w; i++) buffer[i] = (float)rng.NextDouble() + 1f;
                    var got = Enumerable.Repeat(float.NaN, len).ToArray();
                    fixed (float* row = buffer, d = got) StridedGather.EveryOther(row, ix0, w, d, len);
                    for (int c = 0; c < len; c++)
                    {
                        int ix = ix0 + 2 * c;
                        float expected = ix >= 0 && ix < w ? buffer[ix] : 0f;
                        Assert.True(expected == got[c], $"w {w}, ix0 {ix0}, len {len}, column {c}: expected {expected}, got {got[c]}");
                    }
                }
    }
}
