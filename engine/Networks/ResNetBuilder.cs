using ModelGuardian.Engine.Core;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Networks;

/// <summary>
/// torchvision ResNet-18/34/50 (v1.5: the stride sits on the 3×3 conv of a bottleneck), with the
/// ImageNet or the CIFAR stem, torchvision tensor names. Batch-norm (inference, eps 1e-5) is
/// folded into the preceding convolution here, once.
/// </summary>
internal static class ResNetBuilder
{
    private const float BatchNormEpsilon = 1e-5f;

    public static Network Build(IKernels kernels, ArchitectureDescriptor a, IParameterSource source)
    {
        var (bottleneck, blocks) = a.ResNetStages;
        var parameters = new ParameterBuffers(kernels);
        try
        {
            var layers = new List<ILayer>();
            if (a.Stem == ResNetStem.ImageNet)
            {
                layers.Add(ConvBn(parameters, source, "conv1", "bn1", a.InputChannels, a.Width, 7, 2, 3, relu: true));
                layers.Add(new Pool2dLayer(PoolKind.Max, 3, 2, 1));
            }
            else
            {
                layers.Add(ConvBn(parameters, source, "conv1", "bn1", a.InputChannels, a.Width, 3, 1, 1, relu: true));
            }
            int inplanes = a.Width, expansion = bottleneck ? 4 : 1;
            int[] planes = [a.Width, 2 * a.Width, 4 * a.Width, 8 * a.Width];
            for (int stage = 0; stage < 4; stage++)
            {
                for (int b = 0; b < blocks[stage]; b++)
                {
                    int stride = b == 0 && stage > 0 ? 2 : 1;
                    string p = $"layer{stage + 1}.{b}";
                    int width = planes[stage], outC = width * expansion;
                    ILayer[] body = bottleneck
                        ? [
                            ConvBn(parameters, source, $"{p}.conv1", $"{p}.bn1", inplanes, width, 1, 1, 0, relu: true),
                            ConvBn(parameters, source, $"{p}.conv2", $"{p}.bn2", width, width, 3, stride, 1, relu: true),
                            ConvBn(parameters, source, $"{p}.conv3", $"{p}.bn3", width, outC, 1, 1, 0)]
                        : [
                            ConvBn(parameters, source, $"{p}.conv1", $"{p}.bn1", inplanes, width, 3, stride, 1, relu: true),
                            ConvBn(parameters, source, $"{p}.conv2", $"{p}.bn2", width, width, 3, 1, 1)];
                    ILayer? shortcut = stride != 1 || inplanes != outC
                        ? ConvBn(parameters, source, $"{p}.downsample.0", $"{p}.downsample.1", inplanes, outC, 1, stride, 0)
                        : null;
                    layers.Add(new ResidualLayer(body, shortcut));
                    inplanes = outC;
                }
            }
            layers.Add(new AdaptiveAvgPoolLayer(1, 1));
            layers.Add(new DenseLayer(parameters,
                source.Take("fc.weight", [a.Outputs, inplanes], ParameterRole.DenseWeight),
                source.Take("fc.bias", [a.Outputs], ParameterRole.Bias), inplanes, a.Outputs));
            return new Network(a, new Sequential(layers), parameters);
        }
        catch
        {
            parameters.Dispose();
            throw;
        }
    }

    /// <summary>A bias-free conv followed by batch-norm, folded: w' = w·γ/√(σ²+ε), b' = β − μ·γ/√(σ²+ε).</summary>
    private static Conv2dLayer ConvBn(ParameterBuffers parameters, IParameterSource source, string conv, string bn, int cin, int cout, int k, int stride, int pad, bool relu = false)
    {
        var w = (float[])source.Take($"{conv}.weight", [cout, cin, k, k], ParameterRole.ConvWeight).Clone();
        var gamma = source.Take($"{bn}.weight", [cout], ParameterRole.BatchNormWeight);
        var beta = source.Take($"{bn}.bias", [cout], ParameterRole.BatchNormBias);
        var mean = source.Take($"{bn}.running_mean", [cout], ParameterRole.BatchNormMean);
        var variance = source.Take($"{bn}.running_var", [cout], ParameterRole.BatchNormVariance);
        var bias = new float[cout];
        int perOut = cin * k * k;
        for (int o = 0; o < cout; o++)
        {
            double scale = gamma[o] / Math.Sqrt(variance[o] + (double)BatchNormEpsilon);
            for (int i = 0; i < perOut; i++) w[o * perOut + i] = (float)(w[o * perOut + i] * scale);
            bias[o] = (float)(beta[o] - mean[o] * scale);
        }
        return new Conv2dLayer(parameters, w, bias, cin, cout, k, stride, pad, leakyReluSlope: relu ? 0f : null);
    }
}
