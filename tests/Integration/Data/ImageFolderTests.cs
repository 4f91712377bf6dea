using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Tests.Data;

public sealed class ImageFolderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-folder-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static RgbImage Pattern(int w, int h, int seed)
    {
        var px = new byte[w * h * 3];
        new SeededRandom((ulong)seed).NextBytes(px);
        return new RgbImage(w, h, px);
    }

    private string Put(string relative, byte[] bytes)
    {
        string path = Path.Combine(_dir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static byte[] Jpeg(RgbImage image)
    {
        using var ms = new MemoryStream();
        ImageCodec.WriteJpeg(image.Pixels, image.Width, image.Height, 95, ms);
        return ms.ToArray();
    }

    private static byte[] Bmp(RgbImage image)
    {
        using var ms = new MemoryStream();
        ImageCodec.WriteBmp(image.Pixels, image.Width, image.Height, ms);
        return ms.ToArray();
    }

    [Fact]
    public void Loads_png_jpeg_bmp_recursively_in_ordinal_order_and_names_a_corrupt_file()
    {
        var a = Pattern(5, 4, 1);
        var c = Pattern(3, 6, 3);
        string pa = Put("b/a.png", a.EncodePng());
        string pj = Put("B/x.JPG", Jpeg(Pattern(16, 8, 2)));
        string pc = Put("c.bmp", Bmp(c));
        Put("notes.txt", "not an image"u8.ToArray());
        Put(".hidden/h.png", a.EncodePng());
        string bad = Put("b/broken.png", [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]);

        var e = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(_dir));
        Assert.Contains(bad, e.Message);
        Assert.Contains("skipBad", e.Message);

        var loaded = ImageFolder.Load(_dir, skipBad: true);
        // Ordinal: "B/…" < "b/…" < "c.bmp"; the text file and the hidden folder are not images here.
        Assert.Equal([pj, pa, pc], loaded.Select(f => f.Path));
        Assert.Equal(a.Pixels, loaded[1].Image.Pixels);      // PNG and BMP are lossless
        Assert.Equal(c.Pixels, loaded[2].Image.Pixels);
        Assert.Equal((16, 8), (loaded[0].Image.Width, loaded[0].Image.Height));
        var skipped = Assert.Single(loaded.Skipped);
        Assert.Equal(bad, skipped.Path);
        Assert.Equal(ImageFolder.ImageFiles(_dir).Count, loaded.Count + loaded.Skipped.Count);
    }

    [Fact]
    public void Oversized_images_are_refused_by_max_side()
    {
        string big = Put("big.png", Pattern(40, 10, 4).EncodePng());
        var e = Assert.Throws<InvalidDataException>(() => ImageFolder.Load(_dir, maxSide: 32));
        Assert.Contains(big, e.Message);
        Assert.Single(ImageFolder.Load(_dir, maxSide: 32, skipBad: true).Skipped);
        Assert.Single(ImageFolder.Load(_dir, maxSide: 40));
    }

    [Fact]
    public void Labelled_folders_are_classes_in_ordinal_order()
    {
        Put("dog/1.png", Pattern(4, 4, 1).EncodePng());
        Put("cat/deep/2.jpg", Jpeg(Pattern(8, 8, 2)));
        Put("cat/1.png", Pattern(4, 4, 3).EncodePng());
        Directory.CreateDirectory(Path.Combine(_dir, "empty"));
        Put("dog/bad.bmp", [1, 2, 3]);

        Assert.Throws<InvalidDataException>(() => ImageFolder.LoadLabelled(_dir));
        var set = ImageFolder.LoadLabelled(_dir, skipBad: true);
        Assert.Equal(["cat", "dog", "empty"], set.ClassNames);
        Assert.Equal([("cat/1.png", 0), ("cat/deep/2.jpg", 0), ("dog/1.png", 1)],
            set.Images.Select(i => (Path.GetRelativePath(_dir, i.Path), i.Label)));
        Assert.Equal("dog/bad.bmp", Path.GetRelativePath(_dir, Assert.Single(set.Skipped).Path));

        string stray = Put("stray.png", Pattern(2, 2, 5).EncodePng());
        var e = Assert.Throws<InvalidDataException>(() => ImageFolder.LoadLabelled(_dir, skipBad: true));
        Assert.Contains(stray, e.Message);
    }

    [Fact]
    public void Missing_folder()
    {
        Assert.Throws<DirectoryNotFoundException>(() => ImageFolder.Load(Path.Combine(_dir, "nope")));
        Assert.Throws<DirectoryNotFoundException>(() => ImageFolder.LoadLabelled(Path.Combine(_dir, "nope")));
        Assert.Empty(ImageFolder.Load(_dir));
    }
}
