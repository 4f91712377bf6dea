using ModelGuardian.Tests.Oracle;
using ModelGuardian.Engine.Core;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Kernels.Reference;
using ModelGuardian.Weights;
using ModelGuardian.Weights.Format;

namespace ModelGuardian.Tests.Weights;

/// <summary>
/// Every committed checkpoint (torch zip and legacy, safetensors, CNNDetection / DataParallel /
/// genforce wrappers, NVIDIA TF pickles at protocols 2–4) is converted to our format, loaded, and
/// must reproduce what PyTorch computed from it (float64): outputs within 1e-4 of their max-abs,
/// input gradients within 1e-3 of theirs.
/// </summary>
public sealed class ConversionRoundTripTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-convert-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    public static TheoryData<WeightFixture> Fixtures() => WeightFixtures.Theory();

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void ConvertedWeightsReproducePyTorch(WeightFixture fixture)
    {
        string output = Path.Combine(_dir, fixture.File + ".mgw");
        var report = WeightConverter.Convert(fixture.Path, fixture.Architecture, output);
        Assert.Equal(fixture.Format, report.SourceFormat);
        Assert.Empty(report.Warnings);

        var expected = TensorFile.Read(WeightFixtures.PathOf(fixture.Expected));
        var (xShape, x) = expected["x"];
        var shape = new Shape4(xShape[0], xShape[1], xShape[2], xShape[3]);
        foreach (var kernels in new ModelGuardian.Kernels.IKernels[] { new CpuKernels(), new ReferenceKernels() })
        {
            using var _k = kernels;
            var (net, contents) = ModelFiles.Load(kernels, output);
            using var _n = net;
            Assert.Equal(fixture.Architecture.ToString(), contents.Architecture.ToString());
            var result = net.ForwardWithInputGradient(x, shape);
            TestUtil.AssertClose(expected["y"].Data, result.Outputs, 1e-4, $"{fixture.File} outputs on {kernels.Name}");
            TestUtil.AssertClose(expected["dx"].Data, result.InputGradient, 1e-3, $"{fixture.File} input gradient on {kernels.Name}");
        }
    }

    [Fact]
    public void ProvenanceRecordsTheSourceAndWhatWasDone()
    {
        var f = WeightFixtures.Named("resnet50w4-dataparallel.pth");
        string output = Path.Combine(_dir, "r50.mgw");
        var before = DateTimeOffset.UtcNow.AddSeconds(-1);
        WeightConverter.Convert(f.Path, f.Architecture, output);
        var p = WeightFile.Load(output).Provenance;
        Assert.Equal("resnet50w4-dataparallel.pth", p.SourceFile);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f.Path))), p.SourceSha256);
        Assert.Equal("torch-zip", p.SourceFormat);
        Assert.Equal(WeightConverter.ConverterVersion, p.Converter);
        Assert.InRange(p.ConvertedAt, before, DateTimeOffset.UtcNow.AddSeconds(1));
        Assert.Contains(p.Notes, n => n.Contains("module.", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("resnet18w8-cifar.pt", "resnet18w8-cifar-legacy.pt", "resnet18w8-cifar.safetensors")] // fc.weight is F16 in the safetensors file
    [InlineData("stylegan-d128-genforce.pth", "stylegan-d128-karras.pkl", "stylegan-d128-karras-protocol2.pkl", "stylegan-d128-karras-protocol4.pkl")]
    public void AllFormatsOfOneNetworkGiveBitIdenticalWeights(params string[] files)
    {
        var sets = files.Select(file =>
        {
            var f = WeightFixtures.Named(file);
            string output = Path.Combine(_dir, file + ".mgw");
            WeightConverter.Convert(f.Path, f.Architecture, output);
            return WeightFile.Load(output).Tensors;
        }).ToList();
        foreach (var other in sets.Skip(1))
        {
            Assert.Equal(sets[0].Tensors.Keys, other.Tensors.Keys);
            foreach (var (name, t) in sets[0].Tensors) Assert.Equal(t.Data, other[name].Data);
        }
    }
}
