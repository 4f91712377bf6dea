using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Engine.Data;

public enum DatasetSplit { Train, Test }

/// <summary>
/// Fashion-MNIST (Zalando; 60,000 training and 10,000 test images of 28×28 grey bytes, 10 classes) from
/// Debian's <c>dataset-fashion-mnist</c>, which installs the original gzipped IDX files under
/// <see cref="DefaultRoot"/>. Raw (gunzipped) copies are read as well. Labels are checked to lie in 0…9.
/// The victim classifier takes 3×32×32 RGB: <see cref="ToPlanar32(int)"/> replicates the grey channel and
/// pads 2 black pixels on every side — no resampling, so no interpolation traces are added (the gradient
/// representation is built to notice exactly those), and the padding matches the images' black background.
/// </summary>
public sealed class FashionMnist
{
    public const string DebianPackage = "dataset-fashion-mnist";
    public const string DefaultRoot = "/usr/share/datasets/fashion-mnist";
    public const int Side = 28;
    public const int ClassCount = 10;
    /// <summary>Side of <see cref="ToPlanar32(int)"/>'s images: 28 + 2 × <see cref="Padding"/>.</summary>
    public const int PaddedSide = 32;
    public const int Padding = (PaddedSide - Side) / 2;

    /// <summary>How a classifier trained on <see cref="ToPlanar32(int)"/>'s images takes a query: grey, 28² padded with black to 32².</summary>
    public static InputContract Contract { get; } = new() { Fit = InputFit.Pad, ContentSide = Side, PadValue = 0, Grey = true };

    /// <summary>The dataset's class names, by label.</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    private FashionMnist(DatasetSplit split, IdxImages images, IdxLabels labels)
        => (Split, Images, Labels) = (split, images, labels);

    public DatasetSplit Split { get; }
    public IdxImages Images { get; }
    public IdxLabels Labels { get; }
    public int Count => Images.Count;

    public ReadOnlySpan<byte> Image(int index) => Images.Image(index);
    public int Label(int index) => Labels.Labels[index];

    /// <summary>
    /// Loads one split from <paramref name="root"/> (default <see cref="DefaultRoot"/>), taking
    /// <c>{train,t10k}-{images-idx3,labels-idx1}-ubyte</c> with or without <c>.gz</c>.
    /// </summary>
    /// <exception cref="DatasetNotFoundException">the files are in neither form; names the Debian package and the paths tried.</exception>
    /// <exception cref="InvalidDataException">a file is corrupt, not 28×28, or holds a label outside 0…9.</exception>
    public static FashionMnist Load(DatasetSplit split, string? root = null)
    {
        root ??= DefaultRoot;
        string prefix = split == DatasetSplit.Train ? "train" : "t10k";
        var tried = new List<string>();
        string imagesPath = Find(root, $"{prefix}-images-idx3-ubyte", tried, out bool imagesFound);
        string labelsPath = Find(root, $"{prefix}-labels-idx1-ubyte", tried, out bool labelsFound);
        if (!imagesFound || !labelsFound)
            throw new DatasetNotFoundException($"Fashion-MNIST ({split.ToString().ToLowerInvariant()} split)", [DebianPackage], tried,
                root == DefaultRoot ? "or pass the folder holding the IDX files as root" : $"it puts the IDX files in {DefaultRoot}; {root} does not hold them");

        var (images, labels) = IdxReader.ReadPair(imagesPath, labelsPath);
        if (images.Rows != Side || images.Columns != Side)
            throw new InvalidDataException($"{imagesPath}: Fashion-MNIST images are {Side}×{Side}, this file holds {images.Rows}×{images.Columns}.");
        var l = labels.Labels;
        for (int i = 0; i < l.Length; i++)
            if (l[i] >= ClassCount) throw new InvalidDataException($"{labelsPath}: label {l[i]} at index {i} is outside 0…{ClassCount - 1}.");
        return new FashionMnist(split, images, labels);
    }

    private static string Find(string root, string name, List<string> tried, out bool found)
    {
        foreach (var candidate in new[] { Path.Combine(root, name + ".gz"), Path.Combine(root, name) })
        {
            tried.Add(candidate);
            if (File.Exists(candidate)) { found = true; return candidate; }
        }
        found = false;
        return "";
    }

    /// <summary>Sample <paramref name="index"/> as a 3×32×32 RGB image on 0…255 (grey replicated, 2 black pixels of padding each side).</summary>
    public PlanarImage ToPlanar32(int index)
    {
        var values = new float[3 * PaddedSide * PaddedSide];
        CopyPlanar32(Image(index), values);
        return new PlanarImage(PaddedSide, PaddedSide, values);
    }

    /// <summary>
    /// Writes a 28×28 grey image as 3×32×32 planar values on 0…255 into <paramref name="destination"/>
    /// (e.g. one slot of a batch tensor), without allocating.
    /// </summary>
    public static void CopyPlanar32(ReadOnlySpan<byte> grey28, Span<float> destination)
    {
        if (grey28.Length != Side * Side) throw new ArgumentException($"A Fashion-MNIST image has {Side * Side} bytes, got {grey28.Length}.", nameof(grey28));
        const int plane = PaddedSide * PaddedSide;
        if (destination.Length != 3 * plane) throw new ArgumentException($"The destination must hold 3×{PaddedSide}×{PaddedSide} = {3 * plane} values, got {destination.Length}.", nameof(destination));
        var first = destination[..plane];
        first.Clear();
        for (int y = 0; y < Side; y++)
        {
            var row = first.Slice((y + Padding) * PaddedSide + Padding, Side);
            var src = grey28.Slice(y * Side, Side);
            for (int x = 0; x < Side; x++) row[x] = src[x];
        }
        first.CopyTo(destination.Slice(plane, plane));
        first.CopyTo(destination.Slice(2 * plane, plane));
    }
}
