using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Defenses;

namespace ModelGuardian.Tests.Defenses;

public sealed class AccountGroupingTests
{
    [Fact]
    public void IdentityKeepsTheUserId()
    {
        Assert.Equal("alice", AccountGrouping.Identity.AccountFor("alice"));
        Assert.Equal("alice", AccountGrouping.Identity.AccountFor("alice", "10.0.0.1"));
    }

    [Fact]
    public void OwnerMapMergesKeysOfOneOwnerAndIsImmutable()
    {
        var map = new Dictionary<string, string> { ["key-1"] = "mallory", ["key-2"] = "mallory" };
        var grouping = AccountGrouping.ByOwner(map);
        map["key-3"] = "mallory"; // changing the caller's map afterwards must not change the grouping
        Assert.Equal("owner:mallory", grouping.AccountFor("key-1"));
        Assert.Equal(grouping.AccountFor("key-1"), grouping.AccountFor("key-2"));
        Assert.Equal("user:key-3", grouping.AccountFor("key-3"));
        // A user literally named like an owner key cannot join the owner's account.
        Assert.NotEqual(grouping.AccountFor("key-1"), grouping.AccountFor("owner:mallory"));
    }

    [Fact]
    public void NetworkPrefixGroupsIPv4Per24AndIPv6Per64()
    {
        var grouping = AccountGrouping.ByNetworkPrefix();
        Assert.Equal("net:192.168.7.0/24", grouping.AccountFor("a", "192.168.7.13"));
        Assert.Equal(grouping.AccountFor("a", "192.168.7.13"), grouping.AccountFor("b", "192.168.7.250"));
        Assert.NotEqual(grouping.AccountFor("a", "192.168.7.13"), grouping.AccountFor("a", "192.168.8.13"));
        Assert.Equal("net:192.168.7.0/24", grouping.AccountFor("c", "::ffff:192.168.7.99")); // IPv4-mapped
        Assert.Equal("net:2001:db8:1:2::/64", grouping.AccountFor("d", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"));
        // Non-byte-aligned prefix: /20 keeps the top 4 bits of the third octet (0x7F → 0x70 = 112).
        Assert.Equal("net:10.1.112.0/20", AccountGrouping.ByNetworkPrefix(20).AccountFor("e", "10.1.127.255"));
    }

    [Fact]
    public void RejectsBadInput()
    {
        Assert.Contains("IP address", Assert.Throws<ArgumentException>(() => AccountGrouping.ByNetworkPrefix().AccountFor("a", "not-an-ip")).Message);
        Assert.Contains("IP address", Assert.Throws<ArgumentException>(() => AccountGrouping.ByNetworkPrefix().AccountFor("a")).Message);
        Assert.Contains("0…32", Assert.Throws<ArgumentException>(() => AccountGrouping.ByNetworkPrefix(33)).Message);
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => AccountGrouping.Identity.AccountFor(" ")).Message);
        Assert.Contains("empty owner", Assert.Throws<ArgumentException>(() => AccountGrouping.ByOwner(new Dictionary<string, string> { ["u"] = "" })).Message);
    }
}
