using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;

namespace ModelGuardian.Engine.Training;

/// <summary>
/// GAN training settings. Adam with β1 = 0, β2 = 0.99 is StyleGAN's own recipe (Karras et al.), the one this
/// discriminator was designed with: β1 = 0 keeps no momentum, so each player reacts to the other's latest
/// move instead of one from many steps ago, which damps the oscillation momentum causes in two-player
/// training. DCGAN's β1 = 0.5 is the other common choice (settable).
/// </summary>
public sealed record GanOptions
{
    public int Iterations { get; init; } = 1000;
    public int BatchSize { get; init; } = 32;
    public float LearningRate { get; init; } = 2e-4f;
    public float Beta1 { get; init; } = 0f;
    public float Beta2 { get; init; } = 0.99f;
    public ulong Seed { get; init; } = 1;
    /// <summary>Real images are flipped horizontally with probability ½.</summary>
    public bool Flip { get; init; } = true;
}

/// <summary>
/// One iteration's numbers: the D loss softplus(−D(real)) + softplus(D(fake)) and the G loss softplus(−D(G(z))),
/// batch means, and the mean sigmoid of D's logits on the real and on the fake batch of the D step.
/// </summary>
public sealed record GanProgress(int Iteration, int Iterations, double DiscriminatorLoss, double GeneratorLoss, double RealScore, double FakeScore);

/// <summary>
/// Trains an <see cref="ImageGenerator"/> against a <see cref="TrainableStyleGanDiscriminator"/> with the
/// non-saturating loss (Goodfellow et al.; StyleGAN's default): per iteration one D step on a real and a
/// fake batch, then one G step on fresh noise. Real images come from <c>realImage</c> (e.g. seeded photo
/// crops), flipped at random, and enter D exactly as the gradient transform feeds it at screening
/// (<see cref="NetworkInput"/>: x = (p/255 − mean)/std, [−1, 1] for StyleGAN); the generator's sigmoid output s
/// stands for p = 255·s and takes the same affine map. Every random draw comes from
/// <see cref="SeededRandom.ForItem"/>(seed, iteration, stream), so a run is a function of its seed: on the CPU
/// backend two runs are equal bit for bit.
/// </summary>
public sealed class GanTrainer
{
    private const long RealStream = 0, DiscriminatorNoise = 1_000_000, GeneratorNoise = 2_000_000;
    private readonly Func<Random, RgbImage> _realImage;
    private readonly int _side;

    public GanTrainer(ImageGenerator generator, TrainableStyleGanDiscriminator discriminator, Func<Random, RgbImage> realImage, GanOptions? options = null)
    {
        Options = options ?? new GanOptions();
        if (Options.BatchSize < 1 || Options.Iterations < 0) throw new ArgumentException("GAN training needs a batch of at least 1 and a non-negative iteration count.");
        if (discriminator.Architecture.Resolution != ImageGenerator.Side)
            throw new ArgumentException($"The generator makes {ImageGenerator.Side}² images; the discriminator takes {discriminator.Architecture.Resolution}².");
        int group = Math.Min(discriminator.Architecture.MbstdGroupSize, Options.BatchSize);
        if (Options.BatchSize % group != 0)
            throw new ArgumentException($"Batch {Options.BatchSize} is not divisible by the discriminator's minibatch-stddev group {discriminator.Architecture.MbstdGroupSize}.");
        if (!ReferenceEquals(generator.Kernels, discriminator.Kernels)) throw new ArgumentException("Generator and discriminator must share one backend.");
        (Generator, Discriminator, _realImage) = (generator, discriminator, realImage);
        _side = ImageGenerator.Side;
        GeneratorOptimizer = new AdamOptimizer(generator.Parameters, Options.LearningRate, Options.Beta1, Options.Beta2);
        DiscriminatorOptimizer = new AdamOptimizer(discriminator.Parameters, Options.LearningRate, Options.Beta1, Options.Beta2);
    }

    public ImageGenerator Generator { get; }
    public TrainableStyleGanDiscriminator Discriminator { get; }
    public GanOptions Options { get; }
    public AdamOptimizer GeneratorOptimizer { get; }
    public AdamOptimizer DiscriminatorOptimizer { get; }
    /// <summary>Iterations run so far.</summary>
    public int Iteration { get; private set; }

    /// <summary>Seeded real photo crops of the generator's side from <paramref name="pool"/> (the CLI's real images).</summary>
    public static Func<Random, RgbImage> PhotoCrops(PhotoPool pool) => rng => pool.Crop(new PhotoCropOptions(ImageGenerator.Side), rng);

    /// <summary>Runs the remaining iterations, reporting after each.</summary>
    public GanProgress Train(IProgress<GanProgress>? progress = null)
    {
        GanProgress? last = null;
        while (Iteration < Options.Iterations)
        {
            last = Step();
            progress?.Report(last);
        }
        return last ?? new GanProgress(Iteration, Options.Iterations, double.NaN, double.NaN, double.NaN, double.NaN);
    }

    /// <summary>One iteration: a D step, then a G step.</summary>
    public GanProgress Step()
    {
        int it = Iteration;
        var real = RealBatch(it);
        var (dLoss, realScore, fakeScore) = DiscriminatorStep(real, Noise(DiscriminatorNoise, it));
        double gLoss = GeneratorStep(Noise(GeneratorNoise, it));
        Iteration++;
        return new GanProgress(Iteration, Options.Iterations, dLoss, gLoss, realScore, fakeScore);
    }

    /// <summary>
    /// One Adam step of D on softplus(−D(real)) + softplus(D(G(z))) (BCE with logits, targets 1 and 0; batch means).
    /// Gradients left in D by an earlier G step are discarded first. Returns the loss and the mean sigmoid scores.
    /// </summary>
    public (double Loss, double RealScore, double FakeScore) DiscriminatorStep(float[] real, float[] noise)
    {
        int n = Options.BatchSize;
        var shape = InputShape(n);
        var fake = ToDiscriminatorInput(Generator.Forward(noise, NoiseShape(n)));
        Discriminator.Parameters.ZeroGradients();
        var ones = Enumerable.Repeat(1f, n).ToArray();
        var (realLoss, realLogits) = Discriminator.ForwardBackward(real, shape, y => Losses.BceWithLogits(y, ones));
        var (fakeLoss, fakeLogits) = Discriminator.ForwardBackward(fake, shape, y => Losses.BceWithLogits(y, new float[n]));
        DiscriminatorOptimizer.Step();
        return (realLoss + fakeLoss, MeanSigmoid(realLogits), MeanSigmoid(fakeLogits));
    }

    /// <summary>
    /// One Adam step of G on softplus(−D(G(z))): ∂loss/∂image from D's recorded backward, through the input map,
    /// into G's recorded backward. D's parameter gradients from this pass are zeroed: D is not updated by it.
    /// </summary>
    public double GeneratorStep(float[] noise)
    {
        int n = Options.BatchSize;
        Generator.Parameters.ZeroGradients();
        using var g = Generator.Record(noise, NoiseShape(n));
        using var d = Discriminator.Record(ToDiscriminatorInput(g.Outputs), InputShape(n));
        var (loss, dLogits) = Losses.BceWithLogits(d.Outputs, Enumerable.Repeat(1f, n).ToArray());
        g.Backward(NetworkInput.FromUnitBackward(Discriminator.Architecture, d.Backward(dLogits), _side * _side));
        GeneratorOptimizer.Step();
        Discriminator.Parameters.ZeroGradients();
        return loss;
    }

    /// <summary>D's logits for images already in its input range (no gradients, no update).</summary>
    public float[] Score(float[] inputs) => Discriminator.Forward(inputs, InputShape(inputs.Length / (3 * _side * _side)));

    /// <summary>Generator outputs (sigmoid, 0…1, standing for p/255) → D's input range, the map screening applies to p.</summary>
    public float[] ToDiscriminatorInput(float[] generated) => NetworkInput.FromUnit(Discriminator.Architecture, generated, _side * _side);

    /// <summary>The real batch of iteration <paramref name="iteration"/>: image i drawn from its own seeded stream, flipped at random, in D's input range.</summary>
    public float[] RealBatch(int iteration)
    {
        int n = Options.BatchSize, per = 3 * _side * _side;
        var batch = new float[n * per];
        var arch = Discriminator.Architecture;
        for (int i = 0; i < n; i++)
        {
            var rng = SeededRandom.ForItem(Options.Seed, iteration, RealStream + i);
            var image = _realImage(rng);
            if (image.Width != _side || image.Height != _side) throw new ArgumentException($"Real images must be {_side}×{_side}, got {image.Width}×{image.Height}.");
            if (Options.Flip && rng.Next(2) == 1) image = Augmentations.FlipHorizontal(image);
            NetworkInput.FromPlanar(arch, Generator.Kernels, PlanarImage.From(image)).CopyTo(batch, i * per);
        }
        return batch;
    }

    /// <summary>Noise for one step: N(0, 1) values from the stream (seed, iteration, stream).</summary>
    public float[] Noise(long stream, int iteration) => SeededRandom.ForItem(Options.Seed, iteration, stream).Normals(Options.BatchSize * ImageGenerator.NoiseSize, 1f);

    private Shape4 InputShape(int n) => new(n, 3, _side, _side);
    private static Shape4 NoiseShape(int n) => new(n, ImageGenerator.NoiseSize, 1, 1);

    private static double MeanSigmoid(float[] logits) => logits.Average(z => 1 / (1 + Math.Exp(-z)));
}
