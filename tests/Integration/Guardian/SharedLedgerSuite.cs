using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Tests.Guardian;

/// <summary>
/// <see cref="LedgerSuite"/> plus what a store shared by several instances must do — SQLite over one
/// file, PostgreSQL over one database — each instance standing for a replica: no lost updates and one
/// termination while replicas hammer the same user, and everything durable across a reopen.
/// </summary>
public abstract class SharedLedgerSuite : LedgerSuite
{
    /// <summary>Another, independent store instance (own connections) over the same storage as <see cref="LedgerSuite.Store"/>.</summary>
    protected abstract ILedgerStore OpenReplica();

    [Fact]
    public async Task TwoReplicasLoseNoUpdates()
    {
        var replica = Track(OpenReplica());
        await AssertNoLostUpdates([Store, replica]);
    }

    [Fact]
    public async Task TwoReplicasTerminateExactlyOnce()
    {
        var replica = Track(OpenReplica());
        await AssertTerminatedExactlyOnce([Store, replica]);
    }

    [Fact]
    public async Task ReplicasSeeEachOthersWrites()
    {
        var replica = Track(OpenReplica());
        var p = new TerminationPolicy(1, 0);
        await Store.RecordAsync("u", true, "r1", p, At(1));
        Assert.True((await replica.GetAsync("u"))!.IsTerminated);
        Assert.Equal(RecordOutcome.AlreadyCounted, (await replica.RecordAsync("u", true, "r1", p, At(2))).Outcome);
        Assert.Equal(RecordOutcome.Refused, (await replica.RecordAsync("u", true, "r2", p, At(2))).Outcome);
        Assert.True(await replica.ReinstateAsync("u"));
        Assert.Equal(RecordOutcome.Counted, (await Store.RecordAsync("u", false, "r2", p, At(3))).Outcome);

        await replica.AddAsync("alice", Sha("a"), At(4));
        Assert.Equal("alice", (await Store.FindActiveByKeyHashAsync(Sha("a")))?.Name);
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.AddAsync("alice", Sha("b"), At(5)));
        Assert.True(await Store.RevokeAsync("alice", At(6)));
        Assert.Null(await replica.FindActiveByKeyHashAsync(Sha("a")));
    }

    [Fact]
    public async Task AReopenedStoreSeesEverything()
    {
        var first = Store;
        var (entries, users) = await Populate(first);
        first.Dispose();
        var reopened = Track(OpenReplica());
        await AssertPopulated(reopened, entries, users);
    }
}
