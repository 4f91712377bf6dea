using ModelGuardian.Engine.Data;

namespace ModelGuardian.Tests.Data;

public class SeededRandomTests
{
    // xoshiro256** seeded through SplitMix64, computed independently (a few lines of Python): the sequence
    // must never change, or every seeded crop, augmentation and batch order of earlier runs would.
    [Theory]
    [InlineData(0UL, 0x99ec5f36cb75f2b4UL, 0xbf6e1f784956452aUL, 0x1a5f849d4933e6e0UL)]
    [InlineData(42UL, 0x15780b2e0c2ec716UL, 0x6104d9866d113a7eUL, 0xae17533239e499a1UL)]
    public void Sequence_is_pinned(ulong seed, ulong first, ulong second, ulong third)
    {
        var rng = new SeededRandom(seed);
        Assert.Equal([first, second, third], new[] { rng.NextUInt64(), rng.NextUInt64(), rng.NextUInt64() });
    }

    [Fact]
    public void Gaussians_are_pinned()
    {
        // Box–Muller with u1 = 1 − NextDouble(), u2 = NextDouble(), after the three draws above (Python, double, glibc).
        var rng = new SeededRandom(42);
        for (int i = 0; i < 3; i++) rng.NextUInt64();
        Assert.Equal([2.271267919543203, -0.3289716192061914], new[] { rng.NextGaussian(), rng.NextGaussian() });
    }

    [Fact]
    public void Bounded_draws_stay_in_range_and_cover_it()
    {
        var rng = new SeededRandom(7);
        var seen = new int[7];
        for (int i = 0; i < 7000; i++)
        {
            int v = rng.Next(3, 10);
            Assert.InRange(v, 3, 9);
            seen[v - 3]++;
        }
        Assert.All(seen, c => Assert.InRange(c, 850, 1150));
        for (int i = 0; i < 1000; i++)
        {
            Assert.InRange(rng.NextDouble(), 0.0, 0.9999999999999999);
            Assert.InRange(rng.Next(1), 0, 0);
        }
        Assert.Equal(5, rng.Next(5, 5));
    }

    [Fact]
    public void Item_generators_are_independent_of_order()
    {
        var a = SeededRandom.ForItem(1, 2, 3).NextUInt64();
        _ = SeededRandom.ForItem(1, 2, 4).NextUInt64();
        Assert.Equal(a, SeededRandom.ForItem(1, 2, 3).NextUInt64());
        Assert.NotEqual(a, SeededRandom.ForItem(1, 3, 2).NextUInt64());
        Assert.NotEqual(a, SeededRandom.ForItem(2, 2, 3).NextUInt64());
    }
}

public class BatchIteratorTests
{
    [Fact]
    public void Every_index_once_per_epoch_last_batch_short()
    {
        var it = new BatchIterator(count: 103, batchSize: 10, seed: 5);
        Assert.Equal(11, it.BatchesPerEpoch);
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var batches = it.Epoch(epoch).ToList();
            Assert.Equal(11, batches.Count);
            Assert.All(batches.Take(10), b => Assert.Equal(10, b.Indices.Length));
            Assert.Equal(3, batches[^1].Indices.Length);
            Assert.Equal(Enumerable.Range(0, 103), batches.SelectMany(b => b.Indices).Order());
            Assert.Equal(Enumerable.Range(0, 11), batches.Select(b => b.Number));
            Assert.All(batches, b => Assert.Equal(epoch, b.Epoch));
        }
    }

    [Fact]
    public void Deterministic_per_seed_and_epoch_and_shuffled()
    {
        var a = new BatchIterator(1000, 32, seed: 11);
        var b = new BatchIterator(1000, 32, seed: 11);
        var c = new BatchIterator(1000, 32, seed: 12);
        Assert.Equal(a.Order(0), b.Order(0));
        Assert.Equal(a.Run(3).SelectMany(x => x.Indices), b.Run(3).SelectMany(x => x.Indices));
        Assert.NotEqual(a.Order(0), c.Order(0));
        Assert.NotEqual(a.Order(0), a.Order(1));
        Assert.NotEqual(Enumerable.Range(0, 1000), a.Order(0));
        // An epoch's order does not depend on which epochs ran before it (resuming a run).
        Assert.Equal(a.Run(3).Where(x => x.Epoch == 2).SelectMany(x => x.Indices), b.Run(1, firstEpoch: 2).SelectMany(x => x.Indices));
    }

    [Fact]
    public void Drop_last_and_no_shuffle()
    {
        var it = new BatchIterator(103, 10, seed: 5, dropLast: true);
        var batches = it.Epoch(0).ToList();
        Assert.Equal(10, it.BatchesPerEpoch);
        Assert.Equal(10, batches.Count);
        Assert.All(batches, b => Assert.Equal(10, b.Indices.Length));
        var used = batches.SelectMany(b => b.Indices).ToList();
        Assert.Equal(100, used.Distinct().Count());
        Assert.Equal(new BatchIterator(103, 10, seed: 5).Order(0).Take(100), used);

        var plain = new BatchIterator(25, 10, seed: 5, shuffle: false).Run(2).ToList();
        Assert.Equal(6, plain.Count);
        Assert.Equal(Enumerable.Range(0, 25).Concat(Enumerable.Range(0, 25)), plain.SelectMany(b => b.Indices));

        Assert.Empty(new BatchIterator(0, 4, 1).Epoch(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BatchIterator(10, 0, 1));
    }
}
