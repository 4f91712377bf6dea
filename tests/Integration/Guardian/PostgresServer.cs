using ModelGuardian.Engine.Guardian;
using Npgsql;

namespace ModelGuardian.Tests.Guardian;

/// <summary>
/// The PostgreSQL server the tests use: <c>MG_TEST_POSTGRES</c> (an Npgsql connection string) or, when
/// unset, <see cref="DefaultConnectionString"/> — what <c>.ci/postgres-up</c> provides. Without a
/// reachable server the PostgreSQL tests fail, saying how to start one; they never skip.
/// </summary>
internal static class PostgresServer
{
    public const string EnvironmentVariable = "MG_TEST_POSTGRES";
    public const string DefaultConnectionString = "Host=127.0.0.1;Port=5432;Username=postgres;Password=postgres;Database=postgres";

    public static string ConnectionString { get; } = Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } cs ? cs : DefaultConnectionString;

    private static readonly Lazy<string?> Unreachable = new(() =>
    {
        string where = $"{Describe()} (from {(Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } ? EnvironmentVariable : $"the default; {EnvironmentVariable} is unset")})";
        try
        {
            using var ds = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(ConnectionString) { Timeout = 10 }.ToString());
            using var c = ds.OpenConnection();
            using var cmd = new NpgsqlCommand("SELECT 1", c);
            cmd.ExecuteScalar();
            return null;
        }
        catch (Exception e)
        {
            return $"The PostgreSQL ledger tests need a PostgreSQL server, and none is reachable at {where}: {e.GetType().Name}: {e.Message}. " +
                   "Start one with `sudo .ci/postgres-up` (installs Debian's postgresql if missing and runs a server on 127.0.0.1:5432, " +
                   $"user postgres, password postgres), or set {EnvironmentVariable} to the Npgsql connection string of a server where the user may create schemas.";
        }
    });

    private static string Describe()
    {
        try { return PostgresLedger.Describe(new NpgsqlConnectionStringBuilder(ConnectionString)); }
        catch (ArgumentException) { return "(an invalid connection string)"; }
    }

    /// <summary>Fails the calling test, with how to start a server, if none is reachable.</summary>
    public static void EnsureReachable()
    {
        if (Unreachable.Value is { } message) Assert.Fail(message);
    }

    /// <summary>A schema name no other test uses.</summary>
    public static string NewSchema() => $"mg_test_{Guid.NewGuid():N}";

    public static PostgresLedger Open(string schema)
    {
        EnsureReachable();
        return PostgresLedger.Open(ConnectionString, schema);
    }

    public static void Execute(string sql)
    {
        EnsureReachable();
        using var ds = NpgsqlDataSource.Create(ConnectionString);
        using var c = ds.OpenConnection();
        using var cmd = new NpgsqlCommand(sql, c);
        cmd.ExecuteNonQuery();
    }

    public static void DropSchema(string schema)
    {
        if (Unreachable.Value != null) return;
        Execute($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    }
}
