using System.Text.Json;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Tests.Serve;
using ModelGuardian.Tools.Serve;

namespace ModelGuardian.Tests.Cli;

/// <summary>`mg users`, `mg admin-key`, `mg audit verify`, `mg screen` and `mg serve`'s config errors, in-process.</summary>
[Collection("Console")]
public sealed class MgGuardianCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-cli-g-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private string WriteConfig(ServeConfig config)
    {
        string path = Path.Combine(_dir, "guardian.json");
        File.WriteAllText(path, JsonSerializer.Serialize(config, ServeConfig.Json));
        return path;
    }

    [Fact]
    public async Task UsersAddListRevokeAndTheKeyWorksOnlyUntilRevoked()
    {
        string config = WriteConfig(ServerFixture.Config(_dir));
        var (code, stdout, stderr) = Mg.Run("users", "add", "alice", "--config", config);
        Assert.True(code == 0, stderr);
        string key = stdout.Trim();
        Assert.StartsWith(ApiKeys.Prefix, key);
        Assert.Equal(1, Mg.Run("users", "add", "alice", "--config", config).Code); // duplicate name
        Assert.Contains("alice", Mg.Run("users", "list", "--config", config).Stdout);

        using (var store = GuardianHost.OpenLedger(ServeConfig.Load(config)))
        {
            var found = await store.FindActiveByKeyHashAsync(ApiKeys.Hash(key));
            Assert.Equal("alice", found!.Value.Name);
            Assert.DoesNotContain(key, await File.ReadAllTextAsync(Path.Combine(_dir, "ledger.db"))); // only the hash is stored
        }
        Assert.Equal(0, Mg.Run("users", "revoke", "alice", "--config", config).Code);
        Assert.Contains("revoked", Mg.Run("users", "list", "--config", config).Stdout);
        Assert.Equal(1, Mg.Run("users", "revoke", "alice", "--config", config).Code);
        using (var store = GuardianHost.OpenLedger(ServeConfig.Load(config)))
            Assert.Null(await store.FindActiveByKeyHashAsync(ApiKeys.Hash(key)));
    }

    [Fact]
    public void AdminKeyPrintsAKeyAndItsHash()
    {
        var (code, stdout, _) = Mg.Run("admin-key");
        Assert.Equal(0, code);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal($"\"admin_key_sha256\": \"{ApiKeys.HashHex(lines[0])}\"", lines[1]);
    }

    [Fact]
    public async Task AuditVerifyPassesAnIntactLogAndFailsAnEditedOne()
    {
        string path = Path.Combine(_dir, "audit.jsonl");
        using (var log = new FileAuditLog(path))
            for (int i = 0; i < 3; i++) await log.AppendAsync("flag", "u", new Dictionary<string, object?> { ["n"] = i });
        var (code, stdout, _) = Mg.Run("audit", "verify", path);
        Assert.Equal(0, code);
        Assert.Contains("3 record(s), chain intact", stdout);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"n\":1", "\"n\":7"));
        (code, _, var stderr) = Mg.Run("audit", "verify", path);
        Assert.Equal(1, code);
        Assert.Contains("FAILS verification: line 2 was changed", stderr);
    }

    [Fact]
    public async Task ScreenPrintsVerdictsAndWritesACsvForAFolder()
    {
        var (threshold, natural, synthetic) = ServerFixture.SplitImages(_dir);
        string config = WriteConfig(ServerFixture.Config(_dir, threshold, tau: 3));
        string folder = Directory.CreateDirectory(Path.Combine(_dir, "queries")).FullName;
        for (int i = 0; i < 3; i++)
        {
            File.WriteAllBytes(Path.Combine(folder, $"n{i}.png"), natural[i]);
            File.WriteAllBytes(Path.Combine(folder, $"s{i}.png"), synthetic[i]);
        }
        var (code, stdout, stderr) = Mg.Run("screen", Path.Combine(folder, "s0.png"), "--config", config);
        Assert.True(code == 0, stderr);
        Assert.Contains("FLAGGED", stdout);
        Assert.Contains("benign", Mg.Run("screen", Path.Combine(folder, "n0.png"), "--config", config).Stdout);

        string csv = Path.Combine(_dir, "out.csv");
        (code, _, stderr) = Mg.Run("screen", folder, "--config", config, "--user", "tester", "-o", csv);
        Assert.True(code == 0, stderr);
        var rows = File.ReadAllLines(csv);
        Assert.Equal("file,flagged,score_a,label,probability,status", rows[0]);
        Assert.Equal(6, rows.Length - 1);
        // Files in name order n0 n1 n2 s0 s1 s2: with τ = 3 and δ = ½ the flagged share never exceeds ½ (at most 3 of 6).
        Assert.Equal(["0", "0", "0", "1", "1", "1"], rows[1..].Select(r => r.Split(',')[1]));
        Assert.Contains("ledger of 'tester': 3 of 6 flagged", stderr);
        using var store = GuardianHost.OpenLedger(ServeConfig.Load(config));
        Assert.Equal(6, (await store.GetAsync("tester"))!.Total);
    }

    [Theory]
    [InlineData("{\"victim\": {}}", "victim: give exactly one of")]
    [InlineData("{\"victm\": {}}", "victm")]
    [InlineData("not json", "Config")]
    public void ServeRefusesBadConfigsWithTheSettingNamed(string json, string message)
    {
        string path = Path.Combine(_dir, "bad.json");
        File.WriteAllText(path, json);
        var (code, _, stderr) = Mg.Run("serve", "--config", path);
        Assert.Equal(1, code);
        Assert.Contains(message, stderr);
    }

    [Fact]
    public void DemoRunsTheDefaultsEndToEnd()
    {
        var (code, stdout, stderr) = Mg.Run("demo", "--benign", "40", "--synthetic", "30", "--tau", "10", "--backend", "cpu");
        Assert.True(code == 0, stderr);
        foreach (var line in new[] { "BAcc", "FPR", "DAcc", "terminated" }) Assert.Contains(line, stdout);
    }
}
