using System.Text.RegularExpressions;
using Npgsql;
using NpgsqlTypes;

namespace ModelGuardian.Engine.Guardian;

/// <summary>
/// The ledger and user store in PostgreSQL, shared by any number of replicas. Tables live in one schema
/// (<see cref="DefaultSchema"/> unless told), created if absent; its <c>schema_version</c> table records
/// the version, and a newer one is refused.
/// <list type="bullet">
/// <item>Atomic across replicas: <see cref="RecordAsync"/> is one transaction whose count, check and
/// termination are one <c>INSERT … ON CONFLICT ("user") DO UPDATE … WHERE terminated_at IS NULL
/// RETURNING</c>. The conflicting row is locked, and the update is applied to its latest committed
/// version, so concurrent callers on any replica are serialised per user: no lost updates, and exactly
/// one caller terminates. The termination test is <see cref="TerminationPolicy.ShouldTerminate"/>'s
/// expression in <c>double precision</c> (IEEE double) arithmetic.</item>
/// <item>Durable: every connection runs with <c>synchronous_commit = on</c> (forced through the
/// connection's startup options, whatever the server's default), so a commit is flushed before it is
/// acknowledged.</item>
/// <item>Connections come from an <see cref="NpgsqlDataSource"/> (pooled), one per operation.</item>
/// </list>
/// </summary>
public sealed partial class PostgresLedger : ILedgerStore
{
    public const string DefaultSchema = "modelguardian";

    /// <summary>The schema version this build writes and understands.</summary>
    public const int SchemaVersion = 1;

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _s; // quoted schema name
    private readonly string _insertRequestSql, _upsertSql, _setReasonSql, _readEntrySql, _reinstateSql, _listTerminatedSql,
        _addUserSql, _userExistsSql, _findUserSql, _listUsersSql, _revokeSql, _reachableSql;
    private volatile bool _disposed;

    /// <summary>The schema holding the tables.</summary>
    public string Schema { get; }

    /// <summary>Host, port, database and user of the server (never the password), for messages.</summary>
    public string ServerDescription { get; }

    private PostgresLedger(NpgsqlDataSource dataSource, string schema, string serverDescription)
    {
        _dataSource = dataSource;
        Schema = schema;
        ServerDescription = serverDescription;
        _s = $"\"{schema}\"";
        _insertRequestSql = $"""INSERT INTO {_s}.requests ("user", request_id) VALUES (@u, @r) ON CONFLICT ("user", request_id) DO NOTHING""";
        _upsertSql = $"""
            INSERT INTO {_s}.ledger AS l ("user", total, flagged, terminated_at, reason)
            VALUES (@u, 1, @f, CASE WHEN {LedgerRules.TerminationSql("1", "@f")} THEN @now END, NULL)
            ON CONFLICT ("user") DO UPDATE SET
                total = l.total + 1,
                flagged = l.flagged + @f,
                terminated_at = CASE WHEN {LedgerRules.TerminationSql("l.total + 1", "l.flagged + @f")} THEN @now END,
                reason = NULL
            WHERE l.terminated_at IS NULL
            RETURNING l.total, l.flagged, l.terminated_at
            """;
        _setReasonSql = $"""UPDATE {_s}.ledger SET reason = @reason WHERE "user" = @u""";
        _readEntrySql = $"""SELECT total, flagged, terminated_at, reason FROM {_s}.ledger WHERE "user" = @u""";
        _reinstateSql = $"""UPDATE {_s}.ledger SET total = 0, flagged = 0, terminated_at = NULL, reason = NULL WHERE "user" = @u AND terminated_at IS NOT NULL""";
        _listTerminatedSql = $"""SELECT "user", total, flagged, terminated_at, reason FROM {_s}.ledger WHERE terminated_at IS NOT NULL ORDER BY terminated_at, "user" COLLATE "C" """;
        _addUserSql = $"""INSERT INTO {_s}.users (name, key_sha256, created_at, revoked_at) VALUES (@n, @k, @now, NULL) ON CONFLICT DO NOTHING""";
        _userExistsSql = $"""SELECT count(*) FROM {_s}.users WHERE name = @n""";
        _findUserSql = $"""SELECT name, key_sha256 FROM {_s}.users WHERE key_sha256 = @k AND revoked_at IS NULL""";
        _listUsersSql = $"""SELECT name, created_at, revoked_at FROM {_s}.users ORDER BY created_at, name COLLATE "C" """;
        _revokeSql = $"""UPDATE {_s}.users SET revoked_at = @now WHERE name = @n AND revoked_at IS NULL""";
        _reachableSql = $"""SELECT count(*) FROM (SELECT 1 FROM {_s}.ledger LIMIT 1) AS t""";
    }

    /// <summary>
    /// Connects with <paramref name="connectionString"/> (an Npgsql connection string) and creates the
    /// schema and tables if absent. Throws <see cref="ArgumentException"/> for an invalid connection string
    /// or schema name, and <see cref="InvalidOperationException"/> (with the cause inside) if the server cannot
    /// be reached or the schema has a newer version.
    /// </summary>
    public static PostgresLedger Open(string connectionString, string schema = DefaultSchema)
        => OpenAsync(connectionString, schema).GetAwaiter().GetResult();

    /// <inheritdoc cref="Open"/>
    public static async Task<PostgresLedger> OpenAsync(string connectionString, string schema = DefaultSchema, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connectionString);
        CheckSchemaName(schema);
        NpgsqlDataSourceBuilder builder;
        try
        {
            builder = new NpgsqlDataSourceBuilder(connectionString);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or NotSupportedException)
        {
            throw new ArgumentException($"Invalid PostgreSQL connection string: {e.Message}", nameof(connectionString), e);
        }
        var csb = builder.ConnectionStringBuilder;
        // Durability must not depend on the server's configuration: a commit returns once it is flushed.
        csb.Options = string.IsNullOrWhiteSpace(csb.Options) ? "-c synchronous_commit=on" : csb.Options + " -c synchronous_commit=on";
        csb.ApplicationName ??= "ModelGuardian";
        string server = Describe(csb);
        var ledger = new PostgresLedger(builder.Build(), schema, server);
        try
        {
            await ledger.InitializeAsync(cancellationToken).ConfigureAwait(false);
            return ledger;
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException)
        {
            ledger.Dispose();
            throw new InvalidOperationException($"Cannot open the PostgreSQL ledger at {server} (schema {schema}): {e.Message}", e);
        }
        catch
        {
            ledger.Dispose();
            throw;
        }
    }

    /// <summary>Host, port, database and user of a connection string (never the password).</summary>
    public static string Describe(NpgsqlConnectionStringBuilder csb) => $"Host={csb.Host};Port={csb.Port};Database={csb.Database ?? "(default)"};Username={csb.Username ?? "(default)"}";

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex SchemaNamePattern();

    public static void CheckSchemaName(string? schema)
    {
        ArgumentNullException.ThrowIfNull(schema);
        if (!SchemaNamePattern().IsMatch(schema))
            throw new ArgumentException($"Invalid PostgreSQL schema name '{schema}': use 1 to 63 lower-case letters, digits and underscores, not starting with a digit.", nameof(schema));
    }

    private async Task InitializeAsync(CancellationToken ct)
    {
        await using var c = await _dataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        // Replicas starting together: CREATE … IF NOT EXISTS is not safe against a concurrent creator.
        await ExecAsync(c, tx, "SELECT pg_advisory_xact_lock(hashtext('ModelGuardian ledger schema ' || @s))", ct, P("s", Schema)).ConfigureAwait(false);
        bool schemaExists = await ScalarAsync<bool>(c, tx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = @s)", ct, P("s", Schema)).ConfigureAwait(false);
        if (!schemaExists) await ExecAsync(c, tx, $"CREATE SCHEMA {_s}", ct).ConfigureAwait(false);
        await ExecAsync(c, tx, $"CREATE TABLE IF NOT EXISTS {_s}.schema_version (version integer NOT NULL)", ct).ConfigureAwait(false);
        int? version = await ScalarAsync<int?>(c, tx, $"SELECT max(version) FROM {_s}.schema_version", ct).ConfigureAwait(false);
        if (version > SchemaVersion)
            throw new InvalidOperationException(
                $"The PostgreSQL ledger (schema {Schema} at {ServerDescription}) has schema version {version}, newer than version {SchemaVersion} that this build of " +
                "ModelGuardian understands (it was written by a newer release). Run that release or a newer one against it, or use another schema; this build will not change it.");
        if (version < 1) throw new InvalidOperationException($"The PostgreSQL ledger (schema {Schema} at {ServerDescription}) has an unknown schema version {version}.");
        if (version == null)
        {
            string[] ddl =
            [
                $"""
                CREATE TABLE IF NOT EXISTS {_s}.ledger (
                    "user"        text        NOT NULL PRIMARY KEY,
                    total         bigint      NOT NULL CHECK (total >= 0),
                    flagged       bigint      NOT NULL CHECK (flagged >= 0 AND flagged <= total),
                    terminated_at timestamptz,
                    reason        text
                )
                """,
                $"""CREATE INDEX IF NOT EXISTS ledger_terminated ON {_s}.ledger (terminated_at) WHERE terminated_at IS NOT NULL""",
                $"""
                CREATE TABLE IF NOT EXISTS {_s}.requests (
                    "user"     text NOT NULL,
                    request_id text NOT NULL,
                    PRIMARY KEY ("user", request_id)
                )
                """,
                $"""
                CREATE TABLE IF NOT EXISTS {_s}.users (
                    name       text        NOT NULL PRIMARY KEY,
                    key_sha256 bytea       NOT NULL UNIQUE CHECK (length(key_sha256) = 32),
                    created_at timestamptz NOT NULL,
                    revoked_at timestamptz
                )
                """,
                $"INSERT INTO {_s}.schema_version (version) VALUES ({SchemaVersion})",
            ];
            foreach (var sql in ddl) await ExecAsync(c, tx, sql, ct).ConfigureAwait(false);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    // ---- ILedger ---------------------------------------------------------------------------------

    public async Task<RecordResult> RecordAsync(string user, bool flagged, string? requestId, TerminationPolicy policy, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckUser(user);
        LedgerRules.CheckRequestId(requestId);
        ArgumentNullException.ThrowIfNull(policy);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var ct = cancellationToken;
        await using var c = await _dataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        if (requestId != null && await ExecAsync(c, tx, _insertRequestSql, ct, P("u", user), P("r", requestId)).ConfigureAwait(false) == 0)
        {
            var known = await ReadEntryAsync(c, tx, user, ct).ConfigureAwait(false) ?? throw Inconsistent(user);
            await tx.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
            return new RecordResult(RecordOutcome.AlreadyCounted, known, false);
        }

        long total, flaggedCount;
        DateTime? terminatedAt;
        await using (var cmd = Command(c, tx, _upsertSql, P("u", user), P("f", flagged ? 1L : 0L), P("tau", policy.Tau), P("delta", policy.Delta), P("bi", policy.BoundaryIntercept), P("bs", policy.BoundarySlope),
                         new NpgsqlParameter<DateTime>("now", NpgsqlDbType.TimestampTz) { TypedValue = LedgerRules.Normalize(now).UtcDateTime }))
        await using (var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false))
        {
            if (!await r.ReadAsync(ct).ConfigureAwait(false))
            {
                await r.CloseAsync().ConfigureAwait(false);
                // Terminated before: nothing changed, and the request id insert is rolled back (a refused query is not counted).
                var refused = await ReadEntryAsync(c, tx, user, ct).ConfigureAwait(false) ?? throw Inconsistent(user);
                await tx.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
                return new RecordResult(RecordOutcome.Refused, refused, false);
            }
            total = r.GetInt64(0);
            flaggedCount = r.GetInt64(1);
            terminatedAt = r.IsDBNull(2) ? null : r.GetFieldValue<DateTime>(2);
        }
        string? reason = null;
        if (terminatedAt != null)
        {
            reason = policy.Reason(total, flaggedCount);
            await ExecAsync(c, tx, _setReasonSql, ct, P("reason", reason), P("u", user)).ConfigureAwait(false);
        }
        // Once the decision is made, the commit is not abandoned half-way: its outcome must be known.
        await tx.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        return new RecordResult(RecordOutcome.Counted, new LedgerEntry(user, total, flaggedCount, Utc(terminatedAt), reason), terminatedAt != null);
    }

    public async Task<LedgerEntry?> GetAsync(string user, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckUser(user);
        ObjectDisposedException.ThrowIf(_disposed, this);
        await using var c = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await ReadEntryAsync(c, null, user, cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> ReinstateAsync(string user, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckUser(user);
        ObjectDisposedException.ThrowIf(_disposed, this);
        await using var c = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await ExecAsync(c, null, _reinstateSql, cancellationToken, P("u", user)).ConfigureAwait(false) == 1;
    }

    public async Task<IReadOnlyList<LedgerEntry>> ListTerminatedAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await using var c = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = Command(c, null, _listTerminatedSql);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<LedgerEntry>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            list.Add(new LedgerEntry(r.GetString(0), r.GetInt64(1), r.GetInt64(2), Utc(r.GetFieldValue<DateTime>(3)), r.IsDBNull(4) ? null : r.GetString(4)));
        return list;
    }

    public async Task CheckReachableAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await using var c = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await ScalarAsync<long>(c, null, _reachableSql, cancellationToken).ConfigureAwait(false);
    }

    // ---- IUserStore ------------------------------------------------------------------------------

    public async Task AddAsync(string name, byte[] keySha256, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckName(name, nameof(name), "user name");
        LedgerRules.CheckKeyHash(keySha256);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var ct = cancellationToken;
        await using var c = await _dataSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        int n = await ExecAsync(c, tx, _addUserSql, ct, P("n", name), P("k", keySha256), Time("now", now)).ConfigureAwait(false);
        if (n == 0)
            throw await ScalarAsync<long>(c, tx, _userExistsSql, ct, P("n", name)).ConfigureAwait(false) > 0
                ? new InvalidOperationException($"A user named '{name}' already exists.")
                : new InvalidOperationException($"The key hash of '{name}' already belongs to another user.");
        await tx.CommitAsync(CancellationToken.None).ConfigureAwait(false);
    }

    public async Task<(string Name, byte[] KeySha256)?> FindActiveByKeyHashAsync(byte[] keySha256, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckKeyHash(keySha256);
        ObjectDisposedException.ThrowIf(_disposed, this);
        await using var c = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = Command(c, null, _findUserSql, P("k", keySha256));
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await r.ReadAsync(cancellationToken).ConfigureAwait(false) ? (r.GetString(0), r.GetFieldValue<byte[]>(1)) : null;
    }

    public async Task<IReadOnlyList<ApiUser>> ListAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await using var c = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = Command(c, null, _listUsersSql);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<ApiUser>();
        while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            list.Add(new ApiUser(r.GetString(0), Utc(r.GetFieldValue<DateTime>(1)), r.IsDBNull(2) ? null : Utc(r.GetFieldValue<DateTime>(2))));
        return list;
    }

    public async Task<bool> RevokeAsync(string name, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckName(name, nameof(name), "user name");
        ObjectDisposedException.ThrowIf(_disposed, this);
        await using var c = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await ExecAsync(c, null, _revokeSql, cancellationToken, Time("now", now), P("n", name)).ConfigureAwait(false) == 1;
    }

    // ---- diagnostics -----------------------------------------------------------------------------

    /// <summary><c>synchronous_commit</c> as this store's connections see it ("on"), for readiness logs and tests.</summary>
    public async Task<string> ReadSynchronousCommitAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await using var c = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await ScalarAsync<string>(c, null, "SHOW synchronous_commit", cancellationToken).ConfigureAwait(false);
    }

    // ---- plumbing --------------------------------------------------------------------------------

    private static InvalidOperationException Inconsistent(string user) => new($"The ledger has a request id but no entry for '{user}'.");

    private async Task<LedgerEntry?> ReadEntryAsync(NpgsqlConnection c, NpgsqlTransaction? tx, string user, CancellationToken ct)
    {
        await using var cmd = Command(c, tx, _readEntrySql, P("u", user));
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        if (!await r.ReadAsync(ct).ConfigureAwait(false)) return null;
        return new LedgerEntry(user, r.GetInt64(0), r.GetInt64(1), r.IsDBNull(2) ? null : Utc(r.GetFieldValue<DateTime>(2)), r.IsDBNull(3) ? null : r.GetString(3));
    }

    private static DateTimeOffset? Utc(DateTime? t) => t is { } v ? Utc(v) : null;

    private static DateTimeOffset Utc(DateTime t) => new(DateTime.SpecifyKind(t, DateTimeKind.Utc));

    private static NpgsqlParameter<T> P<T>(string name, T value) => new(name, value);

    /// <summary>An instant as timestamptz: UTC, rounded down to the microsecond like every store.</summary>
    private static NpgsqlParameter<DateTime> Time(string name, DateTimeOffset t)
        => new(name, NpgsqlDbType.TimestampTz) { TypedValue = LedgerRules.Normalize(t).UtcDateTime };

    private static NpgsqlCommand Command(NpgsqlConnection c, NpgsqlTransaction? tx, string sql, params NpgsqlParameter[] parameters)
    {
        var cmd = new NpgsqlCommand(sql, c, tx);
        cmd.Parameters.AddRange(parameters);
        return cmd;
    }

    private static async Task<int> ExecAsync(NpgsqlConnection c, NpgsqlTransaction? tx, string sql, CancellationToken ct, params NpgsqlParameter[] parameters)
    {
        await using var cmd = Command(c, tx, sql, parameters);
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection c, NpgsqlTransaction? tx, string sql, CancellationToken ct, params NpgsqlParameter[] parameters)
    {
        await using var cmd = Command(c, tx, sql, parameters);
        var value = await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
        if (value is null or DBNull) return default(T) is null ? default! : throw new InvalidOperationException($"'{sql}' returned no value.");
        return (T)value;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _dataSource.Dispose();
    }
}
