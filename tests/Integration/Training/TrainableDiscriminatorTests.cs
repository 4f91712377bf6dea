using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Kernels.Reference;
using ModelGuardian.Tests.Oracle;
using T = System.Collections.Generic.Dictionary<string, (int[] Shape, float[] Data)>;

namespace ModelGuardian.Tests.Training;

/// <summary>
/// The trainable StyleGAN v1 discriminator: its parameter and input gradients against PyTorch (float64, the
/// oracle's stylegan_d written from the architecture in docs/design.md, gradients taken with respect to the stored tensors), and its
/// export served by the inference builder — the transformation model — giving the same logits and input gradients.
/// 128² covers the fused conv-downscale, which training runs as 3×3 conv then 2×2 average pool.
/// </summary>
[Collection(OracleCollection.Name)]
public sealed class TrainableDiscriminatorTests(TorchOracle oracle)
{
    public static TheoryData<int, int, int, int, int> Cases => new()
    {
        // resolution, fmap base, fmap max, mbstd group, batch
        { 32, 512, 16, 4, 4 },
        { 32, 256, 8, 2, 6 },
        { 128, 512, 8, 1, 2 },
    };

    [Theory, MemberData(nameof(Cases))]
    public void ParameterGradientsMatchPyTorch(int resolution, int fmapBase, int fmapMax, int group, int batch)
    {
        var arch = ArchitectureDescriptor.StyleGanD(resolution, fmapBase, fmapMax, group);
        foreach (var kernels in new IKernels[] { new CpuKernels(), new ReferenceKernels() })
        {
            using var _k = kernels;
            using var d = TrainableStyleGanDiscriminator.Create(kernels, arch, seed: 9);
            TrainBriefly(d, batch); // biases away from 0
            var shape = new Shape4(batch, 3, resolution, resolution);
            var x = TestUtil.Random(shape.Length, 31);
            var g = TestUtil.Random(batch, 32);
            var stored = d.Export();
            var inputs = new T { ["x"] = ([batch, 3, resolution, resolution], x), ["g"] = ([batch], g) };
            foreach (var (name, t) in stored.Tensors) inputs[name] = (t.Shape, t.Data);
            var expected = oracle.Run("stylegan_d_grads", new { resolution, fmap_base = fmapBase, fmap_max = fmapMax, group, @params = stored.Tensors.Keys.ToArray() }, inputs, float64: true);

            using var recorded = d.Record(x, shape);
            var dx = recorded.Backward(g);
            string where = $"{arch} on {kernels.Name}";
            TestUtil.AssertClose(expected["y"].Data, recorded.Outputs, 1e-5, $"{where}: logits");
            TestUtil.AssertRelativeL2(expected["dx"].Data, dx, 1e-4, $"{where}: input gradient");
            Assert.Equal(stored.Tensors.Count, d.Parameters.All.Count);
            foreach (var p in d.Parameters.All)
            {
                var grad = new float[p.Length];
                kernels.Download(p.Gradient!, grad);
                // effective = stored · scale, so ∂/∂stored = scale · ∂/∂effective.
                if (d.WeightScales.TryGetValue(p.Name, out float scale)) for (int i = 0; i < grad.Length; i++) grad[i] *= scale;
                TestUtil.AssertRelativeL2(expected["d" + p.Name].Data, grad, 1e-4, $"{where}: gradient of {p.Name}");
            }
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void ExportServesAsTheInferenceDiscriminator(int resolution, int fmapBase, int fmapMax, int group, int batch)
    {
        var arch = ArchitectureDescriptor.StyleGanD(resolution, fmapBase, fmapMax, group);
        using var k = new CpuKernels();
        using var d = TrainableStyleGanDiscriminator.Create(k, arch, seed: 4);
        TrainBriefly(d, batch);
        var exported = d.Export();
        Assert.Equal(ParameterSchema.For(arch).Select(s => (s.Name, string.Join(",", s.Shape))).Order(),
                     exported.Tensors.Select(t => (t.Key, string.Join(",", t.Value.Shape))).Order());
        using var inference = Network.Create(k, arch, exported);
        var shape = new Shape4(batch, 3, resolution, resolution);
        var x = TestUtil.Random(shape.Length, 33);
        using var recorded = d.Record(x, shape);
        var dx = recorded.Backward(Enumerable.Repeat(1f, batch).ToArray());
        var served = inference.ForwardWithInputGradient(x, shape);
        TestUtil.AssertClose(recorded.Outputs, served.Outputs, 1e-5, "logits");
        TestUtil.AssertClose(dx, served.InputGradient, 1e-5, "input gradient");
    }

    [Fact]
    public void InitialisationIsEqualisedLearningRate()
    {
        using var k = new CpuKernels();
        using var d = TrainableStyleGanDiscriminator.Create(k, ArchitectureDescriptor.StyleGanD(32, 1024, 64), seed: 2);
        var stored = d.Export();
        // Stored conv weights are N(0, 1): layer0 has 32·32·9 = 9,216 values.
        var w = stored["layer0.weight"].Data;
        double mean = w.Average(v => (double)v), std = Math.Sqrt(w.Average(v => (v - mean) * (v - mean)));
        Assert.InRange(mean, -0.05, 0.05);
        Assert.InRange(std, 0.97, 1.03);
        Assert.All(stored.Tensors.Where(t => t.Key.EndsWith(".bias", StringComparison.Ordinal)), t => Assert.All(t.Value.Data, v => Assert.Equal(0f, v)));
        Assert.Equal(MathF.Sqrt(2f) / MathF.Sqrt(32 * 9), d.WeightScales["layer0.weight"]);
        Assert.Equal(1f / MathF.Sqrt(64), d.WeightScales["layer8.weight"]); // the last dense layer: gain 1, fan-in 64
    }

    /// <summary>Three Adam steps on a toy objective: every parameter moves off its initial value.</summary>
    internal static void TrainBriefly(TrainableStyleGanDiscriminator d, int batch)
    {
        int r = d.Architecture.Resolution;
        var shape = new Shape4(batch, 3, r, r);
        var opt = new AdamOptimizer(d.Parameters, 1e-2f);
        for (int s = 0; s < 3; s++)
        {
            var x = TestUtil.Random(shape.Length, 100 + s);
            d.ForwardBackward(x, shape, y => Losses.BceWithLogits(y, Enumerable.Range(0, batch).Select(i => (float)(i % 2)).ToArray()));
            opt.Step();
        }
    }
}
