using ModelGuardian.Engine.Imaging;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Networks;

/// <summary>How a query image is brought to a network's square input side.</summary>
public enum InputFit
{
    /// <summary>Resized to the input side whatever its size (bilinear or bicubic).</summary>
    Resize,
    /// <summary>A square image of <see cref="InputContract.ContentSide"/> (resized to it if another size) padded on every
    /// side up to the input side, as Fashion-MNIST's 28² images are padded to 32².</summary>
    Pad,
    /// <summary>The shorter side resized to <see cref="InputContract.ResizeSide"/> (aspect kept), then the centre cropped to
    /// the input side, as torchvision's Resize then CenterCrop.</summary>
    CenterCrop,
}

/// <summary>
/// The input contract a model was trained with and is served with: how a query becomes the network's input.
/// It is stored in the model's weight file, so the server, `mg predict` and the evaluation all apply the
/// model's own preprocessing, and a query that cannot meet it is refused with an <see cref="InvalidDataException"/>
/// instead of being silently distorted. Values stay on the 0…255 scale here; the descriptor's mean and std
/// normalise afterwards.
/// </summary>
public sealed record InputContract
{
    public InputFit Fit { get; init; } = InputFit.Resize;
    /// <summary>The filter of every resize the contract makes.</summary>
    public ResizeFilter Filter { get; init; } = ResizeFilter.Bilinear;
    /// <summary><see cref="InputFit.Pad"/>: the side of the image before padding (28 for Fashion-MNIST).</summary>
    public int ContentSide { get; init; }
    /// <summary><see cref="InputFit.Pad"/>: the padding's value on the 0…255 scale (0 = black).</summary>
    public float PadValue { get; init; }
    /// <summary><see cref="InputFit.CenterCrop"/>: the shorter side after the resize, before the crop.</summary>
    public int ResizeSide { get; init; }
    /// <summary>The model was trained on grey images repeated in three planes: colour queries are made grey
    /// (luma 0.299 R + 0.587 G + 0.114 B) first; grey ones pass unchanged.</summary>
    public bool Grey { get; init; }

    /// <summary>What a file without a stored contract means: resize bilinearly to the input side.</summary>
    public static InputContract Default { get; } = new();

    /// <summary>Throws <see cref="ArgumentException"/> unless the contract fits an input side of <paramref name="inputSide"/>.</summary>
    public void Validate(int inputSide)
    {
        switch (Fit)
        {
            case InputFit.Pad:
                if (ContentSide < 1 || ContentSide > inputSide || (inputSide - ContentSide) % 2 != 0)
                    throw new ArgumentException($"A padded input needs a content side in 1…{inputSide} that leaves an even margin to the input side {inputSide}, got {ContentSide}.");
                if (!(PadValue >= 0 && PadValue <= 255)) throw new ArgumentException($"The pad value must lie in 0…255, got {PadValue}.");
                break;
            case InputFit.CenterCrop:
                if (ResizeSide < inputSide || ResizeSide > 8192)
                    throw new ArgumentException($"A centre crop needs a resize side in {inputSide}…8192 (at least the input side {inputSide}), got {ResizeSide}.");
                break;
            case InputFit.Resize:
                if (ContentSide != 0 || ResizeSide != 0 || PadValue != 0) throw new ArgumentException("A resized input takes no content side, resize side or pad value.");
                break;
            default:
                throw new ArgumentException($"Unknown input fit {Fit}.");
        }
    }

    /// <summary>
    /// <paramref name="image"/> (0…255) brought to <paramref name="inputSide"/>², grey if the contract says so.
    /// A <see cref="InputFit.Pad"/> contract also takes an image already of the input side as it is (the padded form).
    /// </summary>
    /// <exception cref="InvalidDataException">the image cannot meet the contract (a padded model needs a square image).</exception>
    public PlanarImage Apply(PlanarImage image, int inputSide, IKernels kernels)
    {
        if (Grey) image = ToGrey(image);
        switch (Fit)
        {
            case InputFit.Resize:
                return Resize(image, inputSide, inputSide, kernels);
            case InputFit.Pad:
                if (image.Width == inputSide && image.Height == inputSide) return image;
                if (image.Width != image.Height)
                    throw new InvalidDataException($"This model takes square images ({ContentSide}×{ContentSide}, padded to {inputSide}×{inputSide}); got {image.Width}×{image.Height}.");
                return Pad(Resize(image, ContentSide, ContentSide, kernels), inputSide);
            case InputFit.CenterCrop:
                int shorter = Math.Min(image.Width, image.Height);
                // torchvision's Resize(int): the shorter side becomes ResizeSide, the longer one int(ResizeSide·long/short).
                int w = image.Width == shorter ? ResizeSide : (int)((long)ResizeSide * image.Width / shorter);
                int h = image.Height == shorter ? ResizeSide : (int)((long)ResizeSide * image.Height / shorter);
                return Crop(Resize(image, w, h, kernels), inputSide);
            default:
                throw new InvalidOperationException($"Unknown input fit {Fit}.");
        }
    }

    private PlanarImage Resize(PlanarImage image, int width, int height, IKernels kernels)
    {
        if (image.Width == width && image.Height == height) return image;
        return new PlanarImage(width, height, Resampler.Resize(kernels, Filter, image.Values, 3, image.Height, image.Width, height, width));
    }

    private PlanarImage Pad(PlanarImage image, int side)
    {
        int margin = (side - image.Width) / 2, plane = side * side, src = image.Width * image.Height;
        var values = new float[3 * plane];
        values.AsSpan().Fill(PadValue);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < image.Height; y++)
                image.Values.AsSpan(c * src + y * image.Width, image.Width).CopyTo(values.AsSpan(c * plane + (y + margin) * side + margin));
        return new PlanarImage(side, side, values);
    }

    private static PlanarImage Crop(PlanarImage image, int side)
    {
        // torchvision's CenterCrop: int(round((size − crop) / 2)), Python's round taking halves to even.
        int top = (int)Math.Round((image.Height - side) / 2.0, MidpointRounding.ToEven), left = (int)Math.Round((image.Width - side) / 2.0, MidpointRounding.ToEven);
        int plane = side * side, src = image.Width * image.Height;
        var values = new float[3 * plane];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < side; y++)
                image.Values.AsSpan(c * src + (y + top) * image.Width + left, side).CopyTo(values.AsSpan(c * plane + y * side));
        return new PlanarImage(side, side, values);
    }

    /// <summary>Luma in all three planes; an image already grey (every pixel R = G = B) is returned as it is.</summary>
    private static PlanarImage ToGrey(PlanarImage image)
    {
        int n = image.Width * image.Height;
        var v = image.Values;
        if (v.AsSpan(0, n).SequenceEqual(v.AsSpan(n, n)) && v.AsSpan(0, n).SequenceEqual(v.AsSpan(2 * n, n))) return image;
        var grey = new float[3 * n];
        for (int i = 0; i < n; i++)
            grey[i] = grey[n + i] = grey[2 * n + i] = 0.299f * v[i] + 0.587f * v[n + i] + 0.114f * v[2 * n + i];
        return new PlanarImage(image.Width, image.Height, grey);
    }

    public override string ToString()
    {
        string filter = Filter == ResizeFilter.Bicubic ? "bicubic" : "bilinear";
        string fit = Fit switch
        {
            InputFit.Pad => $"square, resized ({filter}) to {ContentSide}² if another size, padded with {PadValue:0.###} to the input side",
            InputFit.CenterCrop => $"shorter side resized ({filter}) to {ResizeSide}, centre cropped",
            _ => $"resized ({filter})",
        };
        return (Grey ? "grey (luma), " : "") + fit;
    }
}
