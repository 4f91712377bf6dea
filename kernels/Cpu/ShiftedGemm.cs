using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ModelGuardian.Kernels.Cpu;

// A convolution as a GEMM whose B is never packed. The input is copied once into a zero-padded
// layout (PaddedPatches) in which every kernel tap (ci, ky, kx) is a constant shift: output pixel
// j of a "pitched" grid reads input element origin + offset(ci, ky, kx) + j. The micro-kernel then
// loads its B rows straight from that copy (OffsetRows), so what im2col packing wrote and read K×N
// times over is one copy of the input. The price: the grid's rows are `Pitch` wide, and the
// Pitch − OutW columns past each output row are computed and dropped.

/// <summary>
/// Zero-padded copy of a convolution's input laid out so that every tap is a shift. A stride-s input
/// is split per channel into parity planes (iy mod s, ix mod s), s² of them at most (only those some
/// tap reads), each of <see cref="Rows"/> × <see cref="Pitch"/>: tap (ky, kx) then reads plane
/// (ky mod s, kx mod s) at row oy + ky / s, column ox + kx / s — a shift of the output grid again.
/// </summary>
internal readonly record struct PaddedPatches(Conv2dShape Shape)
{
    private int ParityY => Math.Min(Shape.StrideH, Shape.KH);
    private int ParityX => Math.Min(Shape.StrideW, Shape.KW);

    /// <summary>Width of a parity plane's rows and of the output grid's rows: OutW plus the columns the widest tap reaches beyond.</summary>
    public int Pitch => Shape.OutW + (Shape.KW - 1) / Shape.StrideW;
    /// <summary>Rows of a parity plane: OutH plus the rows the tallest tap reaches below.</summary>
    public int Rows => Shape.OutH + (Shape.KH - 1) / Shape.StrideH;
    public int PlaneLength => Rows * Pitch;
    public int ChannelLength => ParityY * ParityX * PlaneLength;
    public int ImageLength => Shape.Cin * ChannelLength;

    /// <summary>GEMM columns per image: the pitched grid OutH × Pitch rounded up to whole NR slivers, so no sliver spans two images.</summary>
    public int ColumnsPerImage => (Shape.OutH * Pitch + Gemm.NR - 1) / Gemm.NR * Gemm.NR;

    /// <summary>
    /// Floats to allocate: the images, plus slack for what the last slivers read past the last plane
    /// (dropped columns of the grid and a last sliver's padding read real floats, never outside the buffer).
    /// Computed in 64 bits from the shape, so that a caller that checks it against the largest array
    /// knows every int quantity here (plane, channel and image lengths, tap offsets) fits.
    /// </summary>
    public long BufferLength => (long)Shape.N * Shape.Cin * ParityY * ParityX * Rows * Pitch + ColumnsPerImage + (long)Shape.KH * Pitch + Shape.KW + Gemm.NR;

    /// <summary>
    /// Whether the shifted layout is the faster one here. It must multiply at most 8/7 of the columns im2col
    /// would (the pitched grid, each image rounded up to whole slivers, against the batch's pixels in slivers,
    /// a short last one at half price), and either have stride 1 and depth K ≥ 64 (below that the padded copy
    /// outweighs the gather) or 25 taps or more (im2col's strided gather of a 7×7 stem is slow). Small strided
    /// kernels stay on im2col: their parity planes cost more than its gather. The timings behind the rule are
    /// in docs/benchmarks.md.
    /// </summary>
    public bool Preferred =>
        (long)Shape.N * ColumnsPerImage * 7 <= Im2ColColumns * 8
        && ((Shape.StrideH == 1 && Shape.StrideW == 1 && Shape.CinPerGroup * Shape.KH * Shape.KW >= 64) || Shape.KH * Shape.KW >= 25);

    // The columns im2col's micro-kernels multiply: whole slivers, and a short last one of ≤ 16 as 16.
    private long Im2ColColumns
    {
        get
        {
            long pixels = (long)Shape.N * Shape.OutH * Shape.OutW, rest = pixels % Gemm.NR;
            return pixels - rest + (rest == 0 ? 0 : rest <= 16 ? 16 : Gemm.NR);
        }
    }

    /// <summary>offsets[k] for k = (ci, ky, kx) over channels [channelOffset, channelOffset + CinPerGroup): where tap k's shift starts.</summary>
    public void TapOffsets(int channelOffset, Span<int> offsets)
    {
        // The shift of each tap within a channel, once; then one add per (channel, tap).
        int taps = Shape.KH * Shape.KW, channelLength = ChannelLength, planeLength = PlaneLength, pitch = Pitch;
        Span<int> tap = taps <= 1024 ? stackalloc int[taps] : new int[taps];
        for (int ky = 0; ky < Shape.KH; ky++)
            for (int kx = 0; kx < Shape.KW; kx++)
                tap[ky * Shape.KW + kx] = (ky % Shape.StrideH * ParityX + kx % Shape.StrideW) * planeLength + ky / Shape.StrideH * pitch + kx / Shape.StrideW;
        for (int ci = 0; ci < Shape.CinPerGroup; ci++)
        {
            int channel = (channelOffset + ci) * channelLength;
            for (int t = 0; t < taps; t++) offsets[ci * taps + t] = channel + tap[t];
        }
    }

    /// <summary>The columns b of parity plane rx whose input column b·stride + rx − pad lies inside the row: [lo, hi).</summary>
    public static (int Lo, int Hi) InsideColumns(in Conv2dShape s, int rx, int pitch)
    {
        int lo = Math.Max(0, (s.PadW - rx + s.StrideW - 1) / s.StrideW);
        return (lo, Math.Max(lo, Math.Min(pitch, (s.W - 1 + s.PadW - rx) / s.StrideW + 1)));
    }

    // x: (H, W) one channel plane → padded: its parity planes (ParityY·ParityX, Rows, Pitch), zero where the taps read padding
    public unsafe void CopyChannel(float* x, float* padded)
    {
        var s = Shape;
        int pitch = Pitch, rows = Rows, planeLength = PlaneLength, parityY = ParityY, parityX = ParityX;
        for (int ry = 0; ry < parityY; ry++)
            for (int rx = 0; rx < parityX; rx++)
            {
                float* plane = padded + (ry * parityX + rx) * planeLength;
                var (lo, hi) = InsideColumns(s, rx, pitch);
                for (int a = 0; a < rows; a++)
                {
                    float* row = plane + a * pitch;
                    int iy = a * s.StrideH + ry - s.PadH;
                    if ((uint)iy >= (uint)s.H || hi == lo) { Unsafe.InitBlockUnaligned(row, 0, (uint)pitch * 4); continue; }
                    float* src = x + iy * s.W + rx - s.PadW;
                    Unsafe.InitBlockUnaligned(row, 0, (uint)lo * 4);
                    if (s.StrideW == 1) Unsafe.CopyBlockUnaligned(row + lo, src + lo, (uint)(hi - lo) * 4);
                    else if (s.StrideW == 2) StridedGather.EveryOther(x + iy * s.W, 2 * lo + rx - s.PadW, s.W, row + lo, hi - lo);
                    else for (int b = lo; b < hi; b++) row[b] = src[b * s.StrideW];
                    Unsafe.InitBlockUnaligned(row + hi, 0, (uint)(pitch - hi) * 4);
                }
            }
    }
}

/// <summary>
/// C[i, j] with j = (image, pitched pixel) stored into (N, Cout, OH, OW) planes: column j of image
/// `image` is grid pixel (vy, vx) = (j / Pitch, j mod Pitch), kept when vy &lt; OH and vx &lt; OW.
/// Same epilogue as <see cref="BatchedPlanesC"/> (bias and residual on the first depth chunk,
/// leaky-ReLU on the last).
/// </summary>
internal readonly unsafe struct PitchedPlanesC(float* p, int outH, int outW, int pitch, int columnsPerImage, int imageStride,
    float* bias = null, float slope = float.NaN, float* residual = null, bool direct = true) : IStoreC
{
    /// <summary>
    /// A full tile's 32 grid columns as C positions: the lanes that are pixels (not a dropped column past
    /// OW, nor the sliver padding past the grid) are consecutive in C within each 16-lane half, since a
    /// grid row's last pixel and the next row's first are neighbours in the plane. So the micro-kernel
    /// packs them on store (compress) and expands the residual the same way.
    /// </summary>
    public bool Direct(int i0, int j0, bool first, bool last, out TileTarget target)
    {
        int image = j0 / columnsPerImage, v0 = j0 - image * columnsPerImage;
        int vy = v0 / pitch, vx = v0 - vy * pitch;
        uint lanes = 0;
        int lowStart = -1, highStart = -1;
        for (int c = 0; c < Gemm.NR; c++)
        {
            if (vy < outH && vx < outW)
            {
                lanes |= 1u << c;
                int position = vy * outW + vx;
                if (c < 16) { if (lowStart < 0) lowStart = position; }
                else if (highStart < 0) highStart = position;
            }
            if (++vx == pitch) { vx = 0; vy++; }
        }
        if (!direct || lanes == 0) { target = default; return false; }
        if (lowStart < 0) lowStart = highStart; // an empty half stores nothing; any in-plane address will do
        if (highStart < 0) highStart = lowStart;
        long offset = (long)image * imageStride + (long)i0 * outH * outW + lowStart;
        target = new TileTarget(p + offset, (long)outH * outW, prior: first && residual != null ? residual + offset : null,
            addBias: true, bias: first && bias != null ? bias + i0 : null, slope: last ? slope : float.NaN,
            halfOffset: highStart - lowStart, compressed: true, lowLanes: LaneMask(lanes & 0xFFFF), highLanes: LaneMask(lanes >> 16));
        return true;
    }

    private static readonly Vector512<uint> LaneBits = Vector512.Create(1u, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768);

    // Bit l of `bits` → lane l all ones (the form Avx512F's mask arguments take).
    private static Vector512<float> LaneMask(uint bits) => Vector512.Equals(Vector512.Create(bits) & LaneBits, LaneBits).AsSingle();

    public void Add(int i0, int j0, int mr, int nr, float* tile, bool first, bool last)
    {
        int image = j0 / columnsPerImage, v0 = j0 - image * columnsPerImage, ohw = outH * outW;
        for (int c = 0; c < nr;)
        {
            int v = v0 + c, vy = v / pitch, vx = v - vy * pitch;
            if (vy >= outH) break; // the sliver padding past the grid
            int len = Math.Min(nr - c, pitch - vx), valid = Math.Min(len, outW - vx); // a run within one grid row; its first `valid` are pixels
            for (int r = 0; r < mr && valid > 0; r++)
            {
                long offset = (long)image * imageStride + (long)(i0 + r) * ohw + vy * outW + vx;
                BatchedPlanesC.Store(p + offset, tile + r * Gemm.NR + c, valid, first, last, residual == null ? null : residual + offset,
                    first && bias != null ? bias[i0 + r] : 0f, slope);
            }
            c += len;
        }
    }
}

internal static unsafe partial class Gemm
{
    /// <summary>
    /// C += A·B where B is read in place from <paramref name="source"/>, columnsPerImage columns (a
    /// multiple of NR) per image of imageLength floats: B[k, j] = source[image·imageLength + offsets[k] + j
    /// mod columnsPerImage] — the columns of a sliver are consecutive floats. Tasks as in <see cref="Run"/>
    /// (a <see cref="TaskGrid"/>) without the B panel, each running every depth chunk.
    /// </summary>
    public static void RunInPlaceB<TA, TC>(WorkerPool pool, int m, int n, int k, TA a, float* source, int imageLength, int columnsPerImage, int* offsets, TC c)
        where TA : struct, IPackA where TC : struct, IStoreC
    {
        if (m <= 0 || n <= 0 || k <= 0) return;
        if (columnsPerImage % NR != 0) throw new ArgumentException("Slivers must not span two images.", nameof(columnsPerImage));
        int slivers = (n + NR - 1) / NR, chunks = (k + KC - 1) / KC;
        int threads = 2.0 * m * n * k < ParallelFlops ? 1 : pool.Threads;
        var grid = TaskGrid.Choose(m, k, n, slivers, threads);
        int tasks = grid.Tasks;
        void RunTask(int t)
        {
            var (i0, rows) = grid.Rows(t, m);
            if (rows == 0) return;
            var (firstSliver, endSliver) = grid.Slivers(t);
            endSliver = Math.Min(endSliver, slivers);
            int rowTiles = (rows + MR - 1) / MR;
            float* tiles = stackalloc float[rowTiles * MR * NR + 16];
            tiles = (float*)(((nint)tiles + 63) & ~(nint)63);
            // Every depth chunk of this row piece, packed: from the PackedMatrix, or here (weights that change).
            float** blocks = stackalloc float*[chunks];
            if (a.Packed(i0 / MC * MC, 0) == null)
            {
                float* pA = Aligned(PackBuffer(ref t_packA, (long)chunks * KC * (MC + MR) + 16));
                for (int kb = 0; kb < chunks; kb++)
                {
                    blocks[kb] = pA + (long)kb * KC * (MC + MR);
                    a.Pack(i0, rows, kb * KC, Math.Min(KC, k - kb * KC), blocks[kb]);
                }
            }
            else for (int kb = 0; kb < chunks; kb++) blocks[kb] = grid.PackedRows(a, i0, kb * KC, Math.Min(KC, k - kb * KC));
            for (int sliver = firstSliver; sliver < endSliver; sliver++)
            {
                int j = sliver * NR, cols = Math.Min(NR, n - j), image = j / columnsPerImage;
                float* origin = source + (long)image * imageLength + (j - image * columnsPerImage);
                // Depth chunk by chunk, every row tile of the piece: the chunk's B rows (for 3×3, about
                // 16 KB of input lines) stay in L1 while the row tiles' A slivers stream past. Each chunk's
                // sums are added to the tiles and C is written once: its store scatters runs of a pitched
                // grid, too dear to repeat per chunk on narrow outputs.
                // On the last chunk, a full tile goes straight into C with the earlier chunks' sums and the
                // epilogue (IStoreC.Direct); the others finish in the tile buffer and are stored after.
                uint buffered = 0; // bit t: row tile t still needs its store (a task has at most MC = 96 rows: 8 tiles)
                TileTarget target = default;
                bool direct = cols == NR && Vector512.IsHardwareAccelerated && c.Direct(i0, j, true, true, out target);
                for (int kb = 0; kb < chunks; kb++)
                {
                    int k0 = kb * KC, kc = Math.Min(KC, k - k0);
                    var depthRows = new OffsetRows(origin, offsets + k0);
                    for (int ir = 0; ir < rows; ir += MR)
                    {
                        int mr = Math.Min(MR, rows - ir);
                        float* tile = tiles + ir / MR * MR * NR, aSliver = blocks[kb] + (ir / MR) * kc * MR;
                        if (kb == chunks - 1 && direct && mr == MR)
                            MicroKernelInto(kc, aSliver, depthRows, kb > 0 ? target.Down(ir).After(tile) : target.Down(ir));
                        else
                        {
                            MicroKernel(kc, mr, cols, aSliver, depthRows, tile, accumulate: kb > 0);
                            if (kb == chunks - 1) buffered |= 1u << (ir / MR);
                        }
                    }
                }
                for (int ir = 0; ir < rows; ir += MR)
                    if ((buffered & (1u << (ir / MR))) != 0)
                        c.Add(i0 + ir, j, Math.Min(MR, rows - ir), cols, tiles + ir / MR * MR * NR, first: true, last: true);
            }
        }
        if (threads == 1 || tasks == 1) for (int t = 0; t < tasks; t++) RunTask(t);
        else pool.For(0, tasks, RunTask);
    }
}
