using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Imaging;

public enum ResizeFilter
{
    /// <summary>PyTorch's bilinear (align_corners = false, no antialiasing), run on the backend. Our default.</summary>
    Bilinear,
    /// <summary>PIL's bicubic (a = −0.5, support widened when down-scaling), as LGrad's TF path; computed in float without PIL's 8-bit rounding between passes.</summary>
    Bicubic,
}

/// <summary>PIL-style separable bicubic resampling of planar float images.</summary>
internal static class Resampler
{
    // chw: (C, H, W) → (C, outH, outW)
    public static float[] Bicubic(ReadOnlySpan<float> chw, int channels, int h, int w, int outH, int outW)
    {
        var (xIdx, xW, xN) = Coefficients(w, outW);
        var (yIdx, yW, yN) = Coefficients(h, outH);
        var tmp = new float[channels * h * outW];
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < h; y++)
                for (int ox = 0; ox < outW; ox++)
                {
                    double acc = 0;
                    for (int t = 0; t < xN; t++) acc += xW[ox * xN + t] * chw[(c * h + y) * w + xIdx[ox] + t];
                    tmp[(c * h + y) * outW + ox] = (float)acc;
                }
        var result = new float[channels * outH * outW];
        for (int c = 0; c < channels; c++)
            for (int oy = 0; oy < outH; oy++)
                for (int x = 0; x < outW; x++)
                {
                    double acc = 0;
                    for (int t = 0; t < yN; t++) acc += yW[oy * yN + t] * tmp[(c * h + yIdx[oy] + t) * outW + x];
                    result[(c * outH + oy) * outW + x] = (float)acc;
                }
        return result;
    }

    private static double Cubic(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }

    // For each output index: first source index and normalised weights over a fixed-size window (PIL's precompute_coeffs).
    private static (int[] First, double[] Weights, int Window) Coefficients(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize, filterScale = Math.Max(scale, 1.0), support = 2.0 * filterScale;
        int window = (int)Math.Ceiling(support) * 2 + 1;
        var first = new int[outSize];
        var weights = new double[outSize * window];
        for (int o = 0; o < outSize; o++)
        {
            double center = (o + 0.5) * scale;
            int x0 = Math.Max((int)(center - support + 0.5), 0), x1 = Math.Min((int)(center + support + 0.5), inSize);
            double total = 0;
            for (int x = x0; x < x1; x++) total += weights[o * window + x - x0] = Cubic((x - center + 0.5) / filterScale);
            for (int x = x0; x < x1; x++) weights[o * window + x - x0] = total != 0 ? weights[o * window + x - x0] / total : 0;
            // Slide windows that would run past the end back inside, moving their weights along.
            if (x0 + window > inSize)
            {
                int shift = x0 + window - inSize;
                for (int t = window - 1; t >= 0; t--) weights[o * window + t] = t - shift >= 0 ? weights[o * window + t - shift] : 0;
                x0 -= shift;
            }
            first[o] = x0;
        }
        return (first, weights, window);
    }

    /// <summary>(C, outH, outW) from (C, h, w) with <paramref name="filter"/>: bilinear runs on the backend, bicubic here.</summary>
    public static float[] Resize(IKernels kernels, ResizeFilter filter, ReadOnlySpan<float> chw, int channels, int h, int w, int outH, int outW)
        => filter == ResizeFilter.Bicubic ? Bicubic(chw, channels, h, w, outH, outW) : Bilinear(kernels, chw, channels, h, w, outH, outW);

    /// <summary>Bilinear on the backend (the layer kernel): chw (C, H, W) → (C, outH, outW).</summary>
    public static float[] Bilinear(IKernels kernels, ReadOnlySpan<float> chw, int channels, int h, int w, int outH, int outW)
    {
        var shape = new ResizeShape(1, channels, h, w, outH, outW, ResizeMode.Bilinear);
        using var x = kernels.Allocate(shape.InputLength);
        using var y = kernels.Allocate(shape.OutputLength);
        kernels.Upload(chw, x);
        kernels.ResizeForward(shape, x, y);
        var result = new float[shape.OutputLength];
        kernels.Download(y, result);
        return result;
    }
}
