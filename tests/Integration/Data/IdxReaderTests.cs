using System.Buffers.Binary;
using System.IO.Compression;
using ModelGuardian.Engine.Data;

namespace ModelGuardian.Tests.Data;

/// <summary>Crafted IDX files, raw and gzipped: valid round trips and every way a header or body can lie.</summary>
public sealed class IdxReaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-idx-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Header(uint magic, params uint[] dims)
    {
        var h = new byte[4 + 4 * dims.Length];
        BinaryPrimitives.WriteUInt32BigEndian(h, magic);
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(4 + 4 * i), dims[i]);
        return h;
    }

    private string Write(string name, byte[] content, bool gzip)
    {
        string path = Path.Combine(_dir, name + (gzip ? ".gz" : ""));
        if (!gzip) { File.WriteAllBytes(path, content); return path; }
        using var fs = File.Create(path);
        using var gz = new GZipStream(fs, CompressionLevel.Fastest);
        gz.Write(content);
        return path;
    }

    private static byte[] Body(int count) => Enumerable.Range(0, count).Select(i => (byte)(i * 7)).ToArray();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Reads_valid_images_and_labels(bool gzip)
    {
        var pixels = Body(5 * 3 * 4);
        string images = Write("img", [.. Header(IdxReader.ImagesMagic, 5, 3, 4), .. pixels], gzip);
        string labels = Write("lbl", [.. Header(IdxReader.LabelsMagic, 5), 9, 0, 3, 1, 2], gzip);
        var (im, lb) = IdxReader.ReadPair(images, labels);
        Assert.Equal((5, 3, 4), (im.Count, im.Rows, im.Columns));
        Assert.Equal(pixels, im.Pixels);
        Assert.Equal(pixels.AsSpan(24, 12).ToArray(), im.Image(2).ToArray());
        Assert.Equal(new byte[] { 9, 0, 3, 1, 2 }, lb.Labels);
    }

    private static void AssertFails(Action read, string path, string problem)
    {
        var e = Assert.Throws<InvalidDataException>(read);
        Assert.Contains(path, e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Wrong_magic(bool gzip)
    {
        string labelsAsImages = Write("a", [.. Header(IdxReader.LabelsMagic, 2), 1, 2], gzip);
        AssertFails(() => IdxReader.ReadImages(labelsAsImages), labelsAsImages, "wrong magic number 0x00000801");
        string png = Write("b", [0x89, (byte)'P', (byte)'N', (byte)'G', 13, 10, 26, 10, 0, 0], gzip);
        AssertFails(() => IdxReader.ReadLabels(png), png, "wrong magic number 0x89504E47");
        string floats = Write("c", [.. Header(0x00000D03, 1, 1, 1), 0, 0, 0, 0], gzip);
        AssertFails(() => IdxReader.ReadImages(floats), floats, "expected 0x00000803");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Truncated_header_and_body(bool gzip)
    {
        string header = Write("h", [0, 0, 8, 3, 0, 0, 0, 10, 0, 0], gzip);
        AssertFails(() => IdxReader.ReadImages(header), header, "truncated header");
        string empty = Write("e", [], gzip);
        AssertFails(() => IdxReader.ReadLabels(empty), empty, "truncated header");
        string body = Write("b", [.. Header(IdxReader.ImagesMagic, 10, 28, 28), .. Body(5 * 784)], gzip);
        AssertFails(() => IdxReader.ReadImages(body), body, "truncated");
        AssertFails(() => IdxReader.ReadImages(body), body, "7840 bytes");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Bytes_after_the_declared_data(bool gzip)
    {
        string path = Write("x", [.. Header(IdxReader.LabelsMagic, 3), 1, 2, 3, 4], gzip);
        AssertFails(() => IdxReader.ReadLabels(path), path, "unexpected bytes after");
    }

    [Fact]
    public void Zero_sized_image_dimension()
    {
        string path = Write("z", Header(IdxReader.ImagesMagic, 3, 0, 28), gzip: false);
        AssertFails(() => IdxReader.ReadImages(path), path, "dimension 1 declares size 0");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Counts_that_disagree(bool gzip)
    {
        string images = Write("img", [.. Header(IdxReader.ImagesMagic, 4, 2, 2), .. Body(16)], gzip);
        string labels = Write("lbl", [.. Header(IdxReader.LabelsMagic, 3), 1, 2, 3], gzip);
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.ReadPair(images, labels));
        Assert.Contains(images, e.Message);
        Assert.Contains(labels, e.Message);
        Assert.Contains("holds 4 images", e.Message);
        Assert.Contains("3 labels", e.Message);
    }

    [Theory]
    [InlineData(false, 1_000_000u, 28u, 28u, "truncated")]                         // 784 MB declared, 40 bytes present
    [InlineData(true, 1_000_000u, 28u, 28u, "truncated")]                          // the same behind gzip: read in growing chunks
    [InlineData(false, 0x7FFFFFFFu, 0x7FFFFFFFu, 0x7FFFFFFFu, "more than one array can hold")]
    [InlineData(true, 0x7FFFFFFFu, 0x7FFFFFFFu, 0x7FFFFFFFu, "more than one array can hold")]
    [InlineData(false, 0xFFFFFFFFu, 28u, 28u, "more than any array can hold")]
    public void Huge_declared_sizes_fail_before_allocating(bool gzip, uint count, uint rows, uint cols, string problem)
    {
        string path = Write("huge", [.. Header(IdxReader.ImagesMagic, count, rows, cols), .. Body(40)], gzip);
        IdxReader.ReadLabels(Write("warm", [.. Header(IdxReader.LabelsMagic, 1), 0], gzip)); // JIT and statics first
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.ReadImages(path));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains(path, e.Message);
        Assert.Contains(problem, e.Message);
        Assert.True(allocated < 1 << 20, $"allocated {allocated} bytes before failing");
    }

    [Fact]
    public void Corrupt_gzip_stream_names_the_file()
    {
        string good = Write("g", [.. Header(IdxReader.LabelsMagic, 1000), .. Body(1000)], gzip: true);
        var bytes = File.ReadAllBytes(good);
        for (int i = 12; i < bytes.Length - 8; i++) bytes[i] ^= 0x5A;
        string bad = Path.Combine(_dir, "bad.gz");
        File.WriteAllBytes(bad, bytes);
        var e = Assert.Throws<InvalidDataException>(() => IdxReader.ReadLabels(bad));
        Assert.Contains(bad, e.Message);
    }

    [Fact]
    public void Missing_file()
    {
        var e = Assert.Throws<FileNotFoundException>(() => IdxReader.ReadLabels(Path.Combine(_dir, "nope")));
        Assert.Contains("nope", e.Message);
    }
}
