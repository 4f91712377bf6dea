using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace ModelGuardian.Kernels.Cpu;

/// <summary>
/// A parallel-for for kernels that run a few hundred microseconds each, hundreds of times per
/// network call. Parallel.For hands work to thread-pool threads that block between calls, and
/// waking a blocked thread on this kind of virtual machine was measured at 200–350 µs — as long
/// as a whole 7×7 layer. Here the caller works too, and the workers (threads − 1 of them) spin
/// for <see cref="SpinAfterJob"/> after each job before they block, so back-to-back layers find
/// them awake. Only one job runs at a time; a caller that finds the pool busy (another thread's
/// network) falls back to Parallel.For, so concurrent callers are never serialised.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    private static readonly TimeSpan SpinAfterJob = TimeSpan.FromMilliseconds(2);

    private sealed class Job(Action<int> body, int from, int to)
    {
        public readonly Action<int> Body = body;
        public readonly int From = from, To = to;
        public int Next = from;
        public int Pending = to - from;
        public ExceptionDispatchInfo? Error;

        // Takes and runs items until none are left.
        public void Work()
        {
            int i;
            while ((i = Interlocked.Increment(ref Next) - 1) < To)
            {
                try { Run(Body, i, ref Error); }
                finally { Interlocked.Decrement(ref Pending); }
            }
        }
    }

    private readonly object _gate = new();
    private readonly ManualResetEventSlim _wake = new(false, spinCount: 0);
    private readonly ParallelOptions _fallback;
    private readonly Thread[] _workers;
    private Job? _job;
    private volatile bool _disposed;

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, WorkerPool> s_shared = new();

    /// <summary>The process-wide pool for a thread count: backends share workers rather than each starting their own.</summary>
    public static WorkerPool Shared(int threads) => s_shared.GetOrAdd(threads, t => new WorkerPool(t));

    private WorkerPool(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "At least one thread.");
        Threads = threads;
        _fallback = new ParallelOptions { MaxDegreeOfParallelism = threads };
        _workers = new Thread[threads - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"mg-cpu-worker-{i}" };
            _workers[i].Start();
        }
    }

    public int Threads { get; }

    /// <summary>
    /// Runs body(i) for every i in [from, to) on the caller and the workers, then rethrows the first
    /// exception as thrown. Every item runs even when one throws, whichever path runs the job (the pool,
    /// the caller alone, or the Parallel.For fallback when the pool is busy), so a caller never sees a
    /// different exception type, or a half-run job, depending on what else the process was doing.
    /// </summary>
    public void For(int from, int to, Action<int> body)
    {
        if (to - from <= 0) return;
        if (Threads == 1 || to - from == 1)
        {
            ExceptionDispatchInfo? error = null;
            for (int i = from; i < to; i++) Run(body, i, ref error);
            error?.Throw();
            return;
        }
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!Monitor.TryEnter(_gate))
        {
            // Parallel.For would stop scheduling at the first exception and wrap it in an AggregateException.
            ExceptionDispatchInfo? error = null;
            Parallel.For(from, to, _fallback, i => Run(body, i, ref error));
            error?.Throw();
            return;
        }
        try
        {
            var job = new Job(body, from, to);
            Volatile.Write(ref _job, job);
            _wake.Set();
            job.Work();
            var spin = new SpinWait();
            while (Volatile.Read(ref job.Pending) > 0) spin.SpinOnce(sleep1Threshold: -1);
            job.Error?.Throw();
        }
        finally
        {
            Monitor.Exit(_gate);
        }
    }

    // One item; the first exception of a job is kept (later ones are dropped).
    private static void Run(Action<int> body, int i, ref ExceptionDispatchInfo? error)
    {
        try { body(i); }
        catch (Exception e) { Interlocked.CompareExchange(ref error, ExceptionDispatchInfo.Capture(e), null); }
    }

    private void WorkerLoop()
    {
        Job? seen = null;
        var clock = new Stopwatch();
        while (!_disposed)
        {
            var job = Volatile.Read(ref _job);
            if (job != seen && job is not null)
            {
                seen = job;
                job.Work();
                clock.Restart();
                continue;
            }
            if (clock.IsRunning && clock.Elapsed < SpinAfterJob)
            {
                Thread.SpinWait(64);
                continue;
            }
            // Block until the next job. Reset, then look again: a job published after the look sets the event.
            _wake.Reset();
            if (Volatile.Read(ref _job) != seen || _disposed) continue;
            _wake.Wait();
            clock.Reset();
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _wake.Set();
        foreach (var w in _workers) w.Join();
        _wake.Dispose();
    }
}
