using ModelGuardian.Engine.Attacks;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Tests.Serve;

namespace ModelGuardian.Tests.Attacks;

/// <summary>
/// An attacker reaches the victim the same way in process and over HTTP: on a fixed seed both paths send
/// the same queries (SHA-256 of the float values) and receive the same answers, bit for bit — the JSON
/// floats and doubles are written and read with round-trip precision, and the server multiplies by 255 as
/// the in-process client does. The server's detector flags about half of all images, so the stream holds
/// deceived (DPreds) answers as well as true ones.
/// </summary>
public sealed class HttpAttackTests
{
    [Theory]
    [InlineData(AttackKind.Dfme)]
    [InlineData(AttackKind.Disguide)]
    public async Task InProcessAndHttpAttacksSeeIdenticalQueryLogs(AttackKind kind)
    {
        await using var server = await ServerFixture.StartAsync(tau: 1000);
        const int classes = 3;
        // The colour head: its first images are a mix of flagged and unflagged here, so both kinds of answer are compared.
        var options = TinyAttack.Options(kind, 24) with { GreyImages = false };

        async Task<IReadOnlyList<QueryLogEntry>> Run(IVictimClient victim)
        {
            using var k = new CpuKernels();
            var client = new LoggingClient(victim);
            using var attack = AttackFactory.Create(kind, k, classes, options, new TinyAttack.SmoothProxy());
            var result = await attack.RunAsync(client, TinyAttack.TestSet(3) is var t ? new CloneTestSet(t.Images, t.Labels.Select(l => l % classes).ToList()) : null!);
            Assert.Equal(24, result.QueriesAnswered);
            return client.Meter.Log;
        }

        string key = await server.AddUserAsync("alice-http");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        var overHttp = await Run(new HttpVictimClient(http, server.BaseAddress, key, classes));
        var inProcess = await Run(new GuardianVictimClient(server.Host.Guardian, "bob-in-process", classes));

        Assert.Equal(inProcess.Select(e => e.ImageSha256), overHttp.Select(e => e.ImageSha256));
        Assert.Equal(inProcess.SelectMany(e => e.Probabilities), overHttp.SelectMany(e => e.Probabilities));
        // Both accounts were counted by the server's ledger, query for query, with the same verdicts — some flagged (deceived answers), some not.
        var a = (await server.Host.Ledger.GetAsync("alice-http"))!;
        var b = (await server.Host.Ledger.GetAsync("bob-in-process"))!;
        Assert.Equal((24L, 24L), (a.Total, b.Total));
        Assert.Equal(a.Flagged, b.Flagged);
        Assert.InRange(a.Flagged, 1, 23);
    }

    /// <summary>A rate-limited server answers 429 with Retry-After; the attacker waits and resends, and every query is counted exactly once.</summary>
    [Fact]
    public async Task TheHttpAttackerWaitsOutRateLimits()
    {
        await using var server = await ServerFixture.StartAsync(l => l with { RatePerSecond = 5, RateBurst = 2 }, tau: 1000);
        string key = await server.AddUserAsync("patient");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        using var k = new CpuKernels();
        using var attack = AttackFactory.Create(AttackKind.Dfme, k, 3, TinyAttack.Options(AttackKind.Dfme, 16), new TinyAttack.SmoothProxy());
        var t = TinyAttack.TestSet(3);
        var result = await attack.RunAsync(new HttpVictimClient(http, server.BaseAddress, key, 3), new CloneTestSet(t.Images, t.Labels.Select(l => l % 3).ToList()));
        Assert.Equal(16, result.QueriesAnswered);
        Assert.Equal(16, (await server.Host.Ledger.GetAsync("patient"))!.Total);
        // The limit was really hit: the server turned some requests away with 429.
        string metrics = await http.GetStringAsync(new Uri(server.BaseAddress, "/metrics"));
        var rejected = metrics.Split('\n').Single(l => l.StartsWith("mg_queries_total{outcome=\"rejected\"}", StringComparison.Ordinal));
        Assert.True(long.Parse(rejected.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture) > 0, rejected);
    }
}
