using ModelGuardian.Kernels.Cpu;

namespace ModelGuardian.Tests.Kernels;

public sealed class WorkerPoolTests
{
    [Fact]
    public void EveryIndexRunsExactlyOnceAcrossManyJobs()
    {
        var pool = WorkerPool.Shared(2);
        for (int job = 0; job < 500; job++)
        {
            var hits = new int[37];
            pool.For(3, 37, i => Interlocked.Increment(ref hits[i]));
            Assert.All(hits.Skip(3), h => Assert.Equal(1, h));
            Assert.All(hits.Take(3), h => Assert.Equal(0, h));
        }
    }

    // 50 items, the `failing` ones throw: the caller gets the first failure's exception itself (not wrapped),
    // after all 50 ran — no half-finished output is left behind — whichever path the pool took. Several
    // failures only where the order is fixed (one thread).
    private static void AssertEveryItemRunsThenTheFirstExceptionIsRethrown(WorkerPool pool, params int[] failing)
    {
        int ran = 0;
        var e = Assert.Throws<InvalidOperationException>(() => pool.For(0, 50, i =>
        {
            Interlocked.Increment(ref ran);
            if (failing.Contains(i)) throw new InvalidOperationException($"item {i}");
        }));
        Assert.Equal($"item {failing[0]}", e.Message);
        Assert.Equal(50, ran);
    }

    [Fact]
    public void TheFirstExceptionReachesTheCallerAfterTheJobDrains()
    {
        var pool = WorkerPool.Shared(2);
        AssertEveryItemRunsThenTheFirstExceptionIsRethrown(pool, 7);
        pool.For(0, 4, _ => { }); // and the pool still works
    }

    [Fact]
    public void OnOneThreadEveryItemStillRunsAndTheFirstExceptionIsRethrownAsThrown()
    {
        AssertEveryItemRunsThenTheFirstExceptionIsRethrown(WorkerPool.Shared(1), 7, 9);
    }

    [Fact]
    public async Task ACallerThatFindsThePoolBusyGetsTheSameContract()
    {
        // Hold the shared pool with a job that waits, so the next caller takes the Parallel.For fallback:
        // it must still run every item and rethrow the first exception itself, not an AggregateException
        // (which a concurrent test's job made this test see once, depending on timing).
        var pool = WorkerPool.Shared(2);
        using var holding = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var holder = Task.Run(() => pool.For(0, 2, _ => { holding.Set(); release.Wait(); }));
        try
        {
            Assert.True(holding.Wait(TimeSpan.FromSeconds(30)), "the holding job never started");
            AssertEveryItemRunsThenTheFirstExceptionIsRethrown(pool, 7);
        }
        finally
        {
            release.Set();
            await holder.WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    [Fact]
    public void ConcurrentCallersAllComplete()
    {
        // Callers that find the pool busy fall back to Parallel.For instead of waiting for it.
        var pool = WorkerPool.Shared(2);
        long total = 0;
        Parallel.For(0, 8, _ =>
        {
            for (int job = 0; job < 50; job++) pool.For(0, 20, i => Interlocked.Add(ref total, i));
        });
        Assert.Equal(8L * 50 * 190, total);
    }
}
