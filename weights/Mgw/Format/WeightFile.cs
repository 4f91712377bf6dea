using System.Buffers;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using MessagePack;
using MessagePack.Resolvers;
using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;

namespace ModelGuardian.Weights.Format;

/// <summary>Where a weight file's tensors came from.</summary>
public sealed record Provenance(
    string SourceFile, string SourceSha256, string SourceFormat, string Converter, DateTimeOffset ConvertedAt, IReadOnlyList<string> Notes);

/// <summary>A weight file read back: what it holds, whether its checksum matched, and warnings (e.g. NaN tensors).</summary>
public sealed record WeightFileContents(
    int Version, ArchitectureDescriptor Architecture, TensorSet Tensors, Provenance Provenance, bool ChecksumValid, IReadOnlyList<string> Warnings);

/// <summary>
/// Our weight format ("mgw"): one MessagePack array per file,
/// <c>[magic, version, payload (bin), SHA-256 of payload (bin)]</c>, where the payload is a map
/// <c>{architecture, provenance, tensors: [[name, "float32", [dims…], little-endian bytes], …]}</c>.
/// Version and magic come first so an unknown version is named before anything else is trusted;
/// the checksum covers every byte of the payload. Files are memory-mapped and each tensor is copied
/// once, from the map into its float array. The small descriptor and provenance maps are read with
/// MessagePack's untrusted-data security mode; the tensor table is walked by hand with explicit
/// bounds (counts, ranks, dims, byte lengths checked against what the file holds before allocating).
/// </summary>
public static class WeightFile
{
    public const string Magic = "ModelGuardian-weights";
    /// <summary>Version 2 adds the input contract to the architecture; version-1 files are read as resized inputs.</summary>
    public const int CurrentVersion = 2;
    public static readonly IReadOnlyList<int> SupportedVersions = [1, 2];
    public const string Extension = ".mgw";

    private const int MaxTensors = 100_000, MaxRank = 8, MaxNameLength = 1024;

    private static readonly MessagePackSerializerOptions Untrusted = MessagePackSerializerOptions.Standard
        .WithResolver(StandardResolverAllowPrivate.Instance)
        .WithSecurity(MessagePackSecurity.UntrustedData);

    /// <summary>Writes atomically: a temporary file beside the target, flushed to disk, then renamed over it.</summary>
    public static void Save(string path, ArchitectureDescriptor architecture, TensorSet tensors, Provenance provenance)
    {
        var payload = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(payload);
        w.WriteMapHeader(3);
        w.Write("architecture");
        MessagePackSerializer.Serialize(ref w, ArchitectureRecord.From(architecture), Untrusted);
        w.Write("provenance");
        MessagePackSerializer.Serialize(ref w, ProvenanceRecord.From(provenance), Untrusted);
        w.Write("tensors");
        w.WriteArrayHeader(tensors.Tensors.Count);
        foreach (var (name, t) in tensors.Tensors)
        {
            w.WriteArrayHeader(4);
            w.Write(name);
            w.Write("float32");
            w.WriteArrayHeader(t.Shape.Length);
            foreach (int d in t.Shape) w.Write(d);
            w.Write(MemoryMarshal.AsBytes(t.Data.AsSpan()));
        }
        w.Flush();

        var head = new ArrayBufferWriter<byte>();
        var h = new MessagePackWriter(head);
        h.WriteArrayHeader(4);
        h.Write(Magic);
        h.Write(CurrentVersion);
        h.Flush();
        // bin32 header written by hand: MessagePackWriter.WriteBinHeader reserves room for the whole payload.
        Span<byte> binHeader = [0xc6, 0, 0, 0, 0];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(binHeader[1..], payload.WrittenCount);
        var tail = new ArrayBufferWriter<byte>();
        var c = new MessagePackWriter(tail);
        c.Write(SHA256.HashData(payload.WrittenSpan));
        c.Flush();

        string full = System.IO.Path.GetFullPath(path);
        string temp = full + $".tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(head.WrittenSpan);
                fs.Write(binHeader);
                fs.Write(payload.WrittenSpan);
                fs.Write(tail.WrittenSpan);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>Reads a weight file; a checksum mismatch throws unless <paramref name="requireValidChecksum"/> is false (for `mg inspect`).</summary>
    public static WeightFileContents Load(string path, bool requireValidChecksum = true)
    {
        using var map = MappedFile.Open(path);
        try
        {
            return Parse(map.Memory, path, requireValidChecksum);
        }
        catch (Exception e) when (e is MessagePackSerializationException or EndOfStreamException or OverflowException or ArgumentException)
        {
            throw new WeightFormatException($"'{path}' is not a valid ModelGuardian weight file: {Describe(e)}", e);
        }
    }

    /// <summary>True when <paramref name="head"/> starts like one of our files (the first bytes suffice).</summary>
    public static bool LooksLikeWeightFile(ReadOnlySpan<byte> head)
    {
        // fixarray(4), then fixstr/str8 holding the magic.
        if (head.Length < 3 || head[0] != 0x94) return false;
        var magic = System.Text.Encoding.ASCII.GetBytes(Magic);
        int offset = head[1] == 0xa0 + magic.Length ? 2 : head[1] == 0xd9 && head[2] == magic.Length ? 3 : -1;
        return offset > 0 && head.Length >= offset + magic.Length && head.Slice(offset, magic.Length).SequenceEqual(magic);
    }

    private static WeightFileContents Parse(ReadOnlyMemory<byte> file, string path, bool requireValidChecksum)
    {
        var r = new MessagePackReader(file);
        if (file.Length == 0 || r.NextMessagePackType != MessagePackType.Array)
            throw new WeightFormatException($"'{path}' is not a ModelGuardian weight file (no '{Magic}' header).");
        int top = r.ReadArrayHeader();
        if (top < 2 || r.NextMessagePackType != MessagePackType.String || r.ReadString() != Magic)
            throw new WeightFormatException($"'{path}' is not a ModelGuardian weight file (no '{Magic}' header).");
        if (r.NextMessagePackType != MessagePackType.Integer)
            throw new WeightFormatException($"'{path}': the format version is not an integer.");
        long version = r.ReadInt64();
        if (!SupportedVersions.Contains((int)version) || version > int.MaxValue)
            throw new WeightFormatException($"'{path}' has weight format version {version}; this ModelGuardian reads version(s) {string.Join(", ", SupportedVersions)}.");
        if (top != 4) throw new WeightFormatException($"'{path}': version-{version} files have 4 top-level entries, this one has {top}.");
        var payload = ReadBin(ref r, "payload");
        var checksum = ReadBin(ref r, "checksum");
        if (!r.End) throw new WeightFormatException($"'{path}' has {file.Length - r.Consumed} unexpected bytes after the checksum.");
        if (checksum.Length != 32) throw new WeightFormatException($"'{path}': the checksum must be a 32-byte SHA-256, got {checksum.Length} bytes.");
        bool valid = SHA256.HashData(payload.Span).AsSpan().SequenceEqual(checksum.Span);
        if (!valid && requireValidChecksum)
            throw new WeightFormatException($"'{path}': checksum mismatch — the file was changed or corrupted after it was written.");

        var p = new MessagePackReader(payload);
        int entries = p.ReadMapHeader();
        ArchitectureDescriptor? arch = null;
        Provenance? provenance = null;
        TensorSet? tensors = null;
        for (int i = 0; i < entries; i++)
        {
            string? key = p.ReadString();
            switch (key)
            {
                case "architecture":
                    arch = MessagePackSerializer.Deserialize<ArchitectureRecord>(ref p, Untrusted).ToDescriptor(path, (int)version);
                    break;
                case "provenance":
                    provenance = MessagePackSerializer.Deserialize<ProvenanceRecord>(ref p, Untrusted).ToProvenance();
                    break;
                case "tensors":
                    tensors = ReadTensors(ref p, payload, path);
                    break;
                default:
                    throw new WeightFormatException($"'{path}': unknown payload entry '{key}'.");
            }
        }
        if (arch == null || provenance == null || tensors == null)
            throw new WeightFormatException($"'{path}': the payload lacks {(arch == null ? "the architecture" : provenance == null ? "the provenance" : "the tensor table")}.");
        if (!p.End) throw new WeightFormatException($"'{path}': unexpected bytes after the payload map.");
        return new WeightFileContents((int)version, arch, tensors, provenance, valid, TensorChecks.NonFiniteWarnings(tensors));
    }

    private static ReadOnlyMemory<byte> ReadBin(ref MessagePackReader r, string what)
    {
        if (r.NextMessagePackType != MessagePackType.Binary) throw new WeightFormatException($"the {what} is not a byte string.");
        // ReadBytes checks the declared length against the bytes that remain before slicing: nothing is allocated.
        var seq = r.ReadBytes() ?? throw new WeightFormatException($"the {what} is nil.");
        return seq.First; // single segment: the reader runs over one contiguous memory block
    }

    private static TensorSet ReadTensors(ref MessagePackReader r, ReadOnlyMemory<byte> payload, string path)
    {
        int count = r.ReadArrayHeader();
        if (count > MaxTensors) throw new WeightFormatException($"'{path}' declares {count} tensors (at most {MaxTensors}).");
        var set = new TensorSet();
        for (int i = 0; i < count; i++)
        {
            if (r.ReadArrayHeader() != 4) throw new WeightFormatException($"'{path}': tensor entry {i} is not [name, dtype, shape, data].");
            string name = r.ReadString() ?? throw new WeightFormatException($"'{path}': tensor {i} has no name.");
            if (name.Length is 0 or > MaxNameLength) throw new WeightFormatException($"'{path}': tensor {i} has a name of {name.Length} characters.");
            if (set.Contains(name)) throw new WeightFormatException($"'{path}': tensor '{name}' appears twice.");
            string? dtype = r.ReadString();
            if (dtype != "float32") throw new WeightFormatException($"'{path}': tensor '{name}' has dtype '{dtype}'; version-1 files hold float32 only.");
            int rank = r.ReadArrayHeader();
            if (rank > MaxRank) throw new WeightFormatException($"'{path}': tensor '{name}' has rank {rank} (at most {MaxRank}).");
            var shape = new int[rank];
            long elements = 1;
            for (int d = 0; d < rank; d++)
            {
                long dim = r.ReadInt64();
                if (dim < 0 || dim > int.MaxValue) throw new WeightFormatException($"'{path}': tensor '{name}' has dimension {dim}.");
                shape[d] = (int)dim;
                elements *= dim;
                if (elements > int.MaxValue / 4) throw new WeightFormatException($"'{path}': tensor '{name}' declares more elements than a file can hold.");
            }
            var bytes = ReadBin(ref r, $"data of tensor '{name}'");
            if (bytes.Length != elements * 4)
                throw new WeightFormatException($"'{path}': tensor '{name}' {Fmt(shape)} needs {elements * 4} bytes, the file holds {bytes.Length}.");
            var data = new float[elements];
            bytes.Span.CopyTo(MemoryMarshal.AsBytes(data.AsSpan()));
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Weight files are little-endian; big-endian hosts are not supported.");
            set[name] = new HostTensor(shape, data);
        }
        return set;
    }

    private static string Fmt(int[] shape) => "[" + string.Join(", ", shape) + "]";

    private static string Describe(Exception e) => e is MessagePackSerializationException { InnerException: { } inner } ? inner.Message : e.Message;

    [MessagePackObject]
    internal sealed class ArchitectureRecord
    {
        [Key("kind")] public string Kind { get; set; } = "";
        [Key("depth")] public int Depth { get; set; }
        [Key("width")] public int Width { get; set; }
        [Key("stem")] public string? Stem { get; set; }
        [Key("outputs")] public int Outputs { get; set; }
        [Key("resolution")] public int Resolution { get; set; }
        [Key("fmap_base")] public int FmapBase { get; set; }
        [Key("fmap_max")] public int FmapMax { get; set; }
        [Key("mbstd_group")] public int MbstdGroup { get; set; }
        [Key("input_channels")] public int InputChannels { get; set; }
        [Key("input_side")] public int InputSide { get; set; }
        [Key("mean")] public float[]? Mean { get; set; }
        [Key("std")] public float[]? Std { get; set; }
        [Key("family")] public string? Family { get; set; }
        // The input contract (version 2): absent means resized to the input side.
        [Key("input_fit")] public string? InputFit { get; set; }
        [Key("input_filter")] public string? InputFilter { get; set; }
        [Key("content_side")] public int ContentSide { get; set; }
        [Key("pad_value")] public float PadValue { get; set; }
        [Key("resize_side")] public int ResizeSide { get; set; }
        [Key("input_grey")] public bool InputGrey { get; set; }

        public static ArchitectureRecord From(ArchitectureDescriptor a) => new()
        {
            Kind = a.Kind switch { NetworkKind.ResNet => "resnet", NetworkKind.ImageGenerator => "generator", _ => "stylegan-d" },
            Family = a.Kind == NetworkKind.ImageGenerator ? Engine.Networks.GeneratorFamilies.Name(a.GeneratorFamily) : null,
            Depth = a.Depth, Width = a.Width, Stem = a.Stem == ResNetStem.Cifar ? "cifar" : "imagenet", Outputs = a.Outputs,
            Resolution = a.Resolution, FmapBase = a.FmapBase, FmapMax = a.FmapMax, MbstdGroup = a.MbstdGroupSize,
            InputChannels = a.InputChannels, InputSide = a.InputSide, Mean = a.Normalization?.Mean, Std = a.Normalization?.Std,
            InputFit = a.Input is { } c ? FitName(c.Fit) : null,
            InputFilter = a.Input is { } f ? (f.Filter == ResizeFilter.Bicubic ? "bicubic" : "bilinear") : null,
            ContentSide = a.Input?.ContentSide ?? 0, PadValue = a.Input?.PadValue ?? 0, ResizeSide = a.Input?.ResizeSide ?? 0,
            InputGrey = a.Input?.Grey ?? false,
        };

        private static string FitName(InputFit fit) => fit switch { Engine.Networks.InputFit.Pad => "pad", Engine.Networks.InputFit.CenterCrop => "center-crop", _ => "resize" };

        private InputContract? Contract(int version)
        {
            if (InputFit == null)
            {
                if (InputFilter != null || ContentSide != 0 || PadValue != 0 || ResizeSide != 0 || InputGrey)
                    throw new ArgumentException("input contract settings without input_fit.");
                return null;
            }
            if (version < 2) throw new ArgumentException($"an input contract in a version-{version} file.");
            var contract = new InputContract
            {
                Fit = InputFit switch
                {
                    "resize" => Engine.Networks.InputFit.Resize,
                    "pad" => Engine.Networks.InputFit.Pad,
                    "center-crop" => Engine.Networks.InputFit.CenterCrop,
                    _ => throw new ArgumentException($"unknown input fit '{InputFit}' (resize, pad or center-crop)."),
                },
                Filter = InputFilter switch
                {
                    "bilinear" or null => ResizeFilter.Bilinear,
                    "bicubic" => ResizeFilter.Bicubic,
                    _ => throw new ArgumentException($"unknown input filter '{InputFilter}' (bilinear or bicubic)."),
                },
                ContentSide = ContentSide, PadValue = PadValue, ResizeSide = ResizeSide, Grey = InputGrey,
            };
            contract.Validate(InputSide);
            return contract;
        }

        public ArchitectureDescriptor ToDescriptor(string path, int version)
        {
            try
            {
                if (InputChannels != 3) throw new ArgumentException($"input channels must be 3, got {InputChannels}.");
                var a = Kind switch
                {
                    "resnet" => ArchitectureDescriptor.ResNet(Depth, Outputs, Stem switch
                    {
                        "imagenet" => ResNetStem.ImageNet,
                        "cifar" => ResNetStem.Cifar,
                        _ => throw new ArgumentException($"unknown ResNet stem '{Stem}'."),
                    }, InputSide, Width),
                    "stylegan-d" => ArchitectureDescriptor.StyleGanD(Resolution, FmapBase, FmapMax, MbstdGroup),
                    "generator" => ArchitectureDescriptor.Generator(Engine.Networks.GeneratorFamilies.Parse(Family ?? "(none)"), Width),
                    _ => throw new ArgumentException($"unknown network kind '{Kind}'."),
                };
                if (a.InputSide != InputSide) throw new ArgumentException($"input side {InputSide} does not match resolution {a.Resolution}.");
                if (InputSide < a.MinimumInputSide || InputSide > 4096) throw new ArgumentException($"input side {InputSide} is outside {a.MinimumInputSide}…4096.");
                a = a with { Input = Contract(version) };
                return (Mean, Std) switch
                {
                    (null, null) => a,
                    ({ } mean, { } std) => a with { Normalization = InputNormalization.Validated(mean, std) },
                    _ => throw new ArgumentException("mean and std must be given together."),
                };
            }
            catch (ArgumentException e)
            {
                throw new WeightFormatException($"'{path}': invalid architecture: {e.Message}");
            }
        }
    }

    [MessagePackObject]
    internal sealed class ProvenanceRecord
    {
        [Key("source_file")] public string SourceFile { get; set; } = "";
        [Key("source_sha256")] public string SourceSha256 { get; set; } = "";
        [Key("source_format")] public string SourceFormat { get; set; } = "";
        [Key("converter")] public string Converter { get; set; } = "";
        [Key("converted_at")] public string ConvertedAt { get; set; } = "";
        [Key("notes")] public string[]? Notes { get; set; }

        public static ProvenanceRecord From(Provenance p) => new()
        {
            SourceFile = p.SourceFile, SourceSha256 = p.SourceSha256, SourceFormat = p.SourceFormat, Converter = p.Converter,
            ConvertedAt = p.ConvertedAt.ToUniversalTime().ToString("O"), Notes = p.Notes.ToArray(),
        };

        public Provenance ToProvenance()
        {
            if (!DateTimeOffset.TryParse(ConvertedAt, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.RoundtripKind, out var at))
                throw new WeightFormatException($"the conversion time '{ConvertedAt}' is not an ISO-8601 time.");
            return new Provenance(SourceFile, SourceSha256, SourceFormat, Converter, at, Notes ?? []);
        }
    }
}
