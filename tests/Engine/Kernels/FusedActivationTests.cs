using ModelGuardian.Kernels;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Kernels.Ilgpu;
using ModelGuardian.Kernels.Reference;

namespace ModelGuardian.Tests.Kernels;

/// <summary>conv + bias (+ residual) + leaky-ReLU fused equals the reference's conv, add and leaky-ReLU one after another, on every backend.</summary>
public sealed class FusedActivationTests
{
    public static TheoryData<string, int, int, int, int, float, bool> Cases()
    {
        var data = new TheoryData<string, int, int, int, int, float, bool>();
        foreach (var backend in new[] { "cpu", "cpu-shifted", "cpu-shifted-chunked", "ilgpu-cpu", "reference" })
        {
            // backend, cin, cout, kernel, groups, slope
            foreach (bool residual in new[] { false, true })
            {
                data.Add(backend, 6, 5, 1, 1, 0f, residual);      // pointwise, ReLU
                data.Add(backend, 40, 20, 3, 1, 0.2f, residual);  // K = 360: two depth chunks, epilogue on the last only
                data.Add(backend, 8, 8, 3, 8, 0.2f, residual);    // depthwise
                data.Add(backend, 6, 9, 4, 3, 0f, residual);      // grouped, stride 2 below
            }
        }
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void FusedEqualsConvThenLeakyRelu(string backend, int cin, int cout, int kernel, int groups, float slope, bool residual)
    {
        using IKernels k = backend switch
        {
            "cpu" => new CpuKernels(),
            "cpu-shifted" => new CpuKernels(convolution: ConvolutionAlgorithm.Shifted),
            "cpu-shifted-chunked" => new CpuKernels(convolution: ConvolutionAlgorithm.Shifted) { PaddedChunkFloats = 1 }, // one image at a time: bias, residual and output offsets per chunk
            "reference" => new ReferenceKernels(),
            _ => IlgpuKernels.CreateCpuAccelerator(),
        };
        using IKernels r = new ReferenceKernels();
        var s = Conv2dShape.Square(2, cin, 9, 7, cout, kernel, kernel == 4 ? 2 : 1, kernel / 2, groups);
        var x = TestUtil.Random(s.InputLength, 1); var w = TestUtil.Random(s.WeightLength, 2); var b = TestUtil.Random(cout, 3); var res = TestUtil.Random(s.OutputLength, 4);
        float[] Run(IKernels kernels, bool fused)
        {
            using var X = kernels.Allocate(x.Length); using var W = kernels.AllocateConstant(w); using var B = kernels.AllocateConstant(b); using var Y = kernels.Allocate(s.OutputLength);
            using var R = kernels.Allocate(s.OutputLength);
            kernels.Upload(x, X); kernels.Upload(res, R);
            kernels.Fill(Y, s.OutputLength, float.NaN); // the fused store must overwrite, not accumulate
            if (fused) kernels.Conv2dForward(s, X, W, B, Y, slope, residual ? R : null);
            else
            {
                kernels.Conv2dForward(s, X, W, B, Y);
                if (residual) kernels.Add(s.OutputLength, Y, R, Y);
                kernels.LeakyReluForward(s.OutputLength, slope, Y, Y);
            }
            var result = new float[s.OutputLength];
            kernels.Download(Y, result);
            return result;
        }
        // Tolerance 1e-5 of the max-abs: fp32 sums of at most a few hundred products.
        TestUtil.AssertClose(Run(r, fused: false), Run(k, fused: true), 1e-5, $"{backend} fused conv {s} slope {slope} residual {residual}");
    }
}
