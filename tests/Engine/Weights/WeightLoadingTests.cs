using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels.Reference;
using ModelGuardian.Weights;
using ModelGuardian.Weights.Format;

namespace ModelGuardian.Tests.Weights;

public sealed class WeightLoadingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-load-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>
    /// The file is memory-mapped and each tensor copied once into its array: a load allocates the
    /// tensors' bytes plus a little bookkeeping, never a second copy of the file.
    /// </summary>
    [Fact]
    public void LoadingCopiesTheTensorBytesOnce()
    {
        var arch = ArchitectureDescriptor.ResNet(50, 1000, width: 32); // ≈ 7 M parameters, 28 MB
        using var k = new ReferenceKernels();
        var source = new RandomWeights(11);
        foreach (var p in ParameterSchema.For(arch)) source.Take(p.Name, p.Shape, p.Role);
        string path = Path.Combine(_dir, "big.mgw");
        WeightFile.Save(path, arch, source.Tensors, new Provenance("x", "", "test", "test", DateTimeOffset.UnixEpoch, []));
        long tensorBytes = source.Tensors.Tensors.Values.Sum(t => 4L * t.Length);
        Assert.True(new FileInfo(path).Length > tensorBytes);

        long before = GC.GetAllocatedBytesForCurrentThread();
        var c = WeightFile.Load(path);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(source.Tensors.Tensors.Count, c.Tensors.Tensors.Count);
        Assert.True(allocated < tensorBytes * 1.05, $"loading allocated {allocated:N0} bytes for {tensorBytes:N0} bytes of tensors");
    }

    /// <summary>The schema the readers check against is exactly what the builders take, for every architecture family.</summary>
    [Theory]
    [InlineData("resnet18", 64)]
    [InlineData("resnet34-cifar", 8)]
    [InlineData("resnet50", 4)]
    [InlineData("resnet50-cifar", 16)]
    [InlineData("stylegan-d", 0)]
    public void ParameterSchemaMatchesWhatTheBuildersTake(string name, int width)
    {
        var archs = name == "stylegan-d"
            ? new[] { ArchitectureDescriptor.StyleGanD(256), ArchitectureDescriptor.StyleGanD(32, 512, 32), ArchitectureDescriptor.StyleGanD(128, 1024, 16) }
            : [ArchitectureDescriptor.Parse(name, outputs: 7, width: width)];
        using var k = new ReferenceKernels();
        foreach (var arch in archs)
        {
            var (net, taken) = RandomWeights.Create(k, arch, 1);
            net.Dispose();
            var schema = ParameterSchema.For(arch);
            Assert.Equal(taken.Tensors.Keys.Order(), schema.Select(p => p.Name).Order());
            foreach (var p in schema) Assert.Equal(taken[p.Name].Shape, p.Shape);
        }
    }
}
