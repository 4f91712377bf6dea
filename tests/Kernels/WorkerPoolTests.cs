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

    [Fact]
    public void TheFirstExceptionReachesTheCallerAfterTheJobDrains()
    {
        var pool = WorkerPool.Shared(2);
        int ran = 0;
        var e = Assert.Throws<InvalidOperationException>(() => pool.For(0, 50, i =>
        {
            Interlocked.Increment(ref ran);
            if (i == 7) throw new InvalidOperationException("item 7");
        }));
        Assert.Equal("item 7", e.Message);
        Assert.Equal(50, ran); // the other items still ran: no half-finished output is left behind by a worker
        pool.For(0, 4, _ => { }); // and the pool still works
    }

    [Fact]
    public void OnOneThreadEveryItemStillRunsAndTheFirstExceptionIsRethrownAsThrown()
    {
        var pool = WorkerPool.Shared(1);
        int ran = 0;
        var e = Assert.Throws<InvalidOperationException>(() => pool.For(0, 50, i =>
        {
            Interlocked.Increment(ref ran);
            if (i == 7 || i == 9) throw new InvalidOperationException($"item {i}");
        }));
        Assert.Equal("item 7", e.Message);
        Assert.Equal(50, ran);
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
            int ran = 0;
            var e = Assert.Throws<InvalidOperationException>(() => pool.For(0, 50, i =>
            {
                Interlocked.Increment(ref ran);
                if (i == 7) throw new InvalidOperationException("item 7");
            }));
            Assert.Equal("item 7", e.Message);
            Assert.Equal(50, ran);
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
