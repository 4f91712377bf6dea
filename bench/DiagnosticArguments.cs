using ModelGuardian.Engine.Networks;

namespace ModelGuardian.Bench;

/// <summary>
/// The arguments after a diagnostic mode (--layers, --loop): positional words, `--threads N`, and the
/// on/off flags the mode accepts, anywhere after the mode's own word.
/// </summary>
public sealed record DiagnosticArguments(IReadOnlyList<string> Positional, int Threads, IReadOnlySet<string> Flags)
{
    public static DiagnosticArguments Parse(string[] args, int modeAt, params string[] flags)
    {
        var positional = new List<string>();
        var set = new HashSet<string>();
        int threads = 2;
        for (int i = modeAt + 1; i < args.Length; i++)
        {
            if (flags.Contains(args[i])) { set.Add(args[i]); continue; }
            if (args[i] == "--threads")
            {
                if (++i >= args.Length || !int.TryParse(args[i], out threads) || threads < 1) throw new ArgumentException("--threads takes a positive number.");
                continue;
            }
            positional.Add(args[i]);
        }
        return new DiagnosticArguments(positional, threads, set);
    }

    /// <summary>Positional word <paramref name="index"/>, or <paramref name="fallback"/> when absent.</summary>
    public string? At(int index, string? fallback = null) => index < Positional.Count ? Positional[index] : fallback;

    /// <summary>The architecture and batch size of a ResNet workload, by the name the diagnostics take.</summary>
    public static (ArchitectureDescriptor Architecture, int Batch) NetworkAndBatch(string name) => Network(name) switch
    {
        WorkloadKind.ResNet50Batch1 => (ArchitectureDescriptor.ResNet(50, 1), 1),
        WorkloadKind.ResNet50Batch8 => (ArchitectureDescriptor.ResNet(50, 1), 8),
        _ => (ArchitectureDescriptor.ResNet(34, 10, ResNetStem.Cifar), 64),
    };

    /// <summary>The ResNet workloads by the names the diagnostics take.</summary>
    public static WorkloadKind Network(string name) => name switch
    {
        "resnet50-b1" => WorkloadKind.ResNet50Batch1,
        "resnet50-b8" => WorkloadKind.ResNet50Batch8,
        "resnet34-cifar-b64" => WorkloadKind.ResNet34CifarBatch64,
        _ => throw new ArgumentException($"Unknown network '{name}': resnet50-b1, resnet50-b8 or resnet34-cifar-b64."),
    };
}
