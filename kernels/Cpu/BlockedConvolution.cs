using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ModelGuardian.Kernels.Cpu;

// Direct convolution on channel-blocked activations (BlockedLayout: each pixel's 16 channels are one
// vector, with a zero border for the padding taps). A tile is one output row's run of P ≤ 14 pixels ×
// 32 output channels (two 16-channel blocks): 28 accumulators. For each tap and input channel it loads
// the 32 weights (two vectors, packed once per network) and broadcasts each pixel's input value from
// where it lies — no im2col panel, no padded copy, no packed B: the NCHW route's packing and copying
// was a quarter of its time on ResNet-50's layers (pack 0.13 of 0.49 ms on a 1×1 256→64 at 56²).
// The accumulator counts, the stride and the channel block are type parameters, so that each
// instantiation is compiled with its loop bounds and broadcast offsets as constants.

internal interface IConstant { static abstract int Value { get; } }

/// <summary>An input channel block and a tile's row count, as one type argument (the dispatch needs one fewer level).</summary>
internal interface IBlockRows { static abstract int Block { get; } static abstract int Rows { get; } }
internal struct TB16R<TR> : IBlockRows where TR : struct, IConstant { public static int Block => BlockedLayout.Vector; public static int Rows => TR.Value; }
internal struct TB1R<TR> : IBlockRows where TR : struct, IConstant { public static int Block => 1; public static int Rows => TR.Value; }

internal struct Rows1 : IConstant { public static int Value => 1; }
internal struct Rows2 : IConstant { public static int Value => 2; }
internal struct Stride1 : IConstant { public static int Value => 1; }
internal struct Stride2 : IConstant { public static int Value => 2; }
internal struct Block1 : IConstant { public static int Value => 1; }
internal struct Block16 : IConstant { public static int Value => BlockedLayout.Vector; }
internal struct Pixels1 : IConstant { public static int Value => 1; }
internal struct Pixels2 : IConstant { public static int Value => 2; }
internal struct Pixels3 : IConstant { public static int Value => 3; }
internal struct Pixels4 : IConstant { public static int Value => 4; }
internal struct Pixels5 : IConstant { public static int Value => 5; }
internal struct Pixels6 : IConstant { public static int Value => 6; }
internal struct Pixels7 : IConstant { public static int Value => 7; }
internal struct Pixels8 : IConstant { public static int Value => 8; }
internal struct Pixels9 : IConstant { public static int Value => 9; }
internal struct Pixels10 : IConstant { public static int Value => 10; }
internal struct Pixels11 : IConstant { public static int Value => 11; }
internal struct Pixels12 : IConstant { public static int Value => 12; }
internal struct Pixels13 : IConstant { public static int Value => 13; }
internal struct Pixels14 : IConstant { public static int Value => 14; }

/// <summary>What every tile of one blocked convolution shares: geometry, per-image bases and the epilogue.</summary>
internal readonly unsafe struct BlockedConvArgs(Conv2dShape s, BlockedLayout input, BlockedLayout output, float* x, float* packedWeights,
    int* tapOffsets, float* bias, float* y, float* residual, float slope)
{
    public readonly Conv2dShape Shape = s;
    public readonly BlockedLayout Input = input, Output = output;
    public readonly float* X = x, PackedWeights = packedWeights, Bias = bias, Y = y, Residual = residual;
    /// <summary>Per depth step k = (ky, kx, ci), in the packed weights' order: where its input value lies from a tile's first pixel (<see cref="BlockedConvolution.TapOffsets"/>).</summary>
    public readonly int* TapOffsets = tapOffsets;
    /// <summary>Leaky-ReLU slope of the epilogue; NaN = none.</summary>
    public readonly float Slope = slope;
    public int Pairs => Shape.Cout / BlockedConvolution.PairChannels;
}

[SkipLocalsInit]
internal static unsafe class BlockedConvolution
{
    /// <summary>Output channels per tile: two blocks.</summary>
    public const int PairChannels = 2 * BlockedLayout.Vector;
    /// <summary>Widest tile: 14 pixels × 2 blocks = 28 accumulators, plus two weight vectors and a broadcast, of 32 zmm registers.</summary>
    public const int MaxPixels = 14;

    // The depth order k = (channel block, ky, kx, lane), in the packed weights and the tap offsets alike, so that
    // a block's input lines (3 rows of a tile's pixels, a few KB) serve all its taps while in L1; with taps
    // outermost a tap's pass over all channels (224 lines at 256 channels, and 32 KB of weights) could push
    // them out first. Alternating runs showed no clear difference either way on ResNet-50 b1 (0.90–0.96 of
    // NCHW before, 0.90–0.96 after); the sums' order is all it changes.

    // w: (Cout, Cin, KH, KW) → packed: (Cout / 32, Cin / block, KH, KW, block, 32), the order a tile reads them in
    public static void PackWeights(in Conv2dShape s, int block, float* w, float* packed)
    {
        int taps = s.KH * s.KW;
        for (int pair = 0; pair < s.Cout / PairChannels; pair++)
            for (int cb = 0; cb < s.Cin / block; cb++)
                for (int t = 0; t < taps; t++)
                    for (int lane = 0; lane < block; lane++)
                        for (int o = 0; o < PairChannels; o++)
                            *packed++ = w[((long)(pair * PairChannels + o) * s.Cin + cb * block + lane) * taps + t];
    }

    /// <summary>
    /// offsets[k] for depth step k = (channel block, ky, kx, lane): input (ci, oy·s + ky − padH, ox·s + kx − padW)
    /// lies at image + (oy·s·Pitch + ox·s)·Block + offsets[k] in the input layout (its border absorbs the padding).
    /// A tile then walks one flat loop over k, as the GEMM micro-kernel does: with the taps and channel
    /// blocks as nested loops the JIT kept the 28 accumulators in memory, not registers.
    /// </summary>
    public static void TapOffsets(in Conv2dShape s, in BlockedLayout input, int* offsets)
    {
        int block = input.Block;
        for (int cb = 0; cb < s.Cin / block; cb++)
            for (int ky = 0; ky < s.KH; ky++)
                for (int kx = 0; kx < s.KW; kx++)
                {
                    long at = cb * input.PlaneLength + ((long)(ky - s.PadH + input.Pad) * input.Pitch + kx - s.PadW + input.Pad) * block;
                    for (int lane = 0; lane < block; lane++) *offsets++ = checked((int)(at + lane));
                }
    }

    /// <summary>Output rows per work item: two where a row is at most 7 pixels, so that a tile still has 14.</summary>
    public static int RowsPerItem(in BlockedLayout output) => output.W <= MaxPixels / 2 ? 2 : 1;

    /// <summary>
    /// Output rows [oy, oy + rows) of image <paramref name="image"/>, channels [32·pair, 32·pair + 32): a row cut
    /// into tiles of at most 14 pixels, as even as possible (28 = 14 + 14, 32 = 11 + 11 + 10), or two rows of at
    /// most 7 in one tile (7×7 outputs: each weight loaded serves 14 pixels, not 7); then the rows' border
    /// pixels, and next to the first and last rows the border rows, set to zero for the next layer's taps.
    /// </summary>
    public static void Rows(in BlockedConvArgs a, int image, int pair, int oy, int rows)
    {
        var output = a.Output;
        int ow = output.W;
        if (rows == 2)
        {
            if (ow > MaxPixels / 2) throw new ArgumentOutOfRangeException(nameof(rows), rows, "Two-row tiles hold rows of at most 7 pixels.");
            if (a.Shape.StrideW == 1) Dispatch<Stride1, Rows2>(a, image, pair, oy, 0, ow);
            else Dispatch<Stride2, Rows2>(a, image, pair, oy, 0, ow);
        }
        else
        {
            int tiles = (ow + MaxPixels - 1) / MaxPixels, narrow = ow / tiles, wide = ow % tiles;
            for (int t = 0, ox = 0; t < tiles; t++)
            {
                int width = narrow + (t < wide ? 1 : 0);
                if (a.Shape.StrideW == 1) Dispatch<Stride1, Rows1>(a, image, pair, oy, ox, width);
                else Dispatch<Stride2, Rows1>(a, image, pair, oy, ox, width);
                ox += width;
            }
        }
        float* plane = a.Y + image * output.ImageLength + 2 * pair * output.PlaneLength;
        for (int r = oy; r < oy + rows; r++)
        {
            ZeroBorder(plane, output, r);
            ZeroBorder(plane + output.PlaneLength, output, r);
        }
    }

    // plane: one block (Rows, Pitch, 16) — the border pixels of output row oy, and all border rows next to it
    public static void ZeroBorder(float* plane, in BlockedLayout layout, int oy)
    {
        int pad = layout.Pad, pitch = layout.Pitch, block = layout.Block;
        if (pad == 0) return;
        float* row = plane + (long)(oy + pad) * pitch * block;
        new Span<float>(row, pad * block).Clear();
        new Span<float>(row + (long)(pad + layout.W) * block, pad * block).Clear();
        if (oy == 0) new Span<float>(plane, pad * pitch * block).Clear();
        if (oy == layout.H - 1) new Span<float>(plane + (long)(pad + layout.H) * pitch * block, pad * pitch * block).Clear();
    }

    private static void Dispatch<TS, TR>(in BlockedConvArgs a, int image, int pair, int oy, int ox, int width) where TS : struct, IConstant where TR : struct, IConstant
    {
        if (a.Input.Block == BlockedLayout.Vector) DispatchWidth<TS, TB16R<TR>>(a, image, pair, oy, ox, width);
        else DispatchWidth<TS, TB1R<TR>>(a, image, pair, oy, ox, width);
    }

    private static void DispatchWidth<TS, TBR>(in BlockedConvArgs a, int image, int pair, int oy, int ox, int width) where TS : struct, IConstant where TBR : struct, IBlockRows
    {
        switch (width)
        {
            case 14: Tile<Pixels14, TS, TBR>(a, image, pair, oy, ox); break;
            case 13: Tile<Pixels13, TS, TBR>(a, image, pair, oy, ox); break;
            case 12: Tile<Pixels12, TS, TBR>(a, image, pair, oy, ox); break;
            case 11: Tile<Pixels11, TS, TBR>(a, image, pair, oy, ox); break;
            case 10: Tile<Pixels10, TS, TBR>(a, image, pair, oy, ox); break;
            case 9: Tile<Pixels9, TS, TBR>(a, image, pair, oy, ox); break;
            case 8: Tile<Pixels8, TS, TBR>(a, image, pair, oy, ox); break;
            case 7: Tile<Pixels7, TS, TBR>(a, image, pair, oy, ox); break;
            case 6: Tile<Pixels6, TS, TBR>(a, image, pair, oy, ox); break;
            case 5: Tile<Pixels5, TS, TBR>(a, image, pair, oy, ox); break;
            case 4: Tile<Pixels4, TS, TBR>(a, image, pair, oy, ox); break;
            case 3: Tile<Pixels3, TS, TBR>(a, image, pair, oy, ox); break;
            case 2: Tile<Pixels2, TS, TBR>(a, image, pair, oy, ox); break;
            case 1: Tile<Pixels1, TS, TBR>(a, image, pair, oy, ox); break;
            default: throw new ArgumentOutOfRangeException(nameof(width), width, $"A tile is 1 to {MaxPixels} pixels wide.");
        }
    }

    // One tile: x: input (Blocks, Rows, Pitch, TB) of the image · w: the pair's packed (KH, KW, Cin, 32)
    // → y: pixels [ox0, ox0 + TP) of output row oy, channels [32·pair, 32·pair + 32), with the epilogue
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TP, TS, TBR>(in BlockedConvArgs a, int image, int pair, int oy, int ox0)
        where TP : struct, IConstant where TS : struct, IConstant where TBR : struct, IBlockRows
    {
        // n accumulated pixels: `per` of output row oy, and with two rows the same of row oy + 1 (pixel i ≥ per).
        int per = TP.Value, n = per * TBR.Rows, stride = TS.Value, block = TBR.Block, step = stride * block;
        var s = a.Shape;
        var input = a.Input;
        int depth = s.KH * s.KW * s.Cin;
        float* w = a.PackedWeights + (long)pair * depth * PairChannels;
        float* x = a.X + image * input.ImageLength + ((long)oy * stride * input.Pitch + ox0 * stride) * block;
        int* offsets = a.TapOffsets;
        long below = (long)stride * input.Pitch * block; // the next output row's input, a row of taps further down
        // Declared after every call: an accumulator live across a call (all zmm registers are the caller's to
        // save on this ABI) was kept in memory for the whole loop.
        Vector512<float> l0 = default, h0 = default, l1 = default, h1 = default, l2 = default, h2 = default, l3 = default, h3 = default;
        Vector512<float> l4 = default, h4 = default, l5 = default, h5 = default, l6 = default, h6 = default, l7 = default, h7 = default;
        Vector512<float> l8 = default, h8 = default, l9 = default, h9 = default, l10 = default, h10 = default, l11 = default, h11 = default;
        Vector512<float> l12 = default, h12 = default, l13 = default, h13 = default;
        for (int k = 0; k < depth; k++, w += PairChannels)
        {
            var w0 = Vector512.Load(w);
            var w1 = Vector512.Load(w + BlockedLayout.Vector);
            float* q = x + offsets[k], q2 = q + below;
            Vector512<float> v = Vector512.Create(q[0]);
            l0 = Vector512.FusedMultiplyAdd(v, w0, l0); h0 = Vector512.FusedMultiplyAdd(v, w1, h0);
            if (n > 1) { v = Vector512.Create(*At(q, q2, 1, per, step)); l1 = Vector512.FusedMultiplyAdd(v, w0, l1); h1 = Vector512.FusedMultiplyAdd(v, w1, h1); }
            if (n > 2) { v = Vector512.Create(*At(q, q2, 2, per, step)); l2 = Vector512.FusedMultiplyAdd(v, w0, l2); h2 = Vector512.FusedMultiplyAdd(v, w1, h2); }
            if (n > 3) { v = Vector512.Create(*At(q, q2, 3, per, step)); l3 = Vector512.FusedMultiplyAdd(v, w0, l3); h3 = Vector512.FusedMultiplyAdd(v, w1, h3); }
            if (n > 4) { v = Vector512.Create(*At(q, q2, 4, per, step)); l4 = Vector512.FusedMultiplyAdd(v, w0, l4); h4 = Vector512.FusedMultiplyAdd(v, w1, h4); }
            if (n > 5) { v = Vector512.Create(*At(q, q2, 5, per, step)); l5 = Vector512.FusedMultiplyAdd(v, w0, l5); h5 = Vector512.FusedMultiplyAdd(v, w1, h5); }
            if (n > 6) { v = Vector512.Create(*At(q, q2, 6, per, step)); l6 = Vector512.FusedMultiplyAdd(v, w0, l6); h6 = Vector512.FusedMultiplyAdd(v, w1, h6); }
            if (n > 7) { v = Vector512.Create(*At(q, q2, 7, per, step)); l7 = Vector512.FusedMultiplyAdd(v, w0, l7); h7 = Vector512.FusedMultiplyAdd(v, w1, h7); }
            if (n > 8) { v = Vector512.Create(*At(q, q2, 8, per, step)); l8 = Vector512.FusedMultiplyAdd(v, w0, l8); h8 = Vector512.FusedMultiplyAdd(v, w1, h8); }
            if (n > 9) { v = Vector512.Create(*At(q, q2, 9, per, step)); l9 = Vector512.FusedMultiplyAdd(v, w0, l9); h9 = Vector512.FusedMultiplyAdd(v, w1, h9); }
            if (n > 10) { v = Vector512.Create(*At(q, q2, 10, per, step)); l10 = Vector512.FusedMultiplyAdd(v, w0, l10); h10 = Vector512.FusedMultiplyAdd(v, w1, h10); }
            if (n > 11) { v = Vector512.Create(*At(q, q2, 11, per, step)); l11 = Vector512.FusedMultiplyAdd(v, w0, l11); h11 = Vector512.FusedMultiplyAdd(v, w1, h11); }
            if (n > 12) { v = Vector512.Create(*At(q, q2, 12, per, step)); l12 = Vector512.FusedMultiplyAdd(v, w0, l12); h12 = Vector512.FusedMultiplyAdd(v, w1, h12); }
            if (n > 13) { v = Vector512.Create(*At(q, q2, 13, per, step)); l13 = Vector512.FusedMultiplyAdd(v, w0, l13); h13 = Vector512.FusedMultiplyAdd(v, w1, h13); }
        }
        var output = a.Output;
        long offset = image * output.ImageLength + 2 * pair * output.PlaneLength + ((long)(oy + output.Pad) * output.Pitch + ox0 + output.Pad) * BlockedLayout.Vector;
        float* y = a.Y + offset, r = a.Residual == null ? null : a.Residual + offset;
        var biasLow = a.Bias == null ? Vector512<float>.Zero : Vector512.Load(a.Bias + pair * PairChannels);
        var biasHigh = a.Bias == null ? Vector512<float>.Zero : Vector512.Load(a.Bias + pair * PairChannels + BlockedLayout.Vector);
        long high = output.PlaneLength, nextRow = (long)output.Pitch * BlockedLayout.Vector;
        bool activate = !float.IsNaN(a.Slope);
        var slope = Vector512.Create(a.Slope); // once per tile, not per pixel
        Store(y, r, high, 0, l0, h0, biasLow, biasHigh, activate, slope);
        if (n > 1) Store(y, r, high, At(1, per, nextRow), l1, h1, biasLow, biasHigh, activate, slope);
        if (n > 2) Store(y, r, high, At(2, per, nextRow), l2, h2, biasLow, biasHigh, activate, slope);
        if (n > 3) Store(y, r, high, At(3, per, nextRow), l3, h3, biasLow, biasHigh, activate, slope);
        if (n > 4) Store(y, r, high, At(4, per, nextRow), l4, h4, biasLow, biasHigh, activate, slope);
        if (n > 5) Store(y, r, high, At(5, per, nextRow), l5, h5, biasLow, biasHigh, activate, slope);
        if (n > 6) Store(y, r, high, At(6, per, nextRow), l6, h6, biasLow, biasHigh, activate, slope);
        if (n > 7) Store(y, r, high, At(7, per, nextRow), l7, h7, biasLow, biasHigh, activate, slope);
        if (n > 8) Store(y, r, high, At(8, per, nextRow), l8, h8, biasLow, biasHigh, activate, slope);
        if (n > 9) Store(y, r, high, At(9, per, nextRow), l9, h9, biasLow, biasHigh, activate, slope);
        if (n > 10) Store(y, r, high, At(10, per, nextRow), l10, h10, biasLow, biasHigh, activate, slope);
        if (n > 11) Store(y, r, high, At(11, per, nextRow), l11, h11, biasLow, biasHigh, activate, slope);
        if (n > 12) Store(y, r, high, At(12, per, nextRow), l12, h12, biasLow, biasHigh, activate, slope);
        if (n > 13) Store(y, r, high, At(13, per, nextRow), l13, h13, biasLow, biasHigh, activate, slope);
    }

    // Where pixel i of a tile lies from its first: i·step along the first row, or on the next (`below` further).
    // A pointer, dereferenced inside Vector512.Create: so the JIT emits one broadcast from memory (a load-port
    // µop). Returning the float made it a load and a register broadcast, the latter on port 5 — one of the two
    // ports the FMAs run on: 14 of them per 28 FMAs cost a third of the tile's speed.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float* At(float* q, float* below, int i, int per, int step) => i < per ? q + i * step : below + (i - per) * step;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long At(int i, int per, long nextRow) => i < per ? (long)i * BlockedLayout.Vector : nextRow + (long)(i - per) * BlockedLayout.Vector;

    // Pixel at `at` floats from a tile's first: y = lrelu(sums + bias + residual) for its two blocks (the second `high` floats on),
    // in the NCHW kernels' order: bias, then residual, then the activation.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* y, float* residual, long high, long at, Vector512<float> low, Vector512<float> upper,
        Vector512<float> biasLow, Vector512<float> biasHigh, bool activate, Vector512<float> slope)
    {
        low += biasLow;
        upper += biasHigh;
        if (residual != null)
        {
            low += Vector512.Load(residual + at);
            upper += Vector512.Load(residual + high + at);
        }
        if (activate)
        {
            low = Vector512.ConditionalSelect(Vector512.GreaterThan(low, Vector512<float>.Zero), low, low * slope);
            upper = Vector512.ConditionalSelect(Vector512.GreaterThan(upper, Vector512<float>.Zero), upper, upper * slope);
        }
        low.Store(y + at);
        upper.Store(y + high + at);
    }

    // x: (H, W) one channel plane of NCHW → its lane of a blocked plane (Rows, Pitch, Block), written into the interior
    public static void CopyChannelIn(float* x, in BlockedLayout layout, float* plane, int lane)
    {
        int block = layout.Block, pitch = layout.Pitch, pad = layout.Pad;
        for (int iy = 0; iy < layout.H; iy++)
        {
            float* src = x + (long)iy * layout.W, dst = plane + ((long)(iy + pad) * pitch + pad) * block + lane;
            if (block == 1) new ReadOnlySpan<float>(src, layout.W).CopyTo(new Span<float>(dst, layout.W));
            else for (int ix = 0; ix < layout.W; ix++) dst[(long)ix * block] = src[ix];
        }
    }

    // x: one block (Rows, Pitch, 16) of the input → y: one block of the output, row oy: the max over each window's
    // pixels inside the image (windows never lie wholly in the padding: padding ≤ half the window)
    public static void MaxPoolRow(in Pool2dShape s, in BlockedLayout input, in BlockedLayout output, float* x, float* y, int oy)
    {
        const int v = BlockedLayout.Vector;
        int y0 = Math.Max(0, oy * s.StrideH - s.PadH), y1 = Math.Min(s.H, oy * s.StrideH - s.PadH + s.KH);
        float* dst = y + ((long)(oy + output.Pad) * output.Pitch + output.Pad) * v;
        for (int ox = 0; ox < s.OutW; ox++)
        {
            int x0 = Math.Max(0, ox * s.StrideW - s.PadW), x1 = Math.Min(s.W, ox * s.StrideW - s.PadW + s.KW);
            var m = Vector512.Create(float.NegativeInfinity);
            for (int iy = y0; iy < y1; iy++)
            {
                float* src = x + ((long)(iy + input.Pad) * input.Pitch + input.Pad) * v;
                for (int ix = x0; ix < x1; ix++) m = Vector512.Max(m, Vector512.Load(src + ix * v));
            }
            m.Store(dst + ox * v);
        }
        ZeroBorder(y, output, oy);
    }

    // x: one block (Rows, Pitch, 16) → y: its 16 channels' means over the H × W interior
    public static void AverageBlock(in BlockedLayout layout, float* x, float* y)
    {
        const int v = BlockedLayout.Vector;
        var sum = Vector512<float>.Zero;
        for (int iy = 0; iy < layout.H; iy++)
        {
            float* row = x + ((long)(iy + layout.Pad) * layout.Pitch + layout.Pad) * v;
            for (int ix = 0; ix < layout.W; ix++) sum += Vector512.Load(row + ix * v);
        }
        (sum / (float)(layout.H * layout.W)).Store(y);
    }
}
