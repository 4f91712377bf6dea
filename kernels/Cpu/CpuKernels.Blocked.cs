using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ModelGuardian.Kernels.Cpu;

// The channel-blocked inference kernels (IBlockedKernels): checks, buffers and the parallel loops;
// the per-row work is BlockedConvolution's.
public sealed unsafe partial class CpuKernels : IBlockedKernels
{
    /// <summary>
    /// Whether networks run their inference forwards on channel-blocked activations (<see cref="IBlockedKernels"/>)
    /// where they can. Needs AVX-512 (the tiles are 512-bit vectors of 16 channels); off, or without it, they
    /// run on the NCHW kernels — the benchmark's "NCHW" rows, and the tests' second route.
    /// </summary>
    public bool BlockedInference { get; init; } = Vector512.IsHardwareAccelerated;

    // Blocked weight packings per constant weight buffer, by (Cout, Cin, KH, KW, input block).
    private readonly ConditionalWeakTable<DeviceBuffer, ConcurrentDictionary<(int, int, int, int, int), float[]>> _blockedWeights = new();

    private void RequireBlocked(string operation)
    {
        if (!Vector512.IsHardwareAccelerated) throw new PlatformNotSupportedException($"{operation}: blocked kernels need AVX-512 (this CPU lacks it).");
    }

    public bool SupportsBlockedConv2d(in Conv2dShape s, in BlockedLayout input) =>
        s.Groups == 1 && s.Cout % BlockedConvolution.PairChannels == 0 && s.StrideH == s.StrideW && s.StrideH is 1 or 2
        && input.N == s.N && input.C == s.Cin && input.H == s.H && input.W == s.W && input.Pad >= s.PadH && input.Pad >= s.PadW;

    // x: (N, C, H, W) → y: layout (border and padding channels zero)
    public void ToBlocked(in BlockedLayout layout, DeviceBuffer x, DeviceBuffer y)
    {
        layout.Validate();
        var X = A(x, checked(layout.N * layout.C * layout.H * layout.W), "blocked entry x"); var Y = A(y, layout.Length, "blocked entry y");
        if (x == y) throw new ArgumentException("Blocked entry: x and y must be different buffers.");
        var l = layout;
        float* px = P(X), py = P(Y);
        _pool.For(0, l.N * l.Blocks, item =>
        {
            int image = item / l.Blocks, cb = item % l.Blocks;
            float* plane = py + item * l.PlaneLength;
            new Span<float>(plane, checked((int)l.PlaneLength)).Clear();
            for (int lane = 0; lane < l.Block; lane++)
                BlockedConvolution.CopyChannelIn(px + ((long)image * l.C + cb * l.Block + lane) * l.H * l.W, l, plane, lane);
        });
    }

    // x: input layout · w: (Cout, Cin, KH, KW) · bias: (Cout) → y: output layout = lrelu(conv + bias + residual)
    public void BlockedConv2dForward(in Conv2dShape s, in BlockedLayout input, in BlockedLayout output, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias,
                                     DeviceBuffer y, float? leakyReluSlope = null, DeviceBuffer? residual = null)
    {
        RequireBlocked("Blocked conv2d");
        s.Validate(); input.Validate(); output.Validate();
        if (s.Groups != 1) throw new ArgumentException($"Blocked conv2d: groups must be 1, got {s}.");
        if (input.N != s.N || input.C != s.Cin || input.H != s.H || input.W != s.W)
            throw new ArgumentException($"Blocked conv2d: input layout {input} does not hold the input of {s}.");
        if (output.N != s.N || output.C != s.Cout || output.H != s.OutH || output.W != s.OutW || output.Block != BlockedLayout.Vector)
            throw new ArgumentException($"Blocked conv2d: output layout {output} does not hold the output of {s} in blocks of {BlockedLayout.Vector}.");
        if (!SupportsBlockedConv2d(s, input))
            throw new ArgumentException($"Blocked conv2d: {s} on {input} is not supported (Cout a multiple of {BlockedConvolution.PairChannels}, " +
                "stride 1 or 2 the same both ways, the input's border at least the padding).");
        var X = A(x, input.Length, "blocked conv x"); var Wt = A(w, s.WeightLength, "blocked conv w"); var Y = A(y, output.Length, "blocked conv y");
        var B = bias is null ? null : A(bias, s.Cout, "blocked conv bias");
        var R = residual is null ? null : A(residual, output.Length, "blocked conv residual");
        if (y == x || y == residual) throw new ArgumentException("Blocked conv2d: y must not be x or the residual (it is read while y is written).");
        var packed = BlockedWeights(w, s, input.Block, Wt);
        if (input.ImageLength > int.MaxValue) throw new ArgumentException($"Blocked conv2d: one image of {input} exceeds the offsets' range.");
        int* pOffsets = TapOffsetTable((long)s.KH * s.KW * s.Cin);
        BlockedConvolution.TapOffsets(s, input, pOffsets);
        var args = new BlockedConvArgs(s, input, output, P(X), Gemm.Aligned(packed), pOffsets, B is null ? null : P(B), P(Y), R is null ? null : P(R),
            leakyReluSlope ?? float.NaN);
        // Work items: (image, pair, chunk of rows). A pair's weights (3×3 from 256 channels: 295 KB) come from
        // memory or L3 once per core that runs one of its rows; with rows as items both cores read every pair's.
        // So a pair's rows stay together, cut into chunks only as far as the threads need items (4 each).
        int pairs = args.Pairs, outH = s.OutH, per = BlockedConvolution.RowsPerItem(output), groups = (outH + per - 1) / per;
        int units = s.N * pairs, chunks = Math.Clamp((4 * _pool.Threads + units - 1) / units, 1, groups), perChunk = (groups + chunks - 1) / chunks;
        chunks = (groups + perChunk - 1) / perChunk;
        _pool.For(0, units * chunks, item =>
        {
            int unit = item / chunks, first = item % chunks * perChunk, image = unit / pairs, pair = unit % pairs;
            for (int g = first; g < Math.Min(groups, first + perChunk); g++)
                BlockedConvolution.Rows(args, image, pair, g * per, Math.Min(per, outH - g * per));
        });
        GC.KeepAlive(packed);
    }

    // The weights in the order a tile reads them, from the array's first 64-byte boundary as the GEMM's packed
    // panels (a tile loads two weight vectors per depth step; on ResNet-50 the forward measured the same either
    // way): packed once per constant buffer, else for this call.
    private float[] BlockedWeights(DeviceBuffer w, in Conv2dShape s, int block, float[] Wt)
    {
        var shape = s;
        float[] Pack()
        {
            var packed = GC.AllocateArray<float>(shape.WeightLength + 16, pinned: true);
            BlockedConvolution.PackWeights(shape, block, P(Wt), Gemm.Aligned(packed));
            return packed;
        }
        return w.IsConstant ? _blockedWeights.GetOrCreateValue(w).GetOrAdd((s.Cout, s.Cin, s.KH, s.KW, block), _ => Pack()) : Pack();
    }

    // x: input layout → y: output layout, max pooling
    public void BlockedMaxPool2dForward(in Pool2dShape s, in BlockedLayout input, in BlockedLayout output, DeviceBuffer x, DeviceBuffer y)
    {
        RequireBlocked("Blocked max-pool");
        s.Validate(); input.Validate(); output.Validate();
        if (input.N != s.N || input.C != s.C || input.H != s.H || input.W != s.W || input.Block != BlockedLayout.Vector)
            throw new ArgumentException($"Blocked max-pool: input layout {input} does not hold the input of {s} in blocks of {BlockedLayout.Vector}.");
        if (output.N != s.N || output.C != s.C || output.H != s.OutH || output.W != s.OutW || output.Block != BlockedLayout.Vector)
            throw new ArgumentException($"Blocked max-pool: output layout {output} does not hold the output of {s} in blocks of {BlockedLayout.Vector}.");
        var X = A(x, input.Length, "blocked max-pool x"); var Y = A(y, output.Length, "blocked max-pool y");
        if (x == y) throw new ArgumentException("Blocked max-pool: x and y must be different buffers.");
        var (shape, i, o) = (s, input, output);
        float* px = P(X), py = P(Y);
        int planes = s.N * input.Blocks;
        _pool.For(0, planes * s.OutH, item =>
        {
            int plane = item / shape.OutH;
            BlockedConvolution.MaxPoolRow(shape, i, o, px + plane * i.PlaneLength, py + plane * o.PlaneLength, item % shape.OutH);
        });
    }

    // x: layout → y: (N, C), each channel's mean
    public void BlockedGlobalAveragePool(in BlockedLayout input, DeviceBuffer x, DeviceBuffer y)
    {
        RequireBlocked("Blocked global average pool");
        input.Validate();
        if (input.Block != BlockedLayout.Vector) throw new ArgumentException($"Blocked global average pool: blocks of {BlockedLayout.Vector} only, got {input}.");
        var X = A(x, input.Length, "blocked pool x"); var Y = A(y, input.N * input.C, "blocked pool y");
        var l = input;
        float* px = P(X), py = P(Y);
        _pool.For(0, l.N * l.Blocks, plane => BlockedConvolution.AverageBlock(l, px + plane * l.PlaneLength, py + (long)plane * BlockedLayout.Vector));
    }
}
