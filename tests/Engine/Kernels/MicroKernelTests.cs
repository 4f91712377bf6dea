using ModelGuardian.Kernels.Cpu;

namespace ModelGuardian.Tests.Kernels;

/// <summary>
/// The GEMM's micro-kernels for short tiles (≤ 4 rows; ≤ 16 columns) against the full 12×32 kernel: every
/// element they write must have the same bits, since a pixel's column position (and so the kernel that
/// computes it) depends on what else is in the batch.
/// </summary>
public sealed unsafe class MicroKernelTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(37)]
    [InlineData(256)]
    public void ShortTilesMatchTheFullKernelBitForBit(int depth)
    {
        var rng = new Random(depth);
        var a = new float[depth * Gemm.MR + 16];
        var b = new float[depth * Gemm.NR];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        for (int i = 0; i < b.Length; i++) b[i] = (float)(rng.NextDouble() * 2 - 1);
        var prior = Enumerable.Range(0, Gemm.MR * Gemm.NR).Select(_ => (float)rng.NextDouble()).ToArray();
        foreach (bool accumulate in new[] { false, true })
        {
            var full = (float[])prior.Clone();
            fixed (float* pa = a, pb = b, pt = full) Gemm.MicroKernel(depth, Gemm.MR, Gemm.NR, pa, new PackedRows(pb), pt, accumulate);
            for (int rows = 1; rows <= Gemm.MR; rows++)
                for (int cols = 1; cols <= Gemm.NR; cols++)
                {
                    var tile = (float[])prior.Clone();
                    fixed (float* pa = a, pb = b, pt = tile) Gemm.MicroKernel(depth, rows, cols, pa, new PackedRows(pb), pt, accumulate);
                    for (int r = 0; r < rows; r++)
                        for (int c = 0; c < cols; c++)
                            Assert.True(BitConverter.SingleToInt32Bits(full[r * Gemm.NR + c]) == BitConverter.SingleToInt32Bits(tile[r * Gemm.NR + c]),
                                $"depth {depth}, {rows}×{cols} tile{(accumulate ? ", accumulating" : "")}: element ({r}, {c}) is {tile[r * Gemm.NR + c]}, the full kernel {full[r * Gemm.NR + c]}");
                }
        }
    }
}
