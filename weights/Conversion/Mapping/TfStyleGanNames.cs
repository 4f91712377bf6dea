using System.Globalization;
using System.Text.RegularExpressions;
using ModelGuardian.Weights.Sources;

namespace ModelGuardian.Weights.Mapping;

/// <summary>
/// NVIDIA's StyleGAN v1 TF scope names → genforce's PyTorch names, with the layout
/// changes: conv [kh, kw, in, out] → [out, in, kh, kw], dense [in, out] → [out, in]. TF's
/// StyleGAN runs NCHW, so Dense0's flattened input is already in (C, H, W) order: no permutation
/// of its input dimension. Names that do not match stay as they are (and are then unexpected).
/// </summary>
internal static partial class TfStyleGanNames
{
    [GeneratedRegex(@"^FromRGB_lod(\d+)/(weight|bias)$")]
    private static partial Regex FromRgb();

    [GeneratedRegex(@"^(\d+)x\1/(Conv0|Conv1_down|Conv|Dense0|Dense1)/(weight|bias)$")]
    private static partial Regex Block();

    public static Dictionary<string, SourceTensor> ToGenforce(Dictionary<string, SourceTensor> tf, int resolution)
    {
        int blocks = (int)Math.Log2(resolution / 4);
        var result = new Dictionary<string, SourceTensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tf)
        {
            var (mapped, t) = Map(name, tensor, resolution, blocks);
            if (!result.TryAdd(mapped, t)) throw new WeightFormatException($"TF variables '{name}' and another both map to '{mapped}'.");
        }
        return result;
    }

    private static (string Name, SourceTensor Tensor) Map(string name, SourceTensor t, int resolution, int blocks)
    {
        var m = FromRgb().Match(name);
        if (m.Success) return ($"input{m.Groups[1].Value}.{m.Groups[2].Value}", Layout(t, m.Groups[2].Value));
        m = Block().Match(name);
        if (!m.Success || !int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int res) || res < 4 || res > resolution || (res & (res - 1)) != 0)
            return (name, t);
        string kind = m.Groups[2].Value, part = m.Groups[3].Value;
        int b = (int)Math.Log2(resolution / res);
        int? layer = (res, kind) switch
        {
            (> 4, "Conv0") => 2 * b,
            (> 4, "Conv1_down") => 2 * b + 1,
            (4, "Conv") => 2 * blocks,
            (4, "Dense0") => 2 * blocks + 1,
            (4, "Dense1") => 2 * blocks + 2,
            _ => null,
        };
        return layer is int l ? ($"layer{l}.{part}", Layout(t, part)) : (name, t);
    }

    private static SourceTensor Layout(SourceTensor t, string part)
        => part != "weight" ? t : t.Shape.Length switch
        {
            4 => new PermutedTensor(t, [t.Shape[3], t.Shape[2], t.Shape[0], t.Shape[1]], ConvToTorch),
            2 => new PermutedTensor(t, [t.Shape[1], t.Shape[0]], DenseToTorch),
            _ => t,
        };

    // src [kh, kw, in, out] → dst [out, in, kh, kw]
    private static void ConvToTorch(float[] src, float[] dst, int[] s)
    {
        int kh = s[0], kw = s[1], cin = s[2], cout = s[3];
        for (int y = 0; y < kh; y++)
            for (int x = 0; x < kw; x++)
                for (int i = 0; i < cin; i++)
                    for (int o = 0; o < cout; o++)
                        dst[((o * cin + i) * kh + y) * kw + x] = src[((y * kw + x) * cin + i) * cout + o];
    }

    // src [in, out] → dst [out, in]
    private static void DenseToTorch(float[] src, float[] dst, int[] s)
    {
        int cin = s[0], cout = s[1];
        for (int i = 0; i < cin; i++)
            for (int o = 0; o < cout; o++)
                dst[o * cin + i] = src[i * cout + o];
    }

    /// <summary>A source tensor seen in another layout; permuted when read.</summary>
    private sealed class PermutedTensor(SourceTensor source, int[] shape, Action<float[], float[], int[]> permute) : SourceTensor(source.DType, shape)
    {
        public override float[] ReadFloats()
        {
            var dst = new float[Count];
            permute(source.ReadFloats(), dst, source.Shape);
            return dst;
        }
    }
}
