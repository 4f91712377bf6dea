using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Kernels.Cpu;
using ModelGuardian.Weights;

namespace ModelGuardian.Tests.Attacks;

/// <summary>
/// Against the built-in default victim, an attack's first query batch must reach more than one of its classes:
/// a clone whose every answer is one class learns nothing (the failure of the colour, sigmoid-headed
/// generators, whose first hundreds of queries the victim all labels "bag").
/// </summary>
public sealed class FirstQueriesTests
{
    private static string Dir => Path.Combine(AppContext.BaseDirectory, "default-models");

    [Theory]
    [InlineData(AttackKind.Dfme)]
    [InlineData(AttackKind.Disguide)]
    [InlineData(AttackKind.DualStudent)]
    [InlineData(AttackKind.Maze)]
    public async Task TheFirstBatchReachesSeveralOfTheVictimsClasses(AttackKind kind)
    {
        var classes = await FirstAnswersClasses(kind, o => o);
        Assert.True(classes.Count >= 3, $"{kind}: 128 first queries reached {classes.Count} class(es): {string.Join(", ", classes)}");
    }

    /// <summary>The counter-example the test above guards against: the colour head's first batch is one class.</summary>
    [Fact]
    public async Task TheColourHeadsFirstBatchIsOneClass() =>
        Assert.Single(await FirstAnswersClasses(AttackKind.Dfme, o => o with { GreyImages = false, ImageShift = 0 }));

    // The victim's top-1 classes over the attack's first 128 queries.
    private static async Task<HashSet<int>> FirstAnswersClasses(AttackKind kind, Func<AttackOptions, AttackOptions> change)
    {
        using var k = new CpuKernels();
        var (net, _) = ModelFiles.Load(k, Path.Combine(Dir, "victim.mgw"));
        using var _n = net;
        var victim = new VictimClassifier(net);
        var options = change(AttackOptions.For(kind, budget: 128) with { StudentWidth = 2, EvaluationPoints = 1 });
        var client = new LoggingClient(new DefendedVictimClient(victim, new NoDefense()));
        using var attack = AttackFactory.Create(kind, k, victim.Classes, options);
        await attack.RunAsync(client, TinyAttack.TestSet(2));
        return client.Meter.Log.Select(e => DeceptivePredictions.ArgMax(e.Probabilities)).ToHashSet();
    }
}
