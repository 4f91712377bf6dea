using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ModelGuardian.Kernels.Cpu;

// A packed, blocked SGEMM in the BLIS style: C(M×N) += A(M×K) · B(K×N).
// Where A, B and C live is abstracted by three small struct interfaces, so that a
// convolution can pack its input straight from the image (implicit im2col: no K×N column
// matrix is ever written) and its input gradient can gather from dy and store straight into dx. Structs + generics make the JIT specialise and inline every variant.

/// <summary>Packs A[i0 .. i0+mc) × [k0 .. k0+kc) into MR-row slivers laid out [k][MR], zero-padding missing rows.</summary>
internal unsafe interface IPackA
{
    void Pack(int i0, int mc, int k0, int kc, float* dst);

    /// <summary>The block at (i0, k0) if this A is held packed already (<see cref="PackedMatrix"/>), else null.</summary>
    float* Packed(int i0, int k0);
}

/// <summary>Packs B[k0 .. k0+kc) × [j0 .. j0+nc) into NR-column slivers laid out [k][NR], zero-padding missing columns.</summary>
internal unsafe interface IPackB
{
    void Pack(int k0, int kc, int j0, int nc, float* dst);
}

/// <summary>
/// Adds an mr×nr tile (row stride <see cref="Gemm.NR"/>) into C at (i0, j0). <paramref name="first"/>:
/// the tile holds the first depth chunk of these elements; <paramref name="last"/>: the last one (a
/// store may overwrite on the first and apply an epilogue on the last).
/// </summary>
internal unsafe interface IStoreC
{
    void Add(int i0, int j0, int mr, int nr, float* tile, bool first, bool last);

    /// <summary>
    /// For full MR×NR tiles at columns j0 whose rows lie in C as runs of NR consecutive floats: where the
    /// micro-kernel writes the tile at row i0 straight from its registers, with this store's epilogue (what
    /// <see cref="Add"/> would do with the tile); the tile r rows further down goes to
    /// <c>target.Down(r)</c>, so a sliver asks once for all its row tiles. False when the columns are not
    /// such runs (a run split by an image's end, scattered columns): then the tiles go through <see cref="Add"/>.
    /// </summary>
    bool Direct(int i0, int j0, bool first, bool last, out TileTarget target);
}

/// <summary>
/// Where the 12×32 micro-kernel leaves its sums: row r's first 16 at Dst + r·RowStride, its last 16 at
/// HalfOffset floats further (16 when the row is one run; else where the next image's plane starts, for
/// images of 16 to 31 pixels). On the way, in this order: the row of Partial (row stride NR: earlier depth
/// chunks' sums kept in a tile buffer) is added when set, then Bias[r] (when AddBias; a null Bias adds 0,
/// as BatchedPlanesC.Store does), then the row at the same offsets from Prior (when Prior is set: the tile
/// itself when accumulating a depth chunk, C's own sums, or a residual), then leaky-ReLU when Slope is a
/// number. Same arithmetic in the same order as the tile buffer followed by <see cref="IStoreC.Add"/>, so
/// either route gives C the same bits.
/// <para>Compressed (a pitched grid's columns, <see cref="PitchedPlanesC"/>): only the lanes set in
/// LowLanes / HighLanes are outputs, and each half's are consecutive in C from Dst (low) and
/// Dst + HalfOffset (high); Prior is read the same way (expand-load) and the lanes are packed on store.</para>
/// </summary>
internal readonly unsafe struct TileTarget(float* dst, long rowStride, float* prior = null, bool addBias = false, float* bias = null, float slope = float.NaN,
    long halfOffset = 16, float* partial = null, bool compressed = false, Vector512<float> lowLanes = default, Vector512<float> highLanes = default)
{
    public readonly float* Dst = dst, Prior = prior, Bias = bias, Partial = partial;
    public readonly long RowStride = rowStride, HalfOffset = halfOffset;
    public readonly bool AddBias = addBias, Compressed = compressed;
    public readonly float Slope = slope;
    public readonly Vector512<float> LowLanes = lowLanes, HighLanes = highLanes;

    /// <summary>The tile buffer (row stride NR): overwritten, or added to when accumulating a later depth chunk.</summary>
    public static TileTarget Tile(float* tile, bool accumulate) => new(tile, Gemm.NR, accumulate ? tile : null);

    /// <summary>This target, the sums of earlier depth chunks (a tile, row stride NR) added first; null: none.</summary>
    public TileTarget After(float* partialSums) => new(Dst, RowStride, Prior, AddBias, Bias, Slope, HalfOffset, partialSums, Compressed, LowLanes, HighLanes);

    /// <summary>The same columns <paramref name="rows"/> rows of C further down: C, Prior and Bias move with them.</summary>
    public TileTarget Down(int rows) => new(Dst + rows * RowStride, RowStride, Prior == null ? null : Prior + rows * RowStride, AddBias,
        Bias == null ? null : Bias + rows, Slope, HalfOffset, Partial, Compressed, LowLanes, HighLanes);
}

/// <summary>
/// Where the micro-kernel finds depth row p of its B sliver (NR floats): in a packed panel, or in place
/// (<see cref="OffsetRows"/>). A struct parameter, so each micro-kernel is compiled once per kind.
/// </summary>
internal unsafe interface IDepthRows
{
    float* Row(int p);
}

/// <summary>A packed B sliver: row p at p·NR.</summary>
internal readonly unsafe struct PackedRows(float* sliver) : IDepthRows
{
    public float* Row(int p) => sliver + p * Gemm.NR;
}

/// <summary>B read where it lies: row p at origin + offsets[p] (e.g. a kernel tap's shift in a padded image).</summary>
internal readonly unsafe struct OffsetRows(float* origin, int* offsets) : IDepthRows
{
    public float* Row(int p) => origin + offsets[p];
}

// No zeroing of stackalloc'd tiles and tables: every one is written before it is read (a tile's unwritten
// rows and columns are never read, accumulating or storing), and zeroing them cost a pass per call.
[SkipLocalsInit]
internal static unsafe partial class Gemm
{
    /// <summary>Rows of A per micro-tile.</summary>
    public const int MR = 12;
    /// <summary>Columns of B per micro-tile: two 512-bit vectors (or four 256-bit ones).</summary>
    public const int NR = 32;
    internal const int KC = 256;
    internal const int MC = 96;
    private const int NC = 1024;
    private const double ParallelFlops = 4e6;

    [ThreadStatic] private static float[]? t_packA;
    [ThreadStatic] private static float[]? t_packB;

    /// <summary>Largest B panel (all depth chunks of one column panel) packed in one go, in floats.</summary>
    private const int WholeDepthFloats = 1 << 20;

    /// <summary>
    /// C += A·B. BLIS loop order: for each column panel (NC) the B panel is packed once, in parallel,
    /// and shared; row pieces × column groups (a <see cref="TaskGrid"/>) then run in parallel, each
    /// packing its own A rows (or using a <see cref="PackedMatrix"/>). When the panel's whole depth fits in
    /// <see cref="WholeDepthFloats"/> it is packed at once and each task runs every depth chunk of its
    /// tile: two parallel loops per panel instead of two per depth chunk, which is what small
    /// layers (7×7, 14×14 outputs, thousands deep) spend their time on otherwise. Every C element
    /// belongs to exactly one (i, j): the stores of different tasks never overlap.
    /// </summary>
    public static void Run<TA, TB, TC>(WorkerPool pool, int m, int n, int k, TA a, TB b, TC c)
        where TA : struct, IPackA where TB : struct, IPackB where TC : struct, IStoreC
    {
        if (m <= 0 || n <= 0 || k <= 0) return;
        int chunks = (k + KC - 1) / KC;
        int threads = 2.0 * m * n * k < ParallelFlops ? 1 : pool.Threads;
        for (int j0 = 0; j0 < n; j0 += NC)
        {
            int nc = Math.Min(NC, n - j0), slivers = (nc + NR - 1) / NR;
            var grid = TaskGrid.Choose(m, k, nc, slivers, threads);
            int tasks = grid.Tasks;
            long chunkFloats = (long)KC * slivers * NR;
            bool wholeDepth = chunks * chunkFloats <= WholeDepthFloats;
            int panelChunks = wholeDepth ? chunks : 1;
            float* pB = Aligned(PackBuffer(ref t_packB, panelChunks * chunkFloats + 16));
            for (int kb0 = 0; kb0 < chunks; kb0 += panelChunks)
            {
                // Pack chunks [kb0, kb0 + panelChunks) of this panel: (chunk, sliver range) pieces in parallel.
                int perPack = Math.Max(1, (slivers * panelChunks + 4 * threads - 1) / (4 * threads));
                perPack = Math.Min(perPack, slivers);
                int piecesPerChunk = (slivers + perPack - 1) / perPack, pieces = piecesPerChunk * panelChunks;
                void PackPiece(int t)
                {
                    int kb = kb0 + t / piecesPerChunk, first = t % piecesPerChunk * perPack;
                    int k0 = kb * KC, kc = Math.Min(KC, k - k0), cols = Math.Min(perPack * NR, nc - first * NR);
                    b.Pack(k0, kc, j0 + first * NR, cols, pB + (kb - kb0) * chunkFloats + (long)first * kc * NR);
                }
                void RunTask(int t)
                {
                    for (int kb = kb0; kb < kb0 + panelChunks; kb++)
                    {
                        int k0 = kb * KC;
                        Block(grid, t, m, j0, nc, k0, Math.Min(KC, k - k0), k, a, pB + (kb - kb0) * chunkFloats, c);
                    }
                }
                if (threads == 1 || pieces == 1) for (int t = 0; t < pieces; t++) PackPiece(t);
                else pool.For(0, pieces, PackPiece);
                if (threads == 1 || tasks == 1) for (int t = 0; t < tasks; t++) RunTask(t);
                else pool.For(0, tasks, RunTask);
            }
        }
    }

    // A thread's pinned packing buffer, grown when a call needs more.
    internal static float[] PackBuffer(ref float[]? buffer, long floats)
    {
        if (buffer is null || buffer.Length < floats) buffer = GC.AllocateArray<float>((int)floats, pinned: true);
        return buffer;
    }

    // Packed panels start on a 64-byte boundary: a 512-bit load that straddles two cache lines
    // costs two, and the micro-kernel loads B on every step. (The arrays are pinned, so this holds.)
    internal static float* Aligned(float[] pinned) => (float*)(((nint)Unsafe.AsPointer(ref pinned[0]) + 63) & ~(nint)63);

    // One row piece × one group of column slivers of the packed B panel.
    private static void Block<TA, TC>(TaskGrid grid, int task, int m, int j0, int nc, int k0, int kc, int k, TA a, float* pB, TC c)
        where TA : struct, IPackA where TC : struct, IStoreC
    {
        var (i0, rows) = grid.Rows(task, m);
        if (rows == 0) return;
        var (firstSliver, endSliver) = grid.Slivers(task);
        float* tile = stackalloc float[MR * NR + 16];
        tile = (float*)(((nint)tile + 63) & ~(nint)63);
        float* blockA = grid.PackedRows(a, i0, k0, kc);
        if (blockA == null)
        {
            blockA = Aligned(PackBuffer(ref t_packA, KC * (MC + MR) + 16));
            a.Pack(i0, rows, k0, kc, blockA);
        }
        int jEnd = Math.Min(nc, endSliver * NR);
        bool first = k0 == 0, last = k0 + kc == k;
        for (int jr = firstSliver * NR; jr < jEnd; jr += NR)
        {
            float* bSliver = pB + (long)(jr / NR) * kc * NR;
            int nr = Math.Min(NR, nc - jr);
            // Full tiles whose rows are runs in C go there straight from the registers: through the tile
            // buffer and a separate store pass they cost ~10 % of a ResNet-50 forward (1×1 layers of depth
            // 64–128 do only 128–256 flops per output they store).
            TileTarget target = default;
            bool direct = nr == NR && Vector512.IsHardwareAccelerated && c.Direct(i0, j0 + jr, first, last, out target);
            for (int ir = 0; ir < rows; ir += MR)
            {
                int mr = Math.Min(MR, rows - ir);
                if (direct && mr == MR)
                    MicroKernelInto(kc, blockA + (ir / MR) * kc * MR, new PackedRows(bSliver), target.Down(ir));
                else
                {
                    MicroKernel(kc, mr, nr, blockA + (ir / MR) * kc * MR, new PackedRows(bSliver), tile);
                    c.Add(i0 + ir, j0 + jr, mr, nr, tile, first, last);
                }
            }
        }
    }

    /// <summary>
    /// How C is cut into parallel tasks: row pieces (each MC row block cut into Split pieces of MC / Split
    /// rows, whole MR slivers) × column groups. A task reads the A rows of its piece and the B columns of
    /// its group, so row pieces re-read B and column groups re-read A; <see cref="Choose"/> takes the cut
    /// that reads least while giving each thread about four tasks. Wide outputs (56², 3136 columns, 64
    /// rows) get column groups; deep narrow ones (7², 49 columns, 512 rows × 4608: 9 MB of weights that
    /// come cold from memory) get row pieces, so their weights are read once, not once per group.
    /// </summary>
    internal readonly record struct TaskGrid(int Split, int MBlocks, int Groups, int SliversPerGroup)
    {
        public int Tasks => MBlocks * Split * Groups;

        public static TaskGrid Choose(int m, int k, int n, int slivers, int threads)
        {
            int mBlocks = (m + MC - 1) / MC;
            TaskGrid best = default;
            double bestCost = double.MaxValue;
            foreach (int split in (ReadOnlySpan<int>)[1, 2, 4, 8])
            {
                // Non-empty pieces: every block's, but a short last block fills only some of its own.
                int size = MC / split, lastRows = m - (mBlocks - 1) * MC;
                int pieces = (mBlocks - 1) * split + (lastRows + size - 1) / size;
                int groups = Math.Clamp((4 * threads + pieces - 1) / pieces, 1, slivers);
                int perGroup = (slivers + groups - 1) / groups;
                groups = (slivers + perGroup - 1) / perGroup;
                double cost = (double)pieces * k * n + (double)groups * m * k;
                if (cost < bestCost) (best, bestCost) = (new TaskGrid(split, mBlocks, groups, perGroup), cost);
            }
            return best;
        }

        /// <summary>Rows [start, start + count) of a task; count 0 for a piece past a short last block.</summary>
        public (int Start, int Count) Rows(int task, int m)
        {
            int piece = task / Groups, block = piece / Split, size = MC / Split;
            int start = block * MC + piece % Split * size, end = Math.Min(Math.Min(m, (block + 1) * MC), start + size);
            return (start, Math.Max(0, end - start));
        }

        /// <summary>Column slivers [first, end) of a task (end may pass the last sliver).</summary>
        public (int First, int End) Slivers(int task) => (task % Groups * SliversPerGroup, (task % Groups + 1) * SliversPerGroup);

        /// <summary>The packed A slivers of rows from <paramref name="i0"/> in depth chunk k0, if A is held packed; else null.</summary>
        public float* PackedRows<TA>(TA a, int i0, int k0, int kc) where TA : struct, IPackA
        {
            int blockStart = i0 / MC * MC;
            float* block = a.Packed(blockStart, k0);
            return block == null ? null : block + (i0 - blockStart) / MR * kc * MR;
        }
    }

    // a: (kc, MR) packed · b: (kc, NR) packed → tile: (MR, NR) = aᵀ·b, overwritten, or tile += aᵀ·b when accumulating
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    // rows, cols: the valid part of this tile. A short last A sliver (64 = 5·12 + 4 rows) runs a 4-row
    // kernel and a short last B sliver (196 = 6·32 + 4 columns) a 16-column one, instead of multiplying
    // zero padding; the tile beyond them is left unwritten (and, accumulating, unread).
    internal static void MicroKernel<TB>(int kc, int rows, int cols, float* a, TB b, float* tile, bool accumulate = false) where TB : struct, IDepthRows
    {
        if (!Vector512.IsHardwareAccelerated) MicroKernel256(kc, rows, cols, a, b, tile, accumulate);
        else if (rows <= 4) MicroKernel512Rows4(kc, a, b, tile, accumulate);
        else if (cols <= 16) MicroKernel512Cols16(kc, a, b, tile, accumulate);
        else MicroKernel512(kc, a, b, TileTarget.Tile(tile, accumulate));
    }

    /// <summary>A full MR×NR tile straight into <paramref name="target"/> (AVX-512 only; see <see cref="IStoreC.Direct"/>).</summary>
    internal static void MicroKernelInto<TB>(int kc, float* a, TB b, in TileTarget target) where TB : struct, IDepthRows
    {
        if (!Vector512.IsHardwareAccelerated) throw new PlatformNotSupportedException("Direct tile stores need AVX-512.");
        MicroKernel512(kc, a, b, target);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MicroKernel512Cols16<TB>(int kc, float* a, TB b, float* tile, bool accumulate) where TB : struct, IDepthRows
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default;
        Vector512<float> c6 = default, c7 = default, c8 = default, c9 = default, c10 = default, c11 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b.Row(p));
            c0 = Vector512.FusedMultiplyAdd(Vector512.Create(a[0]), b0, c0); c1 = Vector512.FusedMultiplyAdd(Vector512.Create(a[1]), b0, c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.Create(a[2]), b0, c2); c3 = Vector512.FusedMultiplyAdd(Vector512.Create(a[3]), b0, c3);
            c4 = Vector512.FusedMultiplyAdd(Vector512.Create(a[4]), b0, c4); c5 = Vector512.FusedMultiplyAdd(Vector512.Create(a[5]), b0, c5);
            c6 = Vector512.FusedMultiplyAdd(Vector512.Create(a[6]), b0, c6); c7 = Vector512.FusedMultiplyAdd(Vector512.Create(a[7]), b0, c7);
            c8 = Vector512.FusedMultiplyAdd(Vector512.Create(a[8]), b0, c8); c9 = Vector512.FusedMultiplyAdd(Vector512.Create(a[9]), b0, c9);
            c10 = Vector512.FusedMultiplyAdd(Vector512.Create(a[10]), b0, c10); c11 = Vector512.FusedMultiplyAdd(Vector512.Create(a[11]), b0, c11);
            a += MR;
        }
        Put(tile, c0, accumulate); Put(tile + NR, c1, accumulate); Put(tile + 2 * NR, c2, accumulate); Put(tile + 3 * NR, c3, accumulate);
        Put(tile + 4 * NR, c4, accumulate); Put(tile + 5 * NR, c5, accumulate); Put(tile + 6 * NR, c6, accumulate); Put(tile + 7 * NR, c7, accumulate);
        Put(tile + 8 * NR, c8, accumulate); Put(tile + 9 * NR, c9, accumulate); Put(tile + 10 * NR, c10, accumulate); Put(tile + 11 * NR, c11, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MicroKernel512Rows4<TB>(int kc, float* a, TB b, float* tile, bool accumulate) where TB : struct, IDepthRows
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        for (int p = 0; p < kc; p++)
        {
            float* row = b.Row(p);
            var b0 = Vector512.Load(row); var b1 = Vector512.Load(row + 16);
            var a0 = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(a0, b0, c00); c01 = Vector512.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector512.Create(a[1]); c10 = Vector512.FusedMultiplyAdd(a1, b0, c10); c11 = Vector512.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector512.Create(a[2]); c20 = Vector512.FusedMultiplyAdd(a2, b0, c20); c21 = Vector512.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector512.Create(a[3]); c30 = Vector512.FusedMultiplyAdd(a3, b0, c30); c31 = Vector512.FusedMultiplyAdd(a3, b1, c31);
            a += MR;
        }
        Put(tile, c00, accumulate); Put(tile + 16, c01, accumulate);
        Put(tile + NR, c10, accumulate); Put(tile + NR + 16, c11, accumulate);
        Put(tile + 2 * NR, c20, accumulate); Put(tile + 2 * NR + 16, c21, accumulate);
        Put(tile + 3 * NR, c30, accumulate); Put(tile + 3 * NR + 16, c31, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MicroKernel512<TB>(int kc, float* a, TB b, in TileTarget target) where TB : struct, IDepthRows
    {
        // 12 rows × 2 vectors = 24 accumulators of the 32 zmm registers, leaving room for two B loads and a broadcast.
        Vector512<float> c00 = default, c01 = default;
        Vector512<float> c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default;
        Vector512<float> c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default;
        Vector512<float> c70 = default, c71 = default;
        Vector512<float> c80 = default, c81 = default;
        Vector512<float> c90 = default, c91 = default;
        Vector512<float> c100 = default, c101 = default;
        Vector512<float> c110 = default, c111 = default;
        for (int p = 0; p < kc; p++)
        {
            float* row = b.Row(p);
            var b0 = Vector512.Load(row); var b1 = Vector512.Load(row + 16);
            var a0 = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(a0, b0, c00); c01 = Vector512.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector512.Create(a[1]); c10 = Vector512.FusedMultiplyAdd(a1, b0, c10); c11 = Vector512.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector512.Create(a[2]); c20 = Vector512.FusedMultiplyAdd(a2, b0, c20); c21 = Vector512.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector512.Create(a[3]); c30 = Vector512.FusedMultiplyAdd(a3, b0, c30); c31 = Vector512.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector512.Create(a[4]); c40 = Vector512.FusedMultiplyAdd(a4, b0, c40); c41 = Vector512.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector512.Create(a[5]); c50 = Vector512.FusedMultiplyAdd(a5, b0, c50); c51 = Vector512.FusedMultiplyAdd(a5, b1, c51);
            var a6 = Vector512.Create(a[6]); c60 = Vector512.FusedMultiplyAdd(a6, b0, c60); c61 = Vector512.FusedMultiplyAdd(a6, b1, c61);
            var a7 = Vector512.Create(a[7]); c70 = Vector512.FusedMultiplyAdd(a7, b0, c70); c71 = Vector512.FusedMultiplyAdd(a7, b1, c71);
            var a8 = Vector512.Create(a[8]); c80 = Vector512.FusedMultiplyAdd(a8, b0, c80); c81 = Vector512.FusedMultiplyAdd(a8, b1, c81);
            var a9 = Vector512.Create(a[9]); c90 = Vector512.FusedMultiplyAdd(a9, b0, c90); c91 = Vector512.FusedMultiplyAdd(a9, b1, c91);
            var a10 = Vector512.Create(a[10]); c100 = Vector512.FusedMultiplyAdd(a10, b0, c100); c101 = Vector512.FusedMultiplyAdd(a10, b1, c101);
            var a11 = Vector512.Create(a[11]); c110 = Vector512.FusedMultiplyAdd(a11, b0, c110); c111 = Vector512.FusedMultiplyAdd(a11, b1, c111);
            a += MR;
        }
        Emit(target, 0, c00, c01);
        Emit(target, 1, c10, c11);
        Emit(target, 2, c20, c21);
        Emit(target, 3, c30, c31);
        Emit(target, 4, c40, c41);
        Emit(target, 5, c50, c51);
        Emit(target, 6, c60, c61);
        Emit(target, 7, c70, c71);
        Emit(target, 8, c80, c81);
        Emit(target, 9, c90, c91);
        Emit(target, 10, c100, c101);
        Emit(target, 11, c110, c111);
    }

    // Without AVX-512 only 16 ymm registers exist: the 12×32 tile as 6×16 blocks (12 sums, two B vectors
    // and a broadcast live at once), only those that hold valid rows and columns. Each B load feeds six
    // multiply-adds and each broadcast two, so loads stay under the two FMA units' pace.
    private static void MicroKernel256<TB>(int kc, int rows, int cols, float* a, TB b, float* tile, bool accumulate) where TB : struct, IDepthRows
    {
        for (int r0 = 0; r0 < rows; r0 += 6)
            for (int c0 = 0; c0 < cols; c0 += 16)
                Block6x16(kc, a + r0, b, c0, tile + r0 * NR + c0, accumulate);
    }

    // a: (kc, MR) packed, rows [0, 6) of it from here · b: (kc, NR), columns [c0, c0 + 16) → tile: (6, 16) at row stride NR
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block6x16<TB>(int kc, float* a, TB b, int c0, float* tile, bool accumulate) where TB : struct, IDepthRows
    {
        Vector256<float> s00 = default, s01 = default, s10 = default, s11 = default, s20 = default, s21 = default;
        Vector256<float> s30 = default, s31 = default, s40 = default, s41 = default, s50 = default, s51 = default;
        for (int p = 0; p < kc; p++)
        {
            float* bp = b.Row(p) + c0, ap = a + p * MR;
            var b0 = Vector256.Load(bp);
            var b1 = Vector256.Load(bp + 8);
            var av = Vector256.Create(ap[0]);
            s00 = Vector256.FusedMultiplyAdd(av, b0, s00); s01 = Vector256.FusedMultiplyAdd(av, b1, s01);
            av = Vector256.Create(ap[1]);
            s10 = Vector256.FusedMultiplyAdd(av, b0, s10); s11 = Vector256.FusedMultiplyAdd(av, b1, s11);
            av = Vector256.Create(ap[2]);
            s20 = Vector256.FusedMultiplyAdd(av, b0, s20); s21 = Vector256.FusedMultiplyAdd(av, b1, s21);
            av = Vector256.Create(ap[3]);
            s30 = Vector256.FusedMultiplyAdd(av, b0, s30); s31 = Vector256.FusedMultiplyAdd(av, b1, s31);
            av = Vector256.Create(ap[4]);
            s40 = Vector256.FusedMultiplyAdd(av, b0, s40); s41 = Vector256.FusedMultiplyAdd(av, b1, s41);
            av = Vector256.Create(ap[5]);
            s50 = Vector256.FusedMultiplyAdd(av, b0, s50); s51 = Vector256.FusedMultiplyAdd(av, b1, s51);
        }
        Put(tile, s00, accumulate); Put(tile + 8, s01, accumulate);
        Put(tile + NR, s10, accumulate); Put(tile + NR + 8, s11, accumulate);
        Put(tile + 2 * NR, s20, accumulate); Put(tile + 2 * NR + 8, s21, accumulate);
        Put(tile + 3 * NR, s30, accumulate); Put(tile + 3 * NR + 8, s31, accumulate);
        Put(tile + 4 * NR, s40, accumulate); Put(tile + 4 * NR + 8, s41, accumulate);
        Put(tile + 5 * NR, s50, accumulate); Put(tile + 5 * NR + 8, s51, accumulate);
    }

    // Row r of the 12×32 kernel's sums into its target (TileTarget says the order of operations).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Emit(in TileTarget t, int r, Vector512<float> lo, Vector512<float> hi)
    {
        if (t.Partial != null)
        {
            lo += Vector512.Load(t.Partial + r * NR);
            hi += Vector512.Load(t.Partial + r * NR + 16);
        }
        if (t.AddBias)
        {
            var bias = Vector512.Create(t.Bias == null ? 0f : t.Bias[r]);
            lo += bias;
            hi += bias;
        }
        if (t.Prior != null)
        {
            float* prior = t.Prior + r * t.RowStride;
            if (t.Compressed)
            {
                lo += Avx512F.ExpandLoad(prior, t.LowLanes, Vector512<float>.Zero);
                hi += Avx512F.ExpandLoad(prior + t.HalfOffset, t.HighLanes, Vector512<float>.Zero);
            }
            else
            {
                lo += Vector512.Load(prior);
                hi += Vector512.Load(prior + t.HalfOffset);
            }
        }
        if (!float.IsNaN(t.Slope))
        {
            var slope = Vector512.Create(t.Slope);
            lo = Vector512.ConditionalSelect(Vector512.GreaterThan(lo, Vector512<float>.Zero), lo, lo * slope);
            hi = Vector512.ConditionalSelect(Vector512.GreaterThan(hi, Vector512<float>.Zero), hi, hi * slope);
        }
        float* dst = t.Dst + r * t.RowStride;
        if (t.Compressed)
        {
            Avx512F.CompressStore(dst, t.LowLanes, lo);
            Avx512F.CompressStore(dst + t.HalfOffset, t.HighLanes, hi);
            return;
        }
        lo.Store(dst);
        hi.Store(dst + t.HalfOffset);
    }

    // The end of a micro-kernel: its sums overwrite the tile, or — accumulating a later depth chunk — are added
    // to it. Each chunk's sums start from zero, so a long depth is summed in blocks of KC (as when the chunks
    // go through C), not in one running sum that loses more to rounding.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(float* p, Vector512<float> sums, bool accumulate) => (accumulate ? sums + Vector512.Load(p) : sums).Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(float* p, Vector256<float> sums, bool accumulate) => (accumulate ? sums + Vector256.Load(p) : sums).Store(p);
}

/// <summary>
/// An A matrix packed once, block by block exactly as <see cref="Gemm"/> consumes it: for constant
/// weights, so that every call skips the packing (a ResNet-50 forward otherwise repacks 25 M weights).
/// </summary>
internal sealed unsafe class PackedMatrix
{
    private readonly float[] _data;
    private readonly int _kChunks;

    private PackedMatrix(float[] data, int kChunks) { _data = data; _kChunks = kChunks; }

    public static PackedMatrix Create<TA>(TA a, int m, int k) where TA : struct, IPackA
    {
        int mBlocks = (m + Gemm.MC - 1) / Gemm.MC, kChunks = (k + Gemm.KC - 1) / Gemm.KC;
        var data = GC.AllocateArray<float>(mBlocks * kChunks * Gemm.MC * Gemm.KC + 16, pinned: true);
        var packed = new PackedMatrix(data, kChunks);
        for (int ib = 0; ib < mBlocks; ib++)
            for (int kb = 0; kb < kChunks; kb++)
            {
                int i0 = ib * Gemm.MC, k0 = kb * Gemm.KC;
                a.Pack(i0, Math.Min(Gemm.MC, m - i0), k0, Math.Min(Gemm.KC, k - k0), packed.Block(i0, k0));
            }
        return packed;
    }

    private float* Block(int i0, int k0)
        => (float*)(((nint)Unsafe.AsPointer(ref _data[0]) + 63) & ~(nint)63) + ((long)(i0 / Gemm.MC) * _kChunks + k0 / Gemm.KC) * Gemm.MC * Gemm.KC;

    /// <summary>As a GEMM source; the matrix must stay alive (GC.KeepAlive) while the GEMM runs.</summary>
    public Source AsSource() => new(this);

    public readonly struct Source(PackedMatrix matrix) : IPackA
    {
        public void Pack(int i0, int mc, int k0, int kc, float* dst) => throw new InvalidOperationException("A packed matrix is never repacked.");
        public float* Packed(int i0, int k0) => matrix.Block(i0, k0);
    }
}

// ---- sources and sinks --------------------------------------------------------------

/// <summary>A as a row-major matrix with leading dimension ld (A[i, k] = p[i·ld + k]).</summary>
internal readonly unsafe struct RowMajorA(float* p, int ld) : IPackA
{
    public float* Packed(int i0, int k0) => null;

    public void Pack(int i0, int mc, int k0, int kc, float* dst)
    {
        for (int ir = 0; ir < mc; ir += Gemm.MR)
        {
            int rows = Math.Min(Gemm.MR, mc - ir);
            for (int r = 0; r < Gemm.MR; r++)
            {
                float* src = p + (long)(i0 + ir + r) * ld + k0;
                if (r < rows) for (int q = 0; q < kc; q++) dst[q * Gemm.MR + r] = src[q];
                else for (int q = 0; q < kc; q++) dst[q * Gemm.MR + r] = 0;
            }
            dst += kc * Gemm.MR;
        }
    }
}

/// <summary>A as the transpose of a row-major matrix (A[i, k] = p[k·ld + i]), e.g. Wᵀ in a backward pass.</summary>
internal readonly unsafe struct TransposedA(float* p, int ld) : IPackA
{
    public float* Packed(int i0, int k0) => null;

    public void Pack(int i0, int mc, int k0, int kc, float* dst)
    {
        for (int ir = 0; ir < mc; ir += Gemm.MR)
        {
            int rows = Math.Min(Gemm.MR, mc - ir);
            for (int q = 0; q < kc; q++)
            {
                float* src = p + (long)(k0 + q) * ld + i0 + ir;
                float* d = dst + q * Gemm.MR;
                int r = 0;
                for (; r < rows; r++) d[r] = src[r];
                for (; r < Gemm.MR; r++) d[r] = 0;
            }
            dst += kc * Gemm.MR;
        }
    }
}

/// <summary>B as the transpose of a row-major matrix (B[k, j] = p[j·ld + k]), e.g. an im2col matrix in a weight gradient.</summary>
internal readonly unsafe struct TransposedB(float* p, int ld) : IPackB
{
    public void Pack(int k0, int kc, int j0, int nc, float* dst)
    {
        for (int jr = 0; jr < nc; jr += Gemm.NR)
        {
            int cols = Math.Min(Gemm.NR, nc - jr);
            for (int c = 0; c < Gemm.NR; c++)
            {
                if (c < cols)
                {
                    float* src = p + (long)(j0 + jr + c) * ld + k0; // one row of the source: contiguous in k
                    for (int q = 0; q < kc; q++) dst[q * Gemm.NR + c] = src[q];
                }
                else for (int q = 0; q < kc; q++) dst[q * Gemm.NR + c] = 0;
            }
            dst += kc * Gemm.NR;
        }
    }
}

/// <summary>C as a row-major matrix (C[i, j] = p[i·ld + j]) that every tile is added into — sums over several GEMMs.</summary>
internal readonly unsafe struct AccumulateC(float* p, int ld, bool direct = true) : IStoreC
{
    public void Add(int i0, int j0, int mr, int nr, float* tile, bool first, bool last)
    {
        for (int r = 0; r < mr; r++)
        {
            float* dst = p + (long)(i0 + r) * ld + j0, src = tile + r * Gemm.NR;
            for (int c = 0; c < nr; c++) dst[c] += src[c];
        }
    }

    public bool Direct(int i0, int j0, bool first, bool last, out TileTarget target)
    {
        float* dst = p + (long)i0 * ld + j0;
        target = new TileTarget(dst, ld, prior: dst); // dst + sums: the same sum as dst[c] += src[c]
        return direct;
    }
}

/// <summary>
/// B whose columns j = (image, pixel) span a batch of (rows × pixelsPerImage) planes:
/// B[k, j] = p[(image·imageStride) + k·pixelsPerImage + pixel]. Covers a 1×1 stride-1
/// convolution's input and a convolution's output gradient.
/// </summary>
internal readonly unsafe struct BatchedPlanesB(float* p, int pixelsPerImage, int imageStride) : IPackB
{
    public void Pack(int k0, int kc, int j0, int nc, float* dst)
    {
        for (int jr = 0; jr < nc; jr += Gemm.NR)
        {
            int cols = Math.Min(Gemm.NR, nc - jr);
            int j = j0 + jr, image = j / pixelsPerImage, pixel = j - image * pixelsPerImage;
            bool oneImage = pixel + cols <= pixelsPerImage;
            for (int q = 0; q < kc; q++)
            {
                float* d = dst + q * Gemm.NR;
                if (oneImage && cols == Gemm.NR)
                {
                    // The common case: a contiguous run of one row of one image.
                    float* src = p + (long)image * imageStride + (long)(k0 + q) * pixelsPerImage + pixel;
                    Vector256.Store(Vector256.Load(src), d); Vector256.Store(Vector256.Load(src + 8), d + 8);
                    Vector256.Store(Vector256.Load(src + 16), d + 16); Vector256.Store(Vector256.Load(src + 24), d + 24);
                    continue;
                }
                int img = image, px = pixel, c = 0;
                for (; c < cols; c++)
                {
                    d[c] = p[(long)img * imageStride + (long)(k0 + q) * pixelsPerImage + px];
                    if (++px == pixelsPerImage) { px = 0; img++; }
                }
                for (; c < Gemm.NR; c++) d[c] = 0;
            }
            dst += kc * Gemm.NR;
        }
    }
}

/// <summary>
/// Implicit im2col: B[k, j] with k = (ci, ky, kx) over one group's input channels and
/// j = (image, oy, ox) is the input pixel under kernel tap (ky, kx) of output (oy, ox), or 0 in padding.
/// A sliver's columns are split into runs that share one output row; for stride 1 each run of a
/// tap is a contiguous piece of one input row, copied as a block with zeros where it hangs over the edge.
/// </summary>
[SkipLocalsInit] // its run and tap tables are filled before they are read
internal readonly unsafe struct Im2ColB(float* x, PatchGeometry s, int channelOffset, bool linearTaps = true) : IPackB
{
    public void Pack(int k0, int kc, int j0, int nc, float* dst)
    {
        int ohw = s.OutH * s.OutW, khw = s.KH * s.KW, plane = s.H * s.W;
        // A stride-1 convolution whose output is the input's size: output pixel p of a plane reads input
        // element p + (ky − padH)·W + (kx − padW) for every tap, across row ends too, so a tap's row of a
        // sliver is one contiguous slice of the plane with the padding lanes masked off — two masked loads,
        // where the general path below copies it run by run (each output row a run: 8 columns on 8×8 planes).
        bool linear = linearTaps && s.StrideH == 1 && s.StrideW == 1 && s.OutH == s.H && s.OutW == s.W && khw <= 64 && (Avx512F.IsSupported || Avx.IsSupported);
        // Runs of columns within one output row: (first column in the sliver, length, input plane base of image, oy, ox of the first column).
        int* runStart = stackalloc int[Gemm.NR + 1];
        int* runBase = stackalloc int[Gemm.NR];
        int* runOy = stackalloc int[Gemm.NR];
        int* runOx = stackalloc int[Gemm.NR];
        // Per depth row q: its tap (ky, kx) and the offset of its channel plane — divisions done once per call, not per sliver.
        int* tapY = stackalloc int[kc];
        int* tapX = stackalloc int[kc];
        int* planeOffset = stackalloc int[kc];
        for (int q = 0; q < kc; q++)
        {
            int kk = k0 + q, ci = kk / khw, tap = kk - ci * khw;
            tapY[q] = tap / s.KW; tapX[q] = tap - tapY[q] * s.KW; planeOffset[q] = ci * plane;
        }
        for (int jr = 0; jr < nc; jr += Gemm.NR)
        {
            int cols = Math.Min(Gemm.NR, nc - jr), runs = 0;
            if (linear && cols == Gemm.NR && (Avx512F.IsSupported ? PackLinearSliver(j0 + jr, kc, tapY, tapX, planeOffset, dst) : PackLinearSliver256(j0 + jr, kc, tapY, tapX, planeOffset, dst)))
            {
                dst += kc * Gemm.NR;
                continue;
            }
            for (int c = 0; c < cols;)
            {
                int j = j0 + jr + c, image = j / ohw, pixel = j - image * ohw, oy = pixel / s.OutW, ox = pixel - oy * s.OutW;
                int len = Math.Min(cols - c, s.OutW - ox);
                runStart[runs] = c; runBase[runs] = (image * s.Cin + channelOffset) * plane; runOy[runs] = oy; runOx[runs] = ox;
                runs++; c += len;
            }
            runStart[runs] = cols;
            for (int q = 0; q < kc; q++)
            {
                int ky = tapY[q], kx = tapX[q];
                float* d = dst + q * Gemm.NR;
                for (int r = 0; r < runs; r++)
                {
                    int c0 = runStart[r], len = runStart[r + 1] - c0;
                    int iy = runOy[r] * s.StrideH - s.PadH + ky;
                    bool rowInside = (uint)iy < (uint)s.H;
                    float* row = x + runBase[r] + planeOffset[q] + iy * s.W;
                    int ix0 = runOx[r] * s.StrideW - s.PadW + kx;
                    if (s.StrideW == 1 && Avx512F.IsSupported)
                    {
                        // Masked loads and stores, 16 columns at a time: small planes (8×8, 4×4) make runs of
                        // 4–8 columns with padding at one end, where a call to memmove and one to memset per
                        // run cost more than the copy (~10 % of a ResNet-34 CIFAR b64 forward).
                        int lo = rowInside ? Math.Max(0, -ix0) : 0, hi = rowInside ? Math.Min(len, s.W - ix0) : 0; // valid columns [lo, hi)
                        for (int l = 0; l < len; l += 16)
                        {
                            var lane = Vector512<int>.Indices;
                            var inRun = Vector512.LessThan(lane, Vector512.Create(len - l));
                            var inside = inRun & Vector512.GreaterThanOrEqual(lane, Vector512.Create(lo - l)) & Vector512.LessThan(lane, Vector512.Create(hi - l));
                            // Masked-off lanes are not read (no fault past the plane's ends) and load as 0: the padding.
                            var values = Avx512F.MaskLoad(row + ix0 + l, inside.AsSingle(), Vector512<float>.Zero);
                            Avx512F.MaskStore(d + c0 + l, inRun.AsSingle(), values);
                        }
                        continue;
                    }
                    if (s.StrideW == 1 && Avx.IsSupported)
                    {
                        // The same with AVX's masked moves, 8 columns at a time.
                        int lo = rowInside ? Math.Max(0, -ix0) : 0, hi = rowInside ? Math.Min(len, s.W - ix0) : 0;
                        for (int l = 0; l < len; l += 8)
                        {
                            var lane = Vector256<int>.Indices;
                            var inRun = Vector256.LessThan(lane, Vector256.Create(len - l));
                            var inside = inRun & Vector256.GreaterThanOrEqual(lane, Vector256.Create(lo - l)) & Vector256.LessThan(lane, Vector256.Create(hi - l));
                            Avx.MaskStore(d + c0 + l, inRun.AsSingle(), Avx.MaskLoad(row + ix0 + l, inside.AsSingle()));
                        }
                        continue;
                    }
                    if (!rowInside) { Unsafe.InitBlockUnaligned(d + c0, 0, (uint)len * 4); continue; }
                    if (s.StrideW == 1)
                    {
                        int lo = Math.Max(0, -ix0), hi = Math.Min(len, s.W - ix0); // valid columns [lo, hi)
                        if (lo == 0 && hi == Gemm.NR)
                        {
                            // The common case on wide planes: one whole sliver inside one input row.
                            Vector256.Store(Vector256.Load(row + ix0), d); Vector256.Store(Vector256.Load(row + ix0 + 8), d + 8);
                            Vector256.Store(Vector256.Load(row + ix0 + 16), d + 16); Vector256.Store(Vector256.Load(row + ix0 + 24), d + 24);
                            continue;
                        }
                        if (hi <= lo) { Unsafe.InitBlockUnaligned(d + c0, 0, (uint)len * 4); continue; }
                        if (lo > 0) Unsafe.InitBlockUnaligned(d + c0, 0, (uint)lo * 4);
                        Unsafe.CopyBlockUnaligned(d + c0 + lo, row + ix0 + lo, (uint)(hi - lo) * 4);
                        if (hi < len) Unsafe.InitBlockUnaligned(d + c0 + hi, 0, (uint)(len - hi) * 4);
                    }
                    else if (s.StrideW == 2) StridedGather.EveryOther(row, ix0, s.W, d + c0, len);
                    else
                        for (int c = 0, ix = ix0; c < len; c++, ix += s.StrideW) d[c0 + c] = (uint)ix < (uint)s.W ? row[ix] : 0f;
                }
                if (cols < Gemm.NR) new Span<float>(d + cols, Gemm.NR - cols).Clear();
            }
            dst += kc * Gemm.NR;
        }
    }

    // PackLinearSliver with AVX's 8-lane masked loads: each quarter of the sliver within one image's plane.
    private bool PackLinearSliver256(int j, int kc, int* tapY, int* tapX, int* planeOffset, float* dst)
    {
        int ohw = s.OutH * s.OutW, plane = s.H * s.W, khw = s.KH * s.KW;
        float** bases = stackalloc float*[4];
        Vector256<float>* masks = stackalloc Vector256<float>[4 * khw];
        int* oy = stackalloc int[8];
        int* ox = stackalloc int[8];
        for (int quarter = 0; quarter < 4; quarter++)
        {
            int column = j + 8 * quarter, image = column / ohw, pixel = column - image * ohw;
            if (pixel + 8 > ohw) return false;
            bases[quarter] = x + ((long)image * s.Cin + channelOffset) * plane + pixel;
            for (int l = 0; l < 8; l++) { oy[l] = (pixel + l) / s.W; ox[l] = (pixel + l) - oy[l] * s.W; }
            var y = Vector256.Load(oy);
            var xs = Vector256.Load(ox);
            for (int ky = 0; ky < s.KH; ky++)
                for (int kx = 0; kx < s.KW; kx++)
                {
                    var iy = y + Vector256.Create(ky - s.PadH);
                    var ix = xs + Vector256.Create(kx - s.PadW);
                    var inside = Vector256.GreaterThanOrEqual(iy, Vector256<int>.Zero) & Vector256.LessThan(iy, Vector256.Create(s.H))
                               & Vector256.GreaterThanOrEqual(ix, Vector256<int>.Zero) & Vector256.LessThan(ix, Vector256.Create(s.W));
                    masks[4 * (ky * s.KW + kx) + quarter] = inside.AsSingle();
                }
        }
        for (int q = 0; q < kc; q++)
        {
            int tap = tapY[q] * s.KW + tapX[q], shift = planeOffset[q] + (tapY[q] - s.PadH) * s.W + (tapX[q] - s.PadW);
            float* d = dst + q * Gemm.NR;
            Vector256<float>* m = masks + 4 * tap;
            Avx.MaskLoad(bases[0] + shift, m[0]).Store(d);
            Avx.MaskLoad(bases[1] + shift, m[1]).Store(d + 8);
            Avx.MaskLoad(bases[2] + shift, m[2]).Store(d + 16);
            Avx.MaskLoad(bases[3] + shift, m[3]).Store(d + 24);
        }
        return true;
    }

    // One full sliver (columns j .. j + 32) of a linear convolution (see Pack), each 16-column half within
    // one image's plane; false (pack it run by run) when a half crosses into the next image.
    private bool PackLinearSliver(int j, int kc, int* tapY, int* tapX, int* planeOffset, float* dst)
    {
        int ohw = s.OutH * s.OutW, plane = s.H * s.W, khw = s.KH * s.KW;
        float* lowBase = null, highBase = null;
        // Per tap, the lanes whose input lies inside the plane (the rest are padding: loaded as 0).
        Vector512<float>* masks = stackalloc Vector512<float>[2 * khw];
        int* oy = stackalloc int[16];
        int* ox = stackalloc int[16];
        for (int half = 0; half < 2; half++)
        {
            int column = j + 16 * half, image = column / ohw, pixel = column - image * ohw;
            if (pixel + 16 > ohw) return false;
            float* planeStart = x + ((long)image * s.Cin + channelOffset) * plane + pixel;
            if (half == 0) lowBase = planeStart; else highBase = planeStart;
            for (int l = 0; l < 16; l++) { oy[l] = (pixel + l) / s.W; ox[l] = (pixel + l) - oy[l] * s.W; }
            var y = Vector512.Load(oy);
            var xs = Vector512.Load(ox);
            for (int ky = 0; ky < s.KH; ky++)
                for (int kx = 0; kx < s.KW; kx++)
                {
                    var iy = y + Vector512.Create(ky - s.PadH);
                    var ix = xs + Vector512.Create(kx - s.PadW);
                    var inside = Vector512.GreaterThanOrEqual(iy, Vector512<int>.Zero) & Vector512.LessThan(iy, Vector512.Create(s.H))
                               & Vector512.GreaterThanOrEqual(ix, Vector512<int>.Zero) & Vector512.LessThan(ix, Vector512.Create(s.W));
                    masks[2 * (ky * s.KW + kx) + half] = inside.AsSingle();
                }
        }
        for (int q = 0; q < kc; q++)
        {
            int tap = tapY[q] * s.KW + tapX[q], shift = planeOffset[q] + (tapY[q] - s.PadH) * s.W + (tapX[q] - s.PadW);
            float* d = dst + q * Gemm.NR;
            // Masked-off lanes are not read: no fault before the first plane or past the last.
            Avx512F.MaskLoad(lowBase + shift, masks[2 * tap], Vector512<float>.Zero).Store(d);
            Avx512F.MaskLoad(highBase + shift, masks[2 * tap + 1], Vector512<float>.Zero).Store(d + 16);
        }
        return true;
    }
}

/// <summary>Stride-2 gathers: the even elements of 32 consecutive floats in two loads and one two-source permute.</summary>
internal static unsafe class StridedGather
{
    private static readonly Vector512<int> Evens = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);

    // row: one input row of w floats → d[c] = row[ix0 + 2c] for c in [0, len), 0 where that falls outside [0, w)
    public static void EveryOther(float* row, int ix0, int w, float* d, int len)
    {
        // Columns whose input lies inside the row: [lo, hi).
        int lo = Math.Clamp((-ix0 + 1) / 2, 0, len);
        int hi = Math.Clamp(w - 1 - ix0 < 0 ? 0 : (w - 1 - ix0) / 2 + 1, lo, len);
        int c = 0;
        for (; c < lo; c++) d[c] = 0f;
        if (Avx512F.IsSupported)
            // 16 outputs read ix0 + 2c … ix0 + 2c + 31: only while that stays inside the row (never past the buffer).
            for (; c + 16 <= hi && ix0 + 2 * c + 31 < w; c += 16)
            {
                float* src = row + ix0 + 2 * c;
                Avx512F.PermuteVar16x32x2(Vector512.Load(src), Evens, Vector512.Load(src + 16)).Store(d + c);
            }
        for (; c < hi; c++) d[c] = row[ix0 + 2 * c];
        for (; c < len; c++) d[c] = 0f;
    }
}

/// <summary>
/// Where the im2col gather reads: a source of (N, Cin, H, W), taps KH×KW, output grid OutH×OutW.
/// For a forward convolution it is the convolution's own geometry; a backward pass gathers from the
/// output gradient with its own taps, padding and grid.
/// </summary>
internal readonly record struct PatchGeometry(int Cin, int H, int W, int KH, int KW, int StrideH, int StrideW, int PadH, int PadW, int OutH, int OutW)
{
    public static PatchGeometry Of(in Conv2dShape s) => new(s.Cin, s.H, s.W, s.KH, s.KW, s.StrideH, s.StrideW, s.PadH, s.PadW, s.OutH, s.OutW);
}

/// <summary>
/// C[i, j] with j = (image, qy, qx) added into dx at pixel (qy·stride + ry, qx·stride + rx) of channel i:
/// one parity class of a strided convolution's input gradient (stride 1: the whole plane).
/// </summary>
internal readonly unsafe struct StridedPlanesC(float* dx, int channels, int h, int w, int strideH, int strideW, int ry, int rx, int gridH, int gridW) : IStoreC
{
    // Always adds: dx is cleared first, since pixels that no tap reaches are never stored.
    // Its columns are a strided scatter: never a run of NR in C.
    public bool Direct(int i0, int j0, bool first, bool last, out TileTarget target) { target = default; return false; }

    public void Add(int i0, int j0, int mr, int nr, float* tile, bool first, bool last)
    {
        int grid = gridH * gridW;
        for (int c = 0; c < nr;)
        {
            int j = j0 + c, image = j / grid, q = j - image * grid, qy = q / gridW, qx = q - qy * gridW;
            int len = Math.Min(nr - c, gridW - qx); // a run within one grid row
            float* row0 = dx + ((long)image * channels + i0) * h * w + (qy * strideH + ry) * w + qx * strideW + rx;
            for (int r = 0; r < mr; r++)
            {
                float* dst = row0 + (long)r * h * w;
                float* src = tile + r * Gemm.NR + c;
                if (strideW == 1)
                {
                    int t = 0;
                    for (; t + 8 <= len; t += 8) Vector256.Store(Vector256.Load(dst + t) + Vector256.Load(src + t), dst + t);
                    for (; t < len; t++) dst[t] += src[t];
                }
                else
                    for (int t = 0; t < len; t++) dst[t * strideW] += src[t];
            }
            c += len;
        }
    }
}

/// <summary>A[i, k] = p[i·rowStride + columnOffset[k]]: a gather of weights, e.g. one parity class of Wᵀ.</summary>
internal readonly unsafe struct GatherA(float* p, int rowStride, int* columnOffset) : IPackA
{
    public float* Packed(int i0, int k0) => null;

    public void Pack(int i0, int mc, int k0, int kc, float* dst)
    {
        for (int ir = 0; ir < mc; ir += Gemm.MR)
        {
            int rows = Math.Min(Gemm.MR, mc - ir);
            for (int q = 0; q < kc; q++)
            {
                float* src = p + columnOffset[k0 + q] + (long)(i0 + ir) * rowStride;
                float* d = dst + q * Gemm.MR;
                int r = 0;
                for (; r < rows; r++) d[r] = src[(long)r * rowStride];
                for (; r < Gemm.MR; r++) d[r] = 0;
            }
            dst += kc * Gemm.MR;
        }
    }
}

/// <summary>
/// C[i, j] with j = (image, pixel) stored into a batch of planes:
/// C[i, j] ↦ p[image·imageStride + i·pixelsPerImage + pixel]. Convolution outputs (rows = output
/// channels) and a 1×1 stride-1 convolution's input gradient. Epilogue: the first depth chunk
/// overwrites, adding bias[i] and the residual (same layout as p) if given; the last applies
/// leaky-ReLU if slope is not NaN.
/// </summary>
internal readonly unsafe struct BatchedPlanesC(float* p, int pixelsPerImage, int imageStride, float* bias = null, float slope = float.NaN, float* residual = null, bool direct = true) : IStoreC
{
    public void Add(int i0, int j0, int mr, int nr, float* tile, bool first, bool last)
    {
        for (int c = 0; c < nr;)
        {
            int j = j0 + c, image = j / pixelsPerImage, pixel = j - image * pixelsPerImage;
            int len = Math.Min(nr - c, pixelsPerImage - pixel); // a run within one image
            for (int r = 0; r < mr; r++)
            {
                long offset = (long)image * imageStride + (long)(i0 + r) * pixelsPerImage + pixel;
                Store(p + offset, tile + r * Gemm.NR + c, len, first, last, residual == null ? null : residual + offset,
                    first && bias != null ? bias[i0 + r] : 0f, slope);
            }
            c += len;
        }
    }

    public bool Direct(int i0, int j0, bool first, bool last, out TileTarget target)
    {
        // Each 16-column half of the tile's rows must be one run: within an image, or (images of 16–31
        // pixels, e.g. ResNet-34 CIFAR's 4×4 layers at batch 64) one half per image. Else (or when the caller
        // wants every tile through Add) the tile buffer.
        long offset = HalfOffset(j0, i0), upper = HalfOffset(j0 + 16, i0);
        if (!direct || offset < 0 || upper < 0) { target = default; return false; }
        float* dst = p + offset;
        // As Store: (sums + (first ? bias : 0)) + (first ? residual : dst), then leaky-ReLU on the last chunk.
        target = new TileTarget(dst, pixelsPerImage, prior: first ? (residual == null ? null : residual + offset) : dst,
            addBias: true, bias: first && bias != null ? bias + i0 : null, slope: last ? slope : float.NaN, halfOffset: upper - offset);
        return true;
    }

    // Where C[i0, j .. j + 16) starts, or −1 when those 16 columns are not one run (they cross an image's end).
    private long HalfOffset(int j, int i0)
    {
        int image = j / pixelsPerImage, pixel = j - image * pixelsPerImage;
        return pixel + 16 > pixelsPerImage ? -1 : (long)image * imageStride + (long)i0 * pixelsPerImage + pixel;
    }

    /// <summary>
    /// dst[0..len) ← src + prior: on the first depth chunk prior is bias + residual (if any) and dst is
    /// overwritten, later it is dst itself; on the last chunk leaky-ReLU follows unless slope is NaN.
    /// </summary>
    internal static void Store(float* dst, float* src, int len, bool first, bool last, float* residual, float bias, float slope)
    {
        bool activate = last && !float.IsNaN(slope);
        float* prior = first ? residual : dst;
        var b = Vector256.Create(bias);
        var s = Vector256.Create(slope);
        int t = 0;
        for (; t + 8 <= len; t += 8)
        {
            var v = Vector256.Load(src + t) + b;
            if (prior != null) v += Vector256.Load(prior + t);
            if (activate) v = Vector256.ConditionalSelect(Vector256.GreaterThan(v, Vector256<float>.Zero), v, v * s);
            v.Store(dst + t);
        }
        for (; t < len; t++)
        {
            float v = src[t] + bias + (prior != null ? prior[t] : 0f);
            dst[t] = activate && !(v > 0) ? v * slope : v;
        }
    }
}
