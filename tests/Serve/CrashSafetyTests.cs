using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
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
/// servers sharing it.
/// </summary>
public sealed class CrashSafetyTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-crash-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private const int Users = 3, QueriesPerUser = 40;

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

        var sentSynthetic = new bool[Users][];
        var procs = Enumerable.Range(0, servers).Select(i => new ServerProcess(configPaths[i], FreePort(), output)).ToArray();
        try
        {
            foreach (var p in procs) await p.StartAsync();
            int answered = 0;
            var clients = Enumerable.Range(0, Users).Select(u => Task.Run(async () =>
            {
                var rng = new Random(u);
                sentSynthetic[u] = new bool[QueriesPerUser];
                for (int i = 0; i < QueriesPerUser; i++)
                {
                    bool syn = rng.Next(2) == 0;
                    sentSynthetic[u][i] = syn;
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
            foreach (int mark in new[] { 8, 20, 32, 44 })
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
            await Task.WhenAll(clients);
            output.WriteLine($"{kills} kill(s) with SIGKILL, {answered} answers");
            Assert.True(kills >= 3, $"only {kills} kills happened: the load ended too early to test anything");
        }
        finally
        {
            foreach (var p in procs) p.Kill();
        }

        using var check = GuardianHost.OpenLedger(ServeConfig.Load(configPath));
        for (int u = 0; u < Users; u++)
        {
            var e = (await check.GetAsync($"user{u}"))!;
            Assert.Equal(QueriesPerUser, e.Total);                    // every answer counted once
            Assert.Equal(sentSynthetic[u].Count(s => s), e.Flagged);  // and flagged exactly when synthetic
        }
        for (int i = 0; i < servers; i++)
        {
            var audit = FileAuditLog.Verify(Path.Combine(_dir, $"audit{i}.jsonl"));
            Assert.True(audit.Valid, audit.Message);
        }
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>`dotnet mg.dll serve` as a child process.</summary>
    private sealed class ServerProcess(string config, int port, ITestOutputHelper output)
    {
        private Process? _process;
        public Uri Address { get; } = new($"http://127.0.0.1:{port}");

        public async Task StartAsync()
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "mg.dll"), "serve", "--config", config, "--urls", Address.ToString().TrimEnd('/') }) psi.ArgumentList.Add(a);
            _process = Process.Start(psi)!;
            _process.ErrorDataReceived += (_, e) => { if (e.Data != null) try { output.WriteLine($"[{port}] {e.Data}"); } catch (InvalidOperationException) { } };
            _process.BeginErrorReadLine();
            _process.BeginOutputReadLine();
            using var c = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (DateTime.UtcNow < deadline)
            {
                Assert.False(_process.HasExited, $"mg serve on port {port} exited with {(_process.HasExited ? _process.ExitCode : 0)}");
                try { if ((await c.GetAsync(new Uri(Address, "/readyz"))).IsSuccessStatusCode) return; }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
                await Task.Delay(100);
            }
            Assert.Fail($"mg serve on port {port} did not become ready within 60 s");
        }

        /// <summary>SIGKILL: no shutdown code runs.</summary>
        public void Kill()
        {
            if (_process is { HasExited: false } p)
            {
                p.Kill();
                p.WaitForExit();
            }
        }
    }
}
