using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Tools.Serve;

public enum LedgerKind
{
    /// <summary><see cref="InMemoryLedger"/>: for unit tests only — nothing survives the process.</summary>
    InMemory,
    /// <summary><see cref="SqliteLedger"/>: one file, for a single host (any number of processes on it).</summary>
    Sqlite,
    /// <summary><see cref="PostgresLedger"/>: shared by replicas.</summary>
    Postgres,
}

/// <summary>Where the ledger lives.</summary>
/// <param name="Kind">Which store.</param>
/// <param name="Path">The SQLite database file (required for <see cref="LedgerKind.Sqlite"/>, else must be null).</param>
/// <param name="ConnectionString">An Npgsql connection string (required for <see cref="LedgerKind.Postgres"/>, else must be null).</param>
/// <param name="PostgresSchema">The PostgreSQL schema holding the tables (default <see cref="PostgresLedger.DefaultSchema"/>).</param>
public sealed record LedgerOptions(LedgerKind Kind, string? Path = null, string? ConnectionString = null, string? PostgresSchema = null)
{
    public static LedgerOptions ForSqlite(string path) => new(LedgerKind.Sqlite, Path: path);

    public static LedgerOptions ForPostgres(string connectionString, string? schema = null) => new(LedgerKind.Postgres, ConnectionString: connectionString, PostgresSchema: schema);

    public static LedgerOptions ForTestsInMemory() => new(LedgerKind.InMemory);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first missing, superfluous or invalid setting.</summary>
    public void Validate()
    {
        switch (Kind)
        {
            case LedgerKind.InMemory:
                Forbid(Path, nameof(Path)); Forbid(ConnectionString, nameof(ConnectionString)); Forbid(PostgresSchema, nameof(PostgresSchema));
                break;
            case LedgerKind.Sqlite:
                if (string.IsNullOrWhiteSpace(Path)) throw new ArgumentException("The SQLite ledger needs a database file: set LedgerOptions.Path.", nameof(Path));
                SqliteLedger.CheckPath(Path);
                Forbid(ConnectionString, nameof(ConnectionString)); Forbid(PostgresSchema, nameof(PostgresSchema));
                break;
            case LedgerKind.Postgres:
                if (string.IsNullOrWhiteSpace(ConnectionString))
                    throw new ArgumentException("The PostgreSQL ledger needs a server: set LedgerOptions.ConnectionString (e.g. \"Host=db;Username=mg;Password=…;Database=mg\").", nameof(ConnectionString));
                if (PostgresSchema != null) PostgresLedger.CheckSchemaName(PostgresSchema);
                Forbid(Path, nameof(Path));
                break;
            default:
                throw new ArgumentException($"Unknown ledger kind {(int)Kind}; expected one of {string.Join(", ", Enum.GetNames<LedgerKind>())}.", nameof(Kind));
        }
    }

    private void Forbid(string? value, string name)
    {
        if (value != null) throw new ArgumentException($"LedgerOptions.{name} does not apply to the {Kind} ledger; remove it (or choose the kind it belongs to).", name);
    }
}

public static class LedgerStores
{
    /// <summary>Validates <paramref name="options"/> and opens the store, creating its schema if absent.</summary>
    public static ILedgerStore Open(LedgerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return options.Kind switch
        {
            LedgerKind.InMemory => new InMemoryLedger(),
            LedgerKind.Sqlite => SqliteLedger.Open(options.Path!),
            LedgerKind.Postgres => PostgresLedger.Open(options.ConnectionString!, options.PostgresSchema ?? PostgresLedger.DefaultSchema),
            _ => throw new ArgumentException($"Unknown ledger kind {(int)options.Kind}.", nameof(options)),
        };
    }
}
