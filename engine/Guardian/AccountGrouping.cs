using System.Net;
using System.Net.Sockets;

namespace ModelGuardian.Engine.Guardian;

/// <summary>
/// Which ledger account a user's queries count against. An attacker who spreads queries over many API keys
/// stays under any per-key rate; grouping keys by owner, or by client network, puts them back in one account.
/// Immutable; the key spaces are prefixed ("owner:", "net:") so that a user id can never collide with a
/// group key, except in <see cref="Identity"/>, which returns the user id unchanged (the ledger's default).
/// </summary>
public sealed class AccountGrouping
{
    private enum Mode { Identity, Owner, Network }

    private readonly Mode _mode;
    private readonly IReadOnlyDictionary<string, string> _owners;
    private readonly int _ipv4Bits, _ipv6Bits;

    private AccountGrouping(Mode mode, IReadOnlyDictionary<string, string> owners, int ipv4Bits, int ipv6Bits)
    {
        _mode = mode; _owners = owners; _ipv4Bits = ipv4Bits; _ipv6Bits = ipv6Bits;
    }

    /// <summary>Every user is its own account.</summary>
    public static AccountGrouping Identity { get; } = new(Mode.Identity, new Dictionary<string, string>(), 0, 0);

    /// <summary>Users listed in <paramref name="ownerOf"/> share their owner's account; others keep their own.</summary>
    public static AccountGrouping ByOwner(IReadOnlyDictionary<string, string> ownerOf)
    {
        ArgumentNullException.ThrowIfNull(ownerOf);
        var copy = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (user, owner) in ownerOf)
        {
            if (string.IsNullOrWhiteSpace(user)) throw new ArgumentException("The owner map has an empty user id.", nameof(ownerOf));
            if (string.IsNullOrWhiteSpace(owner)) throw new ArgumentException($"User '{user}' maps to an empty owner.", nameof(ownerOf));
            copy[user] = owner;
        }
        return new(Mode.Owner, copy, 0, 0); // copied: later changes to the caller's map cannot leak in
    }

    /// <summary>Users share an account per client network: IPv4 /<paramref name="ipv4PrefixBits"/>, IPv6 /<paramref name="ipv6PrefixBits"/>.</summary>
    public static AccountGrouping ByNetworkPrefix(int ipv4PrefixBits = 24, int ipv6PrefixBits = 64)
    {
        if (ipv4PrefixBits is < 0 or > 32) throw new ArgumentException($"An IPv4 prefix has 0…32 bits, got {ipv4PrefixBits}.", nameof(ipv4PrefixBits));
        if (ipv6PrefixBits is < 0 or > 128) throw new ArgumentException($"An IPv6 prefix has 0…128 bits, got {ipv6PrefixBits}.", nameof(ipv6PrefixBits));
        return new(Mode.Network, new Dictionary<string, string>(), ipv4PrefixBits, ipv6PrefixBits);
    }

    /// <summary>
    /// The account key for <paramref name="userId"/>; <paramref name="clientAddress"/> (textual IPv4/IPv6) is
    /// required by the network grouping and ignored otherwise.
    /// </summary>
    public string AccountFor(string userId, string? clientAddress = null)
    {
        if (string.IsNullOrWhiteSpace(userId)) throw new ArgumentException("The user id is empty.", nameof(userId));
        switch (_mode)
        {
            case Mode.Identity: return userId;
            case Mode.Owner: return _owners.TryGetValue(userId, out var owner) ? "owner:" + owner : "user:" + userId;
            default:
                if (clientAddress is null || !IPAddress.TryParse(clientAddress, out var address))
                    throw new ArgumentException($"Grouping by network needs the client's IP address, got '{clientAddress}'.", nameof(clientAddress));
                // An IPv4 client seen over an IPv6 socket (::ffff:a.b.c.d) is the same network as a.b.c.d.
                if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
                int bits = address.AddressFamily == AddressFamily.InterNetwork ? _ipv4Bits : _ipv6Bits;
                byte[] bytes = address.GetAddressBytes();
                for (int i = 0; i < bytes.Length; i++)
                {
                    int keep = Math.Clamp(bits - 8 * i, 0, 8);
                    bytes[i] &= (byte)(0xFF << (8 - keep));
                }
                return $"net:{new IPAddress(bytes)}/{bits}";
        }
    }
}
