using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using ModelGuardian.Tools.Serve;
using Xunit.Abstractions;

namespace ModelGuardian.Tests.Serve;

/// <summary>
/// An `mg serve` process under steady load on loopback: benign clients, and attacking clients that are
/// terminated at τ and reinstated by the admin to attack again, all above the rate limit. The only answers
/// allowed are 200, 403 to attackers and 429; the benign users' ledgers must equal their answers. The
/// server's resident memory is sampled every 5 s. MG_SOAK_SECONDS sets the length (default 20); from 5 minutes
/// on, the peak RSS at the end must stay within 20 % of the peak at minute 1. MG_SOAK_CSV names a file
/// for the samples.
/// </summary>
public sealed class SoakTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-soak-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public async Task Benign_and_attacking_clients_get_only_the_expected_answers_and_memory_stays_flat()
    {
        var duration = TimeSpan.FromSeconds(int.TryParse(Environment.GetEnvironmentVariable("MG_SOAK_SECONDS"), out int sec) && sec > 0 ? sec : 20);
        var (threshold, natural, synthetic) = ServerFixture.SplitImages(_dir);
        const int tau = 20;
        var config = ServerFixture.Config(_dir, threshold, l => l with { RatePerSecond = 15, RateBurst = 10 }, tau);
        string configPath = Path.Combine(_dir, "guardian.json");
        File.WriteAllText(configPath, JsonSerializer.Serialize(config, ServeConfig.Json));
        string[] benign = ["benign0", "benign1"], attackers = ["attacker0", "attacker1"];
        var keys = new Dictionary<string, string>();
        using (var store = GuardianHost.OpenLedger(ServeConfig.Load(configPath)))
            foreach (var user in benign.Concat(attackers))
            {
                keys[user] = ApiKeys.Generate();
                await store.AddAsync(user, ApiKeys.Hash(keys[user]), DateTimeOffset.UtcNow);
            }

        var server = new ServerProcess(configPath, ServerProcess.FreePort(), output.WriteLine);
        var counts = new Dictionary<string, int>[4];
        var errors = new List<string>();
        var samples = new List<(double Seconds, double Rss, double PeakRss, long Answers)>();
        long answers = 0;
        try
        {
            await server.StartAsync();
            var clock = Stopwatch.StartNew();
            var clients = benign.Concat(attackers).Select((user, c) => Task.Run(async () =>
            {
                bool attacker = c >= benign.Length;
                var seen = counts[c] = new Dictionary<string, int>();
                using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(30) };
                http.DefaultRequestHeaders.Authorization = new("Bearer", keys[user]);
                using var admin = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(30) };
                admin.DefaultRequestHeaders.Authorization = new("Bearer", ServerFixture.AdminKey);
                var images = attacker ? synthetic : natural;
                for (int i = 0; clock.Elapsed < duration; i++)
                {
                    try
                    {
                        var r = await http.PostAsync("/v1/predict", ServerFixture.Png(images[i % images.Length]));
                        string code = ((int)r.StatusCode).ToString(CultureInfo.InvariantCulture);
                        seen[code] = seen.GetValueOrDefault(code) + 1;
                        if (r.StatusCode == HttpStatusCode.OK) Interlocked.Increment(ref answers);
                        else if (r.StatusCode == HttpStatusCode.TooManyRequests) await Task.Delay(50);
                        else if (r.StatusCode == HttpStatusCode.Forbidden && attacker)
                        {
                            var back = await admin.PostAsync($"/v1/admin/users/{user}/reinstate", null);
                            if (back.StatusCode != HttpStatusCode.OK) lock (errors) errors.Add($"{user}: reinstate answered {(int)back.StatusCode}");
                        }
                        else
                        {
                            string body = await r.Content.ReadAsStringAsync();
                            lock (errors) errors.Add($"{user}: {code} {body}");
                        }
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                    {
                        lock (errors) errors.Add($"{user}: {e.GetType().Name}: {e.Message}");
                    }
                }
            })).ToArray();

            while (!clients.All(c => c.IsCompleted))
            {
                await Task.WhenAny(Task.WhenAll(clients), Task.Delay(5000));
                var (rss, peak) = server.Memory();
                samples.Add((clock.Elapsed.TotalSeconds, rss, peak, Interlocked.Read(ref answers)));
            }
            await Task.WhenAll(clients);
        }
        finally
        {
            server.Kill();
        }

        if (Environment.GetEnvironmentVariable("MG_SOAK_CSV") is { Length: > 0 } csv)
            File.WriteAllLines(csv, ["seconds,rss_mib,peak_rss_mib,answers", .. samples.Select(s => FormattableString.Invariant($"{s.Seconds:F0},{s.Rss:F1},{s.PeakRss:F1},{s.Answers}"))]);
        for (int c = 0; c < counts.Length; c++)
            output.WriteLine($"{(c < benign.Length ? benign[c] : attackers[c - benign.Length])}: " + string.Join(", ", counts[c].OrderBy(k => k.Key).Select(k => $"{k.Key} × {k.Value}")));
        var first = samples.FirstOrDefault(s => s.Seconds >= 60, samples[^1]);
        output.WriteLine($"{duration.TotalSeconds:F0} s, {answers} answers; peak RSS {first.PeakRss:F0} MiB at {first.Seconds:F0} s, {samples[^1].PeakRss:F0} MiB at the end");

        Assert.True(errors.Count == 0, string.Join("\n", errors.Take(20)));
        for (int c = 0; c < benign.Length; c++) Assert.False(counts[c].ContainsKey("403"), $"{benign[c]} was terminated");
        for (int c = benign.Length; c < counts.Length; c++) Assert.True(counts[c].GetValueOrDefault("403") > 0, $"{attackers[c - benign.Length]} was never terminated");
        using (var check = GuardianHost.OpenLedger(ServeConfig.Load(configPath)))
            for (int c = 0; c < benign.Length; c++)
                Assert.Equal(counts[c].GetValueOrDefault("200"), (await check.GetAsync(benign[c]))!.Total);
        if (duration >= TimeSpan.FromMinutes(5))
            Assert.True(samples[^1].PeakRss <= 1.2 * first.PeakRss,
                $"peak RSS grew from {first.PeakRss:F0} MiB at minute 1 to {samples[^1].PeakRss:F0} MiB at the end");
    }
}
