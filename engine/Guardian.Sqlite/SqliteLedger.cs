using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;

namespace ModelGuardian.Engine.Guardian;

/// <summary>
/// The ledger and user store in one SQLite file, for a single host: any number of concurrent callers in
/// this process, other instances over the same file (in this or another process) included.
/// <list type="bullet">
/// <item>Durable: WAL journal with <c>synchronous=FULL</c>, so a committed transaction is on disk
/// (the WAL fsynced) before a call returns.</item>
/// <item>Atomic: each write is one <c>BEGIN IMMEDIATE</c> transaction; <see cref="RecordAsync"/>'s count,
/// check and termination are one <c>INSERT … ON CONFLICT DO UPDATE … WHERE terminated_at IS NULL
/// RETURNING</c>, whose termination test is <see cref="TerminationPolicy.ShouldTerminate"/>'s expression in
/// SQL REAL (IEEE double) arithmetic.</item>
/// <item>Concurrency: writers of one instance queue on an async gate (SQLite has one writer at a time
/// anyway); writers of different instances or processes wait for the file's write lock through
/// <c>busy_timeout</c> (<see cref="BusyTimeoutMilliseconds"/>). Readers never wait (WAL).</item>
/// <item>Connections: a small pool of this instance's own connections, each set up once
/// (busy timeout, WAL, synchronous FULL).</item>
/// </list>
/// Times are stored as microseconds since the Unix epoch (UTC). The schema version is
/// <c>PRAGMA user_version</c>; a file of a newer version is refused.
/// </summary>
public sealed class SqliteLedger : ILedgerStore
{
    /// <summary>The schema version this build writes and understands.</summary>
    public const int SchemaVersion = 1;

    /// <summary>How long a write waits for another connection's write lock before failing with SQLITE_BUSY.</summary>
    public const int BusyTimeoutMilliseconds = 60_000;

    private const int MaxIdleConnections = 8;

    private static readonly string[] Schema =
    [
        """
        CREATE TABLE IF NOT EXISTS ledger (
            "user"        TEXT    NOT NULL PRIMARY KEY,
            total         INTEGER NOT NULL CHECK (total >= 0),
            flagged       INTEGER NOT NULL CHECK (flagged >= 0 AND flagged <= total),
            terminated_at INTEGER,          -- microseconds since the Unix epoch, UTC
            reason        TEXT
        ) STRICT
        """,
        """CREATE INDEX IF NOT EXISTS ledger_terminated ON ledger (terminated_at, "user") WHERE terminated_at IS NOT NULL""",
        """
        CREATE TABLE IF NOT EXISTS requests (
            "user"     TEXT NOT NULL,
            request_id TEXT NOT NULL,
            PRIMARY KEY ("user", request_id)
        ) STRICT, WITHOUT ROWID
        """,
        """
        CREATE TABLE IF NOT EXISTS users (
            name       TEXT    NOT NULL PRIMARY KEY,
            key_sha256 BLOB    NOT NULL UNIQUE CHECK (length(key_sha256) = 32),
            created_at INTEGER NOT NULL,    -- microseconds since the Unix epoch, UTC
            revoked_at INTEGER
        ) STRICT
        """,
    ];

    /// <summary>Counts one query unless the request id is known (nothing inserted: AlreadyCounted).</summary>
    internal const string InsertRequestSql = """INSERT INTO requests ("user", request_id) VALUES (@u, @r) ON CONFLICT DO NOTHING""";

    /// <summary>
    /// Counts one query and terminates in the same step; no row comes back if the user was already
    /// terminated (Refused). SET expressions see the row before the update, so "the new counts" are
    /// <c>ledger.total + 1</c> and <c>ledger.flagged + @f</c>.
    /// </summary>
    internal static readonly string UpsertSql = $"""
        INSERT INTO ledger ("user", total, flagged, terminated_at, reason)
        VALUES (@u, 1, @f, CASE WHEN {LedgerRules.TerminationSql("1", "@f")} THEN @now END, NULL)
        ON CONFLICT ("user") DO UPDATE SET
            total = ledger.total + 1,
            flagged = ledger.flagged + @f,
            terminated_at = CASE WHEN {LedgerRules.TerminationSql("ledger.total + 1", "ledger.flagged + @f")} THEN @now END,
            reason = NULL
        WHERE ledger.terminated_at IS NULL
        RETURNING total, flagged, terminated_at
        """;

    /// <summary>The policy's reason text, in the same transaction, only when the upsert just terminated the user.</summary>
    internal const string SetReasonSql = """UPDATE ledger SET reason = @reason WHERE "user" = @u""";

    private readonly string _connectionString;
    private readonly ConcurrentBag<SqliteConnection> _idle = [];
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private volatile bool _disposed;

    /// <summary>The database file (full path).</summary>
    public string Path { get; }

    private SqliteLedger(string fullPath)
    {
        Path = fullPath;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = fullPath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false, // our own pool: each connection is configured once and belongs to this instance
            DefaultTimeout = BusyTimeoutMilliseconds / 1000 + 30,
        }.ToString();
    }

    /// <summary>
    /// Opens (creating if absent) the ledger database at <paramref name="path"/> and its schema. Throws
    /// <see cref="ArgumentException"/> for an unusable path and <see cref="InvalidOperationException"/> for a
    /// file that cannot be opened, is not a ledger database, or has a newer schema version.
    /// </summary>
    public static SqliteLedger Open(string path)
    {
        CheckPath(path);
        string full = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new ArgumentException($"The SQLite ledger path '{full}' is a directory; give a file path.", nameof(path));
        string? dir = System.IO.Path.GetDirectoryName(full);
        if (dir != null && !Directory.Exists(dir)) throw new ArgumentException($"The directory of the SQLite ledger '{full}' does not exist.", nameof(path));
        var ledger = new SqliteLedger(full);
        try
        {
            ledger.Initialize();
            return ledger;
        }
        catch (SqliteException e)
        {
            ledger.Dispose();
            throw new InvalidOperationException($"Cannot open the SQLite ledger '{full}': {e.Message}", e);
        }
        catch
        {
            ledger.Dispose();
            throw;
        }
    }

    public static void CheckPath(string? path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("The SQLite ledger path must not be empty.", nameof(path));
        if (path.Trim().Equals(":memory:", StringComparison.OrdinalIgnoreCase) || path.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"The SQLite ledger path must be a plain file path, not '{path}' (for an in-memory ledger in tests use InMemoryLedger).", nameof(path));
    }

    private void Initialize()
    {
        var c = Rent();
        bool healthy = false;
        try
        {
            Exec(c, "BEGIN IMMEDIATE");
            long version = Scalar<long>(c, "PRAGMA user_version");
            if (version > SchemaVersion)
                throw new InvalidOperationException(
                    $"The SQLite ledger '{Path}' has schema version {version}, newer than version {SchemaVersion} that this build of ModelGuardian understands " +
                    "(it was written by a newer release). Run that release or a newer one against it, or use another file; this build will not change it.");
            if (version < 0) throw new InvalidOperationException($"The SQLite ledger '{Path}' has an unknown schema version {version}.");
            foreach (var sql in Schema) Exec(c, sql);
            if (version == 0) Exec(c, $"PRAGMA user_version = {SchemaVersion}");
            Exec(c, "COMMIT");
            healthy = true;
        }
        finally
        {
            if (!healthy) Discard(c); else Return(c);
        }
    }

    // ---- ILedger ---------------------------------------------------------------------------------

    public Task<RecordResult> RecordAsync(string user, bool flagged, string? requestId, TerminationPolicy policy, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckUser(user);
        LedgerRules.CheckRequestId(requestId);
        ArgumentNullException.ThrowIfNull(policy);
        long nowUs = LedgerRules.ToUnixMicroseconds(now);
        return WriteAsync(c =>
        {
            if (requestId != null && Exec(c, InsertRequestSql, ("@u", user), ("@r", requestId)) == 0)
                return (new RecordResult(RecordOutcome.AlreadyCounted, ReadEntry(c, user) ?? throw Inconsistent(user), false), false);

            long total, flaggedCount;
            long? terminatedAt;
            using (var cmd = Command(c, UpsertSql, ("@u", user), ("@f", flagged ? 1L : 0L), ("@tau", (long)policy.Tau), ("@delta", policy.Delta), ("@bi", policy.BoundaryIntercept), ("@bs", policy.BoundarySlope), ("@now", nowUs)))
            using (var reader = cmd.ExecuteReader())
            {
                if (!reader.Read())
                {
                    reader.Close();
                    // Terminated before: nothing changed, and the request id insert is rolled back (a refused query is not counted).
                    return (new RecordResult(RecordOutcome.Refused, ReadEntry(c, user) ?? throw Inconsistent(user), false), false);
                }
                total = reader.GetInt64(0);
                flaggedCount = reader.GetInt64(1);
                terminatedAt = reader.IsDBNull(2) ? null : reader.GetInt64(2);
            }
            string? reason = null;
            if (terminatedAt != null)
            {
                reason = policy.Reason(total, flaggedCount);
                Exec(c, SetReasonSql, ("@reason", reason), ("@u", user));
            }
            var entry = new LedgerEntry(user, total, flaggedCount, terminatedAt is { } t ? LedgerRules.FromUnixMicroseconds(t) : null, reason);
            return (new RecordResult(RecordOutcome.Counted, entry, terminatedAt != null), true);
        }, cancellationToken);
    }

    public Task<LedgerEntry?> GetAsync(string user, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckUser(user);
        return ReadAsync(c => ReadEntry(c, user), cancellationToken);
    }

    public Task<bool> ReinstateAsync(string user, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckUser(user);
        return WriteAsync(c =>
        {
            int n = Exec(c, """UPDATE ledger SET total = 0, flagged = 0, terminated_at = NULL, reason = NULL WHERE "user" = @u AND terminated_at IS NOT NULL""", ("@u", user));
            return (n == 1, true);
        }, cancellationToken);
    }

    public Task<IReadOnlyList<LedgerEntry>> ListTerminatedAsync(CancellationToken cancellationToken = default)
        => ReadAsync<IReadOnlyList<LedgerEntry>>(c =>
        {
            using var cmd = Command(c, """SELECT "user", total, flagged, terminated_at, reason FROM ledger WHERE terminated_at IS NOT NULL ORDER BY terminated_at, "user" """);
            using var r = cmd.ExecuteReader();
            var list = new List<LedgerEntry>();
            while (r.Read()) list.Add(new LedgerEntry(r.GetString(0), r.GetInt64(1), r.GetInt64(2), LedgerRules.FromUnixMicroseconds(r.GetInt64(3)), r.IsDBNull(4) ? null : r.GetString(4)));
            return list;
        }, cancellationToken);

    public Task CheckReachableAsync(CancellationToken cancellationToken = default)
        => ReadAsync(c => Scalar<long>(c, "SELECT count(*) FROM (SELECT 1 FROM ledger LIMIT 1)"), cancellationToken);

    // ---- IUserStore ------------------------------------------------------------------------------

    public Task AddAsync(string name, byte[] keySha256, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckName(name, nameof(name), "user name");
        LedgerRules.CheckKeyHash(keySha256);
        long nowUs = LedgerRules.ToUnixMicroseconds(now);
        return WriteAsync(c =>
        {
            int n = Exec(c, "INSERT INTO users (name, key_sha256, created_at, revoked_at) VALUES (@n, @k, @now, NULL) ON CONFLICT DO NOTHING",
                ("@n", name), ("@k", keySha256), ("@now", nowUs));
            if (n == 0)
                throw Scalar<long>(c, "SELECT count(*) FROM users WHERE name = @n", ("@n", name)) > 0
                    ? new InvalidOperationException($"A user named '{name}' already exists.")
                    : new InvalidOperationException($"The key hash of '{name}' already belongs to another user.");
            return (0, true);
        }, cancellationToken);
    }

    public Task<(string Name, byte[] KeySha256)?> FindActiveByKeyHashAsync(byte[] keySha256, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckKeyHash(keySha256);
        return ReadAsync<(string, byte[])?>(c =>
        {
            using var cmd = Command(c, "SELECT name, key_sha256 FROM users WHERE key_sha256 = @k AND revoked_at IS NULL", ("@k", keySha256));
            using var r = cmd.ExecuteReader();
            return r.Read() ? (r.GetString(0), (byte[])r.GetValue(1)) : null;
        }, cancellationToken);
    }

    public Task<IReadOnlyList<ApiUser>> ListAsync(CancellationToken cancellationToken = default)
        => ReadAsync<IReadOnlyList<ApiUser>>(c =>
        {
            using var cmd = Command(c, "SELECT name, created_at, revoked_at FROM users ORDER BY created_at, name");
            using var r = cmd.ExecuteReader();
            var list = new List<ApiUser>();
            while (r.Read()) list.Add(new ApiUser(r.GetString(0), LedgerRules.FromUnixMicroseconds(r.GetInt64(1)), r.IsDBNull(2) ? null : LedgerRules.FromUnixMicroseconds(r.GetInt64(2))));
            return list;
        }, cancellationToken);

    public Task<bool> RevokeAsync(string name, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckName(name, nameof(name), "user name");
        long nowUs = LedgerRules.ToUnixMicroseconds(now);
        return WriteAsync(c => (Exec(c, "UPDATE users SET revoked_at = @now WHERE name = @n AND revoked_at IS NULL", ("@now", nowUs), ("@n", name)) == 1, true), cancellationToken);
    }

    // ---- diagnostics -----------------------------------------------------------------------------

    /// <summary>The settings in force on this store's connections (taken from its pool), for readiness logs and tests.</summary>
    public Task<SqliteConnectionSettings> ReadConnectionSettingsAsync(CancellationToken cancellationToken = default)
        => ReadAsync(c => new SqliteConnectionSettings(
            Scalar<string>(c, "PRAGMA journal_mode"), Scalar<long>(c, "PRAGMA synchronous"), Scalar<long>(c, "PRAGMA busy_timeout")), cancellationToken);

    // ---- plumbing --------------------------------------------------------------------------------

    private static InvalidOperationException Inconsistent(string user) => new($"The ledger has a request id but no entry for '{user}'.");

    private static LedgerEntry? ReadEntry(SqliteConnection c, string user)
    {
        using var cmd = Command(c, """SELECT total, flagged, terminated_at, reason FROM ledger WHERE "user" = @u""", ("@u", user));
        using var r = cmd.ExecuteReader();
        if (!r.Read()) return null;
        return new LedgerEntry(user, r.GetInt64(0), r.GetInt64(1), r.IsDBNull(2) ? null : LedgerRules.FromUnixMicroseconds(r.GetInt64(2)), r.IsDBNull(3) ? null : r.GetString(3));
    }

    /// <summary>
    /// Runs <paramref name="body"/> in one <c>BEGIN IMMEDIATE</c> transaction, committed if it says so and
    /// rolled back otherwise (or if it throws). Writers of this instance go one at a time.
    /// </summary>
    private async Task<T> WriteAsync<T>(Func<SqliteConnection, (T Result, bool Commit)> body, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            var c = Rent();
            bool healthy = false;
            try
            {
                Exec(c, "BEGIN IMMEDIATE");
                var (result, commit) = body(c);
                Exec(c, commit ? "COMMIT" : "ROLLBACK");
                healthy = true;
                return result;
            }
            finally
            {
                // On any failure the transaction may still be open: rolling back by closing the connection is certain.
                if (healthy) Return(c); else Discard(c);
            }
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Runs <paramref name="body"/> on a pooled connection, outside any explicit transaction (WAL: never waits for writers).</summary>
    private Task<T> ReadAsync<T>(Func<SqliteConnection, T> body, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (cancellationToken.IsCancellationRequested) return Task.FromCanceled<T>(cancellationToken);
        try
        {
            var c = Rent();
            bool healthy = false;
            try
            {
                var result = body(c);
                healthy = true;
                return Task.FromResult(result);
            }
            finally
            {
                if (healthy) Return(c); else Discard(c);
            }
        }
        catch (Exception e)
        {
            return Task.FromException<T>(e);
        }
    }

    private SqliteConnection Rent()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_idle.TryTake(out var pooled)) return pooled;
        var c = new SqliteConnection(_connectionString);
        try
        {
            c.Open();
            // busy_timeout first: switching to WAL needs a lock another connection may hold.
            Exec(c, $"PRAGMA busy_timeout = {BusyTimeoutMilliseconds}");
            string mode = Scalar<string>(c, "PRAGMA journal_mode = WAL");
            if (!mode.Equals("wal", StringComparison.OrdinalIgnoreCase))
                throw new InvalidOperationException($"The SQLite ledger '{Path}' cannot use write-ahead logging (journal mode stays '{mode}'); put it on a local file system.");
            Exec(c, "PRAGMA synchronous = FULL");
            return c;
        }
        catch
        {
            c.Dispose();
            throw;
        }
    }

    private void Return(SqliteConnection c)
    {
        if (_disposed || _idle.Count >= MaxIdleConnections) { c.Dispose(); return; }
        _idle.Add(c);
        if (_disposed) DrainIdle(); // raced with Dispose
    }

    private static void Discard(SqliteConnection c) => c.Dispose();

    private void DrainIdle()
    {
        while (_idle.TryTake(out var c)) c.Dispose();
    }

    private static SqliteCommand Command(SqliteConnection c, string sql, params (string Name, object? Value)[] parameters)
    {
        var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return cmd;
    }

    private static int Exec(SqliteConnection c, string sql, params (string Name, object? Value)[] parameters)
    {
        using var cmd = Command(c, sql, parameters);
        return cmd.ExecuteNonQuery();
    }

    private static T Scalar<T>(SqliteConnection c, string sql, params (string Name, object? Value)[] parameters)
    {
        using var cmd = Command(c, sql, parameters);
        var value = cmd.ExecuteScalar();
        return value is T t ? t : throw new InvalidOperationException($"'{sql}' returned {value ?? "null"} ({value?.GetType().Name ?? "no value"}), expected a {typeof(T).Name}.");
    }

    public void Dispose()
    {
        _disposed = true;
        DrainIdle();
    }
}

/// <summary>What <see cref="SqliteLedger.ReadConnectionSettingsAsync"/> reports: journal mode, synchronous (2 = FULL) and busy timeout (ms).</summary>
public sealed record SqliteConnectionSettings(string JournalMode, long Synchronous, long BusyTimeoutMilliseconds);
