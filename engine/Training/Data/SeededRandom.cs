using ModelGuardian.Engine.Core;

namespace ModelGuardian.Engine.Data;

/// <summary>
/// A <see cref="Random"/> whose sequence is defined here — xoshiro256** seeded through SplitMix64 — so a seed
/// gives the same crops, flips, blurs and batch orders on every machine and .NET version (the sequence of
/// <c>new Random(seed)</c> is an implementation detail of the runtime). Every virtual member of
/// <see cref="Random"/> is overridden, so code written against <see cref="Random"/> (all of
/// <see cref="Augmentations"/>) draws only from this generator. Not thread-safe, like <see cref="Random"/>:
/// give each worker its own, e.g. <see cref="ForItem"/>.
/// </summary>
public sealed class SeededRandom : Random
{
    private ulong _s0, _s1, _s2, _s3;

    public SeededRandom(ulong seed)
    {
        var sm = new SplitMix64(seed);
        _s0 = sm.Next(); _s1 = sm.Next(); _s2 = sm.Next(); _s3 = sm.Next();
    }

    /// <summary>
    /// An independent generator for one item of one epoch under a run's seed: a data loader that augments items
    /// on several threads, in any order, still gives each item the same draws.
    /// </summary>
    public static SeededRandom ForItem(ulong seed, long epoch, long index) => new(Mix(Mix(seed, (ulong)epoch), (ulong)index));

    /// <summary>Combines a seed with a stream number into a new, well-scattered seed.</summary>
    public static ulong Mix(ulong seed, ulong stream)
    {
        ulong z = seed ^ (stream + 0x9E3779B97F4A7C15UL) * 0xD1B54A32D192ED03UL;
        return SplitMix64.Step(ref z);
    }

    /// <summary>The next 64 raw bits.</summary>
    public ulong NextUInt64()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9, t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
        _s2 ^= t; _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform on [0, bound), unbiased (Lemire's multiply-and-reject).</summary>
    public ulong NextUInt64(ulong bound)
    {
        if (bound == 0) throw new ArgumentOutOfRangeException(nameof(bound), "The bound must be positive.");
        ulong high = Math.BigMul(NextUInt64(), bound, out ulong low);
        if (low < bound)
        {
            ulong threshold = (0UL - bound) % bound;
            while (low < threshold) high = Math.BigMul(NextUInt64(), bound, out low);
        }
        return high;
    }

    public override int Next() => (int)NextUInt64(int.MaxValue);

    public override int Next(int maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxValue);
        return maxValue == 0 ? 0 : (int)NextUInt64((ulong)maxValue);
    }

    public override int Next(int minValue, int maxValue)
    {
        if (minValue > maxValue) throw new ArgumentOutOfRangeException(nameof(minValue), $"minValue {minValue} exceeds maxValue {maxValue}.");
        return minValue == maxValue ? minValue : (int)(minValue + (long)NextUInt64((ulong)((long)maxValue - minValue)));
    }

    public override long NextInt64() => (long)NextUInt64(long.MaxValue);

    public override long NextInt64(long maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxValue);
        return maxValue == 0 ? 0 : (long)NextUInt64((ulong)maxValue);
    }

    public override long NextInt64(long minValue, long maxValue)
    {
        if (minValue > maxValue) throw new ArgumentOutOfRangeException(nameof(minValue), $"minValue {minValue} exceeds maxValue {maxValue}.");
        return minValue == maxValue ? minValue : unchecked(minValue + (long)NextUInt64((ulong)(maxValue - minValue)));
    }

    /// <summary>Uniform on [0, 1) with 53 random bits.</summary>
    public override double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    public override float NextSingle() => (NextUInt64() >> 40) * (1f / (1 << 24));

    protected override double Sample() => NextDouble();

    public override void NextBytes(byte[] buffer) => NextBytes(buffer.AsSpan());

    public override void NextBytes(Span<byte> buffer)
    {
        int i = 0;
        for (; i + 8 <= buffer.Length; i += 8) System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(buffer[i..], NextUInt64());
        if (i < buffer.Length)
        {
            ulong last = NextUInt64();
            for (; i < buffer.Length; i++, last >>= 8) buffer[i] = (byte)last;
        }
    }

    /// <summary>Standard normal (Box–Muller, one value per call).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble(), u2 = NextDouble();
        return BoxMuller.Normal(u1, u2);
    }
}
