using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;

namespace ModelGuardian.Engine.Training;

/// <summary>
/// Sets a binary detector's operating point from real images: the logit that at most a given share of them exceed
/// is subtracted from the output bias, so "sigmoid &gt; 0.5" — the threshold every consumer of a detector file
/// uses — means exactly that false-positive rate on those images. A detector flags a user's queries for
/// termination; its threshold is a property of the model and belongs in the model, not in each deployment.
/// </summary>
public static class DetectorCalibration
{
    /// <summary>What calibration measured: the logit subtracted, and the share of the real images still flagged.</summary>
    public sealed record Result(double LogitShift, int Images, double FalsePositiveRate);

    public static Result ShiftToFalsePositiveRate(TrainableNetwork net, IReadOnlyList<RgbImage> realGradients, double falsePositiveRate, int batchSize = 64)
    {
        var a = net.Architecture;
        if (a.Outputs != 1) throw new ArgumentException($"Calibration is for binary detectors with one logit, got {a.Outputs} outputs.");
        if (!(falsePositiveRate >= 0 && falsePositiveRate < 1)) throw new ArgumentException($"The false-positive rate must lie in [0, 1), got {falsePositiveRate}.");
        if (realGradients.Count == 0) throw new ArgumentException("Calibration needs real images.");
        var logits = Logits(net, realGradients, batchSize);
        Array.Sort(logits);
        Array.Reverse(logits);
        // The k-th largest logit (0-based): only the k above it stay flagged. A hair more is taken so that float rounding of
        // the shifted bias cannot leave the k-th image (or one tied with it) just above zero.
        int k = (int)Math.Floor(falsePositiveRate * logits.Length);
        float t = logits[Math.Min(k, logits.Length - 1)];
        float shift = t + 1e-5f * Math.Max(1f, Math.Abs(t));
        var bias = net.Parameters.All.SingleOrDefault(p => p.Name == "fc.bias") ?? throw new ArgumentException("The detector has no output bias 'fc.bias' to shift.");
        var values = new float[bias.Length];
        net.Kernels.Download(bias.Value, values);
        values[0] -= shift;
        net.Kernels.Upload(values, bias.Value);
        var after = Logits(net, realGradients, batchSize);
        return new Result(shift, realGradients.Count, (double)after.Count(l => l > 0) / after.Length);
    }

    /// <summary>The detector's logit for each image, in evaluation mode.</summary>
    public static float[] Logits(TrainableNetwork net, IReadOnlyList<RgbImage> images, int batchSize = 64)
    {
        var a = net.Architecture;
        bool wasTraining = net.Mode.IsTraining;
        net.Mode.IsTraining = false;
        try
        {
            int per = 3 * a.InputSide * a.InputSide;
            var logits = new float[images.Count];
            for (int start = 0; start < images.Count; start += batchSize)
            {
                int n = Math.Min(batchSize, images.Count - start);
                var x = new float[n * per];
                for (int i = 0; i < n; i++) NetworkInput.FromPlanar(a, net.Kernels, PlanarImage.From(images[start + i])).CopyTo(x, i * per);
                net.Forward(x, new Shape4(n, 3, a.InputSide, a.InputSide)).AsSpan(0, n).CopyTo(logits.AsSpan(start));
            }
            return logits;
        }
        finally
        {
            net.Mode.IsTraining = wasTraining;
        }
    }
}
