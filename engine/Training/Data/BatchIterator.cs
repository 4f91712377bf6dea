namespace ModelGuardian.Engine.Data;

/// <summary>One mini-batch: which epoch, its position in the epoch, and the dataset indices it holds.</summary>
public sealed record Batch(int Epoch, int Number, int[] Indices);

/// <summary>
/// Seeded, deterministic mini-batches of dataset indices. Each epoch is its own permutation of 0…count−1,
/// computed from (seed, epoch) alone: epoch e is the same whether or not epochs before it were run, so a
/// training run resumed at epoch e sees exactly the order an uninterrupted run would have.
/// Without <see cref="DropLast"/> every index appears exactly once per epoch and the last batch may be
/// short; with it, the count mod batch-size indices at the end of each epoch's permutation are left out.
/// </summary>
public sealed class BatchIterator
{
    public BatchIterator(int count, int batchSize, ulong seed, bool shuffle = true, bool dropLast = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        (Count, BatchSize, Seed, Shuffle, DropLast) = (count, batchSize, seed, shuffle, dropLast);
    }

    public int Count { get; }
    public int BatchSize { get; }
    public ulong Seed { get; }
    public bool Shuffle { get; }
    public bool DropLast { get; }

    public int BatchesPerEpoch => DropLast ? Count / BatchSize : (Count + BatchSize - 1) / BatchSize;

    /// <summary>The order of epoch <paramref name="epoch"/>: a Fisher–Yates shuffle under a generator seeded by (seed, epoch), or 0…count−1 without shuffling.</summary>
    public int[] Order(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        var order = new int[Count];
        for (int i = 0; i < Count; i++) order[i] = i;
        if (!Shuffle) return order;
        var rng = new SeededRandom(SeededRandom.Mix(Seed, (ulong)epoch));
        for (int i = Count - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>The batches of one epoch, in order; each <see cref="Batch.Indices"/> is a fresh array the caller may keep.</summary>
    public IEnumerable<Batch> Epoch(int epoch)
    {
        var order = Order(epoch);
        int batches = BatchesPerEpoch;
        for (int b = 0; b < batches; b++)
        {
            int start = b * BatchSize, length = Math.Min(BatchSize, Count - start);
            yield return new Batch(epoch, b, order.AsSpan(start, length).ToArray());
        }
    }

    /// <summary>Epochs <paramref name="firstEpoch"/> … <paramref name="firstEpoch"/> + <paramref name="epochs"/> − 1, one batch after another.</summary>
    public IEnumerable<Batch> Run(int epochs, int firstEpoch = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epochs);
        ArgumentOutOfRangeException.ThrowIfNegative(firstEpoch);
        for (int e = firstEpoch; e < firstEpoch + epochs; e++)
            foreach (var batch in Epoch(e)) yield return batch;
    }
}
