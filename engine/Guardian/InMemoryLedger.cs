namespace ModelGuardian.Engine.Guardian;

/// <summary>
/// The ledger and user store in process memory — <b>for unit tests only</b>: nothing is durable and
/// replicas cannot share it. Same semantics as <see cref="SqliteLedger"/> and <see cref="PostgresLedger"/>
/// (the same argument rules, microsecond times, idempotency and termination), made atomic by one lock.
/// </summary>
public sealed class InMemoryLedger : ILedgerStore
{
    private sealed class Row(long total, long flagged)
    {
        public long Total = total, Flagged = flagged;
        public DateTimeOffset? TerminatedAt;
        public string? Reason;
    }

    private sealed record UserRow(string Name, byte[] KeySha256, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt);

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Row> _ledger = new(StringComparer.Ordinal);
    private readonly HashSet<(string User, string RequestId)> _requests = [];
    private readonly Dictionary<string, UserRow> _users = new(StringComparer.Ordinal);
    private bool _disposed;

    public Task<RecordResult> RecordAsync(string user, bool flagged, string? requestId, TerminationPolicy policy, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckUser(user);
        LedgerRules.CheckRequestId(requestId);
        ArgumentNullException.ThrowIfNull(policy);
        cancellationToken.ThrowIfCancellationRequested();
        now = LedgerRules.Normalize(now);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _ledger.TryGetValue(user, out var row);
            if (requestId != null && _requests.Contains((user, requestId)))
                return Task.FromResult(new RecordResult(RecordOutcome.AlreadyCounted, Entry(user, row!), false));
            if (row?.TerminatedAt != null)
                return Task.FromResult(new RecordResult(RecordOutcome.Refused, Entry(user, row), false));

            long total = (row?.Total ?? 0) + 1, flaggedCount = (row?.Flagged ?? 0) + (flagged ? 1 : 0);
            row ??= _ledger[user] = new Row(0, 0);
            row.Total = total;
            row.Flagged = flaggedCount;
            bool terminate = policy.ShouldTerminate(total, flaggedCount);
            if (terminate)
            {
                row.TerminatedAt = now;
                row.Reason = policy.Reason(total, flaggedCount);
            }
            if (requestId != null) _requests.Add((user, requestId));
            return Task.FromResult(new RecordResult(RecordOutcome.Counted, Entry(user, row), terminate));
        }
    }

    public Task<LedgerEntry?> GetAsync(string user, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckUser(user);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return Task.FromResult(_ledger.TryGetValue(user, out var row) ? Entry(user, row) : null);
        }
    }

    public Task<bool> ReinstateAsync(string user, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckUser(user);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_ledger.TryGetValue(user, out var row) || row.TerminatedAt == null) return Task.FromResult(false);
            row.Total = row.Flagged = 0;
            row.TerminatedAt = null;
            row.Reason = null;
            return Task.FromResult(true);
        }
    }

    public Task<IReadOnlyList<LedgerEntry>> ListTerminatedAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            IReadOnlyList<LedgerEntry> list = _ledger.Where(p => p.Value.TerminatedAt != null)
                .OrderBy(p => p.Value.TerminatedAt).ThenBy(p => p.Key, StringComparer.Ordinal)
                .Select(p => Entry(p.Key, p.Value)).ToList();
            return Task.FromResult(list);
        }
    }

    public Task CheckReachableAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock) ObjectDisposedException.ThrowIf(_disposed, this);
        return Task.CompletedTask;
    }

    public Task AddAsync(string name, byte[] keySha256, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckName(name, nameof(name), "user name");
        LedgerRules.CheckKeyHash(keySha256);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_users.ContainsKey(name)) throw new InvalidOperationException($"A user named '{name}' already exists.");
            if (_users.Values.Any(u => u.KeySha256.AsSpan().SequenceEqual(keySha256)))
                throw new InvalidOperationException($"The key hash of '{name}' already belongs to another user.");
            _users[name] = new UserRow(name, keySha256.ToArray(), LedgerRules.Normalize(now), null);
            return Task.CompletedTask;
        }
    }

    public Task<(string Name, byte[] KeySha256)?> FindActiveByKeyHashAsync(byte[] keySha256, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckKeyHash(keySha256);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var u = _users.Values.FirstOrDefault(u => u.RevokedAt == null && u.KeySha256.AsSpan().SequenceEqual(keySha256));
            return Task.FromResult<(string, byte[])?>(u == null ? null : (u.Name, u.KeySha256.ToArray()));
        }
    }

    public Task<IReadOnlyList<ApiUser>> ListAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            IReadOnlyList<ApiUser> list = _users.Values.OrderBy(u => u.CreatedAt).ThenBy(u => u.Name, StringComparer.Ordinal)
                .Select(u => new ApiUser(u.Name, u.CreatedAt, u.RevokedAt)).ToList();
            return Task.FromResult(list);
        }
    }

    public Task<bool> RevokeAsync(string name, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        LedgerRules.CheckName(name, nameof(name), "user name");
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_users.TryGetValue(name, out var u) || u.RevokedAt != null) return Task.FromResult(false);
            _users[name] = u with { RevokedAt = LedgerRules.Normalize(now) };
            return Task.FromResult(true);
        }
    }

    public void Dispose()
    {
        lock (_lock) _disposed = true;
    }

    private static LedgerEntry Entry(string user, Row row) => new(user, row.Total, row.Flagged, row.TerminatedAt, row.Reason);
}
