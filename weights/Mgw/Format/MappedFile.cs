using System.Buffers;
using System.IO.MemoryMappedFiles;

namespace ModelGuardian.Weights.Format;

/// <summary>
/// A read-only memory map of a whole file, exposed as <see cref="Memory"/>: readers parse it in
/// place and copy each tensor once, straight into its float array.
/// </summary>
public sealed unsafe class MappedFile : MemoryManager<byte>
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _pointer;
    private readonly int _length;

    private MappedFile(MemoryMappedFile? map, MemoryMappedViewAccessor? view, int length)
    {
        _map = map;
        _view = view;
        _length = length;
        if (view != null)
        {
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref _pointer);
            _pointer += view.PointerOffset;
        }
    }

    public string Path { get; private init; } = "";

    public static MappedFile Open(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"Weight file '{path}' does not exist.", path);
        if (info.Length > int.MaxValue) throw new WeightFormatException($"'{path}' is {info.Length} bytes; weight files up to 2 GiB are supported.");
        // Mapping an empty file is an error on every OS: an empty file gets an empty view.
        if (info.Length == 0) return new MappedFile(null, null, 0) { Path = path };
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            var view = map.CreateViewAccessor(0, info.Length, MemoryMappedFileAccess.Read);
            return new MappedFile(map, view, (int)info.Length) { Path = path };
        }
        catch
        {
            map.Dispose();
            throw;
        }
    }

    public int Length => _length;

    public override Span<byte> GetSpan() => _length == 0 ? Span<byte>.Empty : new Span<byte>(_pointer, _length);

    public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

    public override void Unpin() { }

    /// <summary>Unmaps the file; memory handed out earlier must not be used afterwards.</summary>
    public void Dispose() => ((IDisposable)this).Dispose();

    protected override void Dispose(bool disposing)
    {
        if (_view != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
