using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Kernels.Ilgpu;
using ModelGuardian.Kernels.Reference;
using ModelGuardian.Tests.Kernels;
using ModelGuardian.Tests.Oracle;
using T = System.Collections.Generic.Dictionary<string, (int[] Shape, float[] Data)>;

namespace ModelGuardian.Tests.Layers;

/// <summary>
/// The training kernels — weight and bias gradients of conv and dense layers, batch-norm in training
/// mode (output, input/γ/β gradients, running statistics), SGD and Adam steps — against PyTorch 1.13
/// (fp32) on random shapes, one abstract suite per backend. Tolerance 1e-5 of each tensor's max-abs,
/// 1e-4 for weight gradients, which sum over a whole batch (thousands of terms in fp32).
/// </summary>
public abstract class TrainingOracleSuite(TorchOracle oracle) : IDisposable
{
    private const double Tolerance = 1e-5, SumTolerance = 1e-4;
    protected abstract IKernels CreateKernels();
    protected virtual bool DisposeKernels => true;
    private IKernels? _kernels;
    protected IKernels K => _kernels ??= CreateKernels();

    public void Dispose()
    {
        if (DisposeKernels) _kernels?.Dispose();
        GC.SuppressFinalize(this);
    }

    private DeviceBuffer Up(float[] data) { var b = K.Allocate(data.Length); K.Upload(data, b); return b; }
    private float[] Down(DeviceBuffer b, int n) { var r = new float[n]; K.Download(b, r); return r; }

    public static TheoryData<int, int, int, int, int, int, int, int, int, bool> ConvCases => new()
    {
        // n, cin, h, w, cout, k, stride, pad, groups, bias
        { 2, 3, 9, 7, 5, 3, 1, 1, 1, true },
        { 3, 4, 10, 9, 6, 3, 2, 1, 1, false },
        { 2, 3, 12, 11, 4, 7, 2, 3, 1, true },
        { 2, 6, 6, 5, 6, 1, 1, 0, 1, true },
        { 2, 4, 8, 8, 6, 3, 1, 1, 2, true },
        { 2, 4, 7, 9, 4, 3, 1, 1, 4, false }, // depthwise
        // Stride 1, one group, ≥ 16 input channels: the CPU backend's tap-by-tap weight gradient — row tiles
        // of output channels with a short last one, 32-column slivers of input channels with a short last
        // one, several 256-deep chunks of pixels, 1×1 and 5×5 taps, no padding.
        { 3, 40, 7, 6, 14, 3, 1, 1, 1, true },
        { 2, 16, 5, 5, 26, 1, 1, 0, 1, false },
        { 2, 17, 6, 8, 5, 5, 1, 2, 1, true },
        { 2, 20, 6, 6, 8, 3, 1, 0, 1, false },
    };

    [Theory, MemberData(nameof(ConvCases))]
    public void Conv2dParameterGradients(int n, int cin, int h, int w, int cout, int k, int stride, int pad, int groups, bool bias)
    {
        var s = Conv2dShape.Square(n, cin, h, w, cout, k, stride, pad, groups);
        var x = TestUtil.Random(s.InputLength, 1);
        var wt = TestUtil.Random(s.WeightLength, 2, 0.5f);
        var g = TestUtil.Random(s.OutputLength, 3);
        var inputs = new T { ["x"] = ([n, cin, h, w], x), ["w"] = ([cout, cin / groups, k, k], wt), ["g"] = ([s.OutputLength], g) };
        if (bias) inputs["b"] = ([cout], TestUtil.Random(cout, 4));
        var expected = oracle.Run("param_grads", new
        {
            kind = "conv2d", stride = new[] { stride, stride }, padding = new[] { pad, pad }, groups,
            @params = bias ? new[] { "w", "b" } : ["w"],
        }, inputs);
        using var X = Up(x);
        using var DY = Up(g);
        using var DW = K.Allocate(s.WeightLength);
        using var DB = K.Allocate(cout);
        K.Fill(DW, s.WeightLength, 77f); // overwritten, not accumulated
        K.Conv2dBackwardWeight(s, X, DY, DW, bias ? DB : null);
        TestUtil.AssertClose(expected["dw"].Data, Down(DW, s.WeightLength), SumTolerance, $"conv {s} dw");
        if (bias) TestUtil.AssertClose(expected["db"].Data, Down(DB, cout), SumTolerance, $"conv {s} db");
    }

    [Theory]
    [InlineData(1, 7, 5)]
    [InlineData(6, 33, 10)]
    [InlineData(16, 64, 1)]
    public void DenseParameterGradients(int n, int inF, int outF)
    {
        var x = TestUtil.Random(n * inF, 5);
        var g = TestUtil.Random(n * outF, 6);
        var expected = oracle.Run("param_grads", new { kind = "linear", @params = new[] { "w", "b" } }, new T
        {
            ["x"] = ([n, inF], x), ["w"] = ([outF, inF], TestUtil.Random(outF * inF, 7)), ["b"] = ([outF], TestUtil.Random(outF, 8)), ["g"] = ([n * outF], g),
        });
        using var X = Up(x);
        using var DY = Up(g);
        using var DW = K.Allocate(inF * outF);
        using var DB = K.Allocate(outF);
        K.DenseBackwardWeight(n, inF, outF, X, DY, DW, DB);
        TestUtil.AssertClose(expected["dw"].Data, Down(DW, inF * outF), SumTolerance, "dense dw");
        TestUtil.AssertClose(expected["db"].Data, Down(DB, outF), SumTolerance, "dense db");
    }

    /// <summary>StyleGAN's bias after the pool: y = lrelu(x + b); db = Σ_{n,p} dy·lrelu'(y) — LeakyReluBackward, then ChannelSum, as TrainBiasLeakyRelu runs them.</summary>
    [Theory]
    [InlineData(2, 5, 4, 4)]
    [InlineData(3, 7, 1, 1)]
    [InlineData(4, 3, 9, 6)]
    public void BiasGradientAfterLeakyRelu(int n, int c, int h, int w)
    {
        int count = n * c * h * w, hw = h * w;
        var x = TestUtil.Random(count, 20);
        var b = TestUtil.Random(c, 21);
        var g = TestUtil.Random(count, 22);
        var expected = oracle.Run("param_grads", new { kind = "bias_leaky_relu", slope = 0.2, @params = new[] { "b" } }, new T
        {
            ["x"] = ([n, c, h, w], x), ["b"] = ([c], b), ["g"] = ([count], g),
        });
        using var X = Up(x);
        using var B = Up(b);
        using var Y = K.Allocate(count);
        using var DY = Up(g);
        using var S = K.Allocate(c);
        K.Fill(S, c, 77f); // overwritten, not accumulated
        K.BiasLeakyReluForward(n, c, hw, 0.2f, X, B, Y);
        K.LeakyReluBackward(count, 0.2f, Y, DY, DY);
        K.ChannelSum(n, c, hw, DY, S);
        TestUtil.AssertClose(expected["dx"].Data, Down(DY, count), Tolerance, "bias-lrelu dx");
        TestUtil.AssertClose(expected["db"].Data, Down(S, c), SumTolerance, "bias-lrelu db (channel sum)");
    }

    [Theory]
    [InlineData(2, 3, 5, 4)]
    [InlineData(4, 6, 7, 7)]
    [InlineData(8, 5, 1, 1)] // after global pooling: statistics over the batch only
    public void BatchNormInTrainingMode(int n, int c, int h, int w)
    {
        int count = n * c * h * w, hw = h * w;
        var x = TestUtil.Random(count, 9, 2f).Select(v => v + 0.5f).ToArray();
        var gamma = TestUtil.Random(c, 10).Select(v => 1 + 0.5f * v).ToArray();
        var beta = TestUtil.Random(c, 11);
        var rm = TestUtil.Random(c, 12);
        var rv = TestUtil.Random(c, 13).Select(v => 1 + 0.5f * v).ToArray();
        var g = TestUtil.Random(count, 14);
        const float eps = 1e-5f, momentum = 0.1f;
        var expected = oracle.Run("param_grads", new { kind = "batch_norm_train", eps, momentum, @params = new[] { "w", "b" } }, new T
        {
            ["x"] = ([n, c, h, w], x), ["w"] = ([c], gamma), ["b"] = ([c], beta), ["running_mean"] = ([c], rm), ["running_var"] = ([c], rv), ["g"] = ([count], g),
        });
        using var X = Up(x);
        using var G = Up(gamma);
        using var B = Up(beta);
        using var RM = Up(rm);
        using var RV = Up(rv);
        using var SM = K.Allocate(c);
        using var SI = K.Allocate(c);
        using var Y = K.Allocate(count);
        K.BatchNormTrainForward(n, c, hw, eps, momentum, X, G, B, RM, RV, SM, SI, Y);
        TestUtil.AssertClose(expected["y"].Data, Down(Y, count), Tolerance, "bn y");
        TestUtil.AssertClose(expected["running_mean"].Data, Down(RM, c), Tolerance, "bn running mean");
        TestUtil.AssertClose(expected["running_var"].Data, Down(RV, c), Tolerance, "bn running var");
        using var DY = Up(g);
        using var DX = K.Allocate(count);
        using var DG = K.Allocate(c);
        using var DB = K.Allocate(c);
        K.BatchNormTrainBackward(n, c, hw, X, DY, G, SM, SI, DX, DG, DB);
        TestUtil.AssertClose(expected["dx"].Data, Down(DX, count), SumTolerance, "bn dx");
        TestUtil.AssertClose(expected["dw"].Data, Down(DG, c), SumTolerance, "bn dgamma");
        TestUtil.AssertClose(expected["db"].Data, Down(DB, c), SumTolerance, "bn dbeta");
    }

    /// <summary>
    /// A channel whose mean is a thousand times its spread (what a ReLU'd feature map with a large bias gives): y against
    /// PyTorch in float64 within 1e-5 of its max-abs. Computing y as x·scale + (β − μ·scale), or μ as a float sum of the
    /// values, loses σ's digits there (6e-5 measured).
    /// </summary>
    [Fact]
    public void BatchNormKeepsItsPrecisionWhenTheMeanDwarfsTheSpread()
    {
        const int n = 4, c = 8, hw = 16, count = n * c * hw;
        var x = TestUtil.Random(count, 21).Select(v => 3f + 0.003f * v).ToArray();
        var gamma = TestUtil.Random(c, 22).Select(v => 1 + 0.5f * v).ToArray();
        var beta = TestUtil.Random(c, 23);
        const float eps = 1e-5f, momentum = 0.1f;
        var expected = oracle.Run("param_grads", new { kind = "batch_norm_train", eps, momentum, @params = new[] { "w", "b" } }, new T
        {
            ["x"] = ([n, c, 4, 4], x), ["w"] = ([c], gamma), ["b"] = ([c], beta), ["running_mean"] = ([c], new float[c]),
            ["running_var"] = ([c], Enumerable.Repeat(1f, c).ToArray()), ["g"] = ([count], TestUtil.Random(count, 24)),
        }, float64: true);
        using var X = Up(x);
        using var G = Up(gamma);
        using var B = Up(beta);
        using var RM = Up(new float[c]);
        using var RV = Up(Enumerable.Repeat(1f, c).ToArray());
        using var SM = K.Allocate(c);
        using var SI = K.Allocate(c);
        using var Y = K.Allocate(count);
        K.BatchNormTrainForward(n, c, hw, eps, momentum, X, G, B, RM, RV, SM, SI, Y);
        TestUtil.AssertClose(expected["y"].Data, Down(Y, count), 1e-5, "bn y, mean ≫ spread");
    }

    [Theory]
    [InlineData("sgd", 0.0f)]
    [InlineData("sgd", 5e-4f)]
    [InlineData("adam", 0.0f)]
    [InlineData("adam", 1e-2f)]
    public void OptimizerStepsMatchPyTorch(string kind, float weightDecay)
    {
        const int count = 1000, steps = 3;
        var w = TestUtil.Random(count, 15);
        var grads = Enumerable.Range(0, steps).Select(t => TestUtil.Random(count, 16 + t)).ToArray();
        var inputs = new T { ["x"] = ([1], [0f]), ["w"] = ([count], w) };
        for (int t = 0; t < steps; t++) inputs[$"g{t}"] = ([count], grads[t]);
        var expected = oracle.Run("optim_step", new { kind, steps, lr = 0.05, momentum = 0.9, weight_decay = weightDecay, beta1 = 0.9, beta2 = 0.999, eps = 1e-8 }, inputs);
        using var W = Up(w);
        using var S1 = K.Allocate(count);
        using var S2 = K.Allocate(count);
        for (int t = 0; t < steps; t++)
        {
            using var G = Up(grads[t]);
            if (kind == "sgd") K.SgdStep(count, 0.05f, 0.9f, weightDecay, W, G, S1);
            else K.AdamStep(count, 0.05f, 0.9f, 0.999f, 1e-8f, weightDecay, t + 1, W, G, S1, S2);
        }
        TestUtil.AssertClose(expected["w_new"].Data, Down(W, count), Tolerance, $"{kind} after {steps} steps");
    }
}

[Collection(OracleCollection.Name)]
public sealed class ReferenceTrainingOracleTests(TorchOracle oracle) : TrainingOracleSuite(oracle)
{
    protected override IKernels CreateKernels() => new ReferenceKernels();
}

[Collection(OracleCollection.Name)]
public sealed class CpuTrainingOracleTests(TorchOracle oracle) : TrainingOracleSuite(oracle)
{
    protected override IKernels CreateKernels() => new CpuKernels();
}

/// <summary>The CPU backend with the weight gradient forced tap by tap (wherever stride is 1 and groups 1) or onto im2col.</summary>
[Collection(OracleCollection.Name)]
public sealed class CpuShiftedTrainingOracleTests(TorchOracle oracle) : TrainingOracleSuite(oracle)
{
    protected override IKernels CreateKernels() => new CpuKernels(convolution: ConvolutionAlgorithm.Shifted);
}

/// <inheritdoc cref="CpuShiftedTrainingOracleTests"/>
[Collection(OracleCollection.Name)]
public sealed class CpuIm2ColTrainingOracleTests(TorchOracle oracle) : TrainingOracleSuite(oracle)
{
    protected override IKernels CreateKernels() => new CpuKernels(convolution: ConvolutionAlgorithm.Im2Col);
}

/// <summary>The CUDA kernels' code on ILGPU's CPU accelerator (the shapes above are small enough for it).</summary>
[Collection(OracleCollection.Name)]
public sealed class IlgpuTrainingOracleTests(TorchOracle oracle, IlgpuCpuBackendFixture fixture) : TrainingOracleSuite(oracle), IClassFixture<IlgpuCpuBackendFixture>
{
    protected override IKernels CreateKernels() => fixture.Kernels;
    protected override bool DisposeKernels => false;
}
