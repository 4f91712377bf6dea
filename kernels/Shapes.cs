namespace ModelGuardian.Kernels;

/// <summary>
/// Geometry of a 2-D convolution over NCHW tensors. Weights are laid out as
/// (Cout, Cin / Groups, KH, KW), exactly as PyTorch stores them.
/// </summary>
public readonly record struct Conv2dShape(
    int N, int Cin, int H, int W,
    int Cout, int KH, int KW,
    int StrideH = 1, int StrideW = 1,
    int PadH = 0, int PadW = 0,
    int Groups = 1)
{
    // Guarded so that ToString (used in Validate's messages) cannot divide by a zero stride.
    public int OutH => StrideH < 1 ? 0 : (H + 2 * PadH - KH) / StrideH + 1;
    public int OutW => StrideW < 1 ? 0 : (W + 2 * PadW - KW) / StrideW + 1;
    public int CinPerGroup => Cin / Groups;
    public int CoutPerGroup => Cout / Groups;
    public int InputLength => N * Cin * H * W;
    public int OutputLength => N * Cout * OutH * OutW;
    public int WeightLength => Cout * CinPerGroup * KH * KW;

    /// <summary>Square kernel, same stride and padding in both directions.</summary>
    public static Conv2dShape Square(int n, int cin, int h, int w, int cout, int k, int stride = 1, int pad = 0, int groups = 1)
        => new(n, cin, h, w, cout, k, k, stride, stride, pad, pad, groups);

    public void Validate()
    {
        if (N < 1 || Cin < 1 || H < 1 || W < 1 || Cout < 1 || KH < 1 || KW < 1)
            throw new ArgumentException($"Conv2d: all sizes must be positive, got {this}.");
        if (StrideH < 1 || StrideW < 1 || PadH < 0 || PadW < 0)
            throw new ArgumentException($"Conv2d: stride must be ≥ 1 and padding ≥ 0, got {this}.");
        if (Groups < 1 || Cin % Groups != 0 || Cout % Groups != 0)
            throw new ArgumentException($"Conv2d: Cin={Cin} and Cout={Cout} must both be divisible by groups={Groups}.");
        if (H + 2 * PadH < KH || W + 2 * PadW < KW)
            throw new ArgumentException($"Conv2d: input {H}×{W} (padding {PadH},{PadW}) is smaller than the {KH}×{KW} kernel.");
    }
}

/// <summary>Geometry of max / average pooling over NCHW tensors (PyTorch semantics, floor mode).</summary>
public readonly record struct Pool2dShape(
    int N, int C, int H, int W,
    int KH, int KW, int StrideH, int StrideW, int PadH = 0, int PadW = 0)
{
    public int OutH => StrideH < 1 ? 0 : (H + 2 * PadH - KH) / StrideH + 1;
    public int OutW => StrideW < 1 ? 0 : (W + 2 * PadW - KW) / StrideW + 1;
    public int InputLength => N * C * H * W;
    public int OutputLength => N * C * OutH * OutW;

    public static Pool2dShape Square(int n, int c, int h, int w, int k, int stride, int pad = 0)
        => new(n, c, h, w, k, k, stride, stride, pad, pad);

    public void Validate()
    {
        if (N < 1 || C < 1 || H < 1 || W < 1 || KH < 1 || KW < 1 || StrideH < 1 || StrideW < 1)
            throw new ArgumentException($"Pool2d: sizes and strides must be positive, got {this}.");
        if (PadH < 0 || PadW < 0 || 2 * PadH > KH || 2 * PadW > KW)
            throw new ArgumentException($"Pool2d: padding must be between 0 and half the kernel, got {this}.");
        if (H + 2 * PadH < KH || W + 2 * PadW < KW)
            throw new ArgumentException($"Pool2d: input {H}×{W} is smaller than the {KH}×{KW} window.");
    }
}

public enum ResizeMode
{
    /// <summary>PyTorch 'nearest': src = floor(dst · in / out).</summary>
    Nearest,
    /// <summary>PyTorch 'bilinear' with align_corners = false (half-pixel centres, clamped at the borders).</summary>
    Bilinear,
}

/// <summary>Resize of NCHW tensors from (H, W) to (OutH, OutW).</summary>
public readonly record struct ResizeShape(int N, int C, int H, int W, int OutH, int OutW, ResizeMode Mode)
{
    public int InputLength => N * C * H * W;
    public int OutputLength => N * C * OutH * OutW;

    public void Validate()
    {
        if (N < 1 || C < 1 || H < 1 || W < 1 || OutH < 1 || OutW < 1)
            throw new ArgumentException($"Resize: sizes must be positive, got {this}.");
    }
}

/// <summary>
/// Channel-blocked activations, the CPU backend's inference layout (<see cref="IBlockedKernels"/>):
/// (N, C / Block, H + 2·Pad, W + 2·Pad, Block) — each pixel's Block channels are one vector, and a
/// border of Pad zero pixels lets a convolution read its padding taps like any other. Block is 16
/// (one 512-bit vector), or 1 (plain NCHW with a zero border) for inputs whose channels are not a
/// multiple of 16, such as an RGB image.
/// </summary>
public readonly record struct BlockedLayout(int N, int C, int H, int W, int Pad, int Block)
{
    public const int Vector = 16;

    /// <summary>The layout for (N, C, H, W) with a border of <paramref name="pad"/>: blocks of 16 when C allows, else 1.</summary>
    public static BlockedLayout For(int n, int c, int h, int w, int pad) => new(n, c, h, w, pad, c % Vector == 0 ? Vector : 1);

    public int Blocks => C / Block;
    public int Pitch => W + 2 * Pad;
    public int Rows => H + 2 * Pad;
    /// <summary>Floats of one block of channels of one image: Rows × Pitch × Block.</summary>
    public long PlaneLength => (long)Rows * Pitch * Block;
    public long ImageLength => Blocks * PlaneLength;
    /// <summary>Floats of the whole tensor; throws when it exceeds one buffer.</summary>
    public int Length => checked((int)(N * ImageLength));

    public void Validate()
    {
        if (N < 1 || C < 1 || H < 1 || W < 1 || Pad < 0)
            throw new ArgumentException($"Blocked layout: sizes must be positive and the border ≥ 0, got {this}.");
        if (Block is not (1 or Vector) || C % Block != 0)
            throw new ArgumentException($"Blocked layout: the block must be 1 or {Vector} and divide C, got {this}.");
        _ = Length;
    }
}
