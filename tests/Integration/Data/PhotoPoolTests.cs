using ModelGuardian.Engine.Data;

namespace ModelGuardian.Tests.Data;

/// <summary>The pool from the installed Debian packages, loaded once (python3-skimage and opencv-doc; the tests fail without them).</summary>
public sealed class PhotoPoolFixture
{
    public PhotoPool Pool { get; } = PhotoPool.Load();
}

public sealed class PhotoPoolTests(PhotoPoolFixture fixture) : IClassFixture<PhotoPoolFixture>
{
    private PhotoPool Pool => fixture.Pool;

    private static string Name(string path) => Path.GetFileName(path);

    [Fact]
    public void Takes_the_colour_photos_of_the_packages_and_rejects_grey_small_and_drawn_images()
    {
        var names = Pool.Photos.Select(p => Name(p.Path)).ToHashSet();
        // skimage 0.19 gives 9 photos and opencv-doc 4.6 gives 27 (more with darknet / libjxl-testdata installed).
        Assert.True(Pool.Photos.Count >= 36, $"only {Pool.Photos.Count} photos: {string.Join(", ", names)}");
        foreach (var photo in new[] { "astronaut.png", "chelsea.png", "coffee.png", "baboon.jpg", "fruits.jpg", "messi5.jpg" })
            Assert.Contains(photo, names);
        var rejected = Pool.Rejected.ToDictionary(r => Name(r.Path), r => r.Reason);
        Assert.StartsWith("grey", rejected["camera.png"]);                    // stored grey
        Assert.StartsWith("grey in effect", rejected["LinuxLogo.jpg"]);        // grey stored as RGB
        Assert.StartsWith("too small", rejected["block.png"]);                 // 10×10
        Assert.StartsWith("flat", rejected["opencv-logo.png"]);                // a logo
        Assert.StartsWith("listed", rejected["color.png"]);                    // skimage's colour wheel
        Assert.StartsWith("listed", rejected["starry_night.jpg"]);             // a painting
        Assert.All(Pool.Photos, p => Assert.True(Math.Min(p.Image.Width, p.Image.Height) >= 128));
        Assert.Equal(Pool.Photos.Min(p => Math.Min(p.Image.Width, p.Image.Height)), Pool.SmallestSide);
    }

    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    public void Crops_have_the_requested_size_and_are_windows_of_a_photo(int side)
    {
        var options = new PhotoCropOptions(side);
        var crops = Pool.Crops(8, options, seed: 1).ToList();
        Assert.All(crops, c => Assert.Equal((side, side), (c.Width, c.Height)));
        // Native-resolution crops are exact copies of some window of the photo the generator picked.
        var rng = SeededRandom.ForItem(1, 0, 3);
        var photo = Pool.Photos[rng.Next(Pool.Photos.Count)].Image;
        int s = rng.Next(side, side + 1), x = rng.Next(photo.Width - s + 1), y = rng.Next(photo.Height - s + 1);
        Assert.Equal(Augmentations.Crop(photo, x, y, side, side).Pixels, crops[3].Pixels);
    }

    [Fact]
    public void Same_seed_same_crops_other_seed_other_crops()
    {
        var options = new PhotoCropOptions(32) { MinSourceSide = 48, MaxSourceSide = 256 };
        var a = Pool.Crops(6, options, seed: 42).Select(c => c.Pixels).ToList();
        var b = Pool.Crops(6, options, seed: 42).Select(c => c.Pixels).ToList();
        var c = Pool.Crops(6, options, seed: 43).Select(c => c.Pixels).ToList();
        Assert.Equal(a, b);
        for (int i = 0; i < 6; i++) Assert.NotEqual(a[i], c[i]);
        Assert.Equal(6, a.Select(Convert.ToHexString).Distinct().Count());
        // Crop i does not depend on how many were asked for.
        Assert.Equal(a[4], Pool.Crops(5, options, seed: 42).Last().Pixels);
        Assert.All(Pool.Crops(4, options, seed: 7), img => Assert.Equal((32, 32), (img.Width, img.Height)));
    }

    [Fact]
    public void Bad_crop_options_are_refused()
    {
        Assert.Throws<ArgumentException>(() => Pool.Crops(1, new PhotoCropOptions(Pool.SmallestSide + 1), 1).ToList());
        Assert.Throws<ArgumentException>(() => Pool.Crops(1, new PhotoCropOptions(32) { MinSourceSide = 64, MaxSourceSide = 40 }, 1).ToList());
    }

    [Fact]
    public void Missing_sources_name_the_packages_to_install()
    {
        string nowhere = Path.Combine(Path.GetTempPath(), "mg-no-photos-" + Guid.NewGuid());
        var sources = PhotoPool.DebianSources.Select(s => s with { Directory = Path.Combine(nowhere, s.Package) }).ToList();
        var e = Assert.Throws<DatasetNotFoundException>(() => PhotoPool.Load(sources));
        Assert.Contains("apt-get install python3-skimage opencv-doc", e.Message);
        Assert.Contains("darknet", e.Message);
        Assert.Contains(Path.Combine(nowhere, "opencv-doc"), e.Message);
        Assert.Equal(["python3-skimage", "opencv-doc"], e.Packages);
    }

    [Fact]
    public void A_folder_without_photos_counts_as_missing()
    {
        string dir = Directory.CreateTempSubdirectory("mg-photos-").FullName;
        try
        {
            File.WriteAllBytes(Path.Combine(dir, "tiny.png"), new ModelGuardian.Engine.Imaging.RgbImage(4, 4, new byte[48]).EncodePng());
            var e = Assert.Throws<DatasetNotFoundException>(() => PhotoPool.Load([new PhotoSource("some-package", dir, [])]));
            Assert.Contains("apt-get install some-package", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}
