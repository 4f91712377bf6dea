using System.Text.Json;
using ModelGuardian.Engine.Networks;

namespace ModelGuardian.Tests.Weights;

/// <summary>One checkpoint written by tests/Engine/Fixtures/make_weight_fixtures.py (PyTorch 1.13), with PyTorch's outputs for it.</summary>
public sealed record WeightFixture(string File, string Format, string Wrapper, ArchitectureDescriptor Architecture, string Expected)
{
    public string Path => WeightFixtures.PathOf(File);
    public override string ToString() => File; // the theory's display name
}

public static class WeightFixtures
{
    public static string Directory => System.IO.Path.Combine(AppContext.BaseDirectory, "Fixtures", "weights");

    public static string PathOf(string file) => System.IO.Path.Combine(Directory, file);

    public static IReadOnlyList<WeightFixture> All { get; } = Load();

    public static WeightFixture Named(string file) => All.Single(f => f.File == file);

    /// <summary>The architecture with the CLI flags that describe it.</summary>
    public static string[] ArchArgs(ArchitectureDescriptor a) => a.Kind == NetworkKind.ResNet
        ? ["--arch", $"resnet{a.Depth}{(a.Stem == ResNetStem.Cifar ? "-cifar" : "")}", "--width", $"{a.Width}", "--classes", $"{a.Outputs}", "--input-side", $"{a.InputSide}"]
        : ["--arch", "stylegan-d", "--resolution", $"{a.Resolution}", "--fmap-base", $"{a.FmapBase}", "--fmap-max", $"{a.FmapMax}"];

    private static IReadOnlyList<WeightFixture> Load()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(PathOf("manifest.json")));
        return doc.RootElement.EnumerateArray().Select(e =>
        {
            var a = e.GetProperty("arch");
            var arch = a.GetProperty("kind").GetString() == "resnet"
                ? ArchitectureDescriptor.ResNet(a.GetProperty("depth").GetInt32(), a.GetProperty("outputs").GetInt32(),
                    a.GetProperty("stem").GetString() == "cifar" ? ResNetStem.Cifar : ResNetStem.ImageNet,
                    a.GetProperty("input_side").GetInt32(), a.GetProperty("width").GetInt32())
                : ArchitectureDescriptor.StyleGanD(a.GetProperty("resolution").GetInt32(), a.GetProperty("fmap_base").GetInt32(),
                    a.GetProperty("fmap_max").GetInt32(), a.GetProperty("mbstd_group").GetInt32());
            return new WeightFixture(e.GetProperty("file").GetString()!, e.GetProperty("format").GetString()!,
                e.GetProperty("wrapper").GetString()!, arch, e.GetProperty("expected").GetString()!);
        }).ToList();
    }

    public static TheoryData<WeightFixture> Theory()
    {
        var data = new TheoryData<WeightFixture>();
        foreach (var f in All) data.Add(f);
        return data;
    }
}
