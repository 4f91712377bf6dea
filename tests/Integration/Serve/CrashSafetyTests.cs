using System.Net;
using System.Text.Json;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Tests.Guardian;
using ModelGuardian.Tools.Serve;
using Xunit.Abstractions;

namespace ModelGuardian.Tests.Serve;

/// <summary>
/// `mg serve` processes are killed with SIGKILL at random moments under load and restarted; clients
/// retry every request that got no answer with the same Idempotency-Key. At the end the ledger
/// must hold exactly the answers the clients received — none lost, none counted twice — and the
/// audit chain must still verify. Once with SQLite and one server, once with PostgreSQL and two
/// servers sharing it. MG_CRASH_KILLS sets the number of kills per run (default 4; the load grows with it).
/// </summary>
public sealed class CrashSafetyTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-crash-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private const int Users = 3, AnswersBetweenKills = 12, MinQueriesPerUser = 40;
    private static readonly int Kills = int.TryParse(Environment.GetEnvironmentVariable("MG_CRASH_KILLS"), out int k) && k > 0 ? k : 4;

    [Fact]
    public Task SqliteLedgerCountsExactlyTheAnswersAcrossKills()
        => Run(new LedgerConfig { Kind = "sqlite", Path = "ledger.db" }, servers: 1);

    [Fact]
    public Task PostgresLedgerCountsExactlyTheAnswersAcrossKillsOfTwoReplicas()
    {
        PostgresServer.EnsureReachable();
        return Run(new LedgerConfig { Kind = "postgres", ConnectionString = PostgresServer.ConnectionString, Schema = PostgresServer.NewSchema() }, servers: 2);
    }

    private async Task Run(LedgerConfig ledger, int servers)
    {
        var (threshold, natural, synthetic) = ServerFixture.SplitImages(_dir);
        var config = ServerFixture.Config(_dir, threshold, tau: 1_000_000) with { Ledger = ledger };
        // Every process keeps its own audit log (a shared file would fork the chain).
        var configPaths = Enumerable.Range(0, servers).Select(i =>
        {
            string path = Path.Combine(_dir, $"guardian{i}.json");
            File.WriteAllText(path, JsonSerializer.Serialize(config with { AuditLog = $"audit{i}.jsonl" }, ServeConfig.Json));
            return path;
        }).ToArray();
        string configPath = configPaths[0];

        var keys = new string[Users];
        using (var store = GuardianHost.OpenLedger(ServeConfig.Load(configPath)))
            for (int u = 0; u < Users; u++)
            {
                keys[u] = ApiKeys.Generate();
                await store.AddAsync($"user{u}", ApiKeys.Hash(keys[u]), DateTimeOffset.UtcNow);
            }

        // Each client queries until every kill has happened and it has sent at least MinQueriesPerUser.
        var sentSynthetic = new List<bool>[Users];
        bool killsDone = false;
        var procs = Enumerable.Range(0, servers).Select(i => new ServerProcess(configPaths[i], ServerProcess.FreePort(), output.WriteLine)).ToArray();
        try
        {
            foreach (var p in procs) await p.StartAsync();
            int answered = 0;
            var clients = Enumerable.Range(0, Users).Select(u => Task.Run(async () =>
            {
                var rng = new Random(u);
                sentSynthetic[u] = [];
                for (int i = 0; i < MinQueriesPerUser || !Volatile.Read(ref killsDone); i++)
                {
                    bool syn = rng.Next(2) == 0;
                    sentSynthetic[u].Add(syn);
                    var png = syn ? synthetic[rng.Next(synthetic.Length)] : natural[rng.Next(natural.Length)];
                    for (int attempt = 0; ; attempt++)
                    {
                        var server = procs[(i + attempt) % procs.Length];
                        try
                        {
                            using var c = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(20) };
                            c.DefaultRequestHeaders.Authorization = new("Bearer", keys[u]);
                            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/predict") { Content = ServerFixture.Png(png) };
                            request.Headers.Add("Idempotency-Key", $"user{u}-query{i}");
                            var r = await c.SendAsync(request);
                            if (r.StatusCode == HttpStatusCode.OK) { Interlocked.Increment(ref answered); break; }
                            Assert.True(r.StatusCode == HttpStatusCode.ServiceUnavailable, $"unexpected {(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
                        }
                        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException) { }
                        Assert.True(attempt < 400, "a request never got an answer");
                        await Task.Delay(50);
                    }
                }
            })).ToArray();

            // Kill a server each time another slice of the answers has gone out, at a random moment within it.
            // Restarts run in the background, so with two replicas the next kill does not wait for them.
            var killerRng = new Random(7);
            int kills = 0;
            var restarts = procs.Select(_ => Task.CompletedTask).ToArray();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            foreach (int mark in Enumerable.Range(0, Kills).Select(j => 8 + AnswersBetweenKills * j))
            {
                while (Volatile.Read(ref answered) < mark && !clients.All(c => c.IsCompleted)) await Task.Delay(5);
                if (clients.All(c => c.IsCompleted)) break;
                await Task.Delay(killerRng.Next(40));
                int victim = killerRng.Next(procs.Length);
                await restarts[victim]; // a process is killed only once it is serving again
                procs[victim].Kill();
                kills++;
                restarts[victim] = procs[victim].StartAsync();
            }
            await Task.WhenAll(restarts);
            Volatile.Write(ref killsDone, true);
            await Task.WhenAll(clients);
            output.WriteLine($"{ledger.Kind}, {servers} server(s): {kills} kill(s) with SIGKILL, {answered} answers, {clock.Elapsed.TotalSeconds:F0} s");
            Assert.Equal(Kills, kills);
        }
        finally
        {
            foreach (var p in procs) p.Kill();
        }

        using var check = GuardianHost.OpenLedger(ServeConfig.Load(configPath));
        for (int u = 0; u < Users; u++)
        {
            var e = (await check.GetAsync($"user{u}"))!;
            Assert.Equal(sentSynthetic[u].Count, e.Total);            // every answer counted once
            Assert.Equal(sentSynthetic[u].Count(s => s), e.Flagged);  // and flagged exactly when synthetic
        }
        for (int i = 0; i < servers; i++)
        {
            var audit = FileAuditLog.Verify(Path.Combine(_dir, $"audit{i}.jsonl"));
            Assert.True(audit.Valid, audit.Message);
        }
    }
}
