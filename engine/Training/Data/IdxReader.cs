using System.Buffers.Binary;
using System.IO.Compression;

namespace ModelGuardian.Engine.Data;

/// <summary>Unsigned-byte images from an IDX file: <see cref="Count"/> images of <see cref="Rows"/>×<see cref="Columns"/>, row-major, one after another.</summary>
public sealed record IdxImages(string Path, int Count, int Rows, int Columns, byte[] Pixels)
{
    public int ImageSize => Rows * Columns;

    public ReadOnlySpan<byte> Image(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return Pixels.AsSpan(index * ImageSize, ImageSize);
    }
}

/// <summary>Unsigned-byte labels from an IDX file.</summary>
public sealed record IdxLabels(string Path, byte[] Labels)
{
    public int Count => Labels.Length;
}

/// <summary>
/// Reads the IDX files of MNIST and Fashion-MNIST (Y. LeCun's format): a big-endian header — magic
/// 0x0000_08_NN (unsigned bytes, NN dimensions), then NN 32-bit sizes — followed by the data. Files may be
/// raw or gzip-compressed (recognised by content, not name). Strict: a wrong magic, a header or body shorter
/// than declared, bytes after the declared data, zero or oversized dimensions, and image/label files whose
/// counts disagree all fail with an <see cref="InvalidDataException"/> naming the file and the problem.
/// Sizes are checked before the data is allocated: a raw file against its length; a gzip stream, whose
/// length is unknown until read, is read in chunks growing with the data actually there, so a small file
/// declaring gigabytes fails having allocated about what it holds.
/// </summary>
public static class IdxReader
{
    public const uint ImagesMagic = 0x00000803;
    public const uint LabelsMagic = 0x00000801;

    public static IdxImages ReadImages(string path)
    {
        using var file = IdxFile.Open(path, ImagesMagic);
        return file.ReadImages();
    }

    public static IdxLabels ReadLabels(string path)
    {
        using var file = IdxFile.Open(path, LabelsMagic);
        return file.ReadLabels();
    }

    /// <summary>Images and their labels; both headers are read and the counts compared before either body is read.</summary>
    public static (IdxImages Images, IdxLabels Labels) ReadPair(string imagesPath, string labelsPath)
    {
        using var images = IdxFile.Open(imagesPath, ImagesMagic);
        using var labels = IdxFile.Open(labelsPath, LabelsMagic);
        if (images.Dims[0] != labels.Dims[0])
            throw new InvalidDataException(
                $"{imagesPath}: holds {images.Dims[0]} images but its labels file {labelsPath} holds {labels.Dims[0]} labels; the counts must agree.");
        return (images.ReadImages(), labels.ReadLabels());
    }

    /// <summary>An open IDX file whose header has been read and checked; the body is read once, on demand.</summary>
    private sealed class IdxFile : IDisposable
    {
        private const int FirstChunk = 1 << 16;
        private readonly Stream _stream;
        private readonly long? _bodyBytesAvailable; // raw files only: what follows the header

        private IdxFile(string path, Stream stream, int[] dims, long bodyBytes, long? available)
            => (Path, _stream, Dims, BodyBytes, _bodyBytesAvailable) = (path, stream, dims, bodyBytes, available);

        public string Path { get; }
        public int[] Dims { get; }
        public long BodyBytes { get; }

        public static IdxFile Open(string path, uint expectedMagic)
        {
            if (!File.Exists(path)) throw new FileNotFoundException($"No such IDX file: {path}", path);
            var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            try
            {
                var first = new byte[2];
                int got = fs.ReadAtLeast(first, 2, throwOnEndOfStream: false);
                fs.Position = 0;
                bool gzip = got == 2 && first[0] == 0x1F && first[1] == 0x8B;
                Stream stream = gzip ? new GZipStream(fs, CompressionMode.Decompress, leaveOpen: false) : fs;

                var magicBytes = new byte[4];
                ReadHeader(path, stream, magicBytes, "the 4-byte magic number");
                uint magic = BinaryPrimitives.ReadUInt32BigEndian(magicBytes);
                if (magic != expectedMagic)
                    throw new InvalidDataException(
                        $"{path}: wrong magic number 0x{magic:X8}; expected 0x{expectedMagic:X8} (IDX {Describe(expectedMagic)}){(magic == (expectedMagic ^ 0x2) ? " — is this the other file of the pair?" : "")}.");
                int rank = (int)(magic & 0xFF);
                var dimBytes = new byte[4 * rank];
                ReadHeader(path, stream, dimBytes, $"the {rank} dimension sizes");
                var dims = new int[rank];
                Int128 body = 1;
                for (int d = 0; d < rank; d++)
                {
                    uint size = BinaryPrimitives.ReadUInt32BigEndian(dimBytes.AsSpan(4 * d));
                    if (size > int.MaxValue) throw new InvalidDataException($"{path}: dimension {d} declares {size} entries, more than any array can hold.");
                    if (size == 0 && d > 0) throw new InvalidDataException($"{path}: dimension {d} declares size 0.");
                    dims[d] = (int)size;
                    body *= size;
                }
                if (body > Array.MaxLength)
                    throw new InvalidDataException(
                        $"{path}: header declares {string.Join("×", dims)} = {body} bytes of data, more than one array can hold ({Array.MaxLength}); the file is corrupt.");
                if (rank == 3 && (long)dims[1] * dims[2] > int.MaxValue / 2)
                    throw new InvalidDataException($"{path}: images of {dims[1]}×{dims[2]} are implausibly large.");
                long? available = null;
                if (!gzip)
                {
                    available = fs.Length - 4 - 4L * rank;
                    if (body > available)
                        throw new InvalidDataException(
                            $"{path}: truncated: header declares {string.Join("×", dims)} = {body} bytes of data but only {available} follow the header.");
                    if (body < available)
                        throw new InvalidDataException(
                            $"{path}: {available - (long)body} unexpected bytes after the {string.Join("×", dims)} = {body} bytes the header declares.");
                }
                return new IdxFile(path, stream, dims, (long)body, available);
            }
            catch
            {
                fs.Dispose();
                throw;
            }
        }

        public IdxImages ReadImages()
        {
            if (Dims.Length != 3) throw new InvalidDataException($"{Path}: an image file has 3 dimensions, this one {Dims.Length}.");
            return new IdxImages(Path, Dims[0], Dims[1], Dims[2], ReadBody());
        }

        public IdxLabels ReadLabels()
        {
            if (Dims.Length != 1) throw new InvalidDataException($"{Path}: a label file has 1 dimension, this one {Dims.Length}.");
            return new IdxLabels(Path, ReadBody());
        }

        private byte[] ReadBody()
        {
            if (_bodyBytesAvailable is not null)
            {
                // Raw file: its length was checked against the header, so the whole body can be allocated at once.
                var all = new byte[BodyBytes];
                int got = Read(all, all.Length);
                if (got != all.Length) throw new InvalidDataException($"{Path}: truncated while reading: {got} of {BodyBytes} data bytes (the file changed?).");
                return all;
            }
            // Gzip: the decompressed length is known only by reading, so the buffer grows with the data actually there.
            var buffer = new byte[(int)Math.Min(BodyBytes, FirstChunk)];
            int filled = 0;
            while (true)
            {
                int got = Read(buffer.AsSpan(filled), buffer.Length - filled);
                filled += got;
                if (filled == BodyBytes) break;
                if (got == 0)
                    throw new InvalidDataException(
                        $"{Path}: truncated: header declares {string.Join("×", Dims)} = {BodyBytes} bytes of data but the decompressed stream ends after {filled}.");
                if (filled == buffer.Length) Array.Resize(ref buffer, (int)Math.Min(BodyBytes, 2L * buffer.Length));
            }
            Span<byte> probe = stackalloc byte[1];
            if (Read(probe, 1) != 0)
                throw new InvalidDataException($"{Path}: unexpected bytes after the {string.Join("×", Dims)} = {BodyBytes} bytes the header declares.");
            return buffer;
        }

        private int Read(Span<byte> into, int count)
        {
            try
            {
                return _stream.ReadAtLeast(into[..count], count, throwOnEndOfStream: false);
            }
            catch (Exception e) when (e is InvalidDataException or IOException and not FileNotFoundException)
            {
                throw new InvalidDataException($"{Path}: corrupt or unreadable data: {e.Message}", e);
            }
        }

        private static void ReadHeader(string path, Stream stream, byte[] into, string what)
        {
            int got;
            try { got = stream.ReadAtLeast(into, into.Length, throwOnEndOfStream: false); }
            catch (Exception e) when (e is InvalidDataException or IOException and not FileNotFoundException)
            {
                throw new InvalidDataException($"{path}: corrupt or unreadable header: {e.Message}", e);
            }
            if (got != into.Length) throw new InvalidDataException($"{path}: truncated header: the file ends before {what} ({got} of {into.Length} bytes).");
        }

        private static string Describe(uint magic) => magic switch
        {
            ImagesMagic => "unsigned-byte images, 3 dimensions",
            LabelsMagic => "unsigned-byte labels, 1 dimension",
            _ => "unsigned bytes",
        };

        public void Dispose() => _stream.Dispose();
    }
}
