using ModelGuardian.Engine.Core;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Networks;

/// <summary>
/// The StyleGAN v1 discriminator at lod 0, with genforce's tensor names:
/// input0 = FromRGB_lod0, layer{2b} = {R}x{R}/Conv0, layer{2b+1} = {R}x{R}/Conv1_down,
/// then 4x4/Conv, Dense0, Dense1. Stored weights are unscaled; the equalised-learning-rate
/// scale gain/√fan_in is applied here, once, at load.
/// </summary>
internal static class StyleGanDiscriminatorBuilder
{
    private const float Slope = 0.2f;
    private static readonly float Gain = MathF.Sqrt(2f);

    public static int Channels(ArchitectureDescriptor a, int res) => Math.Min(a.FmapBase / res, a.FmapMax);

    public static Network Build(IKernels kernels, ArchitectureDescriptor a, IParameterSource source)
    {
        var parameters = new ParameterBuffers(kernels);
        try
        {
            var layers = new List<ILayer>();
            int c0 = Channels(a, a.Resolution);
            layers.Add(ScaledConv(parameters, source, "input0", 3, c0, 1, 1, 0, Gain));
            int index = 0;
            for (int res = a.Resolution; res > 4; res /= 2, index += 2)
            {
                int cin = Channels(a, res), cout = Channels(a, res / 2);
                layers.Add(ScaledConv(parameters, source, $"layer{index}", cin, cin, 3, 1, 1, Gain));
                layers.Add(Blur(parameters, cin));
                var w = Scaled(source, $"layer{index + 1}.weight", cout, cin, 3, Gain);
                var b = source.Take($"layer{index + 1}.bias", [cout], ParameterRole.Bias);
                if (res >= 128)
                {
                    // Fused conv-downscale: 3×3 kernel → 4×4 average of its four shifts, stride 2.
                    layers.Add(new Conv2dLayer(parameters, FuseDownscale(w, cout, cin), b, cin, cout, 4, 2, 1, leakyReluSlope: Slope));
                }
                else
                {
                    layers.Add(new Conv2dLayer(parameters, w, null, cin, cout, 3, 1, 1));
                    layers.Add(new Pool2dLayer(PoolKind.Average, 2, 2));
                    layers.Add(new BiasLeakyReluLayer(parameters, b, Slope));
                }
            }
            int c4 = Channels(a, 4), cd = Math.Min(a.FmapBase / 2, a.FmapMax);
            layers.Add(new MinibatchStddevLayer(a.MbstdGroupSize));
            layers.Add(ScaledConv(parameters, source, $"layer{index}", c4 + 1, c4, 3, 1, 1, Gain));
            layers.Add(ScaledDense(parameters, source, $"layer{index + 1}", c4 * 16, cd, Gain));
            layers.Add(new LeakyReluLayer(Slope));
            layers.Add(ScaledDense(parameters, source, $"layer{index + 2}", cd, 1, 1f));
            return new Network(a, new Sequential(layers), parameters);
        }
        catch
        {
            parameters.Dispose();
            throw;
        }
    }

    private static float[] Scaled(IParameterSource source, string name, int cout, int cin, int k, float gain)
    {
        var w = source.Take(name, [cout, cin, k, k], ParameterRole.ConvWeight);
        float scale = gain / MathF.Sqrt(cin * k * k);
        var result = new float[w.Length];
        for (int i = 0; i < w.Length; i++) result[i] = w[i] * scale;
        return result;
    }

    // Every scaled conv of D is followed by its leaky-ReLU: fused.
    private static Conv2dLayer ScaledConv(ParameterBuffers p, IParameterSource source, string name, int cin, int cout, int k, int stride, int pad, float gain)
        => new(p, Scaled(source, $"{name}.weight", cout, cin, k, gain), source.Take($"{name}.bias", [cout], ParameterRole.Bias), cin, cout, k, stride, pad, leakyReluSlope: Slope);

    private static DenseLayer ScaledDense(ParameterBuffers p, IParameterSource source, string name, int inF, int outF, float gain)
    {
        var w = source.Take($"{name}.weight", [outF, inF], ParameterRole.DenseWeight);
        float scale = gain / MathF.Sqrt(inF);
        var scaled = new float[w.Length];
        for (int i = 0; i < w.Length; i++) scaled[i] = w[i] * scale;
        return new DenseLayer(p, scaled, source.Take($"{name}.bias", [outF], ParameterRole.Bias), inF, outF);
    }

    /// <summary>Depthwise [1,2,1]ᵀ[1,2,1]/16, padding 1: the low-pass applied before every down-sampling.</summary>
    internal static Conv2dLayer Blur(ParameterBuffers p, int channels)
    {
        float[] k1 = [1, 2, 1];
        var w = new float[channels * 9];
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 3; x++) w[c * 9 + y * 3 + x] = k1[y] * k1[x] / 16f;
        return new Conv2dLayer(p, w, null, channels, channels, 3, 1, 1, groups: channels);
    }

    /// <summary>
    /// w: (Cout, Cin, 3, 3) → (Cout, Cin, 4, 4): zero-pad to 5×5, then average the four 4×4 windows
    /// at offsets (0,0), (0,1), (1,0), (1,1). A 4×4 stride-2 conv with it equals conv 3×3 then 2×2 average pool.
    /// </summary>
    public static float[] FuseDownscale(float[] w, int cout, int cin)
    {
        var fused = new float[cout * cin * 16];
        for (int oc = 0; oc < cout * cin; oc++)
        {
            float Padded(int y, int x) => y is >= 1 and <= 3 && x is >= 1 and <= 3 ? w[oc * 9 + (y - 1) * 3 + (x - 1)] : 0f;
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 4; x++)
                    fused[oc * 16 + y * 4 + x] = 0.25f * (Padded(y + 1, x + 1) + Padded(y, x + 1) + Padded(y + 1, x) + Padded(y, x));
        }
        return fused;
    }
}
