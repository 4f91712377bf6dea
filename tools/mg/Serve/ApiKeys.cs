using System.Security.Cryptography;
using System.Text;

namespace ModelGuardian.Tools.Serve;

/// <summary>
/// API keys: 256 random bits, shown once, stored only as SHA-256. A presented key is hashed and
/// the stored hash compared in constant time (the lookup by hash reveals nothing about a key).
/// </summary>
public static class ApiKeys
{
    public const string Prefix = "mgk_";

    public static string Generate() => Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    public static string HashHex(string key) => Convert.ToHexStringLower(Hash(key));

    public static bool Matches(byte[] presentedHash, byte[] storedHash) => CryptographicOperations.FixedTimeEquals(presentedHash, storedHash);

    /// <summary>The key from "Authorization: Bearer &lt;key&gt;", or null.</summary>
    public static string? FromAuthorizationHeader(string? header)
    {
        const string scheme = "Bearer ";
        if (header == null || !header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) return null;
        var key = header[scheme.Length..].Trim();
        return key.Length is > 0 and <= 256 ? key : null;
    }
}
