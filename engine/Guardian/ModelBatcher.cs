using System.Threading.Channels;
using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Engine.Guardian;

/// <summary>How concurrent queries are gathered into one batch on the device, and how many may wait.</summary>
public sealed record BatchingOptions
{
    /// <summary>Most images evaluated in one batch.</summary>
    public int MaxBatch { get; init; } = 8;
    /// <summary>How long the first query of a batch waits for company.</summary>
    public TimeSpan MaxWait { get; init; } = TimeSpan.FromMilliseconds(2);
    /// <summary>Queries that may wait; beyond this, <see cref="GuardianOverloadedException"/>.</summary>
    public int QueueCapacity { get; init; } = 256;
}

/// <summary>The evaluation queue is full: the caller should back off (HTTP 503).</summary>
public sealed class GuardianOverloadedException(string message) : Exception(message);

/// <summary>
/// Micro-batching: queries arriving together are evaluated as one batch (up to MaxBatch, waiting at
/// most MaxWait for the batch to fill) on one worker thread. The networks are batch-invariant (a
/// per-image minibatch-stddev D, ResNets whose every output depends only on its own image, and the
/// same summation order at any batch size), so a query gets bit for bit the answer it would get alone.
/// </summary>
public sealed class ModelBatcher : IModelEvaluator, IDisposable
{
    private sealed record Item(PlanarImage Image, TaskCompletionSource<Evaluation> Result, CancellationToken Cancellation);

    private readonly Func<IReadOnlyList<PlanarImage>, Evaluation[]> _evaluate;
    private readonly BatchingOptions _options;
    private readonly Channel<Item> _queue;
    private readonly Thread _worker;

    public ModelBatcher(GuardianModels models, BatchingOptions? options = null) : this(models.Evaluate, options) { }

    /// <param name="evaluate">Runs the models on one batch, on the batcher's worker thread.</param>
    public ModelBatcher(Func<IReadOnlyList<PlanarImage>, Evaluation[]> evaluate, BatchingOptions? options = null)
    {
        _evaluate = evaluate;
        _options = options ?? new BatchingOptions();
        if (_options.MaxBatch < 1 || _options.QueueCapacity < 1 || _options.MaxWait < TimeSpan.Zero)
            throw new ArgumentException("Batching needs MaxBatch ≥ 1, QueueCapacity ≥ 1 and a non-negative MaxWait.");
        _queue = Channel.CreateBounded<Item>(new BoundedChannelOptions(_options.QueueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _worker = new Thread(Run) { IsBackground = true, Name = "ModelGuardian model batcher" };
        _worker.Start();
    }

    public long BatchesRun => Interlocked.Read(ref _batches);
    private long _batches;

    public async Task<Evaluation[]> EvaluateAsync(IReadOnlyList<PlanarImage> images, CancellationToken cancellationToken = default)
    {
        var items = new Item[images.Count];
        for (int i = 0; i < images.Count; i++)
        {
            items[i] = new Item(images[i], new TaskCompletionSource<Evaluation>(TaskCreationOptions.RunContinuationsAsynchronously), cancellationToken);
            if (!_queue.Writer.TryWrite(items[i]))
            {
                for (int j = 0; j < i; j++) items[j].Result.TrySetCanceled(); // the ones already queued are skipped by the worker
                throw new GuardianOverloadedException($"The evaluation queue is full ({_options.QueueCapacity} queries waiting).");
            }
        }
        var results = new Evaluation[items.Length];
        for (int i = 0; i < items.Length; i++) results[i] = await items[i].Result.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return results;
    }

    private void Run()
    {
        var reader = _queue.Reader;
        var batch = new List<Item>(_options.MaxBatch);
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            batch.Clear();
            var deadline = DateTime.UtcNow + _options.MaxWait;
            while (batch.Count < _options.MaxBatch)
            {
                if (reader.TryRead(out var item))
                {
                    if (!item.Cancellation.IsCancellationRequested && !item.Result.Task.IsCompleted) batch.Add(item);
                    continue;
                }
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) break;
                // Wait briefly for more company, never past the deadline.
                using var cts = new CancellationTokenSource(left);
                try { if (!reader.WaitToReadAsync(cts.Token).AsTask().GetAwaiter().GetResult()) break; }
                catch (OperationCanceledException) { break; }
            }
            if (batch.Count == 0) continue;
            try
            {
                var results = _evaluate(batch.Select(b => b.Image).ToArray());
                for (int i = 0; i < batch.Count; i++) batch[i].Result.TrySetResult(results[i]);
            }
            catch (Exception e)
            {
                foreach (var b in batch) b.Result.TrySetException(e);
            }
            Interlocked.Increment(ref _batches);
        }
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _worker.Join();
    }
}
