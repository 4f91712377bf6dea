namespace ModelGuardian.Kernels;

/// <summary>
/// An optional capability of a backend: inference forwards on channel-blocked activations
/// (<see cref="BlockedLayout"/>), which a network may use for a run of layers between an entry
/// (<see cref="ToBlocked"/>) and an exit (<see cref="BlockedGlobalAveragePool"/>) when it records no
/// backward pass. Same numbers as the NCHW kernels up to summation order. The CPU backend has it:
/// there a convolution reads its input in place — a pixel's 16 channels are one vector, a tap one
/// address — where the NCHW route packs or copies its input for every layer first.
/// </summary>
public interface IBlockedKernels
{
    /// <summary>Whether networks should use these kernels (a backend may be built with them off, to compare).</summary>
    bool BlockedInference { get; }

    /// <summary>Whether <see cref="BlockedConv2dForward"/> takes this convolution on an input in this layout (its output: blocks of 16).</summary>
    bool SupportsBlockedConv2d(in Conv2dShape s, in BlockedLayout input);

    // x: (N, C, H, W) → y: layout (border and padding channels zero)
    void ToBlocked(in BlockedLayout layout, DeviceBuffer x, DeviceBuffer y);

    // x: layout · w: (Cout, Cin, KH, KW) · bias: (Cout) or null → y = lrelu(conv(x) + bias + residual): output layout,
    // residual (optional) in the output layout. Output: Block 16, Cout a multiple of 32; groups 1; input border ≥ the padding.
    void BlockedConv2dForward(in Conv2dShape s, in BlockedLayout input, in BlockedLayout output, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias,
                              DeviceBuffer y, float? leakyReluSlope = null, DeviceBuffer? residual = null);

    // x: input layout → y: output layout, max over each window's pixels inside the image (PyTorch's −∞ padding)
    void BlockedMaxPool2dForward(in Pool2dShape s, in BlockedLayout input, in BlockedLayout output, DeviceBuffer x, DeviceBuffer y);

    // x: layout → y: (N, C) = the mean of each channel's H × W pixels
    void BlockedGlobalAveragePool(in BlockedLayout input, DeviceBuffer x, DeviceBuffer y);
}
