using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Weights;
using ModelGuardian.Weights.Format;

namespace ModelGuardian.Tests.Networks;

/// <summary>The input contract's own rules; its arithmetic is checked against torchvision in the integration suite.</summary>
public sealed class InputContractTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-contract-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static readonly InputContract Padded = new() { Fit = InputFit.Pad, ContentSide = 28, Grey = true };

    private static PlanarImage Image(int w, int h, int seed) => new(w, h, TestUtil.Random(3 * w * h, seed).Select(v => 128 + 100 * v).ToArray());

    [Fact]
    public void A_padded_model_pads_exactly_and_passes_its_own_side_through()
    {
        using var k = new CpuKernels();
        var grey = new float[3 * 28 * 28];
        for (int i = 0; i < 28 * 28; i++) grey[i] = grey[784 + i] = grey[2 * 784 + i] = i % 256;
        var padded = Padded.Apply(new PlanarImage(28, 28, grey), 32, k);
        Assert.Equal((32, 32), (padded.Width, padded.Height));
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                {
                    bool inside = x >= 2 && x < 30 && y >= 2 && y < 30;
                    Assert.Equal(inside ? ((y - 2) * 28 + (x - 2)) % 256 : 0, padded.Values[c * 1024 + y * 32 + x]);
                }
        var already = Image(32, 32, 1);
        Assert.Same(already.Values, (Padded with { Grey = false }).Apply(already, 32, k).Values);
    }

    [Fact]
    public void Queries_that_cannot_meet_the_contract_are_refused_with_the_reason()
    {
        using var k = new CpuKernels();
        var e = Assert.Throws<InvalidDataException>(() => Padded.Apply(Image(40, 20, 2), 32, k));
        Assert.Contains("square", e.Message);
        Assert.Contains("40×20", e.Message);
    }

    [Theory]
    [InlineData(InputFit.Pad, 27, 0, 0f)]     // odd margin
    [InlineData(InputFit.Pad, 40, 0, 0f)]     // larger than the input
    [InlineData(InputFit.Pad, 28, 0, 300f)]   // pad value off the 0…255 scale
    [InlineData(InputFit.CenterCrop, 0, 16, 0f)] // resize side below the crop
    [InlineData(InputFit.Resize, 28, 0, 0f)]  // a resize takes no content side
    public void Contracts_that_cannot_fit_the_input_side_are_rejected(InputFit fit, int content, int resize, float pad)
        => Assert.Throws<ArgumentException>(() => new InputContract { Fit = fit, ContentSide = content, ResizeSide = resize, PadValue = pad }.Validate(32));

    [Fact]
    public void Grey_queries_pass_unchanged_and_colour_ones_become_luma()
    {
        using var k = new CpuKernels();
        var colour = new PlanarImage(1, 1, [100f, 50f, 200f]);
        var grey = new InputContract { Grey = true }.Apply(colour, 1, k);
        float luma = 0.299f * 100 + 0.587f * 50 + 0.114f * 200;
        Assert.Equal([luma, luma, luma], grey.Values);
        var alreadyGrey = new InputContract { Grey = true }.Apply(new PlanarImage(1, 1, [77f, 77f, 77f]), 1, k);
        Assert.Equal([77f, 77f, 77f], alreadyGrey.Values);
    }

    [Fact]
    public void The_contract_is_stored_in_the_weight_file_and_read_back()
    {
        var arch = ArchitectureDescriptor.ResNet(18, 10, ResNetStem.Cifar, 32, 4) with
        {
            Input = new InputContract { Fit = InputFit.CenterCrop, ResizeSide = 36, Filter = ResizeFilter.Bicubic, Grey = true },
        };
        var (_, tensors) = RandomWeights.Create(new CpuKernels(), arch, 3);
        string path = Path.Combine(_dir, "m.mgw");
        WeightFile.Save(path, arch, tensors, new Provenance("test", "", "test", "1", DateTimeOffset.UtcNow, []));
        var back = WeightFile.Load(path);
        Assert.Equal(2, back.Version);
        Assert.Equal(arch.Input, back.Architecture.Input);
        var plain = arch with { Input = null };
        WeightFile.Save(path, plain, tensors, new Provenance("test", "", "test", "1", DateTimeOffset.UtcNow, []));
        Assert.Null(WeightFile.Load(path).Architecture.Input);
    }
}
