using Microsoft.Data.Sqlite;
using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Tests.Guardian;

/// <summary>The SQLite store, one temporary database file per test; replicas are further instances over the file.</summary>
public sealed class SqliteLedgerTests : SharedLedgerSuite
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-ledger-").FullName;

    private string DbPath => Path.Combine(_dir, "ledger.db");

    protected override ILedgerStore CreateStore() => SqliteLedger.Open(DbPath);

    protected override ILedgerStore OpenReplica() => SqliteLedger.Open(DbPath);

    protected override void Cleanup() => Directory.Delete(_dir, recursive: true);

    private SqliteConnection Raw()
    {
        var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DbPath, Pooling = false }.ToString());
        c.Open();
        return c;
    }

    private static object? Scalar(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }

    [Fact]
    public async Task ConnectionsUseWalWithFullSyncAndABusyTimeout()
    {
        var store = (SqliteLedger)Store;
        // Several at once, so that the pool holds several connections.
        var settings = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => store.ReadConnectionSettingsAsync())));
        var writes = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => Task.Run(() => store.RecordAsync($"u{i}", false, null, Lenient, T0))));
        Assert.All(writes, w => Assert.Equal(RecordOutcome.Counted, w.Outcome));
        settings = [.. settings, .. await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => store.ReadConnectionSettingsAsync())))];
        Assert.All(settings, s => Assert.Equal(new SqliteConnectionSettings("wal", 2, SqliteLedger.BusyTimeoutMilliseconds), s));
        // WAL is a property of the file: any other connection sees it.
        using var raw = Raw();
        Assert.Equal("wal", Scalar(raw, "PRAGMA journal_mode"));
        Assert.Equal((long)SqliteLedger.SchemaVersion, Scalar(raw, "PRAGMA user_version"));
    }

    [Fact]
    public async Task CommittedWritesAreVisibleToOtherConnectionsAtOnce()
    {
        await Store.RecordAsync("u", true, "r", Lenient, T0);
        await Store.AddAsync("alice", Sha("a"), T0);
        // Another connection (as another process would) sees the committed rows while the store is still open.
        using var raw = Raw();
        Assert.Equal(1L, Scalar(raw, "SELECT total FROM ledger WHERE \"user\" = 'u'"));
        Assert.Equal(1L, Scalar(raw, "SELECT count(*) FROM requests"));
        Assert.Equal(1L, Scalar(raw, "SELECT count(*) FROM users"));
    }

    [Fact]
    public void ANewerSchemaVersionIsRefused()
    {
        Store.Dispose();
        using (var raw = Raw()) Scalar(raw, "PRAGMA user_version = 2");
        var e = Assert.Throws<InvalidOperationException>(() => SqliteLedger.Open(DbPath));
        Assert.Contains("schema version 2", e.Message);
        Assert.Contains($"version {SqliteLedger.SchemaVersion}", e.Message);
        Assert.Contains(DbPath, e.Message);
        Assert.Contains("newer", e.Message);
        using (var raw = Raw()) Assert.Equal(2L, Scalar(raw, "PRAGMA user_version")); // left as it was
    }

    [Fact]
    public void AFileThatIsNotADatabaseIsRefused()
    {
        File.WriteAllBytes(DbPath, Enumerable.Range(0, 8192).Select(i => (byte)(i * 7)).ToArray());
        var e = Assert.Throws<InvalidOperationException>(() => SqliteLedger.Open(DbPath));
        Assert.Contains(DbPath, e.Message);
    }

    [Fact]
    public void UnusablePathsAreRefused()
    {
        Assert.ThrowsAny<ArgumentException>(() => SqliteLedger.Open(""));
        Assert.ThrowsAny<ArgumentException>(() => SqliteLedger.Open("   "));
        Assert.ThrowsAny<ArgumentException>(() => SqliteLedger.Open(":memory:"));
        Assert.ThrowsAny<ArgumentException>(() => SqliteLedger.Open("file:ledger.db?mode=memory"));
        Assert.Contains("directory", Assert.ThrowsAny<ArgumentException>(() => SqliteLedger.Open(_dir)).Message);
        Assert.Contains("does not exist", Assert.ThrowsAny<ArgumentException>(() => SqliteLedger.Open(Path.Combine(_dir, "missing", "ledger.db"))).Message);
    }

    [Fact]
    public async Task OpeningAnExistingLedgerKeepsItAndItsSchemaVersion()
    {
        await Store.RecordAsync("u", true, null, Lenient, T0);
        using var second = SqliteLedger.Open(DbPath);
        AssertEntry(new LedgerEntry("u", 1, 1, null, null), await second.GetAsync("u"));
        using var raw = Raw();
        Assert.Equal((long)SqliteLedger.SchemaVersion, Scalar(raw, "PRAGMA user_version"));
    }
}
