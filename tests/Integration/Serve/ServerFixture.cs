using System.Net.Http.Headers;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Tools.Serve;
using Microsoft.AspNetCore.Builder;

namespace ModelGuardian.Tests.Serve;

/// <summary>
/// A real `mg serve` stack (Kestrel on loopback, SQLite ledger, audit log) over tiny seeded random
/// models. Test images are noise; the detector's threshold is set at the median of their scores, so
/// the "synthetic" half is always flagged and the "natural" half never — the classes are defined by
/// the detector itself, which is all an end-to-end test of the service needs.
/// </summary>
internal sealed class ServerFixture : IAsyncDisposable
{
    public const string AdminKey = "mgk_test-admin-key";

    private readonly WebApplication _app;

    private ServerFixture(string dir, GuardianHost host, WebApplication app, byte[][] natural, byte[][] synthetic)
    {
        Directory = dir;
        Host = host;
        _app = app;
        Natural = natural;
        Synthetic = synthetic;
        BaseAddress = new Uri(app.Urls.First());
    }

    public string Directory { get; }
    public GuardianHost Host { get; }
    public Uri BaseAddress { get; }
    /// <summary>PNG bytes the detector never flags, and ones it always flags.</summary>
    public byte[][] Natural { get; }
    public byte[][] Synthetic { get; }

    public static ServeConfig Config(string dir, double threshold = 0.5, Func<LimitsConfig, LimitsConfig>? limits = null, int tau = 6, Func<PolicyConfig, PolicyConfig>? policy = null)
        => new()
        {
            Directory = dir,
            Backend = "cpu",
            Victim = new ModelSource { Random = new RandomModel { Arch = "resnet18-cifar", Classes = 3, Width = 4, Seed = 1 } },
            Transform = new ModelSource { Random = new RandomModel { Arch = "stylegan-d", Resolution = 32, FmapBase = 256, FmapMax = 16, Seed = 2 } },
            Detectors = [new ModelSource { Name = "a", Threshold = threshold, Random = new RandomModel { Arch = "resnet18-cifar", Classes = 1, Width = 4, Seed = 3 } }],
            Policy = (policy ?? (p => p))(new PolicyConfig { Tau = tau, Delta = 0.5, V = 0.5 }),
            Ledger = new LedgerConfig { Kind = "sqlite", Path = "ledger.db" },
            AuditLog = "audit.jsonl",
            AdminKeySha256 = ApiKeys.HashHex(AdminKey),
            Limits = (limits ?? (l => l))(new LimitsConfig { RatePerSecond = 1000, RateBurst = 1000, MaxWaitMs = 1 }),
        };

    /// <summary>24 noise images split at the median detector score; returns the threshold between the halves.</summary>
    public static (double Threshold, byte[][] Natural, byte[][] Synthetic) SplitImages(string dir)
    {
        var pngs = Enumerable.Range(0, 24).Select(i =>
        {
            var rng = new Random(100 + i);
            int w = 24 + rng.Next(20), h = 24 + rng.Next(20);
            var px = new byte[w * h * 3];
            rng.NextBytes(px);
            return new RgbImage(w, h, px).EncodePng();
        }).ToArray();
        using var probe = GuardianHost.Start(Config(dir) with { Ledger = new LedgerConfig { Kind = "memory" }, AuditLog = "probe-audit.jsonl" });
        var scores = pngs.Select(p => probe.Models.Evaluate([PlanarImage.From(RgbImage.Decode(p))])[0].Verdict.Scores[0]).ToArray();
        var sorted = scores.Order().ToArray();
        double threshold = (sorted[11] + sorted[12]) / 2;
        Assert.True(sorted[11] < sorted[12], "the detector scores two images the same: no median split");
        return (threshold, pngs.Where((_, i) => scores[i] < threshold).ToArray(), pngs.Where((_, i) => scores[i] > threshold).ToArray());
    }

    public static async Task<ServerFixture> StartAsync(Func<LimitsConfig, LimitsConfig>? limits = null, int tau = 6, Func<PolicyConfig, PolicyConfig>? policy = null)
    {
        string dir = System.IO.Directory.CreateTempSubdirectory("mg-serve-").FullName;
        var (threshold, natural, synthetic) = SplitImages(dir);
        var host = GuardianHost.Start(Config(dir, threshold, limits, tau, policy));
        var app = GuardianServer.Build(host, ["http://127.0.0.1:0"]);
        await app.StartAsync();
        return new ServerFixture(dir, host, app, natural, synthetic);
    }

    public async Task<string> AddUserAsync(string name)
    {
        string key = ApiKeys.Generate();
        await Host.Ledger.AddAsync(name, ApiKeys.Hash(key), DateTimeOffset.UtcNow);
        return key;
    }

    public HttpClient Client(string? key)
    {
        var c = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        if (key != null) c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return c;
    }

    public static ByteArrayContent Png(byte[] png)
    {
        var content = new ByteArrayContent(png);
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        return content;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Host.Dispose();
        System.IO.Directory.Delete(Directory, true);
    }
}
