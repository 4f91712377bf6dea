using ModelGuardian.Engine.Attacks;

namespace ModelGuardian.Tests.Attacks;

/// <summary>
/// The attacks' parts that are not networks: the grey image head (gradients against central finite differences
/// in double-rounded float, h = 1e-2, agreement within 2e-3 absolute), the replay memory and the learning-rate schedules.
/// </summary>
public sealed class AttackPartsTests
{
    private const int Plane = 6;

    [Fact]
    public void TheGreyHeadsGradientsMatchFiniteDifferences()
    {
        var raw = TestUtil.Random(3 * Plane, 11, 2f);
        var weights = TestUtil.Random(3 * 3 * Plane, 12, 1f);
        const float shift = -0.7f;
        // A loss of the images: Σ w·image, through batch-norm, the shifted tanh and the channel copy.
        double Loss(float[] r)
        {
            var images = GreyImageHead.ToImages(GreyImageHead.Normalise(r).Normalised, Plane, shift);
            double s = 0;
            for (int i = 0; i < images.Length; i++) s += (double)weights[i] * images[i];
            return s;
        }
        var (a, inv) = GreyImageHead.Normalise(raw);
        var grad = GreyImageHead.NormaliseBackward(a, inv, GreyImageHead.ToImagesBackward(a, Plane, shift, weights));
        for (int i = 0; i < raw.Length; i++)
        {
            const float h = 1e-2f;
            var up = (float[])raw.Clone(); up[i] += h;
            var down = (float[])raw.Clone(); down[i] -= h;
            double fd = (Loss(up) - Loss(down)) / (2 * h);
            Assert.True(Math.Abs(fd - grad[i]) < 2e-3, $"∂/∂raw{i} = {grad[i]}, finite difference {fd}");
        }
    }

    [Fact]
    public void TheGreyHeadNormalisesTheBatchAndRepeatsOnePlane()
    {
        var raw = TestUtil.Random(4 * Plane, 13, 3f);
        var (a, _) = GreyImageHead.Normalise(raw);
        Assert.Equal(0, a.Average(), 5);
        Assert.Equal(1, a.Select(v => (double)v * v).Average(), 3); // biased variance 1 (ε = 1e-5 aside)
        var images = GreyImageHead.ToImages(a, Plane, 0f);
        for (int i = 0; i < 4; i++)
        {
            var r = images.AsSpan(i * 3 * Plane, Plane);
            Assert.True(r.SequenceEqual(images.AsSpan((i * 3 + 1) * Plane, Plane)) && r.SequenceEqual(images.AsSpan((i * 3 + 2) * Plane, Plane)));
            for (int j = 0; j < Plane; j++) Assert.Equal((Math.Tanh(a[i * Plane + j]) + 1) / 2, r[j], 5);
        }
        Assert.Throws<ArgumentException>(() => GreyImageHead.ToImages(new float[7], Plane, 0f));
    }

    [Fact]
    public void TheEvasiveBlurIsTheImageBlurInFloatAndItsBackwardIsItsAdjoint()
    {
        var blur = new ImageBlur(1.5);
        const int side = 9, planes = 4;
        var x = TestUtil.Random(planes * side * side, 21, 1f);
        var dy = TestUtil.Random(planes * side * side, 22, 1f);
        // Adjoint: <Bx, dy> = <x, Bᵀdy> for every x and dy (a linear map and its transpose), to float accumulation error.
        var bx = blur.Forward(x, side);
        var btdy = blur.Backward(dy, side);
        double left = bx.Zip(dy, (a, b) => (double)a * b).Sum(), right = x.Zip(btdy, (a, b) => (double)a * b).Sum();
        Assert.Equal(left, right, 4);
        // The same blur as the post-processing step's on 8-bit images: within rounding to bytes.
        var rng = new Engine.Data.SeededRandom(3);
        var pixels = new byte[side * side * 3];
        rng.NextBytes(pixels);
        var image = new Engine.Imaging.RgbImage(side, side, pixels);
        var planar = Engine.Imaging.PlanarImage.From(image).Values;
        var ours = blur.Forward(planar, side);
        var reference = Engine.Imaging.PlanarImage.From(Engine.Data.Augmentations.GaussianBlur(image, 1.5)).Values;
        for (int i = 0; i < ours.Length; i++) Assert.InRange(Math.Abs(ours[i] - reference[i]), 0, 0.5 + 1e-3);
        // A constant plane stays constant; bad σ is refused.
        Assert.All(blur.Forward(Enumerable.Repeat(0.25f, side * side).ToArray(), side), v => Assert.Equal(0.25f, v, 5));
        Assert.Throws<ArgumentException>(() => new ImageBlur(0));
        Assert.Throws<ArgumentException>(() => blur.Forward(new float[10], side));
    }

    [Fact]
    public void TheEvasiveJpegIsTheUploadsJpegAndPassesGradientsStraightThrough()
    {
        var images = TestUtil.Random(2 * 3 * 16 * 16, 31, 0.5f).Select(v => v + 0.5f).ToArray();
        var y = ImageEvasion.Jpeg(images, 16, 40);
        for (int i = 0; i < 2; i++)
        {
            var bytes = Engine.Imaging.RgbImage.FromPlanar(images.AsSpan(i * 768, 768).ToArray().Select(v => v * 255f).ToArray(), 16, 16);
            var expected = Engine.Imaging.PlanarImage.From(Engine.Data.Augmentations.JpegReencode(bytes, 40)).Values;
            for (int j = 0; j < 768; j++) Assert.Equal(expected[j] / 255f, y[i * 768 + j]);
        }
        var dy = TestUtil.Random(images.Length, 32, 1f);
        Assert.Equal(dy, new ImageEvasion(0, 40).Backward(dy, 16));
        Assert.Equal(new ImageBlur(1).Backward(dy, 16), new ImageEvasion(1, 40).Backward(dy, 16));
        Assert.Equal(ImageEvasion.Jpeg(new ImageBlur(1).Forward(images, 16), 16, 40), new ImageEvasion(1, 40).Forward(images, 16));
        Assert.Throws<ArgumentException>(() => new ImageEvasion(0, 101));
    }

    [Fact]
    public void GreySamplesAreWhatTheHeadMakesOfTheBodysOutputRoundedToBytes()
    {
        using var k = new ModelGuardian.Kernels.Cpu.CpuKernels();
        using var body = Engine.Training.ImageGenerator.CreateGreyLogits(k, Engine.Networks.GeneratorFamily.NearestConv, 3, width: 8);
        var images = GreyImageHead.Sample(body, 5, seed: 9, shift: AttackOptions.DarkStart, batch: 4);
        Assert.Equal(5, images.Count);
        Assert.Equal(images.Select(i => i.Pixels), GreyImageHead.Sample(body, 5, seed: 9, shift: AttackOptions.DarkStart, batch: 4).Select(i => i.Pixels));
        // The first batch by hand: the same noise stream, normalised over the 4 images, through the tanh at the shift.
        var rng = new Engine.Data.SeededRandom(9);
        var z = Enumerable.Range(0, 4 * Engine.Training.ImageGenerator.NoiseSize).Select(_ => (float)rng.NextGaussian()).ToArray();
        var raw = body.Forward(z, new Engine.Core.Shape4(4, Engine.Training.ImageGenerator.NoiseSize, 1, 1));
        var expected = GreyImageHead.ToImages(GreyImageHead.Normalise(raw).Normalised, 32 * 32, AttackOptions.DarkStart);
        for (int i = 0; i < 4; i++)
            Assert.Equal(Engine.Imaging.RgbImage.FromPlanar(expected.AsSpan(i * 3 * 1024, 3 * 1024).ToArray().Select(v => v * 255f).ToArray(), 32, 32).Pixels, images[i].Pixels);
        // Grey (all three channels equal), and dark on the whole at the attacks' start shift.
        Assert.All(images, img => Assert.True(Enumerable.Range(0, 1024).All(p => img.Pixels[3 * p] == img.Pixels[3 * p + 1] && img.Pixels[3 * p] == img.Pixels[3 * p + 2])));
        Assert.True(images.Average(img => img.Pixels.Average(b => (double)b)) < 60);
        Assert.Throws<ArgumentException>(() => GreyImageHead.Sample(body, 2, 1, 0f, batch: 1));
    }

    [Fact]
    public void TheReplayMemoryKeepsGreyImagesAsOnePlaneAndForgetsTheOldestPastItsCapacity()
    {
        const int per = 3 * Plane;
        var buffer = new ReplayBuffer(capacity: 3, per, classes: 2, grey: true);
        float[] Grey(float v) => Enumerable.Repeat(v, per).ToArray();
        for (int i = 0; i < 5; i++) buffer.Add(Grey(0.1f * (i + 1)), [[i, 1 - i]]);
        Assert.Equal(3, buffer.Count);
        var (images, answers) = buffer.Sample(60, new Random(1));
        var seen = new HashSet<int>();
        for (int i = 0; i < 60; i++)
        {
            int which = (int)answers[i][0];
            seen.Add(which);
            // Half precision: within 2^-11 relative.
            Assert.All(images.Skip(i * per).Take(per), v => Assert.Equal(0.1f * (which + 1), v, 3e-4f));
        }
        Assert.Equal([2, 3, 4], seen.Order());
        Assert.Throws<ArgumentException>(() => buffer.Add(Grey(0f), [[1.0]]));
        Assert.Throws<InvalidOperationException>(() => new ReplayBuffer(4, per, 2).Sample(1, new Random(1)));
    }

    [Fact]
    public void TheSchedulesFollowTheirDefinitions()
    {
        Assert.Equal(1, DataFreeAttack.ScheduleFactor(LearningRateSchedule.Constant, 0.7));
        Assert.Equal(1, DataFreeAttack.ScheduleFactor(LearningRateSchedule.Cosine, 0), 12);
        Assert.Equal(0.5, DataFreeAttack.ScheduleFactor(LearningRateSchedule.Cosine, 0.5), 12);
        Assert.Equal(0, DataFreeAttack.ScheduleFactor(LearningRateSchedule.Cosine, 1), 12);
        Assert.Equal(1, DataFreeAttack.ScheduleFactor(LearningRateSchedule.Steps, 0.09));
        Assert.Equal(0.3, DataFreeAttack.ScheduleFactor(LearningRateSchedule.Steps, 0.1), 12);
        Assert.Equal(0.09, DataFreeAttack.ScheduleFactor(LearningRateSchedule.Steps, 0.3), 12);
        Assert.Equal(0.027, DataFreeAttack.ScheduleFactor(LearningRateSchedule.Steps, 0.99), 12);
    }
}
