using ModelGuardian.Engine.Guardian;
using Npgsql;

namespace ModelGuardian.Tests.Guardian;

/// <summary>
/// The PostgreSQL store against a real server (<see cref="PostgresServer"/>), each test in a fresh schema
/// of its own, dropped afterwards; replicas are further instances (own connection pools) over the schema.
/// </summary>
public sealed class PostgresLedgerTests : SharedLedgerSuite
{
    private readonly string _schema = PostgresServer.NewSchema();

    protected override ILedgerStore CreateStore() => PostgresServer.Open(_schema);

    protected override ILedgerStore OpenReplica() => PostgresServer.Open(_schema);

    protected override void Cleanup() => PostgresServer.DropSchema(_schema);

    [Fact]
    public void ANewerSchemaVersionIsRefused()
    {
        Store.Dispose();
        PostgresServer.Execute($"UPDATE \"{_schema}\".schema_version SET version = 2");
        var e = Assert.Throws<InvalidOperationException>(() => PostgresServer.Open(_schema));
        Assert.Contains("schema version 2", e.Message);
        Assert.Contains($"version {PostgresLedger.SchemaVersion}", e.Message);
        Assert.Contains(_schema, e.Message);
        Assert.Contains("newer", e.Message);
    }

    [Fact]
    public async Task ReplicasStartingTogetherCreateTheSchemaOnce()
    {
        PostgresServer.EnsureReachable();
        var opened = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(() => PostgresLedger.OpenAsync(PostgresServer.ConnectionString, _schema))));
        foreach (var s in opened) Track(s);
        await opened[0].RecordAsync("u", false, null, Lenient, T0);
        AssertEntry(new LedgerEntry("u", 1, 0, null, null), await opened[5].GetAsync("u"));
    }

    [Fact]
    public async Task CommitsAreSynchronousWhateverTheConnectionStringSays()
    {
        Assert.Equal("on", await ((PostgresLedger)Store).ReadSynchronousCommitAsync());
        PostgresServer.EnsureReachable();
        var csb = new NpgsqlConnectionStringBuilder(PostgresServer.ConnectionString) { Options = "-c synchronous_commit=off" };
        using var relaxed = PostgresLedger.Open(csb.ToString(), _schema);
        Assert.Equal("on", await relaxed.ReadSynchronousCommitAsync());
    }

    [Fact]
    public void BadSettingsAreRefusedClearly()
    {
        PostgresServer.EnsureReachable();
        Assert.Contains("connection string", Assert.ThrowsAny<ArgumentException>(() => PostgresLedger.Open("Host=127.0.0.1;NoSuchSetting=1", _schema)).Message);
        Assert.Contains("schema name", Assert.ThrowsAny<ArgumentException>(() => PostgresLedger.Open(PostgresServer.ConnectionString, "Bad-Name")).Message);
        Assert.ThrowsAny<ArgumentException>(() => PostgresLedger.Open(PostgresServer.ConnectionString, "x; DROP TABLE y"));
        // A server that is not there: the message names it, never the password.
        var csb = new NpgsqlConnectionStringBuilder(PostgresServer.ConnectionString) { Host = "127.0.0.1", Port = 1, Password = "s3cret-pw", Timeout = 5 };
        var e = Assert.Throws<InvalidOperationException>(() => PostgresLedger.Open(csb.ToString(), _schema));
        Assert.Contains("Port=1", e.Message);
        Assert.DoesNotContain("s3cret-pw", e.Message);
    }
}
