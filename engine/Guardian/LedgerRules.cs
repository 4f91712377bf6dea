namespace ModelGuardian.Engine.Guardian;

/// <summary>
/// Argument rules and time handling shared by every ledger store, so that all of them accept the same
/// inputs and give back the same values.
/// </summary>
internal static class LedgerRules
{
    /// <summary>Longest user name, request id or API user name, in UTF-16 code units.</summary>
    public const int MaxNameLength = 256;

    public const int KeyHashLength = 32;

    /// <summary>
    /// A user name (or request id): non-empty, at most <see cref="MaxNameLength"/> characters, valid
    /// Unicode (no unpaired surrogate: PostgreSQL stores UTF-8) and no control characters (PostgreSQL text
    /// cannot hold NUL, and such names are never intended).
    /// </summary>
    public static void CheckName(string? value, string parameter, string what)
    {
        ArgumentNullException.ThrowIfNull(value, parameter);
        if (value.Length == 0) throw new ArgumentException($"The {what} must not be empty.", parameter);
        if (value.Length > MaxNameLength)
            throw new ArgumentException($"The {what} is {value.Length} characters long; at most {MaxNameLength} are allowed.", parameter);
        for (int i = 0; i < value.Length; i++)
        {
            char c = value[i];
            if (char.IsControl(c))
                throw new ArgumentException($"The {what} contains the control character U+{(int)c:X4} at {i}.", parameter);
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1])) { i++; continue; }
            if (char.IsSurrogate(c))
                throw new ArgumentException($"The {what} contains an unpaired UTF-16 surrogate at {i}.", parameter);
        }
    }

    public static void CheckUser(string? user, string parameter = "user") => CheckName(user, parameter, "user name");

    public static void CheckRequestId(string? requestId, string parameter = "requestId")
    {
        if (requestId != null) CheckName(requestId, parameter, "request id");
    }

    public static void CheckKeyHash(byte[]? keySha256, string parameter = "keySha256")
    {
        ArgumentNullException.ThrowIfNull(keySha256, parameter);
        if (keySha256.Length != KeyHashLength)
            throw new ArgumentException($"A key hash is a SHA-256 of {KeyHashLength} bytes, got {keySha256.Length} bytes.", parameter);
    }

    /// <summary>
    /// <see cref="TerminationPolicy.ShouldTerminate"/> as SQL over the new counts (parameters @tau, @delta, @bi, @bs:
    /// τ, δ and the boundary's intercept and slope) — one text for every SQL store, so they all decide alike.
    /// </summary>
    public static string TerminationSql(string total, string flagged)
        => $"({total} >= @tau AND {flagged} > @delta * ({total})) OR {flagged} >= @bi + @bs * ({total})";

    // ---- time: every store keeps instants in UTC with microsecond resolution -------------------------

    private static readonly long UnixEpochTicks = DateTimeOffset.UnixEpoch.UtcTicks;

    /// <summary>Microseconds since the Unix epoch, rounded down (PostgreSQL's resolution; SQLite stores this number).</summary>
    public static long ToUnixMicroseconds(DateTimeOffset t) => Math.DivRem(t.UtcTicks - UnixEpochTicks, 10, out long rem) - (rem < 0 ? 1 : 0);

    public static DateTimeOffset FromUnixMicroseconds(long microseconds) => new(UnixEpochTicks + microseconds * 10, TimeSpan.Zero);

    /// <summary>The instant as every store gives it back: UTC, rounded down to the microsecond.</summary>
    public static DateTimeOffset Normalize(DateTimeOffset t) => FromUnixMicroseconds(ToUnixMicroseconds(t));
}
