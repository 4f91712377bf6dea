using System.Text.RegularExpressions;
using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Weights.Pickle;
using ModelGuardian.Weights.Sources;

namespace ModelGuardian.Weights.Mapping;

/// <summary>How strictly a checkpoint must fit the architecture. Strict by default.</summary>
public sealed record MappingOptions
{
    /// <summary>Missing tensors are initialised (seeded, as <see cref="RandomWeights"/> does) instead of refused, and listed.</summary>
    public bool AllowMissing { get; init; }
    /// <summary>Tensors the architecture does not use are dropped instead of refused, and listed.</summary>
    public bool IgnoreUnexpected { get; init; }
    /// <summary>Where the state dict sits in the checkpoint (dotted keys, e.g. "model"), or which TF network ("D"); null = found automatically.</summary>
    public string? Key { get; init; }
    public ulong MissingSeed { get; init; } = 1;
}

/// <summary>The tensors for a network, with what was noted on the way (layout found, relaxations used) and warnings (NaN/Inf).</summary>
public sealed record MappedWeights(TensorSet Tensors, IReadOnlyList<string> Notes, IReadOnlyList<string> Warnings);

/// <summary>
/// Finds the state dict in a checkpoint (bare; CNNDetection's {'model': …}; genforce's
/// {'discriminator': …}; {'state_dict': …}; DataParallel's "module." prefixes; D's variables in a
/// StyleGAN TF pickle), renames it to our names (torchvision / genforce, which are also ours),
/// and checks it against the architecture: missing, unexpected and mis-shaped tensors are all
/// named in one error. Shapes are checked before any tensor data is read.
/// </summary>
public static class StateDictMapping
{
    private const int MaxDepth = 16, MaxListed = 25;

    // Wrapper keys tried in order when no --key is given.
    private static readonly string[] WrapperKeys = ["state_dict", "model", "discriminator", "net", "module"];

    public static MappedWeights Map(Checkpoint checkpoint, ArchitectureDescriptor arch, MappingOptions? options = null)
    {
        options ??= new MappingOptions();
        var notes = new List<string>();
        var named = Locate(checkpoint, arch, options, notes);

        if (named.Count > 0 && named.Keys.All(k => k.StartsWith("module.", StringComparison.Ordinal)))
        {
            named = named.ToDictionary(kv => kv.Key["module.".Length..], kv => kv.Value, StringComparer.Ordinal);
            notes.Add("stripped the 'module.' prefix (nn.DataParallel)");
        }
        if (named.Keys.Any(k => k.Contains('/')))
        {
            if (arch.Kind != NetworkKind.StyleGanDiscriminator)
                throw new WeightFormatException($"'{checkpoint.Path}' holds TensorFlow scope names (e.g. '{named.Keys.First(k => k.Contains('/'))}'); only StyleGAN discriminators are read from TF names, not {arch}.");
            named = TfStyleGanNames.ToGenforce(named, arch.Resolution);
            notes.Add("renamed NVIDIA TF scopes to genforce names, conv weights [kh,kw,in,out]→[out,in,kh,kw], dense [in,out]→[out,in]");
        }

        var expected = ParameterSchema.For(arch);
        var fit = SchemaFit.Compare(expected, named.ToDictionary(kv => kv.Key, kv => kv.Value.Shape, StringComparer.Ordinal), arch);
        fit.ThrowIfRefused(checkpoint.Path, arch, options.AllowMissing, options.IgnoreUnexpected);
        if (fit.Ignored.Count > 0) notes.Add($"ignored {fit.Ignored.Count} buffer(s) inference does not use ({List(fit.Ignored.Select(i => $"'{i}'"), 4)})");
        if (fit.Unexpected.Count > 0) notes.Add($"--ignore-unexpected dropped {fit.Unexpected.Count} tensor(s): {List(fit.Unexpected.Select(u => $"'{u}'"))}");
        var missing = fit.Missing;

        var tensors = new TensorSet();
        foreach (var spec in expected)
            if (named.TryGetValue(spec.Name, out var t)) tensors[spec.Name] = new HostTensor(spec.Shape, t.ReadFloats());
        if (missing.Count > 0)
        {
            var init = new RandomWeights(options.MissingSeed);
            foreach (var m in missing) tensors[m.Name] = new HostTensor(m.Shape, init.Take(m.Name, m.Shape, m.Role));
            notes.Add($"--allow-missing initialised {missing.Count} tensor(s) randomly (seed {options.MissingSeed}): {List(missing.Select(m => $"'{m.Name}'"))}");
        }
        return new MappedWeights(tensors, notes, TensorChecks.NonFiniteWarnings(tensors));
    }

    private static Dictionary<string, SourceTensor> Locate(Checkpoint checkpoint, ArchitectureDescriptor arch, MappingOptions options, List<string> notes)
    {
        var root = checkpoint.Root;
        if (checkpoint.Format == "tf-pickle") return TfVariables(checkpoint, options.Key ?? "D", notes);
        if (options.Key != null)
        {
            foreach (var part in options.Key.Split('.'))
                root = root is PyDict d && d.TryGet(part, out var inner) ? inner
                    : throw new WeightFormatException($"'{checkpoint.Path}' has no entry '{options.Key}' (at '{part}'); top-level keys: {Keys(checkpoint.Root)}.");
            notes.Add($"state dict under '{options.Key}'");
            return AsStateDict(root, checkpoint, options.Key);
        }
        if (root is not PyDict top)
            throw new WeightFormatException($"'{checkpoint.Path}' holds a {Unpickler.Describe(root)}, not a dict of tensors.");
        if (top.Items.Any(kv => kv.Value is SourceTensor)) return AsStateDict(top, checkpoint, "the top level");
        foreach (var key in WrapperKeys)
        {
            if (top.TryGet(key, out var inner) && inner is PyDict d && d.Items.Any(kv => kv.Value is SourceTensor))
            {
                notes.Add($"state dict under '{key}'");
                return AsStateDict(d, checkpoint, key);
            }
        }
        throw new WeightFormatException($"'{checkpoint.Path}' holds no state dict at its top level or under {string.Join(", ", WrapperKeys.Select(k => $"'{k}'"))}; " +
                                        $"top-level keys: {Keys(top)}; name the entry with --key.");
    }

    private static Dictionary<string, SourceTensor> AsStateDict(object? value, Checkpoint checkpoint, string where)
    {
        if (value is not PyDict d) throw new WeightFormatException($"'{checkpoint.Path}': {where} is a {Unpickler.Describe(value)}, not a state dict.");
        var result = new Dictionary<string, SourceTensor>(StringComparer.Ordinal);
        foreach (var (k, v) in d.Items)
        {
            if (k is not string name) throw new WeightFormatException($"'{checkpoint.Path}': the state dict at {where} has a non-string key.");
            if (v is not SourceTensor t) throw new WeightFormatException($"'{checkpoint.Path}': entry '{name}' of the state dict at {where} is a {Unpickler.Describe(v)}, not a tensor.");
            result[name] = t;
        }
        return result;
    }

    /// <summary>The variables of the TF network named <paramref name="name"/> (G, D or Gs) in a StyleGAN pickle.</summary>
    private static Dictionary<string, SourceTensor> TfVariables(Checkpoint checkpoint, string name, List<string> notes)
    {
        var networks = new List<PyDict>();
        Collect(checkpoint.Root, 0);
        void Collect(object? v, int depth)
        {
            if (depth > MaxDepth) return; // pickles may be cyclic; Networks sit at depth 1
            switch (v)
            {
                case PyObject { Type.Module: "dnnlib.tflib.network", Type.Name: "Network", State: PyDict state }: networks.Add(state); break;
                case PyTuple t: foreach (var i in t.Items) Collect(i, depth + 1); break;
                case PyList l: foreach (var i in l.Items) Collect(i, depth + 1); break;
            }
        }
        string NameOf(PyDict s) => s.TryGet("name", out var n) && n is string str ? str : "?";
        var match = networks.Where(s => NameOf(s) == name).ToList();
        if (match.Count != 1)
            throw new WeightFormatException($"'{checkpoint.Path}' has {match.Count} TF network(s) named '{name}'; networks found: [{string.Join(", ", networks.Select(NameOf))}] (choose one with --key).");
        if (!match[0].TryGet("variables", out var vars) || vars is not PyList list)
            throw new WeightFormatException($"'{checkpoint.Path}': network '{name}' has no variables list.");
        var result = new Dictionary<string, SourceTensor>(StringComparer.Ordinal);
        foreach (var item in list.Items)
        {
            if (item is not PyTuple { Count: 2 } pair || pair[0] is not string varName)
                throw new WeightFormatException($"'{checkpoint.Path}': a variable of network '{name}' is not a (name, array) pair.");
            SourceTensor tensor = pair[1] switch
            {
                Numpy.Array { Tensor: { } t } => t,
                // 0-d variables (lod) come back from TF as numpy scalars.
                double scalar => new InMemoryTensor(SourceDType.Float32, [], [(float)scalar]),
                _ => throw new WeightFormatException($"'{checkpoint.Path}': variable '{varName}' of network '{name}' is a {Unpickler.Describe(pair[1])}, not an array."),
            };
            if (!result.TryAdd(varName, tensor)) throw new WeightFormatException($"'{checkpoint.Path}': variable '{varName}' appears twice.");
        }
        notes.Add($"variables of TF network '{name}' (its embedded build source was not read)");
        return result;
    }

    private static string Keys(object? root) => root is PyDict d ? "[" + string.Join(", ", d.Items.Select(kv => kv.Key is string s ? $"'{s}'" : Unpickler.Describe(kv.Key)).Take(MaxListed)) + "]" : Unpickler.Describe(root);

    private static string List(IEnumerable<string> items, int max = MaxListed) => SchemaFit.List(items, max);
}
