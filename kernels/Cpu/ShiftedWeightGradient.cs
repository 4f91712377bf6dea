using System.Runtime.CompilerServices;

namespace ModelGuardian.Kernels.Cpu;

// The weight gradient of a stride-1, one-group convolution, tap by tap, with neither operand gathered
// per tap. For tap (ky, kx): dw[:, :, ky, kx] (Cout × Cin) = Σ over the batch's output pixels p of
// dy(·, p) ⊗ x(·, p + tap) — a GEMM whose depth is every pixel of the batch. The input is copied once
// into a zero-padded, channels-last layout, so depth row p of a tap's B (its Cin inputs) is Cin
// consecutive floats at a constant shift, read in place (OffsetRows); dy is packed once as A and
// shared by every tap. Im2col instead writes and re-reads K × pixels floats per image, which on thin
// layers (16 channels: 32 flops per gathered float) cost several times the multiplication.
// The pixels run over a pitched grid whose rows are as wide as the padded input: the columns past OW
// read real (finite) inputs and are multiplied by a packed dy of exactly 0.

/// <summary>
/// Sizes of the channels-last padded input and of the pitched pixel grid for a stride-1, one-group
/// convolution; a chunk of <see cref="Images"/> images at a time.
/// </summary>
internal readonly record struct ShiftedWeightGradient(Conv2dShape Shape, int Images)
{
    public static bool Fits(in Conv2dShape s) => s.Groups == 1 && s.StrideH == 1 && s.StrideW == 1;

    /// <summary>Padded rows and row width (the input's, padding included; for stride 1 also OH + KH − 1 and OW + KW − 1).</summary>
    public int Rows => Shape.H + 2 * Shape.PadH;
    public int Pitch => Shape.W + 2 * Shape.PadW;
    /// <summary>Floats per image in the padded copy.</summary>
    public long ImageLength => (long)Rows * Pitch * Shape.Cin;
    /// <summary>Depth rows per image: the pitched grid OH × Pitch.</summary>
    public int GridPixels => Shape.OutH * Pitch;
    public long Depth => (long)Images * GridPixels;

    /// <summary>Floats to allocate for the padded copy: the images, plus what the widest tap and a full 32-column sliver read past the last.</summary>
    public long BufferLength => Images * ImageLength + (long)(Shape.KW + 1) * Shape.Cin + 2 * Gemm.NR;

    public int RowTiles => (Shape.Cout + Gemm.MR - 1) / Gemm.MR;
    public int Chunks => (int)((Depth + Gemm.KC - 1) / Gemm.KC);
    /// <summary>Floats of the packed dy: every depth chunk × row tile as a full KC-deep block.</summary>
    public long PackedLength => (long)Chunks * RowTiles * Gemm.KC * Gemm.MR;

    /// <summary>Whether every offset and buffer of a chunk of this many images fits the int indexing below.</summary>
    public bool Addressable => BufferLength < int.MaxValue && Depth < int.MaxValue && PackedLength < Array.MaxLength;

    // x: (Images, Cin, H, W) one image → padded: (Rows, Pitch, Cin), zero in the padding
    public unsafe void CopyImage(float* x, float* padded)
    {
        var s = Shape;
        int pitch = Pitch, cin = s.Cin, plane = s.H * s.W;
        Unsafe.InitBlockUnaligned(padded, 0, (uint)(ImageLength * sizeof(float)));
        for (int ci = 0; ci < cin; ci++)
        {
            float* src = x + (long)ci * plane;
            for (int iy = 0; iy < s.H; iy++)
            {
                float* dst = padded + ((long)(iy + s.PadH) * pitch + s.PadW) * cin + ci, row = src + iy * s.W;
                for (int ix = 0; ix < s.W; ix++) dst[ix * cin] = row[ix];
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

    /// <summary>Where tap (ky, kx) reads relative to its pixel, in floats.</summary>
    public int TapShift(int ky, int kx) => (ky * Pitch + kx) * Shape.Cin;
}

public sealed unsafe partial class CpuKernels
{
    [ThreadStatic] private static float[]? t_wgradPadded, t_wgradPacked, t_wgradPartial, t_wgradTiles;
    [ThreadStatic] private static int[]? t_wgradOffsets;

    /// <summary>
    /// Floats of channels-last padded input the shifted weight gradient copies at a time (8 MB; at least
    /// one image): its depth is the batch's pixels, so a large batch runs as several chunks whose sums add up.
    /// Internal so that tests can force several chunks.
    /// </summary>
    internal int WeightGradientChunkFloats { get; init; } = 1 << 21;

    private static float* Pinned(ref float[]? buffer, long floats)
    {
        if (buffer is null || buffer.Length < floats) buffer = GC.AllocateArray<float>((int)floats, pinned: true);
        return Gemm.Aligned(buffer);
    }

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

    // x: (N, Cin, H, W) · dy: (N, Cout, OH, OW) → dw: (Cout, Cin, KH, KW), stride 1, one group; dw overwritten
    private void ShiftedBackwardWeight(in Conv2dShape s, float[] X, float[] DY, float[] DW)
    {
        var one = new ShiftedWeightGradient(s, 1);
        int perChunk = (int)Math.Clamp(WeightGradientChunkFloats / Math.Max(1L, one.ImageLength), 1, s.N);
        while (perChunk > 1 && !new ShiftedWeightGradient(s, perChunk).Addressable) perChunk /= 2;
        var full = new ShiftedWeightGradient(s, perChunk);
        // A row of taps (ky, all kx) reads KW·Cin consecutive floats per pixel — (q + kx)·Cin + ci — so it is one
        // GEMM whose columns are (kx, ci): thin layers fill a column block where one tap's Cin would not.
        int kh = s.KH, taps = s.KH * s.KW, cout = s.Cout, cin = s.Cin, columns = s.KW * cin;
        int rowTiles = full.RowTiles, slivers = (columns + Gemm.NR - 1) / Gemm.NR;
        int threads = 2.0 * cout * cin * taps * s.N * full.GridPixels < 4e6 ? 1 : _pool.Threads;
        // Tasks: tap rows × depth parts, each summing its part of the depth into its own partial dw; the parts are added at the end.
        int parts = threads == 1 ? 1 : Math.Clamp((4 * threads + kh - 1) / kh, 1, full.Chunks);
        long rowLength = (long)cout * columns;
        float* padded = Pinned(ref t_wgradPadded, full.BufferLength + 16);
        float* packed = Pinned(ref t_wgradPacked, full.PackedLength + 16);
        float* partial = Pinned(ref t_wgradPartial, parts * kh * rowLength + 16);
        if (t_wgradOffsets is null || t_wgradOffsets.Length < full.Depth) t_wgradOffsets = GC.AllocateArray<int>((int)full.Depth, pinned: true);
        int* offsets = (int*)Unsafe.AsPointer(ref t_wgradOffsets[0]);
        new Span<float>(partial, (int)(parts * kh * rowLength)).Clear();
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
                int ky = t % kh, part = t / kh;
                int firstChunk = (int)((long)chunks * part / parts), endChunk = (int)((long)chunks * (part + 1) / parts);
                if (firstChunk == endChunk) return;
                float* tiles = Pinned(ref t_wgradTiles, (long)rowTiles * Gemm.MR * Gemm.NR + 16);
                float* origin = padded + chunk.TapShift(ky, 0);
                float* sums = partial + ((long)part * kh + ky) * rowLength;
                for (int sliver = 0; sliver < slivers; sliver++)
                {
                    int j = sliver * Gemm.NR, cols = Math.Min(Gemm.NR, columns - j);
                    for (int kb = firstChunk; kb < endChunk; kb++)
                    {
                        int k0 = kb * Gemm.KC, kc = Math.Min(Gemm.KC, depth - k0);
                        var rows = new OffsetRows(origin + j, offsets + k0);
                        for (int rt = 0; rt < rowTiles; rt++)
                            Gemm.MicroKernel(kc, Math.Min(Gemm.MR, cout - rt * Gemm.MR), cols, packed + ((long)kb * rowTiles + rt) * Gemm.KC * Gemm.MR,
                                rows, tiles + rt * Gemm.MR * Gemm.NR, accumulate: kb > firstChunk);
                    }
                    for (int co = 0; co < cout; co++)
                    {
                        float* src = tiles + co / Gemm.MR * Gemm.MR * Gemm.NR + co % Gemm.MR * Gemm.NR, dst = sums + (long)co * columns + j;
                        for (int c = 0; c < cols; c++) dst[c] += src[c];
                    }
                }
            }
            if (threads == 1) for (int t = 0; t < kh * parts; t++) Task(t);
            else _pool.For(0, kh * parts, Task);
        }
        // dw[co, ci, ky, kx] = Σ over parts of partial[part, ky, co, (kx, ci)]
        int kw = s.KW;
        _pool.For(0, cout, co =>
        {
            for (int ci = 0; ci < cin; ci++)
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++)
                    {
                        float sum = 0;
                        for (int part = 0; part < parts; part++) sum += partial[((long)part * kh + ky) * rowLength + (long)co * columns + kx * cin + ci];
                        DW[((long)co * cin + ci) * taps + ky * kw + kx] = sum;
                    }
        });
    }
}
