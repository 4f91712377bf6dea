using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace ModelGuardian.Engine.Guardian;

/// <summary>Where flags, terminations and admin actions are recorded.</summary>
public interface IAuditLog
{
    Task AppendAsync(string kind, string? user, IReadOnlyDictionary<string, object?> details, CancellationToken cancellationToken = default);
}

/// <summary>The outcome of checking an audit log's chain.</summary>
public sealed record AuditVerification(bool Valid, long Records, string Message);

/// <summary>
/// An append-only JSON-lines audit log with a hash chain. Each line is a JSON object
/// <c>{"seq", "time", "kind", "user", "details", "prev", "hash"}</c>: <c>prev</c> is the previous
/// record's hash (64 zeros for the first) and <c>hash</c> is the SHA-256 of the line as written
/// without its <c>,"hash":"…"</c> member. Editing any byte breaks that line's hash or the next
/// line's link; <see cref="Verify"/> finds it. Each record goes to disk (fsync) in one write before
/// the call returns. A record torn by a crash mid-write is cut off when the log is reopened and
/// its bytes' hash recorded in a "recovery" record, so the chain stays whole and the loss visible.
/// </summary>
public sealed class FileAuditLog : IAuditLog, IDisposable
{
    private const string HashMember = ",\"hash\":\"";
    private static readonly string Genesis = new('0', 64);

    private readonly FileStream _file, _writerLock;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private string _lastHash = Genesis;
    private long _seq;

    public FileAuditLog(string path, TimeProvider? time = null)
    {
        Path = path;
        _time = time ?? TimeProvider.System;
        // A second writer would fork the chain: an exclusive lock file (flock on Linux) refuses one,
        // while the log itself stays readable (mg audit verify, tail -f) as it is written.
        try
        {
            _writerLock = new FileStream(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new IOException($"Audit log '{path}' is in use by another process; every server process needs its own audit log.", e);
        }
        try
        {
            _file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        }
        catch
        {
            _writerLock.Dispose();
            throw;
        }
        try { Recover(); }
        catch { Dispose(); throw; }
    }

    private readonly TimeProvider _time;

    public string Path { get; }

    public async Task AppendAsync(string kind, string? user, IReadOnlyDictionary<string, object?> details, CancellationToken cancellationToken = default)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var line = Format(_seq + 1, _time.GetUtcNow(), kind, user, details, _lastHash, out string hash);
            _file.Seek(0, SeekOrigin.End);
            _file.Write(line); // one write: a process crash cannot tear it, only a power loss
            _file.Flush(flushToDisk: true);
            _seq++;
            _lastHash = hash;
        }
        finally
        {
            _lock.Release();
        }
    }

    private static byte[] Format(long seq, DateTimeOffset time, string kind, string? user, IReadOnlyDictionary<string, object?> details, string prev, out string hash)
    {
        var body = JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["seq"] = seq, ["time"] = time.UtcDateTime.ToString("O"), ["kind"] = kind, ["user"] = user, ["details"] = details, ["prev"] = prev,
        });
        hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(body)));
        return Encoding.UTF8.GetBytes(body[..^1] + HashMember + hash + "\"}\n");
    }

    /// <summary>The last <paramref name="count"/> records, as written (JSON objects).</summary>
    public async Task<IReadOnlyList<string>> ReadTailAsync(int count, CancellationToken cancellationToken = default)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var bytes = new byte[_file.Length];
            _file.Seek(0, SeekOrigin.Begin);
            _file.ReadExactly(bytes);
            var lines = Encoding.UTF8.GetString(bytes).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return lines[Math.Max(0, lines.Length - count)..];
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Reads the chain to its end (refusing a broken one) and cuts off a torn last record.</summary>
    private void Recover()
    {
        var bytes = new byte[_file.Length];
        _file.ReadExactly(bytes);
        int end = bytes.AsSpan().LastIndexOf((byte)'\n') + 1;
        var check = Check(bytes.AsSpan(0, end));
        if (!check.Valid) throw new InvalidDataException($"Audit log '{Path}' fails verification ({check.Message}); refusing to append to it.");
        _seq = check.Records;
        _lastHash = check.LastHash;
        if (end < bytes.Length)
        {
            var torn = bytes.AsSpan(end);
            string tornHash = Convert.ToHexStringLower(SHA256.HashData(torn));
            _file.SetLength(end);
            AppendAsync("recovery", null, new Dictionary<string, object?>
            {
                ["reason"] = "a record torn by a crash during its write was cut off", ["torn_bytes"] = torn.Length, ["torn_sha256"] = tornHash,
            }).GetAwaiter().GetResult();
        }
    }

    /// <summary>Checks every record's hash and link; any edited, inserted, removed or reordered line fails.</summary>
    public static AuditVerification Verify(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var r = Check(bytes);
        if (r.Valid && bytes.Length > 0 && bytes[^1] != (byte)'\n') return new AuditVerification(false, r.Records, "the last record is incomplete (no newline)");
        return new AuditVerification(r.Valid, r.Records, r.Message);
    }

    private static (bool Valid, long Records, string Message, string LastHash) Check(ReadOnlySpan<byte> bytes)
    {
        string prev = Genesis;
        long seq = 0;
        int lineNo = 0;
        foreach (var range in bytes.Split((byte)'\n'))
        {
            var raw = bytes[range];
            if (range.End.Value == bytes.Length && raw.IsEmpty) break; // after the final newline
            lineNo++;
            string line;
            try { line = new UTF8Encoding(false, true).GetString(raw); }
            catch (DecoderFallbackException) { return (false, seq, $"line {lineNo} is not UTF-8", prev); }
            int at = line.LastIndexOf(HashMember, StringComparison.Ordinal);
            if (at < 0 || !line.EndsWith("\"}", StringComparison.Ordinal) || line.Length - at - HashMember.Length - 2 != 64)
                return (false, seq, $"line {lineNo} has no hash", prev);
            string body = line[..at] + "}", hash = line[(at + HashMember.Length)..^2];
            string actual = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(body)));
            if (actual != hash) return (false, seq, $"line {lineNo} was changed (its hash does not match its contents)", prev);
            try
            {
                using var doc = JsonDocument.Parse(body);
                var root = doc.RootElement;
                if (root.GetProperty("prev").GetString() != prev) return (false, seq, $"line {lineNo} does not follow line {lineNo - 1} (broken link)", prev);
                if (root.GetProperty("seq").GetInt64() != seq + 1) return (false, seq, $"line {lineNo} has sequence number {root.GetProperty("seq").GetInt64()}, expected {seq + 1}", prev);
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                return (false, seq, $"line {lineNo} is not a valid record ({e.Message})", prev);
            }
            prev = hash;
            seq++;
        }
        return (true, seq, $"{seq} record(s), chain intact", prev);
    }

    public void Dispose()
    {
        _file.Dispose();
        _writerLock.Dispose();
        _lock.Dispose();
    }
}
