using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Tests.Guardian;

/// <summary>
/// What every ledger store must do, run against each store: a store's test class derives from this and
/// says how to create a fresh, empty store; the [Fact]s and [Theory]s are inherited.
/// (<see cref="SharedLedgerSuite"/> adds what only stores shared by replicas can do.)
/// Expected values come from <see cref="TerminationPolicy"/> itself, so SQL and C# must agree exactly.
/// </summary>
public abstract class LedgerSuite : IDisposable
{
    private readonly List<IDisposable> _opened = [];
    private ILedgerStore? _store;

    /// <summary>A store over fresh, empty storage of this test. Called at most once per test.</summary>
    protected abstract ILedgerStore CreateStore();

    /// <summary>Called after every store of the test has been disposed: remove the test's storage.</summary>
    protected virtual void Cleanup() { }

    protected ILedgerStore Store => _store ??= Track(CreateStore());

    protected T Track<T>(T store) where T : IDisposable
    {
        lock (_opened) _opened.Add(store);
        return store;
    }

    public void Dispose()
    {
        try
        {
            foreach (var s in _opened) s.Dispose();
        }
        finally
        {
            Cleanup();
            GC.SuppressFinalize(this);
        }
    }

    // ---- harness --------------------------------------------------------------------------------

    protected static readonly DateTimeOffset T0 = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);

    protected static DateTimeOffset At(int seconds) => T0.AddSeconds(seconds);

    /// <summary>A policy that never terminates in these tests.</summary>
    protected static readonly TerminationPolicy Lenient = new(1_000_000, 0.5);

    protected static byte[] Sha(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    protected Task<RecordResult> Record(string user, bool flagged, TerminationPolicy policy, DateTimeOffset? now = null, string? requestId = null, ILedgerStore? store = null)
        => (store ?? Store).RecordAsync(user, flagged, requestId, policy, now ?? T0);

    protected static void AssertEntry(LedgerEntry expected, LedgerEntry? actual, string context = "")
        => Assert.True(expected == actual, $"{context}{(context.Length > 0 ? ": " : "")}expected {expected}, got {actual?.ToString() ?? "null"}");

    protected static void AssertResult(RecordOutcome outcome, bool terminatedNow, LedgerEntry entry, RecordResult actual, string context = "")
        => Assert.True(actual == new RecordResult(outcome, entry, terminatedNow),
            $"{context}{(context.Length > 0 ? ": " : "")}expected {outcome} (terminated now: {terminatedNow}) {entry}, got {actual}");

    private static LedgerEntry Open(string user, long total, long flagged) => new(user, total, flagged, null, null);

    private static LedgerEntry Terminated(string user, long total, long flagged, DateTimeOffset at, TerminationPolicy p) => new(user, total, flagged, at, p.Reason(total, flagged));

    // ---- counting -------------------------------------------------------------------------------

    [Fact]
    public async Task UnknownUserHasNoEntry()
    {
        Assert.Null(await Store.GetAsync("nobody"));
        Assert.Empty(await Store.ListTerminatedAsync());
        Assert.False(await Store.ReinstateAsync("nobody"));
        Assert.Null(await Store.GetAsync("nobody"));
        await Store.CheckReachableAsync();
    }

    [Fact]
    public async Task FirstQueryCreatesTheUserAndEveryQueryIsCounted()
    {
        AssertResult(RecordOutcome.Counted, false, Open("alice", 1, 1), await Record("alice", true, Lenient));
        AssertResult(RecordOutcome.Counted, false, Open("alice", 2, 1), await Record("alice", false, Lenient));
        AssertResult(RecordOutcome.Counted, false, Open("alice", 3, 1), await Record("alice", false, Lenient));
        AssertResult(RecordOutcome.Counted, false, Open("alice", 4, 2), await Record("alice", true, Lenient));
        AssertEntry(Open("alice", 4, 2), await Store.GetAsync("alice"));
        Assert.Null(await Store.GetAsync("bob"));

        AssertResult(RecordOutcome.Counted, false, Open("bob", 1, 0), await Record("bob", false, Lenient));
        AssertEntry(Open("bob", 1, 0), await Store.GetAsync("bob"));
        AssertEntry(Open("alice", 4, 2), await Store.GetAsync("alice"));
        // Names are compared exactly.
        Assert.Null(await Store.GetAsync("Alice"));
        Assert.Null(await Store.GetAsync("alice "));
    }

    // ---- the termination rule at its boundaries --------------------------------------------------

    [Fact]
    public async Task AllFlaggedTerminatesExactlyAtTau()
    {
        var p = new TerminationPolicy(10, 0.5);
        for (int i = 1; i <= 9; i++)
            AssertResult(RecordOutcome.Counted, false, Open("u", i, i), await Record("u", true, p, At(i)), $"query {i}");
        AssertResult(RecordOutcome.Counted, true, Terminated("u", 10, 10, At(10), p), await Record("u", true, p, At(10)), "query 10");
        AssertEntry(Terminated("u", 10, 10, At(10), p), await Store.GetAsync("u"));
    }

    /// <summary>τ = 10, δ = 0.5: at the 10th query 5 flagged is not more than 5.0, 6 is.</summary>
    [Theory]
    [InlineData(5, false)]
    [InlineData(6, true)]
    public async Task AtTauTheFlaggedShareMustExceedDelta(int flagged, bool terminated)
    {
        var p = new TerminationPolicy(10, 0.5);
        for (int i = 1; i <= 9; i++)
            AssertResult(RecordOutcome.Counted, false, Open("u", i, Math.Min(i, flagged)), await Record("u", i <= flagged, p, At(i)), $"query {i}");
        var tenth = await Record("u", false, p, At(10));
        if (terminated)
            AssertResult(RecordOutcome.Counted, true, Terminated("u", 10, flagged, At(10), p), tenth, "query 10");
        else
        {
            AssertResult(RecordOutcome.Counted, false, Open("u", 10, flagged), tenth, "query 10");
            // The rule keeps applying after τ: 6 of 11 > 5.5.
            AssertResult(RecordOutcome.Counted, true, Terminated("u", 11, 6, At(11), p), await Record("u", true, p, At(11)), "query 11");
        }
    }

    [Fact]
    public async Task DeltaZeroTerminatesOnAnyFlaggedQueryFromTauOn()
    {
        var p = new TerminationPolicy(3, 0);
        for (int i = 1; i <= 5; i++)
            AssertResult(RecordOutcome.Counted, false, Open("clean", i, 0), await Record("clean", false, p, At(i)), $"clean query {i}");
        AssertResult(RecordOutcome.Counted, true, Terminated("clean", 6, 1, At(6), p), await Record("clean", true, p, At(6)));

        AssertResult(RecordOutcome.Counted, false, Open("early", 1, 1), await Record("early", true, p, At(1)));
        AssertResult(RecordOutcome.Counted, false, Open("early", 2, 1), await Record("early", false, p, At(2)));
        AssertResult(RecordOutcome.Counted, true, Terminated("early", 3, 1, At(3), p), await Record("early", false, p, At(3)));
    }

    [Fact]
    public async Task TauOneTerminatesOnTheFirstFlaggedQuery()
    {
        var p = new TerminationPolicy(1, 0.5);
        AssertResult(RecordOutcome.Counted, true, Terminated("u", 1, 1, At(1), p), await Record("u", true, p, At(1)));
        AssertResult(RecordOutcome.Refused, false, Terminated("u", 1, 1, At(1), p), await Record("u", false, p, At(2)));
        AssertResult(RecordOutcome.Counted, false, Open("v", 1, 0), await Record("v", false, p, At(3)));
    }

    /// <summary>
    /// 0.7 × 90 is 62.99999999999999 in doubles: 63 of 90 flagged terminates under the C# rule (a store
    /// computing in decimal would say 63 > 63 is false). The stores must follow the doubles.
    /// </summary>
    [Fact]
    public async Task TheRuleIsEvaluatedInDoubles()
    {
        var p = new TerminationPolicy(90, 0.7);
        Assert.True(p.ShouldTerminate(90, 63), "premise: 63 > 0.7 × 90 in doubles");
        Assert.False(63m > 0.7m * 90, "premise: not in decimal");
        for (int i = 1; i <= 89; i++)
        {
            var r = await Record("u", i <= 63, p, At(i));
            Assert.True(r.Outcome == RecordOutcome.Counted && !r.TerminatedNow, $"query {i}: {r}");
        }
        AssertResult(RecordOutcome.Counted, true, Terminated("u", 90, 63, At(90), p), await Record("u", false, p, At(90)));
    }

    /// <summary>
    /// Random flag sequences under random τ and δ ∈ {0, 0.1, 0.3, 0.5, 0.7}: the store terminates at
    /// exactly the query where <see cref="TerminationPolicy.ShouldTerminate"/> first holds, with its reason,
    /// and refuses everything after.
    /// </summary>
    [Fact]
    public async Task TerminatesExactlyWhereThePolicyFirstSaysSo()
    {
        double[] deltas = [0, 0.1, 0.3, 0.5, 0.7];
        var rng = new Random(20261123);
        int terminations = 0;
        for (int trial = 0; trial < 60; trial++)
        {
            // Half the trials add a sequential (SPRT) boundary, so its line is checked against every store too.
            var boundary = rng.Next(2) == 0 ? null : SequentialBoundary.From(new Engine.Guardian.SprtRule(new Engine.Guardian.SprtOptions(rng.NextDouble() * 0.1, 0.3 + 0.4 * rng.NextDouble())));
            var p = new TerminationPolicy(rng.Next(1, 13), deltas[rng.Next(deltas.Length)], boundary);
            // Flag rates around δ make the boundary likely.
            double rate = Math.Clamp(p.Delta + (rng.NextDouble() - 0.5) * 0.6, 0, 1);
            int length = rng.Next(1, 31);
            string user = $"user-{trial}";
            long total = 0, flagged = 0;
            LedgerEntry? terminatedEntry = null;
            for (int q = 1; q <= length; q++)
            {
                bool f = rng.NextDouble() < rate;
                var now = At(trial * 100 + q);
                string? id = rng.Next(3) == 0 ? null : $"req-{q}";
                var r = await Record(user, f, p, now, id);
                string context = $"trial {trial} (τ = {p.Tau}, δ = {p.Delta}), query {q}";
                if (terminatedEntry != null)
                {
                    AssertResult(RecordOutcome.Refused, false, terminatedEntry, r, context);
                    continue;
                }
                total++;
                if (f) flagged++;
                bool terminate = p.ShouldTerminate(total, flagged);
                var expected = terminate ? Terminated(user, total, flagged, now, p) : Open(user, total, flagged);
                AssertResult(RecordOutcome.Counted, terminate, expected, r, context);
                if (terminate) { terminatedEntry = expected; terminations++; }
            }
            AssertEntry(terminatedEntry ?? Open(user, total, flagged), await Store.GetAsync(user), $"trial {trial}, at the end");
        }
        Assert.InRange(terminations, 10, 50); // the trials exercised both outcomes
    }

    /// <summary>With an SPRT boundary (measured FPR 1 %, H1 rate 0.5) an all-flagged user is cut off at the 2nd query, long before τ = 20, and the reason names the sequential test.</summary>
    [Fact]
    public async Task ASequentialBoundaryTerminatesBeforeTau()
    {
        var rule = new Engine.Guardian.SprtRule(new Engine.Guardian.SprtOptions(0.01));
        var p = new TerminationPolicy(20, 0.5, SequentialBoundary.From(rule));
        AssertResult(RecordOutcome.Counted, false, Open("u", 1, 1), await Record("u", true, p, At(1)));
        var r = await Record("u", true, p, At(2));
        Assert.True(r.TerminatedNow);
        Assert.Equal(2, rule.FirstTerminationWhenAllFlagged());
        Assert.Contains("sequential test", r.Entry.TerminationReason);
        // A benign-looking user (one flag in 50) is never cut off by it.
        for (int q = 1; q <= 50; q++) Assert.False((await Record("b", q == 25, p, At(q))).TerminatedNow);
    }

    // ---- termination, refusal, reinstatement ---------------------------------------------------------

    [Fact]
    public async Task TerminatedUserIsRefusedAndNothingChanges()
    {
        var p = new TerminationPolicy(2, 0.4);
        await Record("u", true, p, At(1));
        var t = await Record("u", true, p, At(2));
        var terminated = Terminated("u", 2, 2, At(2), p);
        AssertResult(RecordOutcome.Counted, true, terminated, t);
        AssertResult(RecordOutcome.Refused, false, terminated, await Record("u", true, p, At(3)));
        AssertResult(RecordOutcome.Refused, false, terminated, await Record("u", false, p, At(4)));
        AssertResult(RecordOutcome.Refused, false, terminated, await Record("u", false, p, At(5), "req-5"));
        // A more lenient policy does not lift a termination either.
        AssertResult(RecordOutcome.Refused, false, terminated, await Record("u", false, Lenient, At(6)));
        AssertEntry(terminated, await Store.GetAsync("u"));
    }

    [Fact]
    public async Task ReinstateResetsTheCountsAndQueriesAreCountedAgain()
    {
        var p = new TerminationPolicy(3, 0.5);
        for (int i = 1; i <= 3; i++) await Record("u", true, p, At(i));
        AssertEntry(Terminated("u", 3, 3, At(3), p), await Store.GetAsync("u"));

        Assert.True(await Store.ReinstateAsync("u"));
        AssertEntry(Open("u", 0, 0), await Store.GetAsync("u"));
        Assert.False(await Store.ReinstateAsync("u"), "a second reinstate: not terminated");
        Assert.Empty(await Store.ListTerminatedAsync());

        // Counted again from zero: a flagged query does not re-terminate at once (1 query < τ).
        AssertResult(RecordOutcome.Counted, false, Open("u", 1, 1), await Record("u", true, p, At(10)));
        AssertResult(RecordOutcome.Counted, false, Open("u", 2, 1), await Record("u", false, p, At(11)));
        Assert.False(await Store.ReinstateAsync("u"), "reinstating a user who is not terminated");
        AssertEntry(Open("u", 2, 1), await Store.GetAsync("u"));
        // … and the rule applies again.
        AssertResult(RecordOutcome.Counted, true, Terminated("u", 3, 2, At(12), p), await Record("u", true, p, At(12)));
    }

    [Fact]
    public async Task ListTerminatedIsOrderedByTerminationTime()
    {
        var p = new TerminationPolicy(1, 0);
        await Record("c", true, p, At(30));
        await Record("a", true, p, At(10));
        await Record("open", false, p, At(5));
        await Record("b", true, p, At(20));
        await Record("y", true, p, At(40));
        await Record("x", true, p, At(40));
        var list = await Store.ListTerminatedAsync();
        Assert.Equal(["a", "b", "c", "x", "y"], list.Select(e => e.User));
        AssertEntry(Terminated("a", 1, 1, At(10), p), list[0]);
        AssertEntry(Terminated("y", 1, 1, At(40), p), list[4]);

        Assert.True(await Store.ReinstateAsync("b"));
        Assert.Equal(["a", "c", "x", "y"], (await Store.ListTerminatedAsync()).Select(e => e.User));
    }

    // ---- idempotency ----------------------------------------------------------------------------

    [Fact]
    public async Task TheSameRequestIdIsCountedOnce()
    {
        AssertResult(RecordOutcome.Counted, false, Open("u", 1, 1), await Record("u", true, Lenient, At(1), "req-1"));
        AssertResult(RecordOutcome.AlreadyCounted, false, Open("u", 1, 1), await Record("u", true, Lenient, At(2), "req-1"));
        AssertResult(RecordOutcome.AlreadyCounted, false, Open("u", 1, 1), await Record("u", false, Lenient, At(3), "req-1"));
        AssertResult(RecordOutcome.Counted, false, Open("u", 2, 1), await Record("u", false, Lenient, At(4), "req-2"));
        // Ids are compared exactly, and queries without an id are never deduplicated.
        AssertResult(RecordOutcome.Counted, false, Open("u", 3, 1), await Record("u", false, Lenient, At(5), "REQ-1"));
        AssertResult(RecordOutcome.Counted, false, Open("u", 4, 1), await Record("u", false, Lenient, At(6)));
        AssertResult(RecordOutcome.Counted, false, Open("u", 5, 1), await Record("u", false, Lenient, At(7)));
        AssertEntry(Open("u", 5, 1), await Store.GetAsync("u"));
    }

    [Fact]
    public async Task TheSameRequestIdOfTwoUsersCountsForBoth()
    {
        AssertResult(RecordOutcome.Counted, false, Open("u", 1, 1), await Record("u", true, Lenient, At(1), "shared"));
        AssertResult(RecordOutcome.Counted, false, Open("v", 1, 0), await Record("v", false, Lenient, At(2), "shared"));
        AssertResult(RecordOutcome.AlreadyCounted, false, Open("u", 1, 1), await Record("u", true, Lenient, At(3), "shared"));
        AssertResult(RecordOutcome.AlreadyCounted, false, Open("v", 1, 0), await Record("v", false, Lenient, At(4), "shared"));
    }

    [Fact]
    public async Task ARefusedQuerysRequestIdIsNotStored()
    {
        var p = new TerminationPolicy(1, 0);
        AssertResult(RecordOutcome.Counted, true, Terminated("u", 1, 1, At(1), p), await Record("u", true, p, At(1), "a"));
        AssertResult(RecordOutcome.Refused, false, Terminated("u", 1, 1, At(1), p), await Record("u", true, p, At(2), "b"));
        Assert.True(await Store.ReinstateAsync("u"));
        // "b" was refused, so not counted: after reinstatement it counts.
        AssertResult(RecordOutcome.Counted, false, Open("u", 1, 0), await Record("u", false, p, At(3), "b"));
        // "a" was counted (before the reinstatement): a retry of it is still recognised.
        AssertResult(RecordOutcome.AlreadyCounted, false, Open("u", 1, 0), await Record("u", false, p, At(4), "a"));
    }

    [Fact]
    public async Task ARetryOfTheTerminatingQueryIsAlreadyCounted()
    {
        var p = new TerminationPolicy(2, 0.5);
        await Record("u", true, p, At(1), "1");
        var terminated = Terminated("u", 2, 2, At(2), p);
        AssertResult(RecordOutcome.Counted, true, terminated, await Record("u", true, p, At(2), "2"));
        AssertResult(RecordOutcome.AlreadyCounted, false, terminated, await Record("u", true, p, At(3), "2"));
        AssertResult(RecordOutcome.Refused, false, terminated, await Record("u", true, p, At(4), "3"));
    }

    // ---- concurrency: one store, many callers --------------------------------------------------------

    protected const int Tasks = 8, CallsPerTask = 200;

    /// <summary>
    /// <paramref name="tasks"/> concurrent callers, <paramref name="calls"/> queries each on one user, spread
    /// over <paramref name="stores"/>; query i of a task is flagged when <paramref name="isFlagged"/>(i).
    /// Returns every caller's results in its own order.
    /// </summary>
    protected static async Task<RecordResult[][]> Hammer(IReadOnlyList<ILedgerStore> stores, string user, TerminationPolicy p, Func<int, bool> isFlagged,
        int tasks = Tasks, int calls = CallsPerTask, Func<int, int, string?>? requestId = null)
    {
        using var start = new ManualResetEventSlim();
        var workers = Enumerable.Range(0, tasks).Select(t => Task.Run(async () =>
        {
            start.Wait();
            var store = stores[t % stores.Count];
            var results = new RecordResult[calls];
            for (int i = 0; i < calls; i++)
                results[i] = await store.RecordAsync(user, isFlagged(i), requestId?.Invoke(t, i), p, At(t * 1000 + i));
            return results;
        })).ToArray();
        start.Set();
        return await Task.WhenAll(workers);
    }

    /// <summary>No lost or double-counted updates: every counted query saw a distinct total 1…N.</summary>
    protected static async Task AssertNoLostUpdates(IReadOnlyList<ILedgerStore> stores)
    {
        static bool Flag(int i) => i % 3 == 0;
        var results = await Hammer(stores, "hot", Lenient, Flag);
        var all = results.SelectMany(r => r).ToArray();
        Assert.All(all, r => Assert.Equal(RecordOutcome.Counted, r.Outcome));
        long n = Tasks * CallsPerTask, flagged = Tasks * Enumerable.Range(0, CallsPerTask).Count(Flag);
        Assert.Equal(Enumerable.Range(1, (int)n).Select(i => (long)i), all.Select(r => r.Entry.Total).Order());
        foreach (var s in stores) AssertEntry(new LedgerEntry("hot", n, flagged, null, null), await s.GetAsync("hot"));
    }

    /// <summary>All flagged under τ = 700, δ = 0.5: exactly 700 queries counted, one terminates, the rest refused.</summary>
    protected static async Task AssertTerminatedExactlyOnce(IReadOnlyList<ILedgerStore> stores)
    {
        var p = new TerminationPolicy(700, 0.5);
        var results = await Hammer(stores, "hot", p, _ => true);
        var all = results.SelectMany(r => r).ToArray();
        var counted = all.Where(r => r.Outcome == RecordOutcome.Counted).ToArray();
        Assert.Equal(700, counted.Length);
        Assert.Equal(Tasks * CallsPerTask - 700, all.Count(r => r.Outcome == RecordOutcome.Refused));
        Assert.Equal(Enumerable.Range(1, 700).Select(i => (long)i), counted.Select(r => r.Entry.Total).Order());
        var terminating = Assert.Single(all, r => r.TerminatedNow);
        Assert.Equal(700, terminating.Entry.Total);
        Assert.Equal(p.Reason(700, 700), terminating.Entry.TerminationReason);
        // Each caller: once refused, refused ever after; every refusal shows the one termination.
        foreach (var r in results)
        {
            int firstRefused = Array.FindIndex(r, x => x.Outcome == RecordOutcome.Refused);
            if (firstRefused >= 0) Assert.All(r[firstRefused..], x => Assert.Equal(RecordOutcome.Refused, x.Outcome));
        }
        Assert.All(all.Where(r => r.Outcome == RecordOutcome.Refused), r => AssertEntry(terminating.Entry, r.Entry));
        foreach (var s in stores) AssertEntry(terminating.Entry, await s.GetAsync("hot"));
    }

    [Fact]
    public Task ConcurrentCallersLoseNoUpdates() => AssertNoLostUpdates([Store]);

    [Fact]
    public Task ConcurrentCallersTerminateExactlyOnce() => AssertTerminatedExactlyOnce([Store]);

    [Fact]
    public async Task ConcurrentRetriesOfTheSameRequestsCountOnce()
    {
        // Every caller sends the same 100 request ids, each in its own order.
        var orders = Enumerable.Range(0, Tasks).Select(t => { var a = Enumerable.Range(0, 100).ToArray(); new Random(t).Shuffle(a); return a; }).ToArray();
        var results = await Hammer([Store], "retry", Lenient, _ => false, calls: 100, requestId: (t, i) => $"req-{orders[t][i]}");
        var all = results.SelectMany(r => r).ToArray();
        Assert.Equal(100, all.Count(r => r.Outcome == RecordOutcome.Counted));
        Assert.Equal(Tasks * 100 - 100, all.Count(r => r.Outcome == RecordOutcome.AlreadyCounted));
        AssertEntry(Open("retry", 100, 0), await Store.GetAsync("retry"));
    }

    // ---- times and arguments --------------------------------------------------------------------

    [Fact]
    public async Task TimesComeBackInUtcRoundedDownToTheMicrosecond()
    {
        var p = new TerminationPolicy(1, 0);
        var local = new DateTimeOffset(2026, 11, 23, 14, 5, 6, TimeSpan.FromHours(2)).AddTicks(1_234_567); // 12:05:06.1234567 UTC
        var expected = new DateTimeOffset(2026, 11, 23, 12, 5, 6, TimeSpan.Zero).AddTicks(1_234_560);
        var r = await Record("u", true, p, local);
        Assert.Equal(expected, r.Entry.TerminatedAt);
        Assert.Equal(TimeSpan.Zero, r.Entry.TerminatedAt!.Value.Offset);
        Assert.Equal(expected.UtcTicks, (await Store.GetAsync("u"))!.TerminatedAt!.Value.UtcTicks);
        Assert.Equal(expected.UtcTicks, Assert.Single(await Store.ListTerminatedAsync()).TerminatedAt!.Value.UtcTicks);

        var before2000 = new DateTimeOffset(1999, 12, 31, 23, 59, 59, TimeSpan.Zero).AddTicks(9_999_999);
        await Store.AddAsync("late", Sha("late"), local);
        await Store.AddAsync("early", Sha("early"), before2000);
        Assert.True(await Store.RevokeAsync("late", local.AddTicks(5)));
        var users = await Store.ListAsync();
        Assert.Equal(["early", "late"], users.Select(u => u.Name));
        Assert.Equal(before2000.AddTicks(-9).UtcTicks, users[0].CreatedAt.UtcTicks);
        Assert.Equal(expected.UtcTicks, users[1].CreatedAt.UtcTicks);
        Assert.Equal(expected.AddTicks(10).UtcTicks, users[1].RevokedAt!.Value.UtcTicks); // .1234572 → .123457
        Assert.All(users, u => Assert.Equal(TimeSpan.Zero, u.CreatedAt.Offset));
    }

    [Fact]
    public async Task BadNamesAndKeysAreRefusedWithAReason()
    {
        string longest = new('x', 256);
        AssertResult(RecordOutcome.Counted, false, Open(longest, 1, 0), await Record(longest, false, Lenient, requestId: longest));
        AssertEntry(Open(longest, 1, 0), await Store.GetAsync(longest));
        AssertResult(RecordOutcome.Counted, false, Open("ünïcödé 😀", 1, 0), await Record("ünïcödé 😀", false, Lenient, requestId: "😀"));

        foreach (var bad in new[] { "", new string('x', 257), "a\0b", "tab\there", "\uD800x" })
        {
            var e = await Assert.ThrowsAnyAsync<ArgumentException>(() => Record(bad, false, Lenient));
            Assert.Contains("user name", e.Message);
            await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.GetAsync(bad));
            await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.ReinstateAsync(bad));
            await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.AddAsync(bad, Sha(bad), T0));
            await Assert.ThrowsAnyAsync<ArgumentException>(() => Record("u", false, Lenient, requestId: bad));
        }
        Assert.Contains("256", (await Assert.ThrowsAnyAsync<ArgumentException>(() => Record(new string('x', 257), false, Lenient))).Message);
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.GetAsync(null!));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.RecordAsync("u", false, null, null!, T0));
        Assert.Contains("32 bytes", (await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.AddAsync("u", new byte[31], T0))).Message);
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Store.FindActiveByKeyHashAsync(new byte[33]));
        // Nothing was stored by the refused calls.
        Assert.Null(await Store.GetAsync("u"));
        Assert.Empty(await Store.ListAsync());
    }

    // ---- users ----------------------------------------------------------------------------------

    [Fact]
    public async Task UsersAreAddedFoundByKeyHashRevokedAndListed()
    {
        await Store.AddAsync("alice", Sha("key-a"), At(1));
        await Store.AddAsync("bob", Sha("key-b"), At(2));

        var found = await Store.FindActiveByKeyHashAsync(Sha("key-a"));
        Assert.NotNull(found);
        Assert.Equal("alice", found.Value.Name);
        Assert.Equal(Sha("key-a"), found.Value.KeySha256);
        Assert.Equal("bob", (await Store.FindActiveByKeyHashAsync(Sha("key-b")))?.Name);
        Assert.Null(await Store.FindActiveByKeyHashAsync(Sha("key-c")));

        Assert.Contains("alice", (await Assert.ThrowsAsync<InvalidOperationException>(() => Store.AddAsync("alice", Sha("key-c"), At(3)))).Message);
        Assert.Contains("key hash", (await Assert.ThrowsAsync<InvalidOperationException>(() => Store.AddAsync("carol", Sha("key-a"), At(3)))).Message);

        Assert.Equal([new ApiUser("alice", At(1), null), new ApiUser("bob", At(2), null)], await Store.ListAsync());

        Assert.True(await Store.RevokeAsync("alice", At(4)));
        Assert.False(await Store.RevokeAsync("alice", At(5)), "already revoked");
        Assert.False(await Store.RevokeAsync("nobody", At(5)));
        Assert.Null(await Store.FindActiveByKeyHashAsync(Sha("key-a")));
        Assert.Equal("bob", (await Store.FindActiveByKeyHashAsync(Sha("key-b")))?.Name);
        Assert.Equal([new ApiUser("alice", At(1), At(4)), new ApiUser("bob", At(2), null)], await Store.ListAsync());

        // A revoked name stays taken.
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.AddAsync("alice", Sha("key-d"), At(6)));
        // Users and the ledger are separate: a user is in the ledger once a query is recorded.
        Assert.Null(await Store.GetAsync("bob"));
    }

    [Fact]
    public async Task AStoredKeyHashIsACopy()
    {
        var key = Sha("key");
        await Store.AddAsync("u", key, T0);
        key[0] ^= 0xFF; // the caller's array changes afterwards
        Assert.Equal("u", (await Store.FindActiveByKeyHashAsync(Sha("key")))?.Name);
        var found = await Store.FindActiveByKeyHashAsync(Sha("key"));
        found!.Value.KeySha256[1] ^= 0xFF;
        Assert.Equal(Sha("key"), (await Store.FindActiveByKeyHashAsync(Sha("key")))!.Value.KeySha256);
    }

    [Fact]
    public async Task ADisposedStoreRefusesWork()
    {
        var s = Store;
        s.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => s.GetAsync("u"));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Record("u", false, Lenient, store: s));
        s.Dispose(); // twice is harmless
    }

    /// <summary>Used by derived suites: many entries in every state, to compare after reopening.</summary>
    protected static async Task<(LedgerEntry[] Entries, ApiUser[] Users)> Populate(ILedgerStore store)
    {
        var p = new TerminationPolicy(2, 0.5);
        for (int u = 0; u < 20; u++)
            for (int q = 0; q < u % 4; q++)
                await store.RecordAsync($"user-{u}", q % 2 == 0 || u % 3 == 0, $"req-{q}", p, At(u * 10 + q));
        var entries = new List<LedgerEntry>();
        for (int u = 0; u < 20; u++) if (await store.GetAsync($"user-{u}") is { } e) entries.Add(e);
        await store.AddAsync("alice", Sha("a"), At(1));
        await store.AddAsync("bob", Sha("b"), At(2));
        await store.RevokeAsync("bob", At(3));
        Assert.Contains(entries, e => e.IsTerminated);
        Assert.Contains(entries, e => !e.IsTerminated);
        return (entries.ToArray(), (await store.ListAsync()).ToArray());
    }

    protected static async Task AssertPopulated(ILedgerStore store, LedgerEntry[] entries, ApiUser[] users)
    {
        foreach (var e in entries) AssertEntry(e, await store.GetAsync(e.User));
        Assert.Equal(entries.Where(e => e.IsTerminated).OrderBy(e => e.TerminatedAt).ThenBy(e => e.User, StringComparer.Ordinal), await store.ListTerminatedAsync());
        Assert.Equal(users, await store.ListAsync());
        Assert.Equal("alice", (await store.FindActiveByKeyHashAsync(Sha("a")))?.Name);
        Assert.Null(await store.FindActiveByKeyHashAsync(Sha("b")));
        // The request ids survived too.
        var open = entries.First(e => !e.IsTerminated && e.Total > 0);
        var retry = await store.RecordAsync(open.User, true, "req-0", new TerminationPolicy(2, 0.5), At(999));
        AssertResult(RecordOutcome.AlreadyCounted, false, open, retry, "a request id recorded before");
    }
}
