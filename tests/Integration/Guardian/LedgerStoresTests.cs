using ModelGuardian.Tools.Serve;
using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Tests.Guardian;

/// <summary><see cref="LedgerStores.Open"/> and the validation of <see cref="LedgerOptions"/>.</summary>
public sealed class LedgerStoresTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-ledger-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Refusal(LedgerOptions options) => Assert.ThrowsAny<ArgumentException>(() => LedgerStores.Open(options)).Message;

    [Fact]
    public void MissingSuperfluousAndInvalidSettingsAreNamed()
    {
        Assert.Contains("Path", Refusal(new LedgerOptions(LedgerKind.Sqlite)));
        Assert.Contains("Path", Refusal(new LedgerOptions(LedgerKind.Sqlite, Path: " ")));
        Assert.Contains("ConnectionString", Refusal(new LedgerOptions(LedgerKind.Sqlite, Path: "x.db", ConnectionString: "Host=h")));
        Assert.Contains("ConnectionString", Refusal(new LedgerOptions(LedgerKind.Postgres)));
        Assert.Contains("Path", Refusal(new LedgerOptions(LedgerKind.Postgres, Path: "x.db", ConnectionString: "Host=h")));
        Assert.Contains("schema name", Refusal(LedgerOptions.ForPostgres("Host=h", "Bad-Name")));
        Assert.Contains("connection string", Refusal(LedgerOptions.ForPostgres("NoSuchSetting=1")));
        Assert.Contains("Path", Refusal(new LedgerOptions(LedgerKind.InMemory, Path: "x.db")));
        Assert.Contains("Unknown ledger kind", Refusal(new LedgerOptions((LedgerKind)42)));
        Assert.Contains(":memory:", Refusal(LedgerOptions.ForSqlite(":memory:")));
        Assert.Throws<ArgumentNullException>(() => LedgerStores.Open(null!));
    }

    [Fact]
    public async Task EachKindOpensItsStore()
    {
        using (var m = LedgerStores.Open(LedgerOptions.ForTestsInMemory()))
            Assert.IsType<InMemoryLedger>(m);

        var path = Path.Combine(_dir, "ledger.db");
        using (var s = LedgerStores.Open(LedgerOptions.ForSqlite(path)))
        {
            Assert.Equal(path, Assert.IsType<SqliteLedger>(s).Path);
            await s.RecordAsync("u", true, null, new TerminationPolicy(5, 0.5), DateTimeOffset.UnixEpoch);
        }
        Assert.True(File.Exists(path));

        string schema = PostgresServer.NewSchema();
        PostgresServer.EnsureReachable();
        try
        {
            using var p = LedgerStores.Open(LedgerOptions.ForPostgres(PostgresServer.ConnectionString, schema));
            Assert.Equal(schema, Assert.IsType<PostgresLedger>(p).Schema);
            await p.CheckReachableAsync();
        }
        finally
        {
            PostgresServer.DropSchema(schema);
        }
    }

    [Fact]
    public void OptionsAreAnImmutableValue()
    {
        var a = LedgerOptions.ForSqlite("a.db");
        var b = a with { Path = "b.db" };
        Assert.Equal("a.db", a.Path);
        Assert.NotEqual(a, b);
        Assert.Equal(a, new LedgerOptions(LedgerKind.Sqlite, "a.db"));
    }
}
