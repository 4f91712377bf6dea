using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Tests.Guardian;

public sealed class AuditLogTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-audit-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private async Task<string> WriteLog(int records)
    {
        string path = Path.Combine(_dir, "audit.jsonl");
        using var log = new FileAuditLog(path);
        for (int i = 0; i < records; i++)
            await log.AppendAsync(i % 3 == 0 ? "termination" : "flag", $"user{i % 2}", new Dictionary<string, object?> { ["n"] = i, ["scores"] = new[] { 0.25, 0.75 } });
        return path;
    }

    [Fact]
    public async Task AnIntactChainVerifiesAndReopeningContinuesIt()
    {
        string path = await WriteLog(4);
        using (var log = new FileAuditLog(path)) await log.AppendAsync("admin", null, new Dictionary<string, object?> { ["action"] = "reinstate" });
        var v = FileAuditLog.Verify(path);
        Assert.True(v.Valid, v.Message);
        Assert.Equal(5, v.Records);
        Assert.Equal(5, File.ReadAllLines(path).Length);
    }

    /// <summary>Every single byte of the log, changed, is detected.</summary>
    [Fact]
    public async Task EditingAnyByteFailsVerification()
    {
        string path = await WriteLog(4);
        var original = File.ReadAllBytes(path);
        for (int i = 0; i < original.Length; i++)
        {
            var edited = (byte[])original.Clone();
            edited[i] = (byte)(edited[i] == (byte)'1' ? '2' : '1');
            File.WriteAllBytes(path, edited);
            Assert.False(FileAuditLog.Verify(path).Valid, $"an edit at byte {i} ('{(char)original[i]}') went unnoticed");
        }
    }

    [Fact]
    public async Task RemovedReorderedOrInsertedLinesFailVerification()
    {
        string path = await WriteLog(4);
        var lines = File.ReadAllLines(path);
        foreach (var variant in new[]
        {
            lines.Where((_, i) => i != 1).ToArray(),  // removed
            new[] { lines[1], lines[0], lines[2], lines[3] }, // reordered
            lines.Take(2).Concat([lines[1]]).Concat(lines.Skip(2)).ToArray(), // duplicated
        })
        {
            File.WriteAllLines(path, variant);
            Assert.False(FileAuditLog.Verify(path).Valid);
        }
        // Cutting the tail is not detectable from the log alone; every prefix is itself a valid chain.
        File.WriteAllLines(path, lines.Take(3));
        Assert.True(FileAuditLog.Verify(path).Valid);
    }

    [Fact]
    public async Task ATornLastRecordIsCutOffAndAccountedForOnReopen()
    {
        string path = await WriteLog(3);
        File.AppendAllText(path, "{\"seq\":4,\"time\":\"2026-"); // a crash mid-write
        Assert.False(FileAuditLog.Verify(path).Valid);
        using (var log = new FileAuditLog(path)) { }
        var v = FileAuditLog.Verify(path);
        Assert.True(v.Valid, v.Message);
        Assert.Equal(4, v.Records);
        Assert.Contains("\"kind\":\"recovery\"", File.ReadAllLines(path)[^1]);
    }

    [Fact]
    public async Task AnEditedLogIsNotAppendedTo()
    {
        string path = await WriteLog(2);
        var bytes = File.ReadAllBytes(path);
        bytes[10] ^= 1;
        File.WriteAllBytes(path, bytes);
        Assert.Throws<InvalidDataException>(() => new FileAuditLog(path));
    }

    [Fact]
    public async Task ASecondWriterIsRefusedAndTheTailIsReadable()
    {
        string path = await WriteLog(3);
        using var log = new FileAuditLog(path);
        Assert.Contains("in use by another process", Assert.Throws<IOException>(() => new FileAuditLog(path)).Message);
        var tail = await log.ReadTailAsync(2);
        Assert.Equal(File.ReadAllLines(path)[1..], tail);
    }
}
