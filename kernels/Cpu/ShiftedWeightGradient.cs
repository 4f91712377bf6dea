using System.Runtime.CompilerServices;

namespace ModelGuardian.Kernels.Cpu;

// The weight gradient of a one-group convolution, tap by tap, with neither operand gathered per tap.
// For tap (ky, kx): dw[:, :, ky, kx] (Cout × Cin) = Σ over the batch's output pixels p of
// dy(·, p) ⊗ x(·, p·stride + tap) — a GEMM whose depth is every pixel of the batch. The input is copied
// once into a zero-padded, channels-last layout, so depth row p of a tap's B (its Cin inputs) is Cin
// consecutive floats at a constant shift, read in place (OffsetRows); dy is packed once as A and
// shared by every tap. Im2col instead writes and re-reads K × pixels floats per image, which on thin
// layers (16 channels: 32 flops per gathered float) cost several times the multiplication.
// A stride-s input is split into parity planes (iy mod s, ix mod s), as the shifted forward does: tap
// (ky, kx) reads plane (ky mod s, kx mod s) at (oy + ky / s, ox + kx / s), a shift again.
// The pixels run over a pitched grid whose rows are a plane's: the columns past OW read real (finite)
// inputs and are multiplied by a packed dy of exactly 0.

/// <summary>
/// Sizes of the channels-last padded parity planes and of the pitched pixel grid for a one-group
/// convolution; a chunk of <see cref="Images"/> images at a time.
/// </summary>
internal readonly record struct ShiftedWeightGradient(Conv2dShape Shape, int Images)
{
    public static bool Fits(in Conv2dShape s) => s.Groups == 1;

    public int ParityY => Math.Min(Shape.StrideH, Shape.KH);
    public int ParityX => Math.Min(Shape.StrideW, Shape.KW);
    /// <summary>A parity plane's rows and row width: the output's plus what the farthest tap reaches beyond.</summary>
    public int Rows => Shape.OutH + (Shape.KH - 1) / Shape.StrideH;
    public int Pitch => Shape.OutW + (Shape.KW - 1) / Shape.StrideW;
    public long PlaneLength => (long)Rows * Pitch * Shape.Cin;
    /// <summary>Floats per image in the padded copy: its parity planes.</summary>
    public long ImageLength => ParityY * ParityX * PlaneLength;
    /// <summary>Depth rows per image: the pitched grid OH × Pitch.</summary>
    public int GridPixels => Shape.OutH * Pitch;
    public long Depth => (long)Images * GridPixels;

    /// <summary>Floats to allocate for the padded copy: the images, plus what the farthest tap and a full 32-column sliver read past the last.</summary>
    public long BufferLength => Images * ImageLength + (long)(Shape.KW + 1) * Shape.Cin + 2 * Gemm.NR;

    public int RowTiles => (Shape.Cout + Gemm.MR - 1) / Gemm.MR;
    public int Chunks => (int)((Depth + Gemm.KC - 1) / Gemm.KC);
    /// <summary>Floats of the packed dy: every depth chunk × row tile as a full KC-deep block.</summary>
    public long PackedLength => (long)Chunks * RowTiles * Gemm.KC * Gemm.MR;

    /// <summary>Whether every offset and buffer of a chunk of this many images fits the int indexing below.</summary>
    public bool Addressable => BufferLength < int.MaxValue && Depth < int.MaxValue && PackedLength < Array.MaxLength;

    /// <summary>Taps kx ≡ rx (mod stride) of one kernel row: consecutive pixels of plane rx, so (kx, ci) are consecutive floats.</summary>
    public int TapsOfParity(int rx) => (Shape.KW - rx + Shape.StrideW - 1) / Shape.StrideW;

    // x: (Images, Cin, H, W) one image → padded: (ParityY·ParityX, Rows, Pitch, Cin), zero where a tap reads padding
    public unsafe void CopyImage(float* x, float* padded)
    {
        var s = Shape;
        int pitch = Pitch, rows = Rows, cin = s.Cin, plane = s.H * s.W;
        Unsafe.InitBlockUnaligned(padded, 0, (uint)(ImageLength * sizeof(float)));
        for (int ry = 0; ry < ParityY; ry++)
            for (int rx = 0; rx < ParityX; rx++)
            {
                float* parity = padded + (ry * ParityX + rx) * PlaneLength;
                var (lo, hi) = PaddedPatches.InsideColumns(s, rx, pitch);
                for (int a = 0; a < rows; a++)
                {
                    int iy = a * s.StrideH + ry - s.PadH;
                    if ((uint)iy >= (uint)s.H) continue;
                    for (int ci = 0; ci < cin; ci++)
                    {
                        float* src = x + (long)ci * plane + iy * s.W + rx - s.PadW, dst = parity + (long)a * pitch * cin + ci;
                        for (int b = lo; b < hi; b++) dst[b * cin] = src[b * s.StrideW];
                    }
                }
            }
    }

    // dy: (Images, Cout, OH, OW) → depth chunk kb of A (Cout × Depth), each row tile packed [depth][MR]; 0 past OW and past Cout
    public unsafe void PackChunk(float* dy, int kb, float* packed)
    {
        var s = Shape;
        int ohw = s.OutH * s.OutW, pitch = Pitch, grid = GridPixels, cout = s.Cout;
        long k0 = (long)kb * Gemm.KC;
        int kc = (int)Math.Min(Gemm.KC, Depth - k0);
        for (int rt = 0; rt < RowTiles; rt++)
        {
            float* dst = packed + ((long)kb * RowTiles + rt) * Gemm.KC * Gemm.MR;
            int rows = Math.Min(Gemm.MR, cout - rt * Gemm.MR);
            int image = (int)(k0 / grid), q = (int)(k0 - (long)image * grid), oy = q / pitch, ox = q - oy * pitch;
            for (int d = 0; d < kc; d++, dst += Gemm.MR)
            {
                if (ox < s.OutW)
                {
                    float* src = dy + ((long)image * cout + rt * Gemm.MR) * ohw + oy * s.OutW + ox;
                    int r = 0;
                    for (; r < rows; r++) dst[r] = src[(long)r * ohw];
                    for (; r < Gemm.MR; r++) dst[r] = 0;
                }
                else for (int r = 0; r < Gemm.MR; r++) dst[r] = 0;
                if (++ox == pitch)
                {
                    ox = 0;
                    if (++oy == s.OutH) { oy = 0; image++; }
                }
            }
        }
    }

    /// <summary>offsets[d] for every depth row: where pixel d of the grid sits in the padded copy (tap (0, 0)).</summary>
    public void DepthOffsets(Span<int> offsets)
    {
        int grid = GridPixels, cin = Shape.Cin;
        for (int image = 0, d = 0; image < Images; image++)
        {
            int imageStart = (int)(image * ImageLength);
            for (int q = 0; q < grid; q++) offsets[d++] = imageStart + q * cin;
        }
    }

    /// <summary>Where the taps (ky, kx ≡ rx) read relative to their pixel, in floats: the first of them (kx = rx).</summary>
    public int TapShift(int ky, int rx) => (int)((ky % Shape.StrideH * ParityX + rx) * PlaneLength + (long)(ky / Shape.StrideH * Pitch) * Shape.Cin);
}

public sealed unsafe partial class CpuKernels
{
    [ThreadStatic] private static float[]? t_wgradPadded, t_wgradPacked, t_wgradTiles;
    [ThreadStatic] private static double[]? t_wgradPartial;
    [ThreadStatic] private static int[]? t_wgradOffsets;

    /// <summary>
    /// Depth chunks (of 256 pixels) a tile sums in float before its sums go into the partial dw, which is in
    /// double: a layer's depth is tens of thousands of pixels, and one float running sum over all of them
    /// loses more than im2col's per-image sums did; blocks of 4,096 pixels in float, then double, lose less.
    /// </summary>
    private const int ChunksPerFlush = 16;

    /// <summary>
    /// Floats of channels-last padded input the shifted weight gradient copies at a time (8 MB; at least
    /// one image): its depth is the batch's pixels, so a large batch runs as several chunks whose sums add up.
    /// Internal so that tests can force several chunks.
    /// </summary>
    internal int WeightGradientChunkFloats { get; init; } = 1 << 21;

    private static float* Pinned(ref float[]? buffer, long floats) => Gemm.Aligned(Gemm.PackBuffer(ref buffer, floats));

    // Whether this weight gradient runs tap by tap over the padded copy. Auto takes it from 3 input channels
    // up: even where most of a column block multiplies nothing (3 or 8 channels of 16) it beat im2col's
    // gather; with 1 or 2 channels nearly all of it would be waste.
    private bool ShiftedWeightGradientFor(in Conv2dShape s)
        => ShiftedWeightGradient.Fits(s) && _convolution switch
        {
            ConvolutionAlgorithm.Im2Col => false,
            ConvolutionAlgorithm.Shifted => true,
            _ => s.Cin >= 3,
        } && new ShiftedWeightGradient(s, 1).Addressable;

    // x: (N, Cin, H, W) · dy: (N, Cout, OH, OW) → dw: (Cout, Cin, KH, KW), one group; dw overwritten
    private void ShiftedBackwardWeight(in Conv2dShape s, float[] X, float[] DY, float[] DW)
    {
        var one = new ShiftedWeightGradient(s, 1);
        int perChunk = (int)Math.Clamp(WeightGradientChunkFloats / Math.Max(1L, one.ImageLength), 1, s.N);
        while (perChunk > 1 && !new ShiftedWeightGradient(s, perChunk).Addressable) perChunk /= 2;
        var full = new ShiftedWeightGradient(s, perChunk);
        // The taps (ky, kx ≡ rx) read TapsOfParity(rx)·Cin consecutive floats per pixel — (q + kx / s)·Cin + ci — so they
        // are one GEMM whose columns are (kx, ci): thin layers fill a column block where one tap's Cin would not.
        int kh = s.KH, kw = s.KW, sx = s.StrideW, taps = kh * kw, cout = s.Cout, cin = s.Cin, parityX = full.ParityX;
        int groups = kh * parityX, widest = full.TapsOfParity(0) * cin, rowTiles = full.RowTiles;
        int threads = 2.0 * cout * cin * taps * s.N * full.GridPixels < 4e6 ? 1 : _pool.Threads;
        // Tasks: tap groups × depth parts, each summing its part of the depth into its own partial dw; the parts are added at the end.
        int parts = threads == 1 ? 1 : Math.Clamp((4 * threads + groups - 1) / groups, 1, full.Chunks);
        long groupLength = (long)cout * widest;
        float* padded = Pinned(ref t_wgradPadded, full.BufferLength + 16);
        float* packed = Pinned(ref t_wgradPacked, full.PackedLength + 16);
        if (t_wgradPartial is null || t_wgradPartial.Length < parts * groups * groupLength) t_wgradPartial = GC.AllocateArray<double>((int)(parts * groups * groupLength), pinned: true);
        double* partial = (double*)Unsafe.AsPointer(ref t_wgradPartial[0]);
        if (t_wgradOffsets is null || t_wgradOffsets.Length < full.Depth) t_wgradOffsets = GC.AllocateArray<int>((int)full.Depth, pinned: true);
        int* offsets = (int*)Unsafe.AsPointer(ref t_wgradOffsets[0]);
        new Span<double>(partial, (int)(parts * groups * groupLength)).Clear();
        int plane = s.H * s.W, ohw = s.OutH * s.OutW;
        for (int n0 = 0; n0 < s.N; n0 += perChunk)
        {
            var chunk = new ShiftedWeightGradient(s, Math.Min(perChunk, s.N - n0));
            float* x = P(X) + (long)n0 * cin * plane, dy = P(DY) + (long)n0 * cout * ohw;
            _pool.For(0, chunk.Images, i => chunk.CopyImage(x + (long)i * cin * plane, padded + i * chunk.ImageLength));
            new Span<float>(padded + chunk.Images * chunk.ImageLength, (int)(chunk.BufferLength - chunk.Images * chunk.ImageLength)).Clear();
            _pool.For(0, chunk.Chunks, kb => chunk.PackChunk(dy, kb, packed));
            chunk.DepthOffsets(new Span<int>(offsets, (int)chunk.Depth));
            int chunks = chunk.Chunks, depth = (int)chunk.Depth;
            void Task(int t)
            {
                int group = t % groups, part = t / groups, ky = group / parityX, rx = group % parityX;
                int firstChunk = (int)((long)chunks * part / parts), endChunk = (int)((long)chunks * (part + 1) / parts);
                if (firstChunk == endChunk) return;
                float* tiles = Pinned(ref t_wgradTiles, (long)rowTiles * Gemm.MR * Gemm.NR + 16);
                float* origin = padded + chunk.TapShift(ky, rx);
                double* sums = partial + ((long)part * groups + group) * groupLength;
                int columns = chunk.TapsOfParity(rx) * cin;
                for (int j = 0; j < columns; j += Gemm.NR)
                {
                    int cols = Math.Min(Gemm.NR, columns - j);
                    for (int block = firstChunk; block < endChunk; block += ChunksPerFlush)
                    {
                        for (int kb = block; kb < Math.Min(endChunk, block + ChunksPerFlush); kb++)
                        {
                            int k0 = kb * Gemm.KC, kc = Math.Min(Gemm.KC, depth - k0);
                            var rows = new OffsetRows(origin + j, offsets + k0);
                            for (int rt = 0; rt < rowTiles; rt++)
                                Gemm.MicroKernel(kc, Math.Min(Gemm.MR, cout - rt * Gemm.MR), cols, packed + ((long)kb * rowTiles + rt) * Gemm.KC * Gemm.MR,
                                    rows, tiles + rt * Gemm.MR * Gemm.NR, accumulate: kb > block);
                        }
                        for (int co = 0; co < cout; co++)
                        {
                            float* src = tiles + co / Gemm.MR * Gemm.MR * Gemm.NR + co % Gemm.MR * Gemm.NR;
                            double* dst = sums + (long)co * widest + j;
                            for (int c = 0; c < cols; c++) dst[c] += src[c];
                        }
                    }
                }
            }
            if (threads == 1) for (int t = 0; t < groups * parts; t++) Task(t);
            else _pool.For(0, groups * parts, Task);
        }
        // dw[co, ci, ky, kx] = Σ over parts of partial[part, (ky, kx mod s), co, (kx / s, ci)]
        _pool.For(0, cout, co =>
        {
            for (int ci = 0; ci < cin; ci++)
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++)
                    {
                        long at = (long)(ky * parityX + kx % sx) * groupLength + (long)co * widest + kx / sx * cin + ci;
                        double sum = 0;
                        for (int part = 0; part < parts; part++) sum += partial[(long)part * groups * groupLength + at];
                        DW[((long)co * cin + ci) * taps + ky * kw + kx] = (float)sum;
                    }
        });
    }
}
