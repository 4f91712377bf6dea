using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;
using G = ModelGuardian.Engine.Guardian.Guardian;

namespace ModelGuardian.Tests.Guardian;

/// <summary>The Guardian's policy over a fake evaluator: what is answered, what is deceived, who is cut off and when.</summary>
public sealed class GuardianTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-guardian-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>Flags an image whose first value is above 127; probabilities are a fixed function of the image. Counts what it sees.</summary>
    private sealed class FakeModels : IModelEvaluator
    {
        public int ImagesSeen;

        public Task<Evaluation[]> EvaluateAsync(IReadOnlyList<PlanarImage> images, CancellationToken cancellationToken = default)
        {
            Interlocked.Add(ref ImagesSeen, images.Count);
            return Task.FromResult(images.Select(i =>
            {
                double a = i.Values[1] + 1, b = i.Values[2] + 1, c = 50;
                var p = new[] { a / (a + b + c), b / (a + b + c), c / (a + b + c) };
                bool flagged = i.Values[0] > 127;
                return new Evaluation(p, new DetectorVerdict(flagged, [flagged ? 0.9 : 0.1], 0f));
            }).ToArray());
        }
    }

    private static PlanarImage Image(bool synthetic, int a = 10, int b = 200)
    {
        var v = new float[3 * 2 * 2];
        v[0] = synthetic ? 200 : 20;
        v[1] = a;
        v[2] = b;
        return new PlanarImage(2, 2, v);
    }

    private (G Guardian, FakeModels Models, InMemoryLedger Ledger, FileAuditLog Audit) Make(int tau = 4, double delta = 0.5, double v = 0.5)
    {
        var models = new FakeModels();
        var ledger = new InMemoryLedger();
        var audit = new FileAuditLog(Path.Combine(_dir, $"audit-{Guid.NewGuid():N}.jsonl"));
        return (new G(models, ledger, audit, new GuardianOptions { Policy = new TerminationPolicy(tau, delta), DeceptionV = v }), models, ledger, audit);
    }

    [Fact]
    public void DPredsKeepsTheRankingAndSumsToOne()
    {
        var rng = new Random(5);
        foreach (double v in new[] { 0.05, 0.1, 0.5, 1.0, 2.0 })
        {
            for (int trial = 0; trial < 200; trial++)
            {
                int k = 2 + rng.Next(20);
                var p = Enumerable.Range(0, k).Select(_ => rng.NextDouble()).ToArray();
                double s = p.Sum();
                p = p.Select(x => x / s).ToArray();
                var d = DeceptivePredictions.Apply(p, v);
                Assert.Equal(1.0, d.Sum(), 1e-12);
                Assert.Equal(DeceptivePredictions.ArgMax(p), DeceptivePredictions.ArgMax(d));
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++)
                        if (p[i] < p[j]) Assert.True(d[i] < d[j]); // the whole ranking, not just the top
                Assert.All(d, x => Assert.True(x >= v / (1 + k * v) - 1e-15)); // the floor that betrays DPreds
            }
        }
    }

    [Fact]
    public async Task BenignQueriesGetTheTruthAndFlaggedOnesDPredsInTheSameForm()
    {
        var (g, _, _, audit) = Make(tau: 100);
        using var _a = audit;
        var benign = await g.QueryAsync("u", Image(false));
        var flagged = await g.QueryAsync("u", Image(true));
        var truth = (await new FakeModels().EvaluateAsync([Image(true)]))[0].Probabilities;
        Assert.Equal(truth, benign.Answer.Probabilities); // exactly the victim's softmax
        Assert.Equal(DeceptivePredictions.Apply(truth, 0.5), flagged.Answer.Probabilities);
        Assert.Equal((QueryStatus.Answered, 3, benign.Answer.Label), (flagged.Answer.Status, flagged.Answer.Probabilities.Length, flagged.Answer.Label));
        Assert.Equal(typeof(GuardianAnswer), flagged.Answer.GetType());
    }

    [Theory]
    // τ = 4, δ = 0.5: the query on which flagged/total first exceeds ½ with total ≥ 4 terminates.
    [InlineData("FFFF", 4)]
    [InlineData("FFBB", 0)]   // 2 of 4 is not more than half
    [InlineData("FFBBF", 5)]  // 3 of 5 is
    [InlineData("FFF", 0)]    // fewer than τ queries never terminate
    [InlineData("BBBBFFFFF", 9)] // 5 of 9
    [InlineData("BBBBFFFF", 0)]  // 4 of 8
    public async Task TerminatesOnExactlyTheQueryThePolicyNames(string pattern, int terminatingQuery)
    {
        var (g, _, ledger, audit) = Make();
        using var _a = audit;
        for (int i = 0; i < pattern.Length; i++)
        {
            var o = await g.QueryAsync("u", Image(pattern[i] == 'F'));
            Assert.Equal(QueryStatus.Answered, o.Answer.Status); // the terminating query itself is still answered
            Assert.Equal(i + 1 == terminatingQuery, o.Record!.TerminatedNow);
        }
        var entry = await ledger.GetAsync("u");
        Assert.Equal(pattern.Length, entry!.Total);
        Assert.Equal(pattern.Count(c => c == 'F'), entry.Flagged);
        Assert.Equal(terminatingQuery > 0, entry.IsTerminated);
    }

    [Fact]
    public async Task TerminatedUsersNeverReachTheModelsAndOthersAreUnaffected()
    {
        var (g, models, ledger, audit) = Make(tau: 2);
        using var _a = audit;
        await g.QueryAsync("attacker", Image(true));
        await g.QueryAsync("attacker", Image(true));
        int seen = models.ImagesSeen;
        for (int i = 0; i < 5; i++)
        {
            var o = await g.QueryAsync("attacker", Image(false));
            Assert.Equal(QueryStatus.Refused, o.Answer.Status);
            Assert.Empty(o.Answer.Probabilities);
            Assert.Null(o.Evaluation);
        }
        var batch = await g.QueryBatchAsync("attacker", [Image(false), Image(true)]);
        Assert.All(batch, o => Assert.Equal(QueryStatus.Refused, o.Answer.Status));
        Assert.Equal(seen, models.ImagesSeen);
        Assert.Equal(2, (await ledger.GetAsync("attacker"))!.Total); // refusals are not counted
        Assert.Equal(QueryStatus.Answered, (await g.QueryAsync("someone", Image(false))).Answer.Status);
    }

    [Fact]
    public async Task ABatchGivesExactlyTheOutcomesOfOneQueryAtATime()
    {
        var rng = new Random(3);
        var images = Enumerable.Range(0, 12).Select(_ => Image(rng.Next(3) > 0, rng.Next(255), rng.Next(255))).ToList();
        var (one, _, l1, a1) = Make(tau: 5);
        var (many, _, l2, a2) = Make(tau: 5);
        using var _a1 = a1;
        using var _a2 = a2;
        var sequential = new List<QueryOutcome>();
        foreach (var image in images) sequential.Add(await one.QueryAsync("u", image));
        var batched = await many.QueryBatchAsync("u", images);
        Assert.Contains(sequential, o => o.Answer.Status == QueryStatus.Refused); // the batch crosses the termination
        for (int i = 0; i < images.Count; i++)
        {
            Assert.Equal(sequential[i].Answer.Status, batched[i].Answer.Status);
            Assert.Equal(sequential[i].Answer.Probabilities, batched[i].Answer.Probabilities);
            Assert.Equal(sequential[i].Answer.Label, batched[i].Answer.Label);
        }
        var (e1, e2) = ((await l1.GetAsync("u"))!, (await l2.GetAsync("u"))!);
        Assert.Equal((e1.Total, e1.Flagged, e1.IsTerminated, e1.TerminationReason), (e2.Total, e2.Flagged, e2.IsTerminated, e2.TerminationReason));
    }

    [Fact]
    public async Task ARetriedRequestIsAnsweredAgainButCountedOnce()
    {
        var (g, _, ledger, audit) = Make(tau: 100);
        using var _a = audit;
        var first = await g.QueryAsync("u", Image(true), "req-1");
        var retry = await g.QueryAsync("u", Image(true), "req-1");
        Assert.Equal(first.Answer.Probabilities, retry.Answer.Probabilities);
        Assert.Equal(RecordOutcome.AlreadyCounted, retry.Record!.Outcome);
        Assert.Equal((1L, 1L), ((await ledger.GetAsync("u"))!.Total, (await ledger.GetAsync("u"))!.Flagged));
    }

    [Fact]
    public async Task FlagsAndTerminationsAreAudited()
    {
        var (g, _, _, audit) = Make(tau: 2);
        using (audit)
        {
            await g.QueryAsync("u", Image(false));
            await g.QueryAsync("u", Image(true));
            await g.QueryAsync("u", Image(true));
        }
        var lines = File.ReadAllLines(audit.Path);
        Assert.Equal(["flag", "flag", "termination"], lines.Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("kind").GetString()));
        Assert.True(FileAuditLog.Verify(audit.Path).Valid);
    }

    [Theory]
    [InlineData(20, 0.006, 1e-15)]
    [InlineData(20, 0.05, 1e-7)]
    [InlineData(20, 0.10, 1e-4)]
    public void ABenignUserIsEssentiallyNeverTerminatedAtTheDefaultTau(int tau, double fpr, double bound)
    {
        var p = TerminationRisk.ProbabilityWithin(new TerminationPolicy(tau, 0.5), fpr, 2000);
        Assert.InRange(p, 0, bound);
        // and the computation can tell a risky policy: τ = 1, δ = 0 terminates on the first flagged query
        Assert.Equal(1 - Math.Pow(1 - fpr, 50), TerminationRisk.ProbabilityWithin(new TerminationPolicy(1, 0.0), fpr, 50), 1e-12);
    }
}
