using System.Buffers.Binary;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels.Reference;
using ModelGuardian.Weights;
using ModelGuardian.Weights.Mapping;
using ModelGuardian.Weights.Pickle;
using ModelGuardian.Weights.Sources;

namespace ModelGuardian.Tests.Weights;

/// <summary>
/// Checkpoints built to hurt: code in pickles, damaged archives, sizes beyond the file, tensors that
/// do not fit. Each must end in a <see cref="WeightFormatException"/> that names the problem, and
/// nothing may be allocated for sizes the file does not hold.
/// </summary>
public sealed class HostileFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-hostile-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private string Path(string name) => System.IO.Path.Combine(_dir, name);

    private static readonly ArchitectureDescriptor R18 = WeightFixtures.Named("resnet18w8-cifar.pt").Architecture;

    private static WeightFormatException Refused(string path, ArchitectureDescriptor? arch = null, MappingOptions? options = null)
        => Assert.Throws<WeightFormatException>(() =>
        {
            using var c = Checkpoint.Open(path);
            StateDictMapping.Map(c, arch ?? R18, options);
        });

    [Theory]
    [InlineData("os-system.pt", "os.system")]
    [InlineData("os-system-legacy.pt", "os.system")]
    [InlineData("os-system.pkl", "os.system")]
    [InlineData("posix-system.pt", "posix.system")]
    public void PicklesNamingAnyOtherGlobalAreRefusedByName(string file, string global)
    {
        var e = Refused(WeightFixtures.PathOf(Path2("hostile", file)));
        Assert.Contains($"'{global}'", e.Message);
        Assert.Contains("nothing was executed", e.Message);
    }

    private static string Path2(string a, string b) => System.IO.Path.Combine(a, b);

    [Fact]
    public void TheTfPicklesEmbeddedSourceIsNeverRead()
    {
        // The fixture's build_module_src would run os.system if executed; converting only takes the arrays.
        var f = WeightFixtures.Named("stylegan-d128-karras.pkl");
        using var c = Checkpoint.Open(f.Path);
        var mapped = StateDictMapping.Map(c, f.Architecture);
        Assert.Contains(mapped.Notes, n => n.Contains("build source was not read"));
    }

    [Theory]
    [InlineData(0.01)]
    [InlineData(0.5)]
    [InlineData(0.999)]
    public void TruncatedArchivesAreRefused(double keep)
    {
        foreach (var file in new[] { "resnet18w8-cifar.pt", "resnet18w8-cifar-legacy.pt", "resnet18w8-cifar.safetensors", "stylegan-d128-karras.pkl" })
        {
            var bytes = File.ReadAllBytes(WeightFixtures.PathOf(file));
            string path = Path("t-" + file);
            File.WriteAllBytes(path, bytes[..(int)(bytes.Length * keep)]);
            Refused(path, WeightFixtures.Named(file).Architecture);
        }
    }

    [Fact]
    public void AStorageDeclaringMoreElementsThanAnyArrayIsRefusedAtOnce()
    {
        string path = Path("huge.pt");
        CheckpointFiles.WriteTorchZip(path, PickleBuilder.TorchStateDict("w", 1L << 40, 4), new Dictionary<string, byte[]> { ["0"] = new byte[16] });
        Assert.Contains("declares 1099511627776 elements", Assert.Throws<WeightFormatException>(() => Checkpoint.Open(path)).Message);
    }

    [Fact]
    public void AStorageLargerThanItsArchiveEntryFailsBeforeAllocating()
    {
        string path = Path("big.pt");
        CheckpointFiles.WriteTorchZip(path, PickleBuilder.TorchStateDict("w", 100_000_000, 100_000_000), new Dictionary<string, byte[]> { ["0"] = new byte[16] });
        using var c = Checkpoint.Open(path);
        Assert.True(((PyDict)c.Root!).TryGet("w", out var t));
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<WeightFormatException>(() => ((SourceTensor)t!).ReadFloats());
        Assert.Contains("should hold 400000000 bytes", e.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "allocated for a storage the archive does not hold");
    }

    [Fact]
    public void ATensorReachingBeyondItsStorageIsRefused()
    {
        string path = Path("view.pt");
        CheckpointFiles.WriteTorchZip(path, PickleBuilder.TorchStateDict("w", 4, 5), new Dictionary<string, byte[]> { ["0"] = new byte[16] });
        Assert.Contains("reaches element 4 of storage '0', which has 4", Assert.Throws<WeightFormatException>(() => Checkpoint.Open(path)).Message);
    }

    [Fact]
    public void LegacyStorageSizesBeyondTheFileAreRefused()
    {
        var bytes = File.ReadAllBytes(WeightFixtures.PathOf("resnet18w8-cifar-legacy.pt"));
        // The first storage's 8-byte element count follows the key-list pickle; find it by reading the file as the reader does.
        int at = FirstLegacyStorageOffset(bytes);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(at), 1L << 40);
        string path = Path("legacy.pt");
        File.WriteAllBytes(path, bytes);
        Assert.Contains("holds 1099511627776 elements", Refused(path).Message);
    }

    private static int FirstLegacyStorageOffset(byte[] file)
    {
        var hooks = new AnyPersistentId();
        int pos = 0;
        for (int i = 0; i < 5; i++) Unpickler.Load(file, new HashSet<string>(TorchGlobals), hooks, pos, out pos);
        return pos;
    }

    private static readonly string[] TorchGlobals =
        ["collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.FloatStorage", "torch.LongStorage"];

    private sealed class AnyPersistentId : PickleHooks
    {
        public override object? PersistentLoad(object? pid) => pid;
        public override object? Reduce(PyGlobal callable, PyTuple args) => callable.Name == "OrderedDict" ? new PyDict() : null;
        public override void Build(object? target, object? state) { }
    }

    [Fact]
    public void SafeTensorsHeadersPointingOutsideTheFileAreRefused()
    {
        string path = Path("s.safetensors");
        CheckpointFiles.WriteSafeTensors(path, new Dictionary<string, (int[], float[])> { ["a"] = ([2], [1, 2]) });
        var bytes = File.ReadAllBytes(path);

        var longHeader = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(longHeader, 1UL << 40);
        File.WriteAllBytes(path, longHeader);
        Assert.Throws<WeightFormatException>(() => Checkpoint.Open(path));

        CheckpointFiles.WriteSafeTensors(path, new Dictionary<string, (int[], float[])> { ["a"] = ([2], [1, 2]) });
        File.WriteAllBytes(path, ReplaceAscii(File.ReadAllBytes(path), "[0,8]", "[0,9]"));
        Assert.Contains("outside the", Assert.Throws<WeightFormatException>(() => Checkpoint.Open(path)).Message);

        CheckpointFiles.WriteSafeTensors(path, new Dictionary<string, (int[], float[])> { ["a"] = ([2], [1, 2]), ["b"] = ([2], [3, 4]) });
        File.WriteAllBytes(path, ReplaceAscii(File.ReadAllBytes(path), "[8,16]", "[4,12]"));
        Assert.Contains("overlap", Assert.Throws<WeightFormatException>(() => Checkpoint.Open(path)).Message);
    }

    /// <summary>Replaces an ASCII run of the same length in a binary file (the header stays the same size).</summary>
    private static byte[] ReplaceAscii(byte[] data, string from, string to)
    {
        Assert.Equal(from.Length, to.Length);
        int at = data.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(from));
        Assert.True(at >= 0, $"'{from}' not found");
        System.Text.Encoding.ASCII.GetBytes(to).CopyTo(data, at);
        return data;
    }

    [Fact]
    public void AllMismatchesAreNamedInOneError()
    {
        // The ResNet-18 file read as a ResNet-34: blocks 18 lacks are missing; read with 5 classes: fc is mis-shaped.
        var r34 = ArchitectureDescriptor.ResNet(34, 10, ResNetStem.Cifar, 32, width: 8);
        var e = Refused(WeightFixtures.PathOf("resnet18w8-cifar.pt"), r34);
        Assert.Contains("missing", e.Message);
        Assert.Contains("'layer1.2.conv1.weight' [8, 8, 3, 3]", e.Message);
        int missing = ParameterSchema.For(r34).Count(p => ParameterSchema.For(R18).All(q => q.Name != p.Name));
        Assert.Contains($"{missing} missing:", e.Message);

        var five = ArchitectureDescriptor.ResNet(18, 5, ResNetStem.Cifar, 32, width: 8);
        e = Refused(WeightFixtures.PathOf("resnet18w8-cifar.pt"), five, new MappingOptions { AllowMissing = true, IgnoreUnexpected = true });
        Assert.Contains("'fc.weight' is [10, 64], expected [5, 64]", e.Message);
        Assert.Contains("'fc.bias' is [10], expected [5]", e.Message);
    }

    [Fact]
    public void RelaxationsAreExplicitAndListWhatTheyDid()
    {
        // Missing: ResNet-18 weights for a ResNet-34 (e.g. to fine-tune); initialised and listed.
        var r34 = ArchitectureDescriptor.ResNet(34, 10, ResNetStem.Cifar, 32, width: 8);
        using (var c = Checkpoint.Open(WeightFixtures.PathOf("resnet18w8-cifar.pt")))
        {
            var mapped = StateDictMapping.Map(c, r34, new MappingOptions { AllowMissing = true });
            Assert.Equal(ParameterSchema.For(r34).Count, mapped.Tensors.Tensors.Count);
            Assert.Contains(mapped.Notes, n => n.Contains("--allow-missing initialised") && n.Contains("'layer1.2.conv1.weight'"));
            using var k = new ReferenceKernels();
            Network.Create(k, r34, mapped.Tensors).Dispose(); // complete: builds strictly
        }

        // Unexpected: an extra tensor beside a complete state dict.
        string path = Path("extra.safetensors");
        using (var c = Checkpoint.Open(WeightFixtures.PathOf("resnet18w8-cifar.safetensors")))
        {
            var all = ((PyDict)c.Root!).Items.ToDictionary(kv => (string)kv.Key!, kv => (((SourceTensor)kv.Value!).Shape, ((SourceTensor)kv.Value!).ReadFloats()));
            all["head2.weight"] = ([3], [1, 2, 3]);
            CheckpointFiles.WriteSafeTensors(path, all);
        }
        Assert.Contains("1 unexpected: 'head2.weight' [3]", Refused(path).Message);
        using (var c = Checkpoint.Open(path))
            Assert.Contains(StateDictMapping.Map(c, R18, new MappingOptions { IgnoreUnexpected = true }).Notes, n => n.Contains("dropped 1 tensor(s): 'head2.weight'"));
    }

    [Fact]
    public void NonFiniteCheckpointTensorsConvertWithAWarningNamingThem()
    {
        string path = Path("nan.safetensors");
        using (var c = Checkpoint.Open(WeightFixtures.PathOf("resnet18w8-cifar.safetensors")))
        {
            var all = ((PyDict)c.Root!).Items.ToDictionary(kv => (string)kv.Key!, kv => (((SourceTensor)kv.Value!).Shape, (float[])((SourceTensor)kv.Value!).ReadFloats().Clone()));
            all["layer2.0.conv1.weight"].Item2[5] = float.NaN;
            CheckpointFiles.WriteSafeTensors(path, all);
        }
        using var cp = Checkpoint.Open(path);
        var warning = Assert.Single(StateDictMapping.Map(cp, R18).Warnings);
        Assert.Contains("'layer2.0.conv1.weight'", warning);
    }

    [Fact]
    public void CyclicAndDeeplyNestedPicklesEndInAnErrorNotAHang()
    {
        // A list appended to itself (memo recall), then a million nested empty lists.
        var cyclic = new PickleBuilder().Proto(2).Op(']').Op('q').Op(0).Op('h').Op(0).Op('a').Stop();
        var nested = new PickleBuilder().Proto(2);
        for (int i = 0; i < 1_000_000; i++) nested.Op('(');
        for (int i = 0; i < 1_000_000; i++) nested.Op('l');
        foreach (var (name, bytes) in new[] { ("cyclic.pkl", cyclic), ("nested.pkl", nested.Stop()) })
        {
            string path = Path(name);
            File.WriteAllBytes(path, bytes);
            var e = Refused(path, ArchitectureDescriptor.StyleGanD(32, 512, 32));
            Assert.Contains("networks found", e.Message); // the TF reader found no Network: a clear error
        }
    }

    [Fact]
    public void UnknownFormatsAndWrongArchitectureKindsAreExplained()
    {
        string path = Path("text.pt");
        File.WriteAllText(path, "hello, I am not a checkpoint");
        Assert.Contains("not a checkpoint this converter reads", Assert.Throws<WeightFormatException>(() => Checkpoint.Open(path)).Message);
        var tf = WeightFixtures.Named("stylegan-d128-karras.pkl");
        Assert.Contains("TensorFlow scope names", Refused(tf.Path, R18, new MappingOptions()).Message);
    }
}
