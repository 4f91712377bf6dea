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
            foreach (var b in a.ResNetBlocks())
            {
                string p = b.Prefix;
                ILayer[] body = b.Bottleneck
                    ? [
                        ConvBn(parameters, source, $"{p}.conv1", $"{p}.bn1", b.InPlanes, b.Width, 1, 1, 0, relu: true),
                        ConvBn(parameters, source, $"{p}.conv2", $"{p}.bn2", b.Width, b.Width, 3, b.Stride, 1, relu: true),
                        ConvBn(parameters, source, $"{p}.conv3", $"{p}.bn3", b.Width, b.OutChannels, 1, 1, 0)]
                    : [
                        ConvBn(parameters, source, $"{p}.conv1", $"{p}.bn1", b.InPlanes, b.Width, 3, b.Stride, 1, relu: true),
                        ConvBn(parameters, source, $"{p}.conv2", $"{p}.bn2", b.Width, b.Width, 3, 1, 1)];
                ILayer? shortcut = b.HasDownsample
                    ? ConvBn(parameters, source, $"{p}.downsample.0", $"{p}.downsample.1", b.InPlanes, b.OutChannels, 1, b.Stride, 0)
                    : null;
                layers.Add(new ResidualLayer(body, shortcut));
            }
            int inplanes = a.ResNetFeatures;
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
