using System.IO.Compression;
using ModelGuardian.Engine.Data;

namespace ModelGuardian.Tests.Data;

/// <summary>Both splits, read once for the class from Debian's dataset-fashion-mnist (the tests fail without it).</summary>
public sealed class FashionMnistFixture
{
    public FashionMnist Train { get; } = FashionMnist.Load(DatasetSplit.Train);
    public FashionMnist Test { get; } = FashionMnist.Load(DatasetSplit.Test);
}

public sealed class FashionMnistTests(FashionMnistFixture data) : IClassFixture<FashionMnistFixture>
{
    [Fact]
    public void Real_files_have_the_published_counts_and_balanced_labels()
    {
        Assert.Equal(60000, data.Train.Count);
        Assert.Equal(10000, data.Test.Count);
        foreach (var (split, perClass) in new[] { (data.Train, 6000), (data.Test, 1000) })
        {
            Assert.Equal((FashionMnist.Side, FashionMnist.Side), (split.Images.Rows, split.Images.Columns));
            Assert.Equal(split.Count, split.Labels.Count);
            var histogram = new int[FashionMnist.ClassCount];
            foreach (var l in split.Labels.Labels) histogram[l]++;   // an index past 9 would throw here
            Assert.All(histogram, c => Assert.Equal(perClass, c));
        }
        Assert.Equal(10, FashionMnist.ClassNames.Count);
        Assert.Equal("Ankle boot", FashionMnist.ClassNames[9]);
    }

    [Fact]
    public void Known_samples()
    {
        // First labels of each split, and row 14 of the first training image (read with Python's gzip module).
        Assert.Equal([9, 0, 0, 3, 0, 2, 7, 2, 5, 5], Enumerable.Range(0, 10).Select(data.Train.Label));
        Assert.Equal([9, 2, 1, 1, 6, 1, 4, 6, 5, 7], Enumerable.Range(0, 10).Select(data.Test.Label));
        Assert.Equal(new byte[] { 0, 0, 1, 4, 6, 7, 2, 0, 0, 0, 0, 0, 237, 226, 217, 223, 222, 219, 222, 221, 216, 223, 229, 215, 218, 255, 77, 0 },
            data.Train.Image(0).Slice(14 * 28, 28).ToArray());
        Assert.Equal(76247, Sum(data.Train.Image(0)));
        Assert.Equal(33456, Sum(data.Test.Image(0)));
        Assert.Equal(0, data.Train.Images.Pixels.Min());
        Assert.Equal(255, data.Train.Images.Pixels.Max());
    }

    private static long Sum(ReadOnlySpan<byte> s) { long t = 0; foreach (var b in s) t += b; return t; }

    [Fact]
    public void Planar_32_is_the_grey_image_padded_by_two_in_three_equal_channels()
    {
        var img = data.Test.ToPlanar32(0);
        Assert.Equal((32, 32), (img.Width, img.Height));
        var v = img.Values;
        var grey = data.Test.Image(0);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                {
                    bool inside = x >= 2 && x < 30 && y >= 2 && y < 30;
                    Assert.Equal(inside ? grey[(y - 2) * 28 + x - 2] : 0f, v[(c * 32 + y) * 32 + x]);
                }
    }

    [Fact]
    public void Raw_uncompressed_files_give_the_same_data()
    {
        string dir = Directory.CreateTempSubdirectory("mg-fmnist-").FullName;
        try
        {
            foreach (var name in new[] { "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" })
            {
                using var gz = new GZipStream(File.OpenRead(Path.Combine(FashionMnist.DefaultRoot, name + ".gz")), CompressionMode.Decompress);
                using var raw = File.Create(Path.Combine(dir, name));
                gz.CopyTo(raw);
            }
            var test = FashionMnist.Load(DatasetSplit.Test, dir);
            Assert.Equal(data.Test.Images.Pixels, test.Images.Pixels);
            Assert.Equal(data.Test.Labels.Labels, test.Labels.Labels);
            // The training split is not in that folder: the error names the package and the paths tried.
            var e = Assert.Throws<DatasetNotFoundException>(() => FashionMnist.Load(DatasetSplit.Train, dir));
            Assert.Contains(Path.Combine(dir, "train-images-idx3-ubyte.gz"), e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Missing_dataset_names_the_debian_package_and_paths()
    {
        string root = Path.Combine(Path.GetTempPath(), "mg-no-such-dataset-" + Guid.NewGuid());
        var e = Assert.Throws<DatasetNotFoundException>(() => FashionMnist.Load(DatasetSplit.Train, root));
        Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);
        Assert.Contains(Path.Combine(root, "train-images-idx3-ubyte.gz"), e.Message);
        Assert.Contains(Path.Combine(root, "train-labels-idx1-ubyte"), e.Message);
        Assert.Equal(["dataset-fashion-mnist"], e.Packages);
        Assert.IsAssignableFrom<FileNotFoundException>(e);
    }

    [Fact]
    public void Labels_outside_0_to_9_are_refused()
    {
        string dir = Directory.CreateTempSubdirectory("mg-fmnist-").FullName;
        try
        {
            File.WriteAllBytes(Path.Combine(dir, "t10k-images-idx3-ubyte"), [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28, .. new byte[2 * 784]]);
            string labels = Path.Combine(dir, "t10k-labels-idx1-ubyte");
            File.WriteAllBytes(labels, [0, 0, 8, 1, 0, 0, 0, 2, 3, 10]);
            var e = Assert.Throws<InvalidDataException>(() => FashionMnist.Load(DatasetSplit.Test, dir));
            Assert.Contains(labels, e.Message);
            Assert.Contains("label 10 at index 1", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}
