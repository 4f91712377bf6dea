using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Engine.Training;

/// <summary>
/// What sub-detectors learn from (paper §III-C): real and synthetic images turned into their gradient
/// representation by a transformation model — 8-bit, as LGrad stores them — labelled 0 (real) and 1 (synthetic).
/// </summary>
public static class GradientDataset
{
    public static LabeledImageList Build(GradientTransform transform, IReadOnlyList<RgbImage> real, IReadOnlyList<RgbImage> synthetic, IProgress<double>? progress = null, int batch = 16)
    {
        if (!transform.Options.Quantize) throw new ArgumentException("Detectors learn from 8-bit gradient images: use a quantising transform.");
        var items = new List<(RgbImage, int)>(real.Count + synthetic.Count);
        int total = real.Count + synthetic.Count, done = 0;
        foreach (var (images, label) in new[] { (real, 0), (synthetic, 1) })
        {
            for (int start = 0; start < images.Count; start += batch)
            {
                var chunk = images.Skip(start).Take(batch).ToList();
                foreach (var g in transform.Transform(chunk)) items.Add((g.ToRgb(), label));
                done += chunk.Count;
                progress?.Report((double)done / total);
            }
        }
        return new LabeledImageList(items);
    }
}
