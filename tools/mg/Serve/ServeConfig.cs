using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelGuardian.Tools.Serve;

/// <summary>A network to load: a weight file, or (explicitly, for demonstrations) seeded random weights.</summary>
public sealed record ModelSource
{
    /// <summary>A .mgw file: relative to the config file, or "@defaults/name.mgw" among the built-in models beside mg.</summary>
    public string? Model { get; init; }
    public RandomModel? Random { get; init; }
    /// <summary>Sub-detectors: flag when sigmoid(logit) exceeds it.</summary>
    public double Threshold { get; init; } = 0.5;
    public string? Name { get; init; }
}

/// <summary>Seeded random weights for an architecture, named as on the mg convert command line.</summary>
public sealed record RandomModel
{
    public string Arch { get; init; } = "";
    public int Classes { get; init; } = 1;
    public int Resolution { get; init; } = 256;
    public int Width { get; init; } = 64;
    public int FmapBase { get; init; } = 16384;
    public int FmapMax { get; init; } = 512;
    public int? InputSide { get; init; }
    public ulong Seed { get; init; } = 1;
}

public sealed record PolicyConfig
{
    public int Tau { get; init; } = Engine.Guardian.GuardianOptions.DefaultTau;
    public double Delta { get; init; } = 0.5;
    public double V { get; init; } = 0.5;
    /// <summary>"dpreds" (the paper: constant v) or "randomized" (a fresh v in 0.05…2 and temperature in 1…4 per flagged answer; the adaptive attacker cannot invert it).</summary>
    public string Deception { get; init; } = "dpreds";
    /// <summary>
    /// Optional early termination: the detector's measured false-positive rate on benign traffic. When set, an SPRT
    /// boundary (H1: flagged rate 0.5, α = 0.001, β = 0.01) also terminates, at any count — against attackers who
    /// spread their queries over accounts each kept under τ.
    /// </summary>
    public double? SprtFpr { get; init; }
    /// <summary>
    /// Ledger accounts: "user" (one per API user, the default), "owner" (users that <see cref="Owners"/> maps to one owner
    /// share one account), or "network" (users behind one client IPv4 /24 or IPv6 /64 share one account).
    /// </summary>
    public string Accounts { get; init; } = "user";
    /// <summary>For accounts = "owner": API user → owner (e.g. the customer who registered the keys); the ledger rows are
    /// "owner:&lt;owner&gt;", and "user:&lt;name&gt;" for unmapped users, who keep their own account.</summary>
    public Dictionary<string, string> Owners { get; init; } = new();

    public Engine.Guardian.TerminationPolicy ToPolicy() => SprtFpr is double fpr ? Engine.Guardian.TerminationPolicy.WithSequentialTest(Tau, Delta, fpr) : new(Tau, Delta);

    public Engine.Guardian.RandomizedDeception? ToDeception() => Deception switch
    {
        "dpreds" => null,
        "randomized" => Engine.Guardian.RandomizedDeception.Default,
        _ => throw new ArgumentException($"policy.deception must be 'dpreds' or 'randomized', got '{Deception}'."),
    };

    public Engine.Guardian.AccountGrouping ToGrouping() => Accounts switch
    {
        "user" => Engine.Guardian.AccountGrouping.Identity,
        "owner" => Engine.Guardian.AccountGrouping.ByOwner(Owners),
        "network" => Engine.Guardian.AccountGrouping.ByNetworkPrefix(),
        _ => throw new ArgumentException($"policy.accounts must be 'user', 'owner' or 'network', got '{Accounts}'."),
    };
}

public sealed record LedgerConfig
{
    /// <summary>sqlite (default), postgres, or memory (tests only: counts are lost on exit).</summary>
    public string Kind { get; init; } = "sqlite";
    public string Path { get; init; } = "guardian.db";
    public string? ConnectionString { get; init; }
    /// <summary>PostgreSQL schema holding the tables (several deployments can share a database).</summary>
    public string? Schema { get; init; }
}

public sealed record LimitsConfig
{
    public long MaxBodyBytes { get; init; } = 4L << 20;
    public int MaxImageSide { get; init; } = 1024;
    public int RequestTimeoutMs { get; init; } = 30_000;
    public int QueueCapacity { get; init; } = 256;
    public int MaxBatch { get; init; } = 8;
    public double MaxWaitMs { get; init; } = 2;
    /// <summary>Per-user token bucket: sustained requests per second, and the burst allowed.</summary>
    public double RatePerSecond { get; init; } = 20;
    public int RateBurst { get; init; } = 40;
}

/// <summary>
/// guardian.json: which models, which ledger, the policy, the limits. Immutable; relative paths
/// resolved against the file's folder; every problem reported with the setting's name.
/// </summary>
public sealed record ServeConfig
{
    public string Listen { get; init; } = "http://127.0.0.1:8080";
    public string Backend { get; init; } = "auto";
    public ModelSource Victim { get; init; } = new();
    public ModelSource Transform { get; init; } = new();
    /// <summary>bilinear (default) or bicubic, for resizing queries to D's resolution.</summary>
    public string Filter { get; init; } = "bilinear";
    public IReadOnlyList<ModelSource> Detectors { get; init; } = [];
    public PolicyConfig Policy { get; init; } = new();
    public LedgerConfig Ledger { get; init; } = new();
    public string AuditLog { get; init; } = "audit.jsonl";
    /// <summary>SHA-256 (hex) of the admin key (`mg admin-key` makes one); env MG_ADMIN_KEY_SHA256 overrides.</summary>
    public string? AdminKeySha256 { get; init; }
    public LimitsConfig Limits { get; init; } = new();

    [JsonIgnore] public string Directory { get; init; } = ".";

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, // a misspelt setting is an error, not a silent default
        WriteIndented = true,
    };

    public static ServeConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Config file '{path}' does not exist.", path);
        ServeConfig config;
        try { config = JsonSerializer.Deserialize<ServeConfig>(File.ReadAllText(path), Json) ?? throw new InvalidDataException("the file is empty"); }
        catch (JsonException e) { throw new InvalidDataException($"Config '{path}': {e.Message}", e); }
        config = config with { Directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))! };
        config.Validate(path);
        return config;
    }

    /// <summary>The prefix of a path inside the built-in default models shipped beside mg (weights/default in the repository).</summary>
    public const string DefaultModelsPrefix = "@defaults/";

    /// <summary>A path from the config: relative to the config's folder, or "@defaults/…" inside the built-in models.</summary>
    public string Resolve(string relative) => relative.StartsWith(DefaultModelsPrefix, StringComparison.Ordinal)
        ? System.IO.Path.Combine(AppContext.BaseDirectory, "default-models", relative[DefaultModelsPrefix.Length..])
        : System.IO.Path.GetFullPath(relative, Directory);

    public string? AdminKeyHash => Environment.GetEnvironmentVariable("MG_ADMIN_KEY_SHA256") is { Length: > 0 } env ? env : AdminKeySha256;

    private void Validate(string path)
    {
        var problems = new List<string>();
        void Check(bool ok, string problem) { if (!ok) problems.Add(problem); }
        void CheckModel(ModelSource m, string name)
            => Check((m.Model != null) != (m.Random != null), $"{name}: give exactly one of \"model\" (a .mgw file) or \"random\"");
        CheckModel(Victim, "victim");
        CheckModel(Transform, "transform");
        Check(Detectors.Count > 0, "detectors: at least one sub-detector is needed");
        for (int i = 0; i < Detectors.Count; i++) CheckModel(Detectors[i], $"detectors[{i}]");
        Check(Filter is "bilinear" or "bicubic", $"filter: 'bilinear' or 'bicubic', got '{Filter}'");
        Check(Ledger.Kind is "sqlite" or "postgres" or "memory", $"ledger.kind: sqlite, postgres or memory, got '{Ledger.Kind}'");
        Check(Ledger.Kind != "postgres" || !string.IsNullOrWhiteSpace(Ledger.ConnectionString), "ledger.connection_string is needed for postgres");
        Check(Limits.MaxBodyBytes > 0 && Limits.MaxImageSide > 0 && Limits.RequestTimeoutMs > 0 && Limits.QueueCapacity > 0 && Limits.MaxBatch > 0 && Limits.MaxWaitMs >= 0,
              "limits: every limit must be positive");
        Check(Limits.RatePerSecond > 0 && Limits.RateBurst > 0, "limits: rate_per_second and rate_burst must be positive");
        Check(AdminKeyHash is null || AdminKeyHash.Length == 64 && AdminKeyHash.All(Uri.IsHexDigit), "admin_key_sha256: 64 hex digits (mg admin-key makes one)");
        // The policy's own conversions name what they accept; their refusals are collected like the rest.
        foreach (Action convert in new Action[] { () => Policy.ToDeception(), () => Policy.ToGrouping() })
            try { convert(); }
            catch (ArgumentException e) { problems.Add(e.Message.TrimEnd('.')); }
        Check(Policy.Accounts == "owner" || Policy.Owners.Count == 0, "policy.owners applies to policy.accounts = \"owner\" only");
        Check(Policy.SprtFpr is null or (>= 0 and < 0.5), $"policy.sprt_fpr: the detector's measured false-positive rate, in [0, 0.5), got {Policy.SprtFpr}");
        if (problems.Count > 0) throw new InvalidDataException($"Config '{path}': {string.Join("; ", problems)}.");
    }
}
