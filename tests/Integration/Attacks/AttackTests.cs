using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels.Cpu;

namespace ModelGuardian.Tests.Attacks;

/// <summary>Small victims and attack settings that run in a second or two.</summary>
internal static class TinyAttack
{
    public const int Classes = 10;

    /// <summary>A randomly initialised CIFAR-stem ResNet-18 of width 2 as the victim (what it computes does not matter here).</summary>
    public static Network Victim(CpuKernels k, ulong seed = 3)
    {
        var arch = ArchitectureDescriptor.ResNet(18, Classes, ResNetStem.Cifar, 32, width: 2);
        using var net = TrainableNetwork.ResNet(k, arch, seed);
        return Network.Create(k, arch, net.Export());
    }

    public static CloneTestSet TestSet(int n = 20)
    {
        var rng = new Random(5);
        var images = Enumerable.Range(0, n).Select(_ => new PlanarImage(32, 32, Enumerable.Range(0, 3 * 32 * 32).Select(_ => (float)rng.Next(256)).ToArray())).ToList();
        return new CloneTestSet(images, images.Select((_, i) => i % Classes).ToList());
    }

    public static AttackOptions Options(AttackKind kind, long budget, ulong seed = 1) => AttackOptions.For(kind, budget, seed) with
    {
        BatchSize = 4, StudentWidth = 2, GeneratorWidth = 8, EvaluationPoints = 3, ReplayCapacity = 64,
        Directions = kind == AttackKind.Maze ? 3 : 1, ProxyPretrainSteps = kind == AttackKind.DfmsHl ? 2 : 0,
    };

    /// <summary>Smooth random colour fields standing in for proxy photos.</summary>
    public sealed class SmoothProxy : IProxyImages
    {
        public float[] Next(int n, Random rng)
        {
            var x = new float[n * 3 * 32 * 32];
            for (int i = 0; i < n; i++)
                for (int c = 0; c < 3; c++)
                {
                    double a = rng.NextDouble(), fx = rng.NextDouble() * 0.3, fy = rng.NextDouble() * 0.3;
                    for (int y = 0; y < 32; y++)
                        for (int xx = 0; xx < 32; xx++) x[((i * 3 + c) * 32 + y) * 32 + xx] = (float)(0.5 + 0.5 * a * Math.Sin(fx * xx + fy * y));
                }
            return x;
        }
    }

    public static DataFreeAttack Create(CpuKernels k, AttackKind kind, AttackOptions o) => AttackFactory.Create(kind, k, Classes, o, new SmoothProxy());
}

/// <summary>A client that records what it forwards, to compare query streams.</summary>
internal sealed class LoggingClient(IVictimClient inner) : IVictimClient
{
    public BudgetedClient Meter { get; } = new(inner, long.MaxValue, keepLog: true);
    public int Classes => inner.Classes;
    public Task<VictimAnswer[]> QueryAsync(QueryBatch batch, CancellationToken cancellationToken = default) => Meter.QueryAsync(batch, cancellationToken);
}

public sealed class AttackTests
{
    public static TheoryData<AttackKind> Kinds => new(Enum.GetValues<AttackKind>());

    /// <summary>
    /// Every attack spends exactly its budget — 37 is chosen so that no attack's per-iteration cost divides
    /// it (the last iteration must shrink its batches) — and its clone is measured before the first query and at the end.
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task EachAttackSpendsExactlyItsBudget(AttackKind kind)
    {
        using var k = new CpuKernels();
        using var victim = TinyAttack.Victim(k);
        var client = new LoggingClient(new DefendedVictimClient(new VictimClassifier(victim), new NoDefense()));
        using var attack = TinyAttack.Create(k, kind, TinyAttack.Options(kind, 37));
        var result = await attack.RunAsync(client, TinyAttack.TestSet());
        Assert.Equal(37, result.QueriesSpent);
        Assert.Equal(37, result.QueriesAnswered);
        Assert.Equal(37, client.Meter.Spent);
        Assert.False(result.Terminated);
        Assert.Equal(0, result.Curve[0].Queries);
        Assert.Equal(37, result.Curve[^1].Queries);
        Assert.All(result.Curve, p => Assert.InRange(p.CloneAccuracy, 0, 1));
        Assert.Equal(result.Curve.Select(p => p.Queries).Order(), result.Curve.Select(p => p.Queries));
    }

    /// <summary>Same seed, same queries and answers, bit for bit (the CPU backend is deterministic); another seed, other queries.</summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task AttacksAreDeterministicForASeed(AttackKind kind)
    {
        async Task<IReadOnlyList<QueryLogEntry>> Run(ulong seed)
        {
            using var k = new CpuKernels();
            using var victim = TinyAttack.Victim(k);
            var client = new LoggingClient(new DefendedVictimClient(new VictimClassifier(victim), new NoDefense()));
            using var attack = TinyAttack.Create(k, kind, TinyAttack.Options(kind, 30, seed));
            await attack.RunAsync(client, TinyAttack.TestSet(4));
            return client.Meter.Log;
        }
        var a = await Run(1);
        var b = await Run(1);
        var c = await Run(2);
        Assert.Equal(a.Select(e => e.ImageSha256), b.Select(e => e.ImageSha256));
        Assert.Equal(a.SelectMany(e => e.Probabilities), b.SelectMany(e => e.Probabilities));
        Assert.NotEqual(a.Select(e => e.ImageSha256), c.Select(e => e.ImageSha256));
    }

    /// <summary>
    /// The evasive attacker: with a blur or a JPEG re-encoding at the end of its generator, every attack still spends its budget.
    /// Where the first query comes before any generator step (DFME, MAZE, DaST), it is exactly the blurred (or re-encoded) first
    /// batch of the same attack without it (neither draws random numbers); the white-box attacks step their generator through it
    /// before querying, so for them the first batch is only required to be much smoother (half the mean squared difference of
    /// neighbouring pixels), or on the byte grid that a decoded JPEG lies on.
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task TheEvasiveAttackerSendsItsGeneratorsImagesBlurred(AttackKind kind)
    {
        async Task<(float[] First, long Spent)> Run(double blur, int jpeg = 0)
        {
            using var k = new CpuKernels();
            using var victim = TinyAttack.Victim(k);
            var client = new FirstBatchClient(new DefendedVictimClient(new VictimClassifier(victim), new NoDefense()));
            using var attack = TinyAttack.Create(k, kind, TinyAttack.Options(kind, 37) with { ImageBlur = blur, ImageJpeg = jpeg });
            var r = await attack.RunAsync(client, TinyAttack.TestSet(4));
            return (client.First!, r.QueriesSpent);
        }
        var plain = await Run(0);
        var blurred = await Run(1.0);
        var compressed = await Run(0, jpeg: 50);
        Assert.Equal(37, blurred.Spent);
        Assert.Equal(37, compressed.Spent);
        if (kind is AttackKind.Dfme or AttackKind.Maze or AttackKind.Dast)
        {
            Assert.Equal(new ImageBlur(1.0).Forward(plain.First, 32), blurred.First);
            Assert.Equal(ImageEvasion.Jpeg(plain.First, 32, 50), compressed.First);
        }
        else
        {
            Assert.True(Roughness(blurred.First) < 0.5 * Roughness(plain.First), $"{kind}: roughness {Roughness(blurred.First):G3} blurred, {Roughness(plain.First):G3} plain");
            // Every JPEG output is a decoded image: values on the byte grid.
            Assert.All(compressed.First, v => Assert.Equal(Math.Round(v * 255), v * 255, 3));
        }
    }

    private static double Roughness(float[] planes) =>
        Enumerable.Range(0, planes.Length).Where(i => i % 32 != 31).Average(i => (double)(planes[i + 1] - planes[i]) * (planes[i + 1] - planes[i]));

    private sealed class FirstBatchClient(IVictimClient inner) : IVictimClient
    {
        public float[]? First { get; private set; }
        public int Classes => inner.Classes;

        public Task<VictimAnswer[]> QueryAsync(QueryBatch batch, CancellationToken cancellationToken = default)
        {
            First ??= Enumerable.Range(0, batch.Count).SelectMany(i => batch.Image(i).ToArray()).ToArray();
            return inner.QueryAsync(batch, cancellationToken);
        }
    }

    /// <summary>A training signal reaches the clone: after a DFME run of 400 queries the student's parameters have moved.</summary>
    [Fact]
    public async Task TheCloneIsTrained()
    {
        using var k = new CpuKernels();
        using var victim = TinyAttack.Victim(k);
        using var attack = TinyAttack.Create(k, AttackKind.Dfme, TinyAttack.Options(AttackKind.Dfme, 200));
        var before = attack.Student.Export().Tensors.ToDictionary(t => t.Key, t => t.Value.Data.ToArray());
        await attack.RunAsync(new DefendedVictimClient(new VictimClassifier(victim), new NoDefense()), TinyAttack.TestSet(4));
        var after = attack.Student.Export();
        Assert.Contains(before, kv => !kv.Value.AsSpan().SequenceEqual(after[kv.Key].Data));
    }

    /// <summary>Against a Guardian that terminates, the attack stops at the refusal: it has spent less than its budget and says it was cut off.</summary>
    [Fact]
    public async Task AnAttackStopsWhenItsAccountIsTerminated()
    {
        using var k = new CpuKernels();
        using var victim = TinyAttack.Victim(k);
        using var ledger = new InMemoryLedger();
        var guardian = new Engine.Guardian.Guardian(new AlwaysFlagging(new VictimClassifier(victim)), ledger, new NullAudit(), new GuardianOptions { Policy = new TerminationPolicy(5, 0.5) });
        using var attack = TinyAttack.Create(k, AttackKind.Dfme, TinyAttack.Options(AttackKind.Dfme, 100));
        var result = await attack.RunAsync(new GuardianVictimClient(guardian, "mallory", TinyAttack.Classes), TinyAttack.TestSet(4));
        Assert.True(result.Terminated);
        Assert.True(result.QueriesSpent < 100);
        Assert.Equal(5, result.QueriesAnswered); // the 5th query reaches τ with every query flagged: answered, then the account is closed
        Assert.Equal(5, (await ledger.GetAsync("mallory"))!.Total);
    }

    /// <summary>
    /// Every attack honours <see cref="AttackOptions.ReplaySteps"/> (no recipe setting may be silently ignored): the same run with
    /// replay steps ends with another clone than without.
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task EveryAttackHonoursReplaySteps(AttackKind kind)
    {
        async Task<float[]> CloneOutputs(int replaySteps)
        {
            using var k = new CpuKernels();
            using var victim = TinyAttack.Victim(k);
            var client = new DefendedVictimClient(new VictimClassifier(victim), new NoDefense());
            using var attack = TinyAttack.Create(k, kind, TinyAttack.Options(kind, 30) with { ReplaySteps = replaySteps });
            await attack.RunAsync(client, TinyAttack.TestSet(4));
            attack.Student.Mode.IsTraining = false;
            var x = Enumerable.Range(0, 2 * 3 * 32 * 32).Select(i => (float)Math.Sin(i * 0.37)).ToArray();
            return attack.Student.Forward(x, new Engine.Core.Shape4(2, 3, 32, 32));
        }
        Assert.NotEqual(await CloneOutputs(0), await CloneOutputs(2));
    }

    /// <summary>DFMS-HL's pre-training on the proxy spends no queries, and the generator it leaves sends other first queries.</summary>
    [Fact]
    public async Task DfmsProxyPretrainingCostsNoQueries()
    {
        async Task<IReadOnlyList<QueryLogEntry>> Run(int steps)
        {
            using var k = new CpuKernels();
            using var victim = TinyAttack.Victim(k);
            var client = new LoggingClient(new DefendedVictimClient(new VictimClassifier(victim), new NoDefense()));
            using var attack = TinyAttack.Create(k, AttackKind.DfmsHl, TinyAttack.Options(AttackKind.DfmsHl, 12) with { ProxyPretrainSteps = steps });
            var result = await attack.RunAsync(client, TinyAttack.TestSet(4));
            Assert.Equal(12, result.QueriesSpent);
            return client.Meter.Log;
        }
        var without = await Run(0);
        var with = await Run(3);
        Assert.Equal(12, with.Count);
        Assert.NotEqual(without[0].ImageSha256, with[0].ImageSha256);
    }

    /// <summary>
    /// A run handed a pre-trained GAN (as an evaluation shares one between defences) sends the same queries, bit for bit,
    /// as a run that pre-trains its own; and a GAN pre-trained for another seed sends others.
    /// </summary>
    [Fact]
    public async Task DfmsSharedPretrainingEqualsItsOwn()
    {
        using var k = new CpuKernels();
        using var victim = TinyAttack.Victim(k);
        var options = TinyAttack.Options(AttackKind.DfmsHl, 12) with { ProxyPretrainSteps = 3 };
        async Task<IReadOnlyList<QueryLogEntry>> Run(PretrainedGan? gan)
        {
            var client = new LoggingClient(new DefendedVictimClient(new VictimClassifier(victim), new NoDefense()));
            using var attack = (DfmsHlAttack)TinyAttack.Create(k, AttackKind.DfmsHl, options);
            if (gan != null) attack.UsePretrained(gan);
            await attack.RunAsync(client, TinyAttack.TestSet(4));
            return client.Meter.Log;
        }
        PretrainedGan Pretrained(AttackOptions o)
        {
            using var maker = (DfmsHlAttack)TinyAttack.Create(k, AttackKind.DfmsHl, o);
            var gan = maker.Pretrain();
            Assert.Throws<InvalidOperationException>(() => maker.Pretrain());
            return gan;
        }
        var own = await Run(null);
        var shared = await Run(Pretrained(options));
        var other = await Run(Pretrained(options with { Seed = 2 }));
        Assert.Equal(12, own.Count);
        Assert.Equal(own.Select(e => e.ImageSha256), shared.Select(e => e.ImageSha256));
        Assert.NotEqual(own[0].ImageSha256, other[0].ImageSha256);
        Assert.Equal(DfmsHlAttack.PretrainingKey(options), DfmsHlAttack.PretrainingKey(options with { Budget = 99, ReplaySteps = 1 }));
        Assert.NotEqual(DfmsHlAttack.PretrainingKey(options), DfmsHlAttack.PretrainingKey(options with { ImageBlur = 1 }));
    }

    [Fact]
    public void BadOptionsAreRefused()
    {
        using var k = new CpuKernels();
        Assert.Throws<ArgumentException>(() => TinyAttack.Create(k, AttackKind.Dfme, TinyAttack.Options(AttackKind.Dfme, 0)));
        Assert.Throws<ArgumentException>(() => TinyAttack.Create(k, AttackKind.Dfme, TinyAttack.Options(AttackKind.Dfme, 10) with { BatchSize = 1 }));
        Assert.Throws<ArgumentException>(() => TinyAttack.Create(k, AttackKind.DfmsHl, TinyAttack.Options(AttackKind.DfmsHl, 10) with { ProxyPretrainSteps = -1 }));
        Assert.Throws<ArgumentException>(() => AttackFactory.Create(AttackKind.DfmsHl, k, 10, TinyAttack.Options(AttackKind.DfmsHl, 10)));
        Assert.Throws<ArgumentException>(() => new QueryBatch([0.5f, 2f, 0f], 1, 1));
    }

    private sealed class AlwaysFlagging(VictimClassifier victim) : IModelEvaluator
    {
        public Task<Evaluation[]> EvaluateAsync(IReadOnlyList<PlanarImage> images, CancellationToken cancellationToken = default)
            => Task.FromResult(victim.Predict(images).Select(p => new Evaluation(p, new DetectorVerdict(true, [1.0], 0f))).ToArray());
    }

    private sealed class NullAudit : IAuditLog
    {
        public Task AppendAsync(string kind, string? user, IReadOnlyDictionary<string, object?> details, CancellationToken cancellationToken = default) => Task.CompletedTask;
    }
}
