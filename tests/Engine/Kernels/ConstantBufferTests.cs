using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Kernels.Ilgpu;
using ModelGuardian.Kernels.Reference;

namespace ModelGuardian.Tests.Kernels;

/// <summary>Constant (weight) buffers: never written again, and the CPU backend's packed copies of them give the same results.</summary>
public sealed class ConstantBufferTests
{
    public static TheoryData<string> Backends => new() { "reference", "cpu", "ilgpu-cpu" };

    private static IKernels Create(string name) => name switch
    {
        "reference" => new ReferenceKernels(),
        "cpu" => new CpuKernels(),
        _ => IlgpuKernels.CreateCpuAccelerator(),
    };

    [Theory, MemberData(nameof(Backends))]
    public void ConstantBuffersHoldTheirValuesAndRefuseWrites(string backend)
    {
        using var k = Create(backend);
        using var b = k.AllocateConstant([1f, 2f, 3f]);
        Assert.True(b.IsConstant);
        Assert.Contains("constant", Assert.Throws<InvalidOperationException>(() => k.Upload([9f], b)).Message);
        Assert.Throws<InvalidOperationException>(() => k.Fill(b, 3, 0f));
        var read = new float[3];
        k.Download(b, read);
        Assert.Equal([1f, 2f, 3f], read);
    }

    [Theory]
    [InlineData(3, 1, 1)]  // forward and stride-1 backward through packed weights
    [InlineData(4, 2, 1)]  // stride-2 backward: four parity classes, each packed separately
    [InlineData(1, 1, 0)]  // pointwise
    [InlineData(1, 2, 0)]  // strided pointwise (a ResNet downsample)
    public void PackedConstantWeightsGiveBitIdenticalResults(int kernel, int stride, int pad)
    {
        using IKernels k = new CpuKernels();
        var s = Conv2dShape.Square(2, 30, 21, 19, 200, kernel, stride, pad); // several row blocks and depth chunks
        var x = TestUtil.Random(s.InputLength, 1); var w = TestUtil.Random(s.WeightLength, 2); var dy = TestUtil.Random(s.OutputLength, 3);
        float[] Run(DeviceBuffer weights, bool backward)
        {
            using var input = k.Allocate(backward ? s.OutputLength : s.InputLength);
            using var output = k.Allocate(backward ? s.InputLength : s.OutputLength);
            k.Upload(backward ? dy : x, input);
            if (backward) k.Conv2dBackwardInput(s, input, weights, output); else k.Conv2dForward(s, input, weights, null, output);
            var r = new float[output.Length];
            k.Download(output, r);
            return r;
        }
        using var plain = k.Allocate(w.Length);
        k.Upload(w, plain);
        using var constant = k.AllocateConstant(w);
        foreach (bool backward in new[] { false, true })
        {
            var expected = Run(plain, backward);
            Assert.Equal(expected, Run(constant, backward)); // first call packs
            Assert.Equal(expected, Run(constant, backward)); // second call reuses the packed copy
        }
    }
}
