using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Reference;

namespace ModelGuardian.Tests.Kernels;

/// <summary>
/// Compares every op of the layer contract (forward and backward) of a backend with
/// <see cref="ReferenceKernels"/> on small random shapes, plus argument checking. A backend's test
/// class derives from this and says how to get the backend; the [Fact]s and [Theory]s are inherited.
///
/// Tolerances are stated per assert as a bound on max |expected − actual| relative to max |expected|:
/// 0 (bit-exact) for pure data movement and selection, 1e-6 for single multiply-adds (a GPU may fuse
/// them), 1e-5 for reductions and transcendentals (the reference accumulates in double).
/// Output buffers are pre-filled with garbage (checks that kernels overwrite) and every buffer is a
/// few floats longer than its tensor (checks that kernels take their extent from the shape).
/// </summary>
public abstract class KernelAgreementSuite : IDisposable
{
    private const double Exact = 0, Fma = 1e-6, Reduction = 1e-5;
    private const float Garbage = 123.25f;
    private const int Slack = 3;

    private readonly ReferenceKernels _reference = new();
    private IKernels? _backend;

    /// <summary>The backend under test. Called once per test; may return a shared instance.</summary>
    protected abstract IKernels CreateBackend();

    /// <summary>Whether the suite disposes the backend after each test (false for a fixture-owned backend).</summary>
    protected virtual bool DisposeBackendAfterTest => false;

    protected IKernels Backend => _backend ??= CreateBackend();

    public void Dispose()
    {
        if (DisposeBackendAfterTest) _backend?.Dispose();
        _reference.Dispose();
        GC.SuppressFinalize(this);
    }

    // ---- harness --------------------------------------------------------------------------------

    private static float[] Rnd(int count, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var a = new float[count];
        for (int i = 0; i < count; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>Values in {−1, −½, 0, ½, 1}: many ties, for max-pooling.</summary>
    private static float[] Quantized(int count, int seed) => Rnd(count, seed).Select(v => MathF.Round(v * 2) / 2).ToArray();

    private static DeviceBuffer Put(IKernels k, float[] data)
    {
        var b = k.Allocate(data.Length + Slack);
        k.Upload(data, b);
        k.Upload(new float[] { -7f, 9f, 11f }, b, data.Length); // tail beyond the tensor
        return b;
    }

    private static float[] Get(IKernels k, DeviceBuffer b, int count)
    {
        var r = new float[count];
        k.Download(b, r);
        return r;
    }

    /// <summary>Runs <paramref name="op"/> on both backends with the same inputs and compares the output.</summary>
    private void Agree(string what, double tolerance, float[][] inputs, int outLength,
        Action<IKernels, DeviceBuffer[], DeviceBuffer> op, float[]? outputInit = null)
    {
        var expected = Run(_reference, inputs, outLength, op, outputInit);
        var actual = Run(Backend, inputs, outLength, op, outputInit);
        AssertClose(expected, actual, tolerance, what);
    }

    private static float[] Run(IKernels k, float[][] inputs, int outLength, Action<IKernels, DeviceBuffer[], DeviceBuffer> op, float[]? outputInit)
    {
        var buffers = inputs.Select(a => Put(k, a)).ToArray();
        using var y = k.Allocate(outLength + Slack);
        if (outputInit is null) k.Fill(y, outLength + Slack, Garbage);
        else k.Upload(outputInit, y);
        try
        {
            op(k, buffers, y);
            var result = Get(k, y, outLength + Slack);
            // Nothing beyond the tensor may be written.
            for (int i = outLength; i < outLength + Slack; i++)
                if (result[i] != (outputInit is null ? Garbage : outputInit[i]))
                    Assert.Fail($"{k.Name} wrote beyond the tensor at {i} of {outLength}.");
            return result[..outLength];
        }
        finally
        {
            foreach (var b in buffers) b.Dispose();
        }
    }

    /// <summary>max |e − a| ≤ tolerance · max |e| (tolerance 0: bit-exact, NaN only where expected).</summary>
    protected static void AssertClose(float[] expected, float[] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = 0;
        foreach (var v in expected) if (float.IsFinite(v)) scale = Math.Max(scale, Math.Abs(v));
        double bound = tolerance * scale, worst = 0;
        int worstAt = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i], a = actual[i];
            if (e.Equals(a)) continue; // also NaN = NaN and ∞ = ∞
            double err = !float.IsFinite(e) || !float.IsFinite(a) ? double.PositiveInfinity : Math.Abs((double)e - a);
            if (err > worst) { worst = err; worstAt = i; }
        }
        if (worstAt >= 0 && worst > bound)
            Assert.Fail($"{what}: max |Δ| = {worst:G4} at [{worstAt}] (expected {expected[worstAt]:G9}, got {actual[worstAt]:G9}) " +
                        $"exceeds tolerance {tolerance:G3} × max|expected| {scale:G4} = {bound:G4}.");
    }

    // ---- convolution ----------------------------------------------------------------------------

    public static IEnumerable<object[]> ConvCases => new int[][]
    {
        // N, Cin, H, W, Cout, KH, KW, SH, SW, PH, PW, G
        [1, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1, 1],   // 3×3 same, odd sizes
        [3, 4, 9, 8, 6, 3, 3, 2, 2, 1, 1, 2],   // stride 2, groups 2, batch 3
        [1, 4, 6, 7, 4, 3, 3, 1, 1, 1, 1, 4],   // depthwise
        [2, 2, 11, 9, 3, 7, 7, 2, 2, 3, 3, 1],  // ResNet stem 7×7 / 2, pad 3
        [1, 3, 5, 5, 5, 1, 1, 1, 1, 0, 0, 1],   // 1×1
        [3, 2, 9, 9, 2, 4, 4, 2, 2, 1, 1, 1],   // 4×4 / 2
        [1, 2, 8, 6, 3, 3, 1, 2, 1, 1, 0, 1],   // rectangular kernel, mixed stride
        [1, 6, 5, 5, 3, 3, 3, 1, 1, 0, 0, 3],   // groups 3, one output channel per group, pad 0
        [1, 1, 3, 3, 2, 3, 3, 2, 2, 1, 1, 1],   // tiny image, kernel overhangs both sides
        [2, 40, 20, 19, 70, 3, 3, 1, 1, 1, 1, 1],   // K = 360: two depth chunks; M = 70: a 10-row last tile; 2 images of 20×19
        [3, 5, 17, 18, 13, 3, 3, 2, 2, 1, 1, 1],    // stride 2 on odd and even sides, 3 images
        [1, 3, 50, 49, 64, 7, 7, 2, 2, 3, 3, 1],    // a stem 7×7 / 2 wide enough for the shifted layout under Auto
        [2, 8, 21, 20, 16, 1, 1, 2, 2, 0, 0, 1],    // 1×1 / 2, ResNet's down-sampling shortcut
    }.Select(c => c.Cast<object>().ToArray());

    private static Conv2dShape Conv(int n, int cin, int h, int w, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int g)
        => new(n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, g);

    [Theory, MemberData(nameof(ConvCases))]
    public void Conv2dForwardAgrees(int n, int cin, int h, int w, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int g)
    {
        var s = Conv(n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, g);
        var x = Rnd(s.InputLength, 1); var wt = Rnd(s.WeightLength, 2); var bias = Rnd(cout, 3);
        Agree($"conv fwd {s} + bias (rel 1e-5)", Reduction, [x, wt, bias], s.OutputLength,
            (k, b, y) => k.Conv2dForward(s, b[0], b[1], b[2], y));
        Agree($"conv fwd {s} no bias (rel 1e-5)", Reduction, [x, wt], s.OutputLength,
            (k, b, y) => k.Conv2dForward(s, b[0], b[1], null, y));
    }

    [Theory, MemberData(nameof(ConvCases))]
    public void Conv2dBackwardInputAgrees(int n, int cin, int h, int w, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int g)
    {
        var s = Conv(n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, g);
        Agree($"conv bwd {s} (rel 1e-5)", Reduction, [Rnd(s.OutputLength, 4), Rnd(s.WeightLength, 5)], s.InputLength,
            (k, b, dx) => k.Conv2dBackwardInput(s, b[0], b[1], dx));
    }

    // ---- dense ---------------------------------------------------------------------------------

    [Theory]
    [InlineData(1, 7, 5)]
    [InlineData(3, 16, 10)]
    [InlineData(2, 1, 1)]
    public void DenseAgrees(int n, int inF, int outF)
    {
        var x = Rnd(n * inF, 6); var w = Rnd(inF * outF, 7); var bias = Rnd(outF, 8);
        Agree("dense fwd + bias (rel 1e-5)", Reduction, [x, w, bias], n * outF, (k, b, y) => k.DenseForward(n, inF, outF, b[0], b[1], b[2], y));
        Agree("dense fwd no bias (rel 1e-5)", Reduction, [x, w], n * outF, (k, b, y) => k.DenseForward(n, inF, outF, b[0], b[1], null, y));
        Agree("dense bwd (rel 1e-5)", Reduction, [Rnd(n * outF, 9), w], n * inF, (k, b, dx) => k.DenseBackwardInput(n, inF, outF, b[0], b[1], dx));
    }

    // ---- affine and activations ------------------------------------------------------------------

    [Fact]
    public void ChannelAffineAgrees()
    {
        const int n = 3, c = 5, hw = 7;
        var scale = Rnd(c, 11); var shift = Rnd(c, 12);
        Agree("affine fwd (rel 1e-6)", Fma, [Rnd(n * c * hw, 10), scale, shift], n * c * hw,
            (k, b, y) => k.ChannelAffineForward(n, c, hw, b[0], b[1], b[2], y));
        Agree("affine bwd (exact)", Exact, [Rnd(n * c * hw, 13), scale], n * c * hw,
            (k, b, dx) => k.ChannelAffineBackward(n, c, hw, b[0], b[1], dx));
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(0.2f)]
    public void LeakyReluAgrees(float slope)
    {
        const int count = 37;
        var x = Rnd(count, 14);
        x[3] = 0f; x[4] = -0f;
        Agree($"lrelu({slope}) fwd (exact)", Exact, [x], count, (k, b, y) => k.LeakyReluForward(count, slope, b[0], y));
        var y = x.Select(v => v > 0 ? v : slope * v).ToArray();
        Agree($"lrelu({slope}) bwd (exact)", Exact, [y, Rnd(count, 15)], count, (k, b, dx) => k.LeakyReluBackward(count, slope, b[0], b[1], dx));
        // In place: x == y forward, dy == dx backward.
        Agree($"lrelu({slope}) fwd in place (exact)", Exact, [], count, (k, b, io) => k.LeakyReluForward(count, slope, io, io), x.Concat(new float[Slack]).ToArray());
        var dy = Rnd(count, 16);
        Agree($"lrelu({slope}) bwd in place (exact)", Exact, [y], count, (k, b, io) => k.LeakyReluBackward(count, slope, b[0], io, io), dy.Concat(new float[Slack]).ToArray());
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(0.2f)]
    public void BiasLeakyReluAgrees(float slope)
    {
        const int n = 3, c = 4, hw = 5;
        Agree($"bias-lrelu({slope}) (exact)", Exact, [Rnd(n * c * hw, 17), Rnd(c, 18)], n * c * hw,
            (k, b, y) => k.BiasLeakyReluForward(n, c, hw, slope, b[0], b[1], y));
    }

    [Fact]
    public void SigmoidAgrees()
    {
        const int count = 41;
        var x = Rnd(count, 19, 8f);
        Agree("sigmoid fwd (rel 1e-5)", Reduction, [x], count, (k, b, y) => k.SigmoidForward(count, b[0], y));
        var y = x.Select(v => (float)(1 / (1 + Math.Exp(-v)))).ToArray();
        Agree("sigmoid bwd (rel 1e-6)", Fma, [y, Rnd(count, 20)], count, (k, b, dx) => k.SigmoidBackward(count, b[0], b[1], dx));
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 10)]
    [InlineData(2, 33)]
    public void SoftmaxAgrees(int n, int kk)
    {
        var x = Rnd(n * kk, 21, 5f);
        Agree("softmax fwd (rel 1e-5)", Reduction, [x], n * kk, (k, b, y) => k.SoftmaxForward(n, kk, b[0], y));
        var y = new float[n * kk];
        using (var r = new ReferenceKernels())
        {
            using var bx = Put(r, x); using var by = r.Allocate(n * kk);
            r.SoftmaxForward(n, kk, bx, by);
            r.Download(by, y);
        }
        Agree("softmax bwd (rel 1e-5)", Reduction, [y, Rnd(n * kk, 22)], n * kk, (k, b, dx) => k.SoftmaxBackward(n, kk, b[0], b[1], dx));
    }

    // ---- pooling ---------------------------------------------------------------------------------

    public static IEnumerable<object[]> PoolCases => new int[][]
    {
        // N, C, H, W, KH, KW, SH, SW, PH, PW
        [2, 3, 7, 7, 3, 3, 2, 2, 1, 1],  // ResNet max-pool 3×3 / 2, pad 1
        [1, 2, 6, 5, 2, 2, 2, 2, 0, 0],  // 2×2 / 2, odd width
        [1, 2, 5, 6, 3, 3, 1, 1, 1, 1],  // 3×3 / 1, pad 1 (overlapping windows)
        [3, 1, 8, 7, 3, 2, 2, 1, 1, 1],  // rectangular window and stride
        [1, 1, 6, 6, 4, 4, 3, 3, 2, 2],  // pad = k / 2, windows reaching into the far padding
        [1, 2, 4, 4, 4, 4, 4, 4, 0, 0],  // one window = whole image
        [1, 2, 6, 40, 3, 3, 2, 2, 1, 1], // 3×3 / 2 rows wide enough for the CPU backend's vector path, even width
        [2, 1, 5, 37, 3, 3, 2, 2, 0, 0], // the same without padding, odd width
    }.Select(c => c.Cast<object>().ToArray());

    private static Pool2dShape Pool(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw) => new(n, c, h, w, kh, kw, sh, sw, ph, pw);

    [Theory, MemberData(nameof(PoolCases))]
    public void MaxPoolAgrees(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw)
    {
        var s = Pool(n, c, h, w, kh, kw, sh, sw, ph, pw);
        var dy = Rnd(s.OutputLength, 24);
        foreach (var (x, what) in new[]
                 {
                     (Quantized(s.InputLength, 23), "ties"),
                     (Rnd(s.InputLength, 25).Select(v => -2 - MathF.Abs(v)).ToArray(), "all negative (padding never wins)"),
                 })
        {
            Agree($"maxpool fwd {s} {what} (exact)", Exact, [x], s.OutputLength, (k, b, y) => k.MaxPool2dForward(s, b[0], y));
            Agree($"maxpool bwd {s} {what} (rel 1e-6)", Fma, [x, dy], s.InputLength, (k, b, dx) => k.MaxPool2dBackward(s, b[0], b[1], dx));
        }
    }

    [Theory, MemberData(nameof(PoolCases))]
    public void AvgPoolAgrees(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw)
    {
        var s = Pool(n, c, h, w, kh, kw, sh, sw, ph, pw);
        var x = Rnd(s.InputLength, 26); var dy = Rnd(s.OutputLength, 27);
        foreach (bool include in new[] { true, false })
        {
            Agree($"avgpool fwd {s} countIncludePad={include} (rel 1e-5)", Reduction, [x], s.OutputLength,
                (k, b, y) => k.AvgPool2dForward(s, include, b[0], y));
            Agree($"avgpool bwd {s} countIncludePad={include} (rel 1e-5)", Reduction, [dy], s.InputLength,
                (k, b, dx) => k.AvgPool2dBackward(s, include, b[0], dx));
        }
    }

    [Theory]
    [InlineData(2, 3, 7, 7, 1, 1)]   // global average pool
    [InlineData(1, 2, 7, 5, 3, 2)]   // non-dividing
    [InlineData(1, 2, 5, 4, 3, 3)]   // non-dividing, overlapping bins
    [InlineData(1, 1, 3, 2, 5, 4)]   // output larger than input
    [InlineData(3, 2, 6, 6, 2, 3)]   // dividing
    public void AdaptiveAvgPoolAgrees(int n, int c, int h, int w, int oh, int ow)
    {
        Agree($"adaptive fwd {h}×{w}→{oh}×{ow} (rel 1e-5)", Reduction, [Rnd(n * c * h * w, 28)], n * c * oh * ow,
            (k, b, y) => k.AdaptiveAvgPool2dForward(n, c, h, w, oh, ow, b[0], y));
        Agree($"adaptive bwd {h}×{w}→{oh}×{ow} (rel 1e-5)", Reduction, [Rnd(n * c * oh * ow, 29)], n * c * h * w,
            (k, b, dx) => k.AdaptiveAvgPool2dBackward(n, c, h, w, oh, ow, b[0], dx));
    }

    // ---- resize ----------------------------------------------------------------------------------

    [Theory]
    [InlineData(1, 2, 4, 5, 8, 10)]  // ×2 up
    [InlineData(2, 1, 7, 5, 3, 4)]   // down, non-integer factors
    [InlineData(1, 2, 5, 5, 7, 3)]   // up in y, down in x
    [InlineData(1, 1, 3, 3, 9, 9)]   // ×3 up
    [InlineData(1, 1, 8, 6, 3, 5)]   // down
    [InlineData(1, 1, 4, 4, 4, 4)]   // identity
    [InlineData(1, 1, 1, 1, 3, 2)]   // from a single pixel
    [InlineData(1, 1, 16, 12, 4, 3)] // ×¼ down
    public void ResizeAgrees(int n, int c, int h, int w, int oh, int ow)
    {
        foreach (var mode in new[] { ResizeMode.Nearest, ResizeMode.Bilinear })
        {
            var s = new ResizeShape(n, c, h, w, oh, ow, mode);
            Agree($"resize fwd {s} ({(mode == ResizeMode.Nearest ? "exact" : "rel 1e-5")})", mode == ResizeMode.Nearest ? Exact : Reduction,
                [Rnd(s.InputLength, 30)], s.OutputLength, (k, b, y) => k.ResizeForward(s, b[0], y));
            Agree($"resize bwd {s} (rel 1e-5)", Reduction, [Rnd(s.OutputLength, 31)], s.InputLength,
                (k, b, dx) => k.ResizeBackward(s, b[0], dx));
        }
    }

    // ---- minibatch stddev ------------------------------------------------------------------------

    [Theory]
    [InlineData(4, 3, 3, 2, 1)]
    [InlineData(4, 3, 3, 2, 2)]
    [InlineData(4, 3, 3, 2, 4)]
    [InlineData(6, 2, 2, 3, 3)]
    [InlineData(1, 2, 1, 1, 1)]
    public void MinibatchStddevAgrees(int n, int c, int h, int w, int group)
    {
        const float eps = 1e-8f;
        var x = Rnd(n * c * h * w, 32);
        Agree($"mbstd fwd N={n} G={group} (rel 1e-5)", Reduction, [x], n * (c + 1) * h * w,
            (k, b, y) => k.MinibatchStddevForward(n, c, h, w, group, eps, b[0], y));
        Agree($"mbstd bwd N={n} G={group} (rel 1e-5)", Reduction, [x, Rnd(n * (c + 1) * h * w, 33)], n * c * h * w,
            (k, b, dx) => k.MinibatchStddevBackward(n, c, h, w, group, eps, b[0], b[1], dx));
    }

    // ---- element-wise and layout -------------------------------------------------------------------

    [Fact]
    public void AddAgrees()
    {
        const int count = 29;
        var a = Rnd(count, 34); var bb = Rnd(count, 35);
        Agree("add (exact)", Exact, [a, bb], count, (k, b, y) => k.Add(count, b[0], b[1], y));
        Agree("add y = a (exact)", Exact, [bb], count, (k, b, io) => k.Add(count, io, b[0], io), a.Concat(new float[Slack]).ToArray());
        Agree("add y = b (exact)", Exact, [a], count, (k, b, io) => k.Add(count, b[0], io, io), bb.Concat(new float[Slack]).ToArray());
    }

    [Fact]
    public void AxpyAgrees()
    {
        const int count = 31;
        Agree("axpy (rel 1e-6)", Fma, [Rnd(count, 36)], count, (k, b, y) => k.Axpy(count, -0.75f, b[0], y),
            Rnd(count + Slack, 37));
    }

    [Fact]
    public void CopyChannelsAgrees()
    {
        const int n = 2, hw = 6;
        Agree("copy channels (exact)", Exact, [Rnd(n * 5 * hw, 38)], n * 7 * hw,
            (k, b, dst) => k.CopyChannels(n, hw, 3, b[0], 5, 1, dst, 7, 4));
        // Within one buffer, overlapping ranges: behaves like a memmove of each image's block.
        Agree("copy channels in place (exact)", Exact, [], n * 5 * hw,
            (k, b, io) => k.CopyChannels(n, hw, 3, io, 5, 0, io, 5, 1), Rnd(n * 5 * hw + Slack, 39));
    }

    [Fact]
    public void FillAgrees()
    {
        Agree("fill prefix (exact)", Exact, [], 20, (k, b, y) => k.Fill(y, 13, -2.5f), Rnd(20 + Slack, 40));
        Agree("fill zero count (exact)", Exact, [], 5, (k, b, y) => k.Fill(y, 0, 1f), Rnd(5 + Slack, 41));
    }

    [Fact]
    public void AllocateIsZeroFilledAndUploadDownloadHonourOffsets()
    {
        var k = Backend;
        using var b = k.Allocate(20);
        Assert.Equal(20, b.Length);
        Assert.Same(k, b.Owner);
        Assert.All(Get(k, b, 20), v => Assert.Equal(0f, v));
        var data = Rnd(7, 42);
        k.Upload(data, b, 5);
        var back = new float[10];
        k.Download(b, back, 3);
        var expected = new float[10];
        Array.Copy(data, 0, expected, 2, 7);
        AssertClose(expected, back, Exact, "upload at 5, download from 3 (exact)");
        k.Upload(data, b, 13); // ends exactly at the end
        var tail = new float[7];
        k.Download(b, tail, 13);
        AssertClose(data, tail, Exact, "upload/download at the end (exact)");
        k.Upload(ReadOnlySpan<float>.Empty, b, 20);
        k.Download(b, Span<float>.Empty, 20);
        using var empty = k.Allocate(0);
        Assert.Equal(0, empty.Length);
    }

    [Fact]
    public void ConcurrentCallsAgree()
    {
        var s = Conv2dShape.Square(1, 3, 6, 6, 4, 3, 1, 1);
        var w = Rnd(s.WeightLength, 43);
        Parallel.For(0, 6, new ParallelOptions { MaxDegreeOfParallelism = 3 }, i =>
        {
            var x = Rnd(s.InputLength, 100 + i);
            Agree($"concurrent conv #{i} (rel 1e-5)", Reduction, [x, w], s.OutputLength, (k, b, y) => k.Conv2dForward(s, b[0], b[1], null, y));
        });
    }

    // ---- argument checking ---------------------------------------------------------------------------

    [Fact]
    public void WrongBufferLengthIsRejected()
    {
        var k = Backend;
        var s = Conv2dShape.Square(1, 2, 5, 5, 3, 3, 1, 1);
        using var x = k.Allocate(s.InputLength - 1);
        using var w = k.Allocate(s.WeightLength);
        using var y = k.Allocate(s.OutputLength);
        using var big = k.Allocate(s.InputLength);
        Assert.ThrowsAny<ArgumentException>(() => k.Conv2dForward(s, x, w, null, y));
        using var shortY = k.Allocate(s.OutputLength - 1);
        Assert.ThrowsAny<ArgumentException>(() => k.Conv2dForward(s, big, w, null, shortY));
        Assert.ThrowsAny<ArgumentException>(() => k.Conv2dBackwardInput(s, y, w, x));
        Assert.ThrowsAny<ArgumentException>(() => k.Add(s.InputLength, x, big, big));
        Assert.ThrowsAny<ArgumentException>(() => k.Upload(new float[4], x, s.InputLength - 3));
        Assert.ThrowsAny<ArgumentException>(() => k.Download(x, new float[4], s.InputLength - 3));
        Assert.ThrowsAny<ArgumentException>(() => k.Fill(x, s.InputLength, 0f));
        using var twenty = k.Allocate(20);
        Assert.ThrowsAny<ArgumentException>(() => k.MinibatchStddevForward(2, 2, 2, 2, 2, 1e-8f, big, twenty)); // y needs 24
        Assert.ThrowsAny<ArgumentException>(() => k.CopyChannels(2, 4, 1, twenty, 3, 0, big, 3, 0));          // src needs 24
        Assert.ThrowsAny<ArgumentException>(() => k.DenseForward(2, 5, 5, big, twenty, null, big));            // w needs 25

    }

    [Fact]
    public void ForeignBufferIsRejected()
    {
        var k = Backend;
        using var foreign = new ForeignBuffer(_reference, 64);
        using var own = k.Allocate(64);
        Assert.ThrowsAny<ArgumentException>(() => k.Add(8, foreign, own, own));
        Assert.ThrowsAny<ArgumentException>(() => k.Upload(new float[4], foreign));
    }

    [Fact]
    public void DisposedBufferIsRejected()
    {
        var k = Backend;
        var dead = k.Allocate(16);
        dead.Dispose();
        dead.Dispose(); // idempotent
        Assert.True(dead.IsDisposed);
        using var live = k.Allocate(16);
        Assert.Throws<ObjectDisposedException>(() => k.Upload(new float[4], dead));
        Assert.Throws<ObjectDisposedException>(() => k.Download(dead, new float[4]));
        Assert.Throws<ObjectDisposedException>(() => k.Add(16, live, dead, live));
        Assert.Throws<ObjectDisposedException>(() => k.LeakyReluForward(16, 0f, live, dead));
        Assert.Throws<ObjectDisposedException>(() => k.Conv2dForward(Conv2dShape.Square(1, 1, 4, 4, 1, 1), live, live, null, dead));
    }

    [Fact]
    public void InvalidShapesAreRejected()
    {
        var k = Backend;
        using var b = k.Allocate(4096);
        Assert.ThrowsAny<ArgumentException>(() => k.Conv2dForward(Conv2dShape.Square(1, 3, 5, 5, 4, 3, groups: 2), b, b, null, b)); // groups ∤ Cin
        Assert.ThrowsAny<ArgumentException>(() => k.Conv2dForward(Conv2dShape.Square(1, 2, 2, 2, 2, 5), b, b, null, b));           // kernel > input
        Assert.ThrowsAny<ArgumentException>(() => k.Conv2dBackwardInput(Conv2dShape.Square(1, 2, 5, 5, 2, 3, pad: -1), b, b, b));  // negative padding
        Assert.ThrowsAny<ArgumentException>(() => k.MaxPool2dForward(Pool2dShape.Square(1, 1, 6, 6, 3, 2, pad: 2), b, b));        // pad > k/2
        Assert.ThrowsAny<ArgumentException>(() => k.AvgPool2dBackward(Pool2dShape.Square(1, 0, 6, 6, 2, 2), true, b, b));          // C = 0
        Assert.ThrowsAny<ArgumentException>(() => k.ResizeForward(new ResizeShape(1, 1, 4, 4, 0, 4, ResizeMode.Bilinear), b, b)); // empty output
        Assert.ThrowsAny<ArgumentException>(() => k.MinibatchStddevForward(4, 2, 2, 2, 3, 1e-8f, b, b));                          // 3 ∤ 4
        Assert.ThrowsAny<ArgumentException>(() => k.MinibatchStddevBackward(4, 2, 2, 2, 0, 1e-8f, b, b, b));                      // group 0
        Assert.ThrowsAny<ArgumentException>(() => k.CopyChannels(1, 4, 3, b, 4, 2, b, 8, 0));                                    // src range
        Assert.ThrowsAny<ArgumentException>(() => k.Fill(b, -1, 0f));                                                             // negative count
    }

    /// <summary>A buffer of no real backend: every backend must refuse it.</summary>
    private sealed class ForeignBuffer(IKernels owner, int length) : DeviceBuffer(owner, length)
    {
        protected override void Release() { }
    }
}
