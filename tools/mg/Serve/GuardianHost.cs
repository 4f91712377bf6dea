using ModelGuardian.Engine;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;
using ModelGuardian.Weights;

namespace ModelGuardian.Tools.Serve;

/// <summary>
/// The composition root: a config becomes kernels, networks, the micro-batcher, the ledger, the
/// audit log and a <see cref="Guardian"/>. Owns and disposes all of them. Used by `mg serve`,
/// `mg screen` and `mg users`.
/// </summary>
public sealed class GuardianHost : IDisposable
{
    private readonly List<IDisposable> _owned = new();

    private GuardianHost(ServeConfig config) => Config = config;

    public ServeConfig Config { get; }
    public IKernels Kernels { get; private set; } = null!;
    public GuardianModels Models { get; private set; } = null!;
    public ModelBatcher Batcher { get; private set; } = null!;
    public ILedgerStore Ledger { get; private set; } = null!;
    public FileAuditLog Audit { get; private set; } = null!;
    public Engine.Guardian.Guardian Guardian { get; private set; } = null!;
    /// <summary>Which ledger account a user's query counts against (the user's own, or their network's).</summary>
    public Engine.Guardian.AccountGrouping Grouping { get; private set; } = Engine.Guardian.AccountGrouping.Identity;
    /// <summary>Things the operator must know (random weights, NaN tensors).</summary>
    public List<string> Warnings { get; } = new();

    /// <summary>Only the ledger (for `mg users`): no models are loaded.</summary>
    public static ILedgerStore OpenLedger(ServeConfig config) => LedgerStores.Open(config.Ledger.Kind switch
    {
        "sqlite" => LedgerOptions.ForSqlite(config.Resolve(config.Ledger.Path)),
        "postgres" => LedgerOptions.ForPostgres(config.Ledger.ConnectionString!, config.Ledger.Schema),
        _ => LedgerOptions.ForTestsInMemory(),
    });

    public static GuardianHost Start(ServeConfig config)
    {
        var host = new GuardianHost(config);
        try
        {
            host.Build();
            return host;
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    private T Own<T>(T d) where T : IDisposable
    {
        _owned.Add(d);
        return d;
    }

    private void Build()
    {
        var c = Config;
        Kernels = Own(Backends.Create(Backends.Parse(c.Backend)));
        var victim = Own(Load(c.Victim, "victim", transform: false));
        var d = Own(Load(c.Transform, "transform", transform: true));
        var detectors = c.Detectors.Select((m, i) => new SubDetector(m.Name ?? $"detector{i}", Own(Load(m, $"detectors[{i}]", transform: false)), m.Threshold)).ToList();
        var filter = c.Filter == "bicubic" ? ResizeFilter.Bicubic : ResizeFilter.Bilinear;
        Models = new GuardianModels(new VictimClassifier(victim), new DfmsDetector(new GradientTransform(d, new GradientTransformOptions { Filter = filter }), detectors));
        Batcher = Own(new ModelBatcher(Models, new BatchingOptions
        {
            MaxBatch = c.Limits.MaxBatch, MaxWait = TimeSpan.FromMilliseconds(c.Limits.MaxWaitMs), QueueCapacity = c.Limits.QueueCapacity,
        }));
        if (c.Ledger.Kind == "memory") Warnings.Add("ledger.kind is 'memory': counts and terminations are lost when the process ends (tests only)");
        Ledger = Own(OpenLedger(c));
        Audit = Own(new FileAuditLog(c.Resolve(c.AuditLog)));
        Guardian = new Engine.Guardian.Guardian(Batcher, Ledger, Audit, new GuardianOptions
        {
            Policy = c.Policy.ToPolicy(), DeceptionV = c.Policy.V, RandomizedDeception = c.Policy.ToDeception(),
        });
        Grouping = c.Policy.ToGrouping();
    }

    private Network Load(ModelSource source, string role, bool transform)
    {
        if (source.Model != null)
        {
            string path = Config.Resolve(source.Model);
            var (net, contents) = transform ? ModelFiles.LoadTransform(Kernels, path) : ModelFiles.Load(Kernels, path);
            Warnings.AddRange(contents.Warnings.Select(w => $"{role}: {w}"));
            return net;
        }
        var r = source.Random!;
        var arch = ArchitectureDescriptor.Parse(r.Arch, r.Classes, r.Resolution, r.Width, r.FmapBase, r.FmapMax);
        if (r.InputSide is int side) arch = ArchitectureDescriptor.ResNet(arch.Depth, arch.Outputs, arch.Stem, side, arch.Width);
        if (transform)
        {
            if (arch.Kind != NetworkKind.StyleGanDiscriminator) throw new ArgumentException($"{role}: the transform must be a StyleGAN discriminator, got {arch}.");
            arch = arch with { MbstdGroupSize = 1 };
        }
        Warnings.Add($"{role}: RANDOMLY initialised {arch} (seed {r.Seed}) — a demonstration, not a defense");
        return RandomWeights.Create(Kernels, arch, r.Seed).Network;
    }

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
    }
}
