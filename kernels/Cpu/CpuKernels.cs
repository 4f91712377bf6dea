using System.Collections.Concurrent;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ModelGuardian.Kernels.Reference;

namespace ModelGuardian.Kernels.Cpu;

/// <summary>
/// The fast CPU backend: managed SIMD (Vector512 where the CPU has AVX-512, else Vector256)
/// and a spinning worker pool over the cores (<see cref="WorkerPool"/>). Convolutions run on a
/// packed GEMM with implicit im2col (<see cref="Gemm"/>), dense layers on vector dot products and
/// axpys; plane-wise layers run per-plane code (the reference's, or a faster one beside it) in
/// parallel over planes; ops that only ever see tiny tensors in our networks (softmax over
/// classes, sigmoid of one logit, minibatch-stddev at 4×4, adaptive pooling of 7×7) call the
/// reference directly, which is stated here rather than hidden. Inference forwards may instead run on
/// channel-blocked activations (<see cref="IBlockedKernels"/>, CpuKernels.Blocked.cs), when the caller
/// (a network's <c>BlockedRun</c>) asks.
/// </summary>
public sealed unsafe partial class CpuKernels : IKernels
{
    private readonly ReferenceKernels _reference = new();
    private readonly WorkerPool _pool;
    private readonly ConvolutionAlgorithm _convolution;

    /// <param name="threads">Cores to use; all of them by default.</param>
    /// <param name="convolution">How a non-depthwise convolution with taps or strides runs its forward pass (auto by default; the others are for tests and measurements).</param>
    public CpuKernels(int? threads = null, ConvolutionAlgorithm convolution = ConvolutionAlgorithm.Auto)
    {
        if (!Enum.IsDefined(convolution)) throw new ArgumentOutOfRangeException(nameof(convolution), convolution, "Unknown convolution algorithm.");
        _pool = WorkerPool.Shared(threads ?? Environment.ProcessorCount);
        _convolution = convolution;
    }

    public string Name => Vector512.IsHardwareAccelerated ? "cpu-avx512" : Vector256.IsHardwareAccelerated ? "cpu-avx2" : "cpu-scalar";

    public DeviceBuffer Allocate(int length) => new HostBuffer(this, length);

    private float[] A(DeviceBuffer b, int needed, string name) => HostBuffer.Of(this, b, needed, name);

    private static float* P(float[] a) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(a)); // arrays are pinned (HostBuffer)

    // The reference checks buffers against its own identity; the CPU backend hands it buffers it owns.
    private ReferenceKernels Ref(DeviceBuffer a, DeviceBuffer? b = null, DeviceBuffer? c = null)
    {
        foreach (var buffer in (ReadOnlySpan<DeviceBuffer?>)[a, b, c])
            if (buffer is not null && buffer.Owner != this) throw new ArgumentException($"Buffer of backend '{buffer.Owner.Name}' passed to '{Name}'.");
        return _reference;
    }

    // Host memory is host memory: copies and fills are the reference's.
    public void Upload(ReadOnlySpan<float> source, DeviceBuffer destination, int destinationOffset = 0)
        => Ref(destination).Upload(source, destination, destinationOffset);

    public void Download(DeviceBuffer source, Span<float> destination, int sourceOffset = 0)
        => Ref(source).Download(source, destination, sourceOffset);

    public void Fill(DeviceBuffer buffer, int count, float value) => Ref(buffer).Fill(buffer, count, value);

    // ---- convolution -----------------------------------------------------------------

    // x: (N, Cin, H, W) · w: (Cout, Cin/G, KH, KW) · bias: (Cout) → y: (N, Cout, OH, OW)
    public void Conv2dForward(in Conv2dShape s, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, DeviceBuffer y, float? leakyReluSlope = null, DeviceBuffer? residual = null)
    {
        s.Validate();
        var X = A(x, s.InputLength, "conv x"); var Wt = A(w, s.WeightLength, "conv w");
        var B = bias is null ? null : A(bias, s.Cout, "conv bias"); var Y = A(y, s.OutputLength, "conv y");
        var R = residual is null ? null : A(residual, s.OutputLength, "conv residual");
        int ohw = s.OutH * s.OutW;
        if (s.CinPerGroup == 1 && s.CoutPerGroup == 1)
        {
            InitialisePlanes(Y, s.N, s.Cout, ohw, B);
            DepthwiseForward(s, X, Wt, Y);
            if (residual is not null) Add(s.OutputLength, y, residual, y);
            if (leakyReluSlope is { } slope) LeakyReluForward(s.OutputLength, slope, y, y);
            return;
        }

        int m = s.CoutPerGroup, k = s.CinPerGroup * s.KH * s.KW, n = s.N * ohw;
        bool pointwise = s.KH == 1 && s.KW == 1 && s.StrideH == 1 && s.StrideW == 1 && s.PadH == 0 && s.PadW == 0;
        var patches = new PaddedPatches(s);
        if (!pointwise && _convolution switch { ConvolutionAlgorithm.Shifted => true, ConvolutionAlgorithm.Im2Col => false, _ => patches.Preferred })
        {
            int wk = k;
            ShiftedForward(s, patches, w, PackRole.Forward, g => new RowMajorA(P(Wt) + (long)g * m * wk, wk), X, B, Y, R, leakyReluSlope ?? float.NaN);
            return;
        }
        for (int g = 0; g < s.Groups; g++)
        {
            var a = new RowMajorA(P(Wt) + (long)g * m * k, k);
            // Bias and activation are the GEMM's epilogue: y is written once, never initialised or re-read for them.
            var c = new BatchedPlanesC(P(Y) + (long)g * m * ohw, ohw, s.Cout * ohw, B is null ? null : P(B) + g * m, leakyReluSlope ?? float.NaN,
                R is null ? null : P(R) + (long)g * m * ohw, DirectTileStores);
            var key = PackKey.Of(s, PackRole.Forward, g);
            if (pointwise)
                RunWithWeights(w, key, m, n, k, a, new BatchedPlanesB(P(X) + (long)g * k * ohw, ohw, s.Cin * ohw), c);
            else
                RunWithWeights(w, key, m, n, k, a, new Im2ColB(P(X), PatchGeometry.Of(s), g * s.CinPerGroup, LinearIm2Col), c);
        }
    }

    [ThreadStatic] private static float[]? t_padded;
    // The calling thread's tap-offset table (shifted and blocked forwards), read by the pool's workers during the call.
    [ThreadStatic] private static int[]? t_tapOffsets;

    /// <summary>The calling thread's tap-offset table, at least <paramref name="count"/> long; kept alive by <see cref="t_tapOffsets"/>.</summary>
    private static int* TapOffsetTable(long count)
    {
        if (count > Array.MaxLength) throw new ArgumentException($"A convolution's tap-offset table ({count} entries) exceeds one array.");
        if (t_tapOffsets is null || t_tapOffsets.Length < count) t_tapOffsets = GC.AllocateArray<int>((int)count, pinned: true);
        return (int*)Unsafe.AsPointer(ref t_tapOffsets[0]);
    }

    /// <summary>
    /// Floats of padded input the shifted forward copies at a time (1 MB; at least one image): a batch
    /// runs a few images at a time, each chunk copied and then multiplied. The copy buffer is per calling
    /// thread and kept, so copying a whole batch first held 19 MB per thread at ResNet-34 CIFAR b64 and
    /// grew with the batch (76 MB at 256). Speed measured the same either way (64→64 3×3 at 32² b64: 33–38
    /// ms before and after, 2 threads). Internal so that tests can force one image per chunk.
    /// </summary>
    internal int PaddedChunkFloats { get; init; } = 1 << 18;

    /// <summary>
    /// Whether the GEMMs write full tiles into C straight from the micro-kernel's registers, with the
    /// epilogue (<see cref="IStoreC.Direct"/>): where their rows are runs in C, and on the shifted path
    /// packing a pitched grid's pixels on store. Off: every tile goes through the tile buffer and its
    /// store — the same bits, ~6 % slower on a ResNet-50 forward. Internal so that tests can check the
    /// two routes against each other.
    /// </summary>
    internal bool DirectTileStores { get; init; } = true;

    /// <summary>
    /// Whether im2col packs a "same"-size stride-1 convolution's taps as masked slices of the plane
    /// (<see cref="Im2ColB"/>), two loads a sliver row, instead of run by run. Off: the same bits; on
    /// ResNet-34 CIFAR b64 (8×8 and 4×4 layers) the forward took ~20 % longer. Internal so that tests can
    /// check the two against each other.
    /// </summary>
    internal bool LinearIm2Col { get; init; } = true;

    // x: (N, Cin, H, W) · w: (Cout, Cin/G, KH, KW) · bias: (Cout) → y: (N, Cout, OH, OW), on wide outputs:
    // x copied into PaddedPatches a chunk of images at a time, each chunk then a GEMM reading B in place
    // (ShiftedGemm.cs) — no im2col panel. Every output column is computed as without chunks (same sums).
    // weightsOf(g): group g's weights as the GEMM's A (Cout/G × Cin/G·KH·KW), packed once per constant w under `role`.
    private void ShiftedForward<TA>(in Conv2dShape s, PaddedPatches patches, DeviceBuffer w, PackRole role, Func<int, TA> weightsOf,
                                    float[] X, float[]? B, float[] Y, float[]? R, float slope) where TA : struct, IPackA
    {
        int imagesPerChunk = (int)Math.Clamp(PaddedChunkFloats / Math.Max(1L, patches.ImageLength), 1, s.N);
        long length = new PaddedPatches(s with { N = imagesPerChunk }).BufferLength;
        if (length > Array.MaxLength) throw new ArgumentException($"Convolution {s}: its padded input ({length} floats) exceeds one array.");
        if (t_padded is null || t_padded.Length < length) t_padded = GC.AllocateArray<float>((int)length, pinned: true);
        float* padded = P(t_padded);
        int m = s.CoutPerGroup, k = s.CinPerGroup * s.KH * s.KW, plane = s.H * s.W, ohw = s.OutH * s.OutW;
        // Each group's tap shifts, once for every chunk (a chunk's images sit where the first chunk's did).
        long offsetCount = (long)s.Groups * k;
        int* offsets = TapOffsetTable(offsetCount);
        for (int g = 0; g < s.Groups; g++) patches.TapOffsets(g * s.CinPerGroup, new Span<int>(offsets + (long)g * k, k));
        for (int n0 = 0; n0 < s.N; n0 += imagesPerChunk)
        {
            int images = Math.Min(imagesPerChunk, s.N - n0);
            float* x = P(X) + (long)n0 * s.Cin * plane;
            _pool.For(0, images * s.Cin, p => patches.CopyChannel(x + (long)p * plane, padded + (long)p * patches.ChannelLength));
            long outputOffset = (long)n0 * s.Cout * ohw;
            for (int g = 0; g < s.Groups; g++)
            {
                var c = new PitchedPlanesC(P(Y) + outputOffset + (long)g * m * ohw, s.OutH, s.OutW, patches.Pitch, patches.ColumnsPerImage, s.Cout * ohw,
                    B is null ? null : P(B) + g * m, slope, R is null ? null : P(R) + outputOffset + (long)g * m * ohw, DirectTileStores);
                int n = images * patches.ColumnsPerImage;
                int* groupOffsets = offsets + (long)g * k;
                var a = weightsOf(g);
                // Forward: the same packed form as the im2col path's (same A, same key).
                if (PackedWeights(w, PackKey.Of(s, role, g), m, k, a) is { } packed)
                {
                    Gemm.RunInPlaceB(_pool, m, n, k, packed.AsSource(), padded, patches.ImageLength, patches.ColumnsPerImage, groupOffsets, c);
                    GC.KeepAlive(packed);
                }
                else Gemm.RunInPlaceB(_pool, m, n, k, a, padded, patches.ImageLength, patches.ColumnsPerImage, groupOffsets, c);
            }
        }
    }

    // dy: (N, Cout, OH, OW) · w: (Cout, Cin/G, KH, KW) → dx: (N, Cin, H, W)
    public void Conv2dBackwardInput(in Conv2dShape s, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer dx)
    {
        s.Validate();
        var DY = A(dy, s.OutputLength, "conv dy"); var Wt = A(w, s.WeightLength, "conv w"); var DX = A(dx, s.InputLength, "conv dx");
        if (s.CinPerGroup == 1 && s.CoutPerGroup == 1) { Array.Clear(DX, 0, s.InputLength); DepthwiseBackward(s, DY, Wt, DX); return; }

        int ohw = s.OutH * s.OutW, khw = s.KH * s.KW;
        if (khw == 1 && s.StrideH == 1 && s.StrideW == 1 && s.PadH == 0 && s.PadW == 0)
        {
            // dx = Wᵀ · dy directly: a 1×1 stride-1 convolution's gradient is a plain GEMM.
            int m = s.CinPerGroup, k = s.CoutPerGroup, n = s.N * ohw;
            for (int g = 0; g < s.Groups; g++)
                RunWithWeights(w, PackKey.Of(s, PackRole.Transposed, g), m, n, k, new TransposedA(P(Wt) + (long)g * k * m, m),
                    new BatchedPlanesB(P(DY) + (long)g * k * ohw, ohw, s.Cout * ohw),
                    new BatchedPlanesC(P(DX) + (long)g * m * ohw, ohw, s.Cin * ohw, direct: DirectTileStores));
            return;
        }
        if (s.StrideH == 1 && s.StrideW == 1 && s.PadH < s.KH && s.PadW < s.KW)
        {
            // Stride 1: dx is the forward convolution of dy, padded by K − 1 − pad, with Wᵀ flipped — so it can
            // take the shifted path, dy read in place, where that is the faster forward.
            var f = new Conv2dShape(s.N, s.Cout, s.OutH, s.OutW, s.Cin, s.KH, s.KW, 1, 1, s.KH - 1 - s.PadH, s.KW - 1 - s.PadW, s.Groups);
            var patches = new PaddedPatches(f);
            if (_convolution switch { ConvolutionAlgorithm.Shifted => true, ConvolutionAlgorithm.Im2Col => false, _ => patches.Preferred })
            {
                // A[ci, (co, ky, kx)] = w[co, ci, KH − 1 − ky, KW − 1 − kx], within each group.
                int coutG = s.CoutPerGroup, cinG = s.CinPerGroup;
                var flip = GC.AllocateArray<int>(coutG * khw, pinned: true);
                for (int co = 0; co < coutG; co++)
                    for (int t = 0; t < khw; t++) flip[co * khw + t] = co * cinG * khw + khw - 1 - t;
                int* flipOffsets = (int*)Unsafe.AsPointer(ref flip[0]);
                ShiftedForward(f, patches, w, PackRole.FlippedTransposed, g => new GatherA(P(Wt) + (long)g * coutG * cinG * khw, khw, flipOffsets), DY, null, DX, null, float.NaN);
                GC.KeepAlive(flip);
                return;
            }
        }
        Array.Clear(DX, 0, s.InputLength); // the parity classes add into dx, and pixels no tap reaches stay 0
        // The gradient of a stride-s convolution splits into s² parity classes of input pixels
        // (iy mod s, ix mod s); each class is a stride-1 correlation of dy with the taps that reach it,
        // flipped — a GEMM with a gather of dy as B and a dense store, so no col2im scatter and no zeros
        // multiplied. Stride 1 is the single class with all taps.
        for (int ry = 0; ry < Math.Min(s.StrideH, s.H); ry++)
        for (int rx = 0; rx < Math.Min(s.StrideW, s.W); rx++)
        {
            var (tapsY, offY) = Taps(s.KH, s.StrideH, s.PadH, ry);
            var (tapsX, offX) = Taps(s.KW, s.StrideW, s.PadW, rx);
            if (tapsY.Length == 0 || tapsX.Length == 0) continue; // pixels no tap reaches: gradient 0 (already cleared)
            int gridH = (s.H - ry + s.StrideH - 1) / s.StrideH, gridW = (s.W - rx + s.StrideW - 1) / s.StrideW;
            int ty = tapsY.Length, tx = tapsX.Length;
            // Taps in reverse order make the gather a plain stride-1 im2col of dy with padding (ty − 1 − offset of the first tap).
            var patch = new PatchGeometry(s.Cout, s.OutH, s.OutW, ty, tx, 1, 1, ty - 1 - offY, tx - 1 - offX, gridH, gridW);
            int m = s.CinPerGroup, k = s.CoutPerGroup * ty * tx, n = s.N * gridH * gridW;
            var columnOffset = GC.AllocateArray<int>(k, pinned: true);
            for (int co = 0; co < s.CoutPerGroup; co++)
                for (int a = 0; a < ty; a++)
                    for (int b = 0; b < tx; b++)
                        columnOffset[(co * ty + a) * tx + b] = (co * s.CinPerGroup * s.KH + tapsY[ty - 1 - a]) * s.KW + tapsX[tx - 1 - b];
            int* offsets = (int*)Unsafe.AsPointer(ref columnOffset[0]);
            for (int g = 0; g < s.Groups; g++)
                RunWithWeights(w, PackKey.Of(s, PackRole.TransposedParity, g, ry, rx), m, n, k,
                    new GatherA(P(Wt) + (long)g * s.CoutPerGroup * s.CinPerGroup * khw, khw, offsets),
                    new Im2ColB(P(DY), patch, g * s.CoutPerGroup, LinearIm2Col),
                    new StridedPlanesC(P(DX) + (long)g * s.CinPerGroup * s.H * s.W, s.Cin, s.H, s.W, s.StrideH, s.StrideW, ry, rx, gridH, gridW));
            GC.KeepAlive(columnOffset);
        }
    }

    /// <summary>Which packing of which weights: the conv geometry (sizes that do not change the weights zeroed), role and parity.</summary>
    private readonly record struct PackKey(Conv2dShape Shape, PackRole Role, int Group, int Ry, int Rx)
    {
        // Batch and input size do not change how the weights are packed: one entry serves every input size.
        public static PackKey Of(in Conv2dShape s, PackRole role, int group, int ry = 0, int rx = 0) => new(s with { N = 1, H = 0, W = 0 }, role, group, ry, rx);
    }

    /// <summary>
    /// W as the forward GEMM's A (both forward algorithms share it), Wᵀ for a 1×1 input gradient, one parity class of
    /// Wᵀ, or Wᵀ with its taps flipped (a stride-1 input gradient on the shifted path).
    /// </summary>
    private enum PackRole { Forward, Transposed, TransposedParity, FlippedTransposed }

    // Packed forms of constant weight buffers; the table holds its keys weakly, so a disposed network's entries go with it.
    private readonly ConditionalWeakTable<DeviceBuffer, ConcurrentDictionary<PackKey, PackedMatrix>> _packedWeights = new();

    // A GEMM whose A is derived from the weights w: packed once per constant buffer, else packed on the fly.
    private void RunWithWeights<TA, TB, TC>(DeviceBuffer w, PackKey key, int m, int n, int k, TA a, TB b, TC c)
        where TA : struct, IPackA where TB : struct, IPackB where TC : struct, IStoreC
    {
        if (PackedWeights(w, key, m, k, a) is not { } packed) { Gemm.Run(_pool, m, n, k, a, b, c); return; }
        Gemm.Run(_pool, m, n, k, packed.AsSource(), b, c);
        GC.KeepAlive(packed);
    }

    // The packed form of A (derived from w) if w is constant, made on first use; null for weights that change (training).
    private PackedMatrix? PackedWeights<TA>(DeviceBuffer w, PackKey key, int m, int k, TA a) where TA : struct, IPackA
        => w.IsConstant ? _packedWeights.GetOrCreateValue(w).GetOrAdd(key, _ => PackedMatrix.Create(a, m, k)) : null;

    // Kernel taps k (ascending) that reach input pixels of parity r: (r + pad − k) divisible by the stride;
    // the first tap's output offset is (r + pad − k₀) / stride, each further tap one less.
    private static (int[] Taps, int FirstOffset) Taps(int kernel, int stride, int pad, int r)
    {
        var taps = new List<int>();
        for (int k = 0; k < kernel; k++) if (((r + pad - k) % stride + stride) % stride == 0) taps.Add(k);
        return (taps.ToArray(), taps.Count == 0 ? 0 : (r + pad - taps[0]) / stride);
    }

    // y: (N, C, HW) ← bias[c] (or 0), before the depthwise loops accumulate into it (the GEMM paths fold the bias into their store)
    private static void InitialisePlanes(float[] y, int n, int c, int hw, float[]? bias)
    {
        if (bias is null) { Array.Clear(y, 0, n * c * hw); return; }
        for (int p = 0; p < n * c; p++) y.AsSpan(p * hw, hw).Fill(bias[p % c]);
    }

    // Depthwise (one input and one output channel per group, e.g. the StyleGAN blur): direct loops per plane.
    // x: (N, C, H, W) · w: (C, 1, KH, KW) → y: (N, C, OH, OW), y pre-initialised with the bias
    private void DepthwiseForward(Conv2dShape s, float[] X, float[] Wt, float[] Y)
    {
        int oh = s.OutH, ow = s.OutW;
        _pool.For(0, s.N * s.Cout, p =>
        {
            int ch = p % s.Cout;
            var x = X.AsSpan(p * s.H * s.W, s.H * s.W); var y = Y.AsSpan(p * oh * ow, oh * ow);
            for (int ky = 0; ky < s.KH; ky++)
            for (int kx = 0; kx < s.KW; kx++)
            {
                float wv = Wt[(ch * s.KH + ky) * s.KW + kx];
                for (int oy = 0; oy < oh; oy++)
                {
                    int iy = oy * s.StrideH - s.PadH + ky;
                    if ((uint)iy >= (uint)s.H) continue;
                    var (ox0, ox1) = ValidOutputRange(ow, s.W, s.StrideW, s.PadW, kx);
                    var yRow = y.Slice(oy * ow);
                    var xRow = x.Slice(iy * s.W);
                    if (s.StrideW == 1)
                        TensorPrimitives.MultiplyAdd(xRow.Slice(ox0 - s.PadW + kx, ox1 - ox0), wv, yRow.Slice(ox0, ox1 - ox0), yRow.Slice(ox0, ox1 - ox0));
                    else
                        for (int ox = ox0; ox < ox1; ox++) yRow[ox] += wv * xRow[ox * s.StrideW - s.PadW + kx];
                }
            }
        });
    }

    // dy: (N, C, OH, OW) · w: (C, 1, KH, KW) → dx: (N, C, H, W), dx zeroed
    private void DepthwiseBackward(Conv2dShape s, float[] DY, float[] Wt, float[] DX)
    {
        int oh = s.OutH, ow = s.OutW;
        _pool.For(0, s.N * s.Cout, p =>
        {
            int ch = p % s.Cout;
            var dx = DX.AsSpan(p * s.H * s.W, s.H * s.W); var dy = DY.AsSpan(p * oh * ow, oh * ow);
            for (int ky = 0; ky < s.KH; ky++)
            for (int kx = 0; kx < s.KW; kx++)
            {
                float wv = Wt[(ch * s.KH + ky) * s.KW + kx];
                for (int oy = 0; oy < oh; oy++)
                {
                    int iy = oy * s.StrideH - s.PadH + ky;
                    if ((uint)iy >= (uint)s.H) continue;
                    var (ox0, ox1) = ValidOutputRange(ow, s.W, s.StrideW, s.PadW, kx);
                    var dyRow = dy.Slice(oy * ow); var dxRow = dx.Slice(iy * s.W);
                    if (s.StrideW == 1)
                    {
                        var target = dxRow.Slice(ox0 - s.PadW + kx, ox1 - ox0);
                        TensorPrimitives.MultiplyAdd(dyRow.Slice(ox0, ox1 - ox0), wv, target, target);
                    }
                    else
                        for (int ox = ox0; ox < ox1; ox++) dxRow[ox * s.StrideW - s.PadW + kx] += wv * dyRow[ox];
                }
            }
        });
    }

    // Output columns [ox0, ox1) whose tap kx lands inside the input row.
    private static (int, int) ValidOutputRange(int ow, int w, int stride, int pad, int kx)
    {
        int ox0 = Math.Max(0, (pad - kx + stride - 1) / stride);
        int ox1 = Math.Min(ow, (w - 1 + pad - kx) / stride + 1);
        return (ox0, Math.Max(ox0, ox1));
    }

    // ---- dense -----------------------------------------------------------------------

    // x: (N, In) · w: (Out, In) · bias: (Out) → y: (N, Out)
    public void DenseForward(int n, int inFeatures, int outFeatures, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, DeviceBuffer y)
    {
        var X = A(x, n * inFeatures, "dense x"); var Wt = A(w, inFeatures * outFeatures, "dense w");
        var B = bias is null ? null : A(bias, outFeatures, "dense bias"); var Y = A(y, n * outFeatures, "dense y");
        _pool.For(0, outFeatures, o =>
        {
            var wRow = Wt.AsSpan(o * inFeatures, inFeatures);
            for (int i = 0; i < n; i++) Y[i * outFeatures + o] = TensorPrimitives.Dot(X.AsSpan(i * inFeatures, inFeatures), wRow) + (B?[o] ?? 0f);
        });
    }

    // dy: (N, Out) · w: (Out, In) → dx: (N, In) = dy · w
    public void DenseBackwardInput(int n, int inFeatures, int outFeatures, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer dx)
    {
        var DY = A(dy, n * outFeatures, "dense dy"); var Wt = A(w, inFeatures * outFeatures, "dense w"); var DX = A(dx, n * inFeatures, "dense dx");
        const int chunk = 1024; // columns of dx per task: each task owns its slice, so no write is shared
        int chunks = (inFeatures + chunk - 1) / chunk;
        _pool.For(0, n * chunks, t =>
        {
            int i = t / chunks, k0 = t % chunks * chunk, len = Math.Min(chunk, inFeatures - k0);
            var target = DX.AsSpan(i * inFeatures + k0, len);
            target.Clear();
            for (int o = 0; o < outFeatures; o++)
            {
                float g = DY[i * outFeatures + o];
                if (g != 0) TensorPrimitives.MultiplyAdd(Wt.AsSpan(o * inFeatures + k0, len), g, target, target);
            }
        });
    }

    // ---- element-wise ------------------------------------------------------------------

    public void ChannelAffineForward(int n, int c, int hw, DeviceBuffer x, DeviceBuffer scale, DeviceBuffer shift, DeviceBuffer y)
    {
        var X = A(x, n * c * hw, "affine x"); var S = A(scale, c, "affine scale"); var T = A(shift, c, "affine shift"); var Y = A(y, n * c * hw, "affine y");
        _pool.For(0, n * c, p =>
        {
            var target = Y.AsSpan(p * hw, hw);
            TensorPrimitives.Multiply(X.AsSpan(p * hw, hw), S[p % c], target);
            TensorPrimitives.Add(target, T[p % c], target);
        });
    }

    public void ChannelAffineBackward(int n, int c, int hw, DeviceBuffer dy, DeviceBuffer scale, DeviceBuffer dx)
    {
        var DY = A(dy, n * c * hw, "affine dy"); var S = A(scale, c, "affine scale"); var DX = A(dx, n * c * hw, "affine dx");
        _pool.For(0, n * c, p => TensorPrimitives.Multiply(DY.AsSpan(p * hw, hw), S[p % c], DX.AsSpan(p * hw, hw)));
    }

    // Splits [0, count) into a few contiguous chunks (one per core, several for balance) of SIMD-friendly size.
    private void ForChunks(int count, Action<int, int> body)
    {
        const int minChunk = 1 << 15;
        int chunks = Math.Min(4 * _pool.Threads, (count + minChunk - 1) / minChunk);
        if (chunks <= 1) { body(0, count); return; }
        int size = (count + chunks - 1) / chunks;
        size = (size + 63) & ~63;
        _pool.For(0, (count + size - 1) / size, t => body(t * size, Math.Min(size, count - t * size)));
    }

    public void LeakyReluForward(int count, float slope, DeviceBuffer x, DeviceBuffer y)
    {
        var X = A(x, count, "lrelu x"); var Y = A(y, count, "lrelu y");
        ForChunks(count, (start, len) => LeakyRelu(X.AsSpan(start, len), slope, Y.AsSpan(start, len)));
    }

    // y = x > 0 ? x : slope·x, vectorised
    private static void LeakyRelu(ReadOnlySpan<float> x, float slope, Span<float> y)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(slope);
            for (; i + 16 <= x.Length; i += 16)
            {
                var v = Vector512.Create(x.Slice(i, 16));
                Vector512.ConditionalSelect(Vector512.GreaterThan(v, Vector512<float>.Zero), v, v * s).CopyTo(y.Slice(i, 16));
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(slope);
            for (; i + 8 <= x.Length; i += 8)
            {
                var v = Vector256.Create(x.Slice(i, 8));
                Vector256.ConditionalSelect(Vector256.GreaterThan(v, Vector256<float>.Zero), v, v * s).CopyTo(y.Slice(i, 8));
            }
        }
        for (; i < x.Length; i++) y[i] = x[i] > 0 ? x[i] : slope * x[i];
    }

    public void LeakyReluBackward(int count, float slope, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx)
    {
        var Y = A(y, count, "lrelu y"); var DY = A(dy, count, "lrelu dy"); var DX = A(dx, count, "lrelu dx");
        ForChunks(count, (start, len) =>
        {
            ReadOnlySpan<float> yv = Y.AsSpan(start, len), g = DY.AsSpan(start, len);
            var d = DX.AsSpan(start, len);
            int i = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                var s = Vector512.Create(slope);
                for (; i + 16 <= len; i += 16)
                {
                    var gv = Vector512.Create(g.Slice(i, 16));
                    Vector512.ConditionalSelect(Vector512.GreaterThan(Vector512.Create(yv.Slice(i, 16)), Vector512<float>.Zero), gv, gv * s).CopyTo(d.Slice(i, 16));
                }
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                var s = Vector256.Create(slope);
                for (; i + 8 <= len; i += 8)
                {
                    var gv = Vector256.Create(g.Slice(i, 8));
                    Vector256.ConditionalSelect(Vector256.GreaterThan(Vector256.Create(yv.Slice(i, 8)), Vector256<float>.Zero), gv, gv * s).CopyTo(d.Slice(i, 8));
                }
            }
            for (; i < len; i++) d[i] = yv[i] > 0 ? g[i] : slope * g[i];
        });
    }

    public void BiasLeakyReluForward(int n, int c, int hw, float slope, DeviceBuffer x, DeviceBuffer bias, DeviceBuffer y)
    {
        var X = A(x, n * c * hw, "bias-lrelu x"); var B = A(bias, c, "bias-lrelu bias"); var Y = A(y, n * c * hw, "bias-lrelu y");
        _pool.For(0, n * c, p =>
        {
            var target = Y.AsSpan(p * hw, hw);
            TensorPrimitives.Add(X.AsSpan(p * hw, hw), B[p % c], target);
            LeakyRelu(target, slope, target);
        });
    }

    public void SigmoidForward(int count, DeviceBuffer x, DeviceBuffer y) => Ref(x, y).SigmoidForward(count, x, y);
    public void SigmoidBackward(int count, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx) => Ref(y, dy, dx).SigmoidBackward(count, y, dy, dx);
    public void SoftmaxForward(int n, int k, DeviceBuffer x, DeviceBuffer y) => Ref(x, y).SoftmaxForward(n, k, x, y);
    public void SoftmaxBackward(int n, int k, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx) => Ref(y, dy, dx).SoftmaxBackward(n, k, y, dy, dx);

    // ---- pooling, resize: the reference's per-plane code, planes in parallel -----------

    public void MaxPool2dForward(in Pool2dShape s, DeviceBuffer x, DeviceBuffer y)
    {
        s.Validate();
        var X = A(x, s.InputLength, "maxpool x"); var Y = A(y, s.OutputLength, "maxpool y");
        var shape = s;
        _pool.For(0, s.N * s.C, p => MaxPoolPlane(shape, X.AsSpan(p * shape.H * shape.W, shape.H * shape.W), Y.AsSpan(p * shape.OutH * shape.OutW, shape.OutH * shape.OutW)));
    }

    // x: one (H, W) plane → y: one (OH, OW) plane. Separable: for each output row the max over the
    // window's input rows, vectorised along the whole row, then the max over each window's columns of
    // that — the scalar part runs on OH rows, not H. Padding never wins (windows are clipped to the
    // plane); a NaN wins, as in PyTorch.
    private static void MaxPoolPlane(in Pool2dShape s, ReadOnlySpan<float> x, Span<float> y)
    {
        int oh = s.OutH, ow = s.OutW;
        Span<float> column = s.W <= 4096 ? stackalloc float[s.W] : new float[s.W];
        for (int oy = 0; oy < oh; oy++)
        {
            int y0 = Math.Max(0, oy * s.StrideH - s.PadH), y1 = Math.Min(s.H, oy * s.StrideH - s.PadH + s.KH);
            x.Slice(y0 * s.W, s.W).CopyTo(column);
            for (int iy = y0 + 1; iy < y1; iy++) TensorPrimitives.Max(column, x.Slice(iy * s.W, s.W), column);
            var yr = y.Slice(oy * ow, ow);
            if (s.KW == 3 && s.StrideW == 2 && ow <= 2048) { Max3Stride2(column.Slice(0, s.W), s.PadW, yr); continue; }
            for (int ox = 0; ox < ow; ox++)
            {
                int x0 = Math.Max(0, ox * s.StrideW - s.PadW), x1 = Math.Min(s.W, ox * s.StrideW - s.PadW + s.KW);
                float m = column[x0];
                for (int ix = x0 + 1; ix < x1; ix++) { float v = column[ix]; if (v > m || float.IsNaN(v)) m = v; }
                yr[ox] = m;
            }
        }
    }

    // y[ox] = max(x[2ox − pad], x[2ox − pad + 1], x[2ox − pad + 2]) over the taps inside x — ResNet's 3×3/2 pool
    // along a row, vectorised: the even and odd taps gathered (StridedGather), padding set to −∞ so it never
    // wins, then two element-wise maxima (which keep a NaN, as PyTorch does).
    private static unsafe void Max3Stride2(ReadOnlySpan<float> x, int pad, Span<float> y)
    {
        int ow = y.Length, w = x.Length;
        Span<float> even = stackalloc float[ow + 1]; // even[c] = x[2c − pad]
        Span<float> odd = stackalloc float[ow];      // odd[c] = x[2c − pad + 1]
        fixed (float* px = x, pe = even, po = odd)
        {
            StridedGather.EveryOther(px, -pad, w, pe, ow + 1);
            StridedGather.EveryOther(px, 1 - pad, w, po, ow);
        }
        for (int c = 0; c <= ow; c++) { int ix = 2 * c - pad; if (ix >= 0) break; even[c] = float.NegativeInfinity; }
        for (int c = ow; c >= 0; c--) { int ix = 2 * c - pad; if (ix < w) break; even[c] = float.NegativeInfinity; }
        for (int c = 0; c < ow; c++) { int ix = 2 * c - pad + 1; if (ix >= 0) break; odd[c] = float.NegativeInfinity; }
        for (int c = ow - 1; c >= 0; c--) { int ix = 2 * c - pad + 1; if (ix < w) break; odd[c] = float.NegativeInfinity; }
        TensorPrimitives.Max(even.Slice(0, ow), odd, y);
        TensorPrimitives.Max(y, even.Slice(1, ow), y);
    }

    public void MaxPool2dBackward(in Pool2dShape s, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx)
    {
        s.Validate();
        var X = A(x, s.InputLength, "maxpool x"); var DY = A(dy, s.OutputLength, "maxpool dy"); var DX = A(dx, s.InputLength, "maxpool dx");
        var shape = s;
        _pool.For(0, s.N * s.C, p => ReferenceKernels.MaxPoolBackwardPlane(shape, X, DY, DX, p));
    }

    public void AvgPool2dForward(in Pool2dShape s, bool countIncludePad, DeviceBuffer x, DeviceBuffer y)
    {
        s.Validate();
        var X = A(x, s.InputLength, "avgpool x"); var Y = A(y, s.OutputLength, "avgpool y");
        var shape = s;
        _pool.For(0, s.N * s.C, p => ReferenceKernels.AvgPoolPlane(shape, countIncludePad, X, Y, p));
    }

    public void AvgPool2dBackward(in Pool2dShape s, bool countIncludePad, DeviceBuffer dy, DeviceBuffer dx)
    {
        s.Validate();
        var DY = A(dy, s.OutputLength, "avgpool dy"); var DX = A(dx, s.InputLength, "avgpool dx");
        var shape = s;
        _pool.For(0, s.N * s.C, p => ReferenceKernels.AvgPoolBackwardPlane(shape, countIncludePad, DY, DX, p));
    }

    public void AdaptiveAvgPool2dForward(int n, int c, int h, int w, int outH, int outW, DeviceBuffer x, DeviceBuffer y)
        => Ref(x, y).AdaptiveAvgPool2dForward(n, c, h, w, outH, outW, x, y);

    public void AdaptiveAvgPool2dBackward(int n, int c, int h, int w, int outH, int outW, DeviceBuffer dy, DeviceBuffer dx)
        => Ref(dy, dx).AdaptiveAvgPool2dBackward(n, c, h, w, outH, outW, dy, dx);

    public void Add(int count, DeviceBuffer a, DeviceBuffer b, DeviceBuffer y)
    {
        var Aa = A(a, count, "add a"); var B = A(b, count, "add b"); var Y = A(y, count, "add y");
        ForChunks(count, (start, len) => TensorPrimitives.Add(Aa.AsSpan(start, len), B.AsSpan(start, len), Y.AsSpan(start, len)));
    }

    public void Axpy(int count, float a, DeviceBuffer x, DeviceBuffer y)
    {
        var X = A(x, count, "axpy x"); var Y = A(y, count, "axpy y");
        ForChunks(count, (start, len) => TensorPrimitives.MultiplyAdd(X.AsSpan(start, len), a, Y.AsSpan(start, len), Y.AsSpan(start, len)));
    }

    public void CopyChannels(int n, int hw, int channels, DeviceBuffer src, int srcC, int srcChannel, DeviceBuffer dst, int dstC, int dstChannel)
        => Ref(src, dst).CopyChannels(n, hw, channels, src, srcC, srcChannel, dst, dstC, dstChannel);

    public void ResizeForward(in ResizeShape s, DeviceBuffer x, DeviceBuffer y)
    {
        s.Validate();
        var X = A(x, s.InputLength, "resize x"); var Y = A(y, s.OutputLength, "resize y");
        var shape = s;
        _pool.For(0, s.N * s.C, p => ReferenceKernels.ResizePlane(shape, X, Y, p));
    }

    public void ResizeBackward(in ResizeShape s, DeviceBuffer dy, DeviceBuffer dx)
    {
        s.Validate();
        var DY = A(dy, s.OutputLength, "resize dy"); var DX = A(dx, s.InputLength, "resize dx");
        var shape = s;
        _pool.For(0, s.N * s.C, p => ReferenceKernels.ResizeBackwardPlane(shape, DY, DX, p));
    }

    public void MinibatchStddevForward(int n, int c, int h, int w, int groupSize, float epsilon, DeviceBuffer x, DeviceBuffer y)
        => Ref(x, y).MinibatchStddevForward(n, c, h, w, groupSize, epsilon, x, y);

    public void MinibatchStddevBackward(int n, int c, int h, int w, int groupSize, float epsilon, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx)
        => Ref(x, dy, dx).MinibatchStddevBackward(n, c, h, w, groupSize, epsilon, x, dy, dx);

    public void Dispose() { }
}

/// <summary>
/// The CPU backend's forward algorithms for convolutions other than depthwise and 1×1 stride-1 ones
/// (those have their own). Both are exact GEMMs over the same packed weights; they differ in how
/// the input reaches the micro-kernel.
/// </summary>
public enum ConvolutionAlgorithm
{
    /// <summary>Per convolution, the one measured faster for its shape (<c>PaddedPatches.Preferred</c>).</summary>
    Auto,
    /// <summary>Implicit im2col: the input is gathered into packed panels, tap by tap.</summary>
    Im2Col,
    /// <summary>The input copied once, zero-padded, so that each tap is a shift read in place (<c>ShiftedGemm.cs</c>).</summary>
    Shifted,
}
