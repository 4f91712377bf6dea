using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Kernels.Ilgpu;
using ModelGuardian.Kernels.Reference;
using ModelGuardian.Weights;

namespace ModelGuardian.Tests.Networks;

/// <summary>Finite differences, batch invariance, backend agreement on whole networks, and bad input.</summary>
public sealed class NetworkBehaviourTests
{
    private static readonly ArchitectureDescriptor SmallD = ArchitectureDescriptor.StyleGanD(16, fmapBase: 64, fmapMax: 8, mbstdGroupSize: 1);

    [Fact]
    public void InputGradientMatchesCentralFiniteDifferences()
    {
        // Computed in fp32, so the step is large-ish and the tolerance is 2% of the gradient's max-abs
        // per checked coordinate (central differences of a leaky-ReLU net are exact away from kinks).
        using var k = new ReferenceKernels();
        var (net, _) = RandomWeights.Create(k, SmallD, 7);
        using var _n = net;
        var shape = new Shape4(1, 3, 16, 16);
        var x = TestUtil.Random(shape.Length, 8);
        var g = net.ForwardWithInputGradient(x, shape).InputGradient;
        float scale = TestUtil.MaxAbs(g);
        const float h = 1e-2f;
        var rng = new Random(3);
        for (int t = 0; t < 24; t++)
        {
            int i = rng.Next(x.Length);
            var plus = (float[])x.Clone(); plus[i] += h;
            var minus = (float[])x.Clone(); minus[i] -= h;
            double fd = (net.Forward(plus, shape)[0] - net.Forward(minus, shape)[0]) / (2.0 * h);
            Assert.True(Math.Abs(fd - g[i]) <= 0.02 * scale, $"coordinate {i}: finite difference {fd:E4}, backward {g[i]:E4}, max-abs {scale:E3}");
        }
    }

    [Theory]
    [InlineData(18)]
    [InlineData(50)]
    public void InferenceForwardThatReusesBuffersEqualsTheRecordedForward(int depth)
    {
        // Without a tape a forward gives dead activations back to the pool at once and later layers write
        // into them; with a tape nothing is given back. A buffer given back while still read (a residual
        // shortcut, a block input) would change the outputs: they must be bit-identical.
        using var k = new CpuKernels();
        var (net, _) = RandomWeights.Create(k, ArchitectureDescriptor.ResNet(depth, 5, ResNetStem.Cifar, inputSide: 16, width: 8), 3);
        using var _n = net;
        var shape = new Shape4(2, 3, 16, 16);
        var x = TestUtil.Random(shape.Length, 4);
        var recorded = net.ForwardWithInputGradient(x, shape).Outputs;
        Assert.Equal(recorded, net.Forward(x, shape));
        Assert.Equal(recorded, net.Forward(x, shape)); // again, now from the buffers the first call gave back
    }

    [Fact]
    public void APassRefusesToReleaseWhatItDoesNotHold()
    {
        using var k = new CpuKernels();
        using var pool = new BufferPool(k);
        using var pass = new Pass(pool);
        var t = pass.New(new Shape4(1, 1, 2, 2));
        pass.Release(t);
        Assert.Throws<InvalidOperationException>(() => pass.Release(t));
        using var foreign = new Pass(pool);
        Assert.Throws<InvalidOperationException>(() => foreign.Release(pass.New(new Shape4(1, 1, 3, 3))));
    }

    [Fact]
    public void ScreeningAloneOrInABatchGivesIdenticalGradients()
    {
        using var k = new CpuKernels();
        var arch = ArchitectureDescriptor.StyleGanD(64, fmapBase: 1024, fmapMax: 32, mbstdGroupSize: 1);
        var (d, _) = RandomWeights.Create(k, arch, 11);
        using var _d = d;
        var transform = new GradientTransform(d);
        RgbImage Image(int seed)
        {
            var px = new byte[40 * 30 * 3];
            new Random(seed).NextBytes(px);
            return new RgbImage(40, 30, px);
        }
        var a = Image(1);
        var alone = transform.Transform(a);
        var batch = transform.Transform([Image(2), a, Image(3), Image(4)]);
        Assert.Equal(alone.Score, batch[1].Score);
        Assert.Equal(alone.Values, batch[1].Values); // bit-identical, not merely close
        Assert.InRange(alone.Values.Min(), 0f, 0f);
        Assert.InRange(alone.Values.Max(), 255f, 255f);
        Assert.All(alone.Values, v => Assert.Equal(MathF.Round(v), v)); // 8-bit quantised by default
    }

    [Fact]
    public void CoupledMinibatchStddevMakesScoresDependOnBatchMates()
    {
        // The reason per-image mode exists: with group 4 a query's score changes with its batch-mates.
        using var k = new CpuKernels();
        var arch = SmallD with { MbstdGroupSize = 4 };
        var (net, _) = RandomWeights.Create(k, arch, 5);
        using var _n = net;
        var shape = new Shape4(4, 3, 16, 16);
        var x = TestUtil.Random(shape.Length, 1);
        var y1 = net.Forward(x, shape);
        for (int i = shape.PerImage; i < x.Length; i++) x[i] *= 0.5f; // change images 1..3 only
        var y2 = net.Forward(x, shape);
        Assert.NotEqual(y1[0], y2[0]);
    }

    public static TheoryData<string> Architectures => new() { "stylegan-d", "resnet18-cifar" };

    [Theory, MemberData(nameof(Architectures))]
    public void BackendsAgreeOnSmallNetworks(string name)
    {
        var arch = name == "stylegan-d" ? SmallD with { MbstdGroupSize = 2 } : ArchitectureDescriptor.ResNet(18, 3, ResNetStem.Cifar);
        var shape = name == "stylegan-d" ? new Shape4(2, 3, 16, 16) : new Shape4(2, 3, 8, 8);
        var x = TestUtil.Random(shape.Length, 21);
        InputGradientResult Run(IKernels kernels)
        {
            using var _k = kernels;
            var (net, _) = RandomWeights.Create(kernels, arch, 13);
            using var _n = net;
            return net.ForwardWithInputGradient(x, shape);
        }
        var reference = Run(new ReferenceKernels());
        foreach (var result in new[] { Run(new CpuKernels()), Run(IlgpuKernels.CreateCpuAccelerator()) })
        {
            // fp32 backends against the double-accumulating reference: 1e-4 of the max-abs.
            TestUtil.AssertClose(reference.Outputs, result.Outputs, 1e-4, $"{name} outputs");
            TestUtil.AssertClose(reference.InputGradient, result.InputGradient, 1e-4, $"{name} input gradient");
        }
    }

    [Fact]
    public void OneNetworkServesManyThreadsAtOnce()
    {
        // Immutable after load, pooled scratch per call: concurrent calls give exactly the sequential answers.
        using var k = new CpuKernels();
        var (net, _) = RandomWeights.Create(k, ArchitectureDescriptor.ResNet(18, 4, ResNetStem.Cifar), 9);
        using var _n = net;
        var shape = new Shape4(2, 3, 16, 16);
        var inputs = Enumerable.Range(0, 8).Select(i => TestUtil.Random(shape.Length, 100 + i)).ToArray();
        var sequential = inputs.Select(x => net.ForwardWithInputGradient(x, shape)).ToArray();
        var concurrent = new InputGradientResult[inputs.Length * 3];
        Parallel.For(0, concurrent.Length, new ParallelOptions { MaxDegreeOfParallelism = 6 },
            i => concurrent[i] = net.ForwardWithInputGradient(inputs[i % inputs.Length], shape));
        for (int i = 0; i < concurrent.Length; i++)
        {
            Assert.Equal(sequential[i % inputs.Length].Outputs, concurrent[i].Outputs);
            Assert.Equal(sequential[i % inputs.Length].InputGradient, concurrent[i].InputGradient);
        }
        // The inference forward too, which on this backend runs on the blocked kernels (their tap-offset tables
        // are per calling thread, read by the pool's workers during the call).
        var forwards = inputs.Select(x => net.Forward(x, shape)).ToArray();
        var concurrentForwards = new float[inputs.Length * 3][];
        Parallel.For(0, concurrentForwards.Length, new ParallelOptions { MaxDegreeOfParallelism = 6 },
            i => concurrentForwards[i] = net.Forward(inputs[i % inputs.Length], shape));
        for (int i = 0; i < concurrentForwards.Length; i++) Assert.Equal(forwards[i % inputs.Length], concurrentForwards[i]);
    }

    [Fact]
    public void BadInputIsRefusedWithAReason()
    {
        using var k = new CpuKernels();
        var (net, _) = RandomWeights.Create(k, ArchitectureDescriptor.ResNet(18, 2), 1);
        var ok = new Shape4(1, 3, 32, 32);
        var x = new float[ok.Length];
        Assert.Contains("input channels", Assert.Throws<ArgumentException>(() => net.Forward(new float[32 * 32], new Shape4(1, 1, 32, 32))).Message);
        Assert.Contains("smaller than", Assert.Throws<ArgumentException>(() => net.Forward(new float[3 * 16 * 16], new Shape4(1, 3, 16, 16))).Message);
        Assert.Contains("needs", Assert.Throws<ArgumentException>(() => net.Forward(new float[10], ok)).Message);
        x[5] = float.NaN;
        Assert.Contains("finite", Assert.Throws<ArgumentException>(() => net.Forward(x, ok)).Message);
        x[5] = float.PositiveInfinity;
        Assert.Contains("finite", Assert.Throws<ArgumentException>(() => net.ForwardWithInputGradient(x, ok)).Message);
        x[5] = 0;
        Assert.Contains("Output gradient", Assert.Throws<ArgumentException>(() => net.ForwardWithInputGradient(x, ok, new float[7])).Message);
        net.Dispose();
        Assert.Throws<ObjectDisposedException>(() => net.Forward(x, ok));

        var (d, _) = RandomWeights.Create(k, SmallD, 1);
        using var _d = d;
        Assert.Contains("16×16", Assert.Throws<ArgumentException>(() => d.Forward(new float[3 * 32 * 32], new Shape4(1, 3, 32, 32))).Message);
        Assert.Contains("StyleGAN discriminator", Assert.Throws<ArgumentException>(() => new GradientTransform(net)).Message);
    }

    [Fact]
    public void WeightsThatDoNotFitAreListedByName()
    {
        using var k = new CpuKernels();
        var (_, tensors) = RandomWeights.Create(k, SmallD, 1);
        var broken = new TensorSet();
        foreach (var (name, t) in tensors.Tensors)
            if (name != "layer0.bias") broken[name] = name == "input0.weight" ? HostTensor.Create(new float[8 * 3], 8, 3) : t;
        var e = Assert.Throws<ArgumentException>(() => Network.Create(k, SmallD, broken));
        Assert.Contains("missing 'layer0.bias'", e.Message);
        Assert.Contains("'input0.weight' has shape [8, 3]", e.Message);
    }

    [Fact]
    public void ImagesThatCannotBeDecodedOrAreTooLargeAreRefused()
    {
        Assert.Throws<InvalidDataException>(() => RgbImage.Decode("not an image"u8));
        var big = new RgbImage(64, 8, new byte[64 * 8 * 3]).EncodePng();
        Assert.Contains("largest side", Assert.Throws<InvalidDataException>(() => RgbImage.Decode(big, maxSide: 32)).Message);
        var roundTrip = RgbImage.Decode(big);
        Assert.Equal((64, 8), (roundTrip.Width, roundTrip.Height));
    }
}
