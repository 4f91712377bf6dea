using System.Buffers;
using System.Security.Cryptography;
using MessagePack;
using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels.Reference;
using ModelGuardian.Weights;
using ModelGuardian.Weights.Format;

namespace ModelGuardian.Tests.Weights;

/// <summary>Our own weight format: round trip, checksum, versions, and files crafted to break the reader.</summary>
public sealed class WeightFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-mgw-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static readonly ArchitectureDescriptor SmallD = ArchitectureDescriptor.StyleGanD(16, fmapBase: 64, fmapMax: 8);
    private static readonly Provenance SomeProvenance = new("src.pth", new string('a', 64), "torch-zip", "test", DateTimeOffset.Parse("2026-11-23T10:00:00Z"), ["a note"]);

    private string Path(string name) => System.IO.Path.Combine(_dir, name);

    private string WriteValid(ArchitectureDescriptor? arch = null, string name = "d.mgw")
    {
        arch ??= SmallD;
        using var k = new ReferenceKernels();
        var (net, tensors) = RandomWeights.Create(k, arch, 7);
        net.Dispose();
        string path = Path(name);
        WeightFile.Save(path, arch, tensors, SomeProvenance);
        return path;
    }

    [Fact]
    public void RoundTripsDescriptorTensorsAndProvenanceExactly()
    {
        var arch = ArchitectureDescriptor.ResNet(18, 3, ResNetStem.Cifar, 40, width: 4) with
        {
            Normalization = InputNormalization.Validated([0.1f, 0.2f, 0.3f], [0.4f, 0.5f, 0.6f]),
        };
        using var k = new ReferenceKernels();
        var (net, tensors) = RandomWeights.Create(k, arch, 3);
        net.Dispose();
        string path = Path("r.mgw");
        WeightFile.Save(path, arch, tensors, SomeProvenance);

        var c = WeightFile.Load(path);
        Assert.True(c.ChecksumValid);
        Assert.Equal(WeightFile.CurrentVersion, c.Version);
        Assert.Equal(arch.ToString(), c.Architecture.ToString());
        Assert.Equal((arch.Width, arch.InputSide, arch.Stem, arch.Outputs), (c.Architecture.Width, c.Architecture.InputSide, c.Architecture.Stem, c.Architecture.Outputs));
        Assert.Equal(arch.Normalization!.Mean, c.Architecture.Normalization!.Mean);
        Assert.Equal(arch.Normalization.Std, c.Architecture.Normalization.Std);
        Assert.Equal(SomeProvenance with { Notes = [] }, c.Provenance with { Notes = [] });
        Assert.Equal(SomeProvenance.Notes, c.Provenance.Notes);
        Assert.Equal(tensors.Tensors.Keys, c.Tensors.Tensors.Keys);
        foreach (var (name, t) in tensors.Tensors)
        {
            Assert.Equal(t.Shape, c.Tensors[name].Shape);
            Assert.Equal(t.Data, c.Tensors[name].Data);
        }
        Assert.Empty(c.Warnings);
    }

    [Fact]
    public void SavingReplacesAtomicallyAndLeavesNoTemporaryFiles()
    {
        string path = WriteValid();
        WriteValid(name: "d.mgw"); // over an existing file
        Assert.Equal(["d.mgw"], Directory.GetFiles(_dir).Select(System.IO.Path.GetFileName));
        Assert.True(WeightFile.Load(path).ChecksumValid);
    }

    [Fact]
    public void AChangedPayloadByteIsAChecksumError()
    {
        string path = WriteValid();
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x10; // inside a tensor: the structure stays valid, only the checksum can tell
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<WeightFormatException>(() => WeightFile.Load(path));
        Assert.Contains("checksum mismatch", e.Message);
        Assert.False(WeightFile.Load(path, requireValidChecksum: false).ChecksumValid); // mg inspect still shows it
    }

    [Fact]
    public void WrongMagicIsRefused()
    {
        string path = Path("x.mgw");
        File.WriteAllBytes(path, Top("SomethingElse", 1, [1, 2, 3], new byte[32]));
        Assert.Contains("not a ModelGuardian weight file", Assert.Throws<WeightFormatException>(() => WeightFile.Load(path)).Message);
        File.WriteAllBytes(path, "PK\x03\x04 definitely not ours"u8.ToArray());
        Assert.Contains("not a ModelGuardian weight file", Assert.Throws<WeightFormatException>(() => WeightFile.Load(path)).Message);
        File.WriteAllBytes(path, []);
        Assert.Contains("not a ModelGuardian weight file", Assert.Throws<WeightFormatException>(() => WeightFile.Load(path)).Message);
    }

    [Fact]
    public void UnknownVersionNamesTheSupportedOnes()
    {
        string path = Path("v3.mgw");
        File.WriteAllBytes(path, Top(WeightFile.Magic, 3, [1, 2, 3], new byte[32]));
        var e = Assert.Throws<WeightFormatException>(() => WeightFile.Load(path));
        Assert.Contains("version 3", e.Message);
        Assert.Contains("reads version(s) 1, 2", e.Message);
    }

    [Fact]
    public void DeclaredPayloadBeyondTheFileFailsBeforeAllocating()
    {
        var w = new ArrayBufferWriter<byte>();
        var m = new MessagePackWriter(w);
        m.WriteArrayHeader(4);
        m.Write(WeightFile.Magic);
        m.Write(1);
        m.Flush();
        string path = Path("huge.mgw");
        File.WriteAllBytes(path, [.. w.WrittenSpan, 0xc6, 0x7f, 0xff, 0xff, 0xf0, 1, 2, 3, 4]); // bin32 header claiming ~2 GB
        long before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Throws<WeightFormatException>(() => WeightFile.Load(path));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "the reader allocated for a size the file does not hold");
    }

    [Fact]
    public void TensorSizesThatDisagreeWithTheirShapeAreRefusedEvenWithAValidChecksum()
    {
        var payload = Payload(tensors: (ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(1);
            w.WriteArrayHeader(4);
            w.Write("input0.weight");
            w.Write("float32");
            w.WriteArrayHeader(2);
            w.Write(1_000_000);
            w.Write(1_000_000); // 4 TB of floats declared
            w.Write(new byte[16]);
        });
        string path = Path("shape.mgw");
        File.WriteAllBytes(path, Top(WeightFile.Magic, 1, payload, SHA256.HashData(payload)));
        var e = Assert.Throws<WeightFormatException>(() => WeightFile.Load(path));
        Assert.Contains("input0.weight", e.Message);
    }

    [Fact]
    public void AnInvalidDescriptorIsRefusedByName()
    {
        var payload = Payload(arch: (ref MessagePackWriter w) =>
        {
            w.WriteMapHeader(3);
            w.Write("kind"); w.Write("stylegan-d");
            w.Write("resolution"); w.Write(48); // not a power of two
            w.Write("input_channels"); w.Write(3);
        });
        string path = Path("arch.mgw");
        File.WriteAllBytes(path, Top(WeightFile.Magic, 1, payload, SHA256.HashData(payload)));
        Assert.Contains("invalid architecture", Assert.Throws<WeightFormatException>(() => WeightFile.Load(path)).Message);
    }

    [Fact]
    public void NonFiniteTensorsLoadWithAWarningNamingThem()
    {
        using var k = new ReferenceKernels();
        var (net, tensors) = RandomWeights.Create(k, SmallD, 7);
        net.Dispose();
        tensors["layer0.bias"].Data[1] = float.NaN;
        tensors["layer2.weight"].Data[0] = float.PositiveInfinity;
        string path = Path("nan.mgw");
        WeightFile.Save(path, SmallD, tensors, SomeProvenance);
        var warnings = WeightFile.Load(path).Warnings;
        Assert.Equal(2, warnings.Count);
        Assert.Contains(warnings, w => w.Contains("'layer0.bias'") && w.Contains("1 NaN"));
        Assert.Contains(warnings, w => w.Contains("'layer2.weight'") && w.Contains("1 infinite"));
    }

    [Fact]
    public void ModelFilesRefuseTensorTablesThatDoNotFitTheirArchitecture()
    {
        using var k = new ReferenceKernels();
        var (net, tensors) = RandomWeights.Create(k, SmallD, 7);
        net.Dispose();
        tensors["extra.weight"] = HostTensor.Create([1f], 1);
        tensors["layer0.bias"] = HostTensor.Create(new float[3], 3);
        string path = Path("misfit.mgw");
        WeightFile.Save(path, SmallD, tensors, SomeProvenance);
        var e = Assert.Throws<WeightFormatException>(() => ModelFiles.Load(k, path));
        Assert.Contains("'layer0.bias' is [3]", e.Message);
        Assert.Contains("'extra.weight'", e.Message);
    }

    // ---- crafting files by hand ----

    private static byte[] Top(string magic, int version, byte[] payload, byte[] checksum)
    {
        var w = new ArrayBufferWriter<byte>();
        var m = new MessagePackWriter(w);
        m.WriteArrayHeader(4);
        m.Write(magic);
        m.Write(version);
        m.Write(payload);
        m.Write(checksum);
        m.Flush();
        return w.WrittenSpan.ToArray();
    }

    private delegate void Writes(ref MessagePackWriter w);

    /// <summary>A payload map; <paramref name="arch"/> and <paramref name="tensors"/> replace the valid defaults.</summary>
    private static byte[] Payload(Writes? arch = null, Writes? tensors = null)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        w.WriteMapHeader(3);
        w.Write("architecture");
        if (arch != null) arch(ref w);
        else MessagePackSerializer.Serialize(ref w, new Dictionary<string, object> { ["kind"] = "stylegan-d", ["resolution"] = 16, ["fmap_base"] = 64, ["fmap_max"] = 8, ["mbstd_group"] = 4, ["input_channels"] = 3, ["input_side"] = 16 });
        w.Write("provenance");
        MessagePackSerializer.Serialize(ref w, new Dictionary<string, object> { ["source_file"] = "x", ["converted_at"] = "2026-11-23T10:00:00Z" });
        w.Write("tensors");
        if (tensors != null) tensors(ref w);
        else w.WriteArrayHeader(0);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }
}
