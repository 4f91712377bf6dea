using System.Diagnostics;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels.Reference;
using ModelGuardian.Weights;
using ModelGuardian.Weights.Format;
using ModelGuardian.Weights.Mapping;
using ModelGuardian.Weights.Sources;
using Xunit.Abstractions;

namespace ModelGuardian.Tests.Weights;

/// <summary>
/// Property test: valid files of every format, mutated at random thousands of times (bit flips,
/// overwritten bytes, extreme integers, truncation, inserted and deleted runs), must either load or
/// fail with <see cref="WeightFormatException"/> — no other exception, no crash, no hang. Half the
/// mutations land in the first 16 KiB, where headers and pickles live (the rest is mostly tensor
/// data, where a flip only changes a value). Seeds are fixed, so a failure names a reproducible case.
/// </summary>
public sealed class WeightFuzzTests(ITestOutputHelper output) : IDisposable
{
    // CI runs 600 per format (≈ 4,200 in all, ~25 s on 2 cores); MG_FUZZ_MUTATIONS / MG_FUZZ_SEED run deeper or other cases locally.
    private static readonly int MutationsPerFormat = int.TryParse(Environment.GetEnvironmentVariable("MG_FUZZ_MUTATIONS"), out int n) ? n : 600;
    private static readonly int SeedOffset = int.TryParse(Environment.GetEnvironmentVariable("MG_FUZZ_SEED"), out int s) ? s : 0;
    private static readonly TimeSpan PerCaseLimit = TimeSpan.FromSeconds(10);

    private readonly string _dir = Directory.CreateTempSubdirectory("mg-fuzz-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    public static TheoryData<string> Sources() => new()
    {
        "stylegan-d128-genforce.pth", "resnet18w8-cifar-legacy.pt", "resnet18w8-cifar.safetensors",
        "stylegan-d128-karras-protocol2.pkl", "stylegan-d128-karras-protocol4.pkl",
    };

    [Theory]
    [MemberData(nameof(Sources))]
    public void MutatedCheckpointsLoadOrFailWithOurException(string file)
    {
        var fixture = WeightFixtures.Named(file);
        Fuzz(File.ReadAllBytes(fixture.Path), Path.GetExtension(file), path =>
        {
            using var c = Checkpoint.Open(path);
            StateDictMapping.Map(c, fixture.Architecture);
        }, seed: file.Length);
    }

    [Fact]
    public void MutatedWeightFilesLoadOrFailWithOurException()
    {
        var bytes = SmallWeightFile();
        Fuzz(bytes, ".mgw", path =>
        {
            using var k = new ReferenceKernels();
            ModelFiles.Load(k, path).Network.Dispose();
        }, seed: 1);
    }

    /// <summary>The payload mutated and the checksum recomputed, so the parser behind the checksum is fuzzed too.</summary>
    [Fact]
    public void MutatedPayloadsWithForgedChecksumsLoadOrFailWithOurException()
    {
        var bytes = SmallWeightFile();
        // [fixarray 4][fixstr magic][fixint 1][bin32 len][payload][bin8 32][sha256]
        int payloadStart = 1 + 1 + WeightFile.Magic.Length + 1 + 5, checksumLength = 2 + 32;
        Assert.Equal(0xc6, bytes[payloadStart - 5]);
        var payload = bytes[payloadStart..^checksumLength];
        Fuzz(payload, ".mgw", path =>
        {
            var mutated = File.ReadAllBytes(path);
            var w = new System.Buffers.ArrayBufferWriter<byte>();
            var m = new MessagePack.MessagePackWriter(w);
            m.WriteArrayHeader(4);
            m.Write(WeightFile.Magic);
            m.Write(1);
            m.Write(mutated);
            m.Write(System.Security.Cryptography.SHA256.HashData(mutated));
            m.Flush();
            File.WriteAllBytes(path, w.WrittenSpan.ToArray());
            using var k = new ReferenceKernels();
            ModelFiles.Load(k, path).Network.Dispose();
        }, seed: 2);
    }

    private byte[] SmallWeightFile()
    {
        var arch = ArchitectureDescriptor.StyleGanD(16, fmapBase: 64, fmapMax: 8);
        using var k = new ReferenceKernels();
        var (net, tensors) = RandomWeights.Create(k, arch, 5);
        net.Dispose();
        string path = Path.Combine(_dir, "valid.mgw");
        WeightFile.Save(path, arch, tensors, new Provenance("x", "", "test", "test", DateTimeOffset.UnixEpoch, []));
        return File.ReadAllBytes(path);
    }

    private void Fuzz(byte[] original, string extension, Action<string> load, int seed)
    {
        seed += SeedOffset;
        var rng = new Random(seed);
        int loaded = 0, refused = 0;
        string path = Path.Combine(_dir, "case" + extension);
        for (int i = 0; i < MutationsPerFormat; i++)
        {
            var (mutated, what) = Mutate(original, rng);
            File.WriteAllBytes(path, mutated);
            Exception? unexpected = null;
            bool ok = false;
            var worker = new Thread(() =>
            {
                try { load(path); ok = true; }
                catch (WeightFormatException) { }
                catch (Exception e) { unexpected = e; }
            }, 16 << 20);
            var sw = Stopwatch.StartNew();
            worker.Start();
            Assert.True(worker.Join(PerCaseLimit), $"case {i} (seed {seed}, {what}) did not finish within {PerCaseLimit.TotalSeconds} s");
            if (unexpected != null) Assert.Fail($"case {i} (seed {seed}, {what}) threw {unexpected.GetType().Name}: {unexpected}");
            if (ok) loaded++; else refused++;
        }
        output.WriteLine($"{MutationsPerFormat} mutations: {loaded} loaded, {refused} refused with WeightFormatException");
        Assert.True(refused > 0, "no mutation was refused: the mutations do not reach the parser");
    }

    private static (byte[] Bytes, string What) Mutate(byte[] original, Random rng)
    {
        int Position(int length) => rng.Next(2) == 0 ? rng.Next(Math.Min(length, 16384)) : rng.Next(length);
        var b = (byte[])original.Clone();
        switch (rng.Next(6))
        {
            case 0:
            {
                int flips = 1 + rng.Next(4);
                for (int f = 0; f < flips; f++) b[Position(b.Length)] ^= (byte)(1 << rng.Next(8));
                return (b, $"{flips} bit flip(s)");
            }
            case 1:
            {
                int at = Position(b.Length), n = Math.Min(1 + rng.Next(8), b.Length - at);
                for (int j = 0; j < n; j++) b[at + j] = (byte)rng.Next(256);
                return (b, $"{n} random byte(s) at {at}");
            }
            case 2:
            {
                // An extreme little- or big-endian integer where a length or count may sit.
                int at = Position(b.Length - 8);
                ulong[] extremes = [0, 0x7fffffff, 0xffffffff, 0x80000000, ulong.MaxValue, 1UL << 40, 0x7fffffffffffffff];
                var v = BitConverter.GetBytes(extremes[rng.Next(extremes.Length)]);
                if (rng.Next(2) == 0) Array.Reverse(v);
                int n = rng.Next(2) == 0 ? 4 : 8;
                Array.Copy(v, 0, b, at, n);
                return (b, $"extreme {n}-byte integer at {at}");
            }
            case 3:
            {
                int keep = rng.Next(b.Length);
                return (b[..keep], $"truncated to {keep} bytes");
            }
            case 4:
            {
                int at = Position(b.Length), n = Math.Min(1 + rng.Next(64), b.Length - at);
                return ([.. b[..at], .. b[(at + n)..]], $"{n} byte(s) deleted at {at}");
            }
            default:
            {
                int at = Position(b.Length), n = 1 + rng.Next(64);
                var junk = new byte[n];
                rng.NextBytes(junk);
                return ([.. b[..at], .. junk, .. b[at..]], $"{n} byte(s) inserted at {at}");
            }
        }
    }
}
