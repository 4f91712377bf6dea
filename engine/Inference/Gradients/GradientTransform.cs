using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;

namespace ModelGuardian.Engine.Gradients;

/// <summary>Options of the gradient representation (LGrad's recipe; docs/design.md).</summary>
public sealed record GradientTransformOptions
{
    public ResizeFilter Filter { get; init; } = ResizeFilter.Bilinear;
    /// <summary>Round to 8 bits as LGrad's PNG files do; detectors trained on such files expect it.</summary>
    public bool Quantize { get; init; } = true;
}

/// <summary>A gradient image: planar (3, R, R) values in 0…255, plus the discriminator's raw score.</summary>
public sealed record GradientImage(int Resolution, float[] Values, float Score)
{
    public RgbImage ToRgb() => RgbImage.FromPlanar(Values, Resolution, Resolution);
}

/// <summary>
/// image → resize to R → [−1, 1] → D forward → ∂(Σ D(x))/∂x → per-image min-max to 0…255 over
/// all three channels (signed gradient), optionally rounded to 8 bits. Per-image results never
/// depend on the rest of the batch: with a minibatch-stddev group of 1 images are batched,
/// otherwise each runs alone (N = 1 makes the group 1, as LGrad does).
/// </summary>
public sealed class GradientTransform(Network discriminator, GradientTransformOptions? options = null)
{
    public Network Discriminator { get; } = discriminator.Architecture.Kind == NetworkKind.StyleGanDiscriminator
        ? discriminator
        : throw new ArgumentException($"The transformation model must be a StyleGAN discriminator, got {discriminator.Architecture}.");

    public GradientTransformOptions Options { get; } = options ?? new GradientTransformOptions();

    public int Resolution => Discriminator.Architecture.Resolution;

    /// <summary>The network input for one image: (3, R, R) in [−1, 1].</summary>
    public float[] Preprocess(RgbImage image) => NetworkInput.FromImage(Discriminator, image, Options.Filter);

    public GradientImage[] Transform(IReadOnlyList<RgbImage> images)
    {
        var inputs = images.Select(Preprocess).ToArray();
        return TransformPreprocessed(inputs);
    }

    public GradientImage Transform(RgbImage image) => Transform([image])[0];

    /// <summary>Inputs already at (3, R, R) in the discriminator's range.</summary>
    public GradientImage[] TransformPreprocessed(IReadOnlyList<float[]> inputs)
    {
        int r = Resolution, per = 3 * r * r;
        var results = new GradientImage[inputs.Count];
        if (Discriminator.Architecture.MbstdGroupSize == 1)
        {
            var batch = new float[inputs.Count * per];
            for (int i = 0; i < inputs.Count; i++) inputs[i].CopyTo(batch, i * per);
            var g = Discriminator.ForwardWithInputGradient(batch, new Shape4(inputs.Count, 3, r, r));
            for (int i = 0; i < inputs.Count; i++) results[i] = Normalize(g.InputGradient.AsSpan(i * per, per), g.Outputs[i]);
        }
        else
        {
            for (int i = 0; i < inputs.Count; i++)
            {
                var g = Discriminator.ForwardWithInputGradient(inputs[i], new Shape4(1, 3, r, r));
                results[i] = Normalize(g.InputGradient, g.Outputs[0]);
            }
        }
        return results;
    }

    private GradientImage Normalize(ReadOnlySpan<float> gradient, float score)
    {
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        foreach (var v in gradient) { min = Math.Min(min, v); max = Math.Max(max, v); }
        var values = new float[gradient.Length];
        if (max > min)
        {
            float scale = 255f / (max - min);
            for (int i = 0; i < values.Length; i++)
            {
                float v = (gradient[i] - min) * scale;
                values[i] = Math.Clamp(Options.Quantize ? MathF.Round(v) : v, 0f, 255f); // the top value can round a hair above 255
            }
        }
        return new GradientImage(Resolution, values, score);
    }
}
