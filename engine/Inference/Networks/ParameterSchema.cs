namespace ModelGuardian.Engine.Networks;

/// <summary>One tensor a network asks for: its name, its PyTorch-layout shape and what it is.</summary>
public sealed record ParameterSpec(string Name, int[] Shape, ParameterRole Role)
{
    public long Count => Shape.Aggregate(1L, (a, b) => a * b);
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// The tensors an architecture needs, by name and shape, without building anything. Weight
/// readers use it to check a file strictly (missing, unexpected, mis-shaped — all named at once)
/// before any buffer is allocated: a hostile descriptor cannot make us allocate what the file
/// does not hold. A test pins it to what the builders actually take.
/// </summary>
public static class ParameterSchema
{
    public static IReadOnlyList<ParameterSpec> For(ArchitectureDescriptor a) => a.Kind switch
    {
        NetworkKind.ResNet => ResNet(a),
        NetworkKind.StyleGanDiscriminator => StyleGan(a),
        NetworkKind.ImageGenerator => Generator(a),
        _ => throw new ArgumentException($"Unsupported network kind {a.Kind}."),
    };

    public static long ParameterCount(ArchitectureDescriptor a) => For(a).Sum(p => p.Count);

    private static List<ParameterSpec> ResNet(ArchitectureDescriptor a)
    {
        var specs = new List<ParameterSpec>();
        void ConvBn(string conv, string bn, int cin, int cout, int k)
        {
            specs.Add(new($"{conv}.weight", [cout, cin, k, k], ParameterRole.ConvWeight));
            specs.Add(new($"{bn}.weight", [cout], ParameterRole.BatchNormWeight));
            specs.Add(new($"{bn}.bias", [cout], ParameterRole.BatchNormBias));
            specs.Add(new($"{bn}.running_mean", [cout], ParameterRole.BatchNormMean));
            specs.Add(new($"{bn}.running_var", [cout], ParameterRole.BatchNormVariance));
        }
        ConvBn("conv1", "bn1", a.InputChannels, a.Width, a.Stem == ResNetStem.ImageNet ? 7 : 3);
        foreach (var b in a.ResNetBlocks())
        {
            string p = b.Prefix;
            if (b.Bottleneck)
            {
                ConvBn($"{p}.conv1", $"{p}.bn1", b.InPlanes, b.Width, 1);
                ConvBn($"{p}.conv2", $"{p}.bn2", b.Width, b.Width, 3);
                ConvBn($"{p}.conv3", $"{p}.bn3", b.Width, b.OutChannels, 1);
            }
            else
            {
                ConvBn($"{p}.conv1", $"{p}.bn1", b.InPlanes, b.Width, 3);
                ConvBn($"{p}.conv2", $"{p}.bn2", b.Width, b.Width, 3);
            }
            if (b.HasDownsample) ConvBn($"{p}.downsample.0", $"{p}.downsample.1", b.InPlanes, b.OutChannels, 1);
        }
        int inplanes = a.ResNetFeatures;
        specs.Add(new("fc.weight", [a.Outputs, inplanes], ParameterRole.DenseWeight));
        specs.Add(new("fc.bias", [a.Outputs], ParameterRole.Bias));
        return specs;
    }

    /// <summary>What the training library's ImageGenerator.Create builds (a test pins the two together).</summary>
    private static List<ParameterSpec> Generator(ArchitectureDescriptor a)
    {
        var specs = new List<ParameterSpec>();
        void Bn(string name, int c)
        {
            specs.Add(new($"{name}.weight", [c], ParameterRole.BatchNormWeight));
            specs.Add(new($"{name}.bias", [c], ParameterRole.BatchNormBias));
            specs.Add(new($"{name}.running_mean", [c], ParameterRole.BatchNormMean));
            specs.Add(new($"{name}.running_var", [c], ParameterRole.BatchNormVariance));
        }
        var (c0, c1, c2) = GeneratorShape.Channels(a.Width);
        int n = GeneratorShape.NoiseSize;
        specs.Add(new("fc.weight", [c0 * 64, n], ParameterRole.DenseWeight));
        specs.Add(new("fc.bias", [c0 * 64], ParameterRole.Bias));
        Bn("bn0", c0);
        foreach (var (cin, cout, i) in new[] { (c0, c1, 1), (c1, c2, 2) })
        {
            specs.Add(a.GeneratorFamily switch
            {
                GeneratorFamily.TransposedConv or GeneratorFamily.TransposedBlur => new($"up{i}.weight", [cin, cout, 4, 4], ParameterRole.ConvWeight),
                GeneratorFamily.PixelShuffle => new($"up{i}.weight", [4 * cout, cin, 3, 3], ParameterRole.ConvWeight),
                _ => new($"up{i}.weight", [cout, cin, 3, 3], ParameterRole.ConvWeight),
            });
            Bn($"bn{i}", cout);
        }
        specs.Add(new("to_rgb.weight", [3, c2, 3, 3], ParameterRole.ConvWeight));
        specs.Add(new("to_rgb.bias", [3], ParameterRole.Bias));
        return specs;
    }

    private static List<ParameterSpec> StyleGan(ArchitectureDescriptor a)
    {
        var specs = new List<ParameterSpec>();
        void Layer(string name, int[] weightShape, ParameterRole role)
        {
            specs.Add(new($"{name}.weight", weightShape, role));
            specs.Add(new($"{name}.bias", [weightShape[0]], ParameterRole.Bias));
        }
        int Nf(int res) => StyleGanDiscriminatorBuilder.Channels(a, res);
        Layer("input0", [Nf(a.Resolution), a.InputChannels, 1, 1], ParameterRole.ConvWeight);
        int index = 0;
        for (int res = a.Resolution; res > 4; res /= 2, index += 2)
        {
            Layer($"layer{index}", [Nf(res), Nf(res), 3, 3], ParameterRole.ConvWeight);
            Layer($"layer{index + 1}", [Nf(res / 2), Nf(res), 3, 3], ParameterRole.ConvWeight);
        }
        int c4 = Nf(4), dense = Math.Min(a.FmapBase / 2, a.FmapMax);
        Layer($"layer{index}", [c4, c4 + 1, 3, 3], ParameterRole.ConvWeight);
        Layer($"layer{index + 1}", [dense, c4 * 16], ParameterRole.DenseWeight);
        Layer($"layer{index + 2}", [1, dense], ParameterRole.DenseWeight);
        return specs;
    }
}
