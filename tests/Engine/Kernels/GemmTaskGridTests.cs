using ModelGuardian.Kernels.Cpu;

namespace ModelGuardian.Tests.Kernels;

/// <summary>
/// The CPU GEMM's cut of C into parallel tasks: every (row, column sliver) in exactly one task (a gap
/// leaves C unwritten, an overlap writes it twice — the agreement suites would see both only on the
/// shapes they happen to use), and the cut the cost rule is meant to pick on ResNet's extremes.
/// </summary>
public sealed class GemmTaskGridTests
{
    [Theory]
    [InlineData(64, 576, 3136, 2)]    // 64→64 3×3 at 56²: one short row block, many slivers
    [InlineData(512, 4608, 49, 2)]    // 512→512 3×3 at 7²: six row blocks, two slivers
    [InlineData(2048, 512, 49, 2)]    // a short last row block (2048 = 21·96 + 32)
    [InlineData(70, 360, 700, 1)]     // one thread
    [InlineData(5, 9, 3, 2)]          // smaller than one micro-tile
    [InlineData(1000, 64, 33, 16)]    // more threads than the work wants
    public void EveryRowAndSliverBelongsToExactlyOneTask(int m, int k, int n, int threads)
    {
        int slivers = (n + Gemm.NR - 1) / Gemm.NR;
        var grid = Gemm.TaskGrid.Choose(m, k, n, slivers, threads);
        var owner = new int[m, slivers];
        for (int t = 0; t < grid.Tasks; t++)
        {
            var (start, count) = grid.Rows(t, m);
            Assert.True(count == 0 || start % Gemm.MR == 0, $"task {t}: rows start at {start}, not on a micro-tile boundary");
            var (first, end) = grid.Slivers(t);
            for (int i = start; i < start + count; i++)
                for (int j = first; j < Math.Min(end, slivers); j++) owner[i, j]++;
        }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < slivers; j++)
                Assert.True(owner[i, j] == 1, $"row {i}, sliver {j}: in {owner[i, j]} tasks ({grid})");
    }

    [Fact]
    public void WideOutputsSplitColumnsAndDeepNarrowOnesSplitRows()
    {
        // 64→64 3×3 at 56²: the weights (147 KB) are cheap to re-read, the 7 MB input panel is not.
        var wide = Gemm.TaskGrid.Choose(64, 576, 3136, 98, threads: 2);
        Assert.Equal(1, wide.Split);
        Assert.True(wide.Groups >= 4, wide.ToString());
        // 512→512 3×3 at 7²: 9 MB of weights for 49 columns: read once, rows in parallel.
        var deep = Gemm.TaskGrid.Choose(512, 4608, 49, 2, threads: 2);
        Assert.Equal(1, deep.Groups);
        Assert.True(deep.Tasks >= 8, deep.ToString());
    }
}
