using ModelGuardian.Engine.Defenses;

namespace ModelGuardian.Tests.Defenses;

public sealed class AdaptiveMisinformationTests
{
    private static readonly double[] Misinformation = [0.05, 0.05, 0.9];

    [Fact]
    public void Confident_queries_get_the_truth_and_unsure_ones_the_misinformation()
    {
        var am = new AdaptiveMisinformationDefense(new AdaptiveMisinformationOptions(Threshold: 0.8, Steepness: 1000));
        // Top probability 0.95: α = σ(1000·(0.8 − 0.95)) = e^−150, the truth to double precision.
        double[] confident = [0.95, 0.03, 0.02];
        Assert.Equal(confident, am.Apply(confident, Misinformation), (a, b) => Math.Abs(a - b) < 1e-15);
        // Top probability 0.5: α = 1 − e^−300, the misinformation model's answer.
        double[] unsure = [0.5, 0.3, 0.2];
        Assert.Equal(Misinformation, am.Apply(unsure, Misinformation), (a, b) => Math.Abs(a - b) < 1e-15);
        // At the threshold itself, half of each.
        double[] edge = [0.8, 0.1, 0.1];
        Assert.Equal(0.5, am.MisinformationWeight(edge), 12);
        var half = am.Apply(edge, Misinformation);
        for (int k = 0; k < 3; k++) Assert.Equal((edge[k] + Misinformation[k]) / 2, half[k], 12);
        Assert.Equal(1.0, half.Sum(), 12);
    }

    [Fact]
    public void The_blend_is_monotone_in_the_score_and_softer_with_a_smaller_steepness()
    {
        var sharp = new AdaptiveMisinformationDefense(new AdaptiveMisinformationOptions(0.8, 1000));
        var soft = new AdaptiveMisinformationDefense(new AdaptiveMisinformationOptions(0.8, 10));
        double previous = 1;
        foreach (double top in new[] { 0.4, 0.6, 0.79, 0.81, 0.9, 1.0 })
        {
            double[] y = [top, (1 - top) / 2, (1 - top) / 2];
            double a = sharp.MisinformationWeight(y);
            Assert.True(a <= previous, $"α rose from {previous} to {a} at top {top}");
            previous = a;
        }
        double[] near = [0.85, 0.1, 0.05];
        Assert.True(soft.MisinformationWeight(near) > 0.3 && sharp.MisinformationWeight(near) < 1e-20);
    }

    [Fact]
    public void Bad_settings_and_inputs_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new AdaptiveMisinformationDefense(new AdaptiveMisinformationOptions(1.5)));
        Assert.Throws<ArgumentException>(() => new AdaptiveMisinformationDefense(new AdaptiveMisinformationOptions(0.5, 0)));
        Assert.Throws<ArgumentException>(() => new AdaptiveMisinformationDefense(new AdaptiveMisinformationOptions(0.5, double.PositiveInfinity)));
        var am = new AdaptiveMisinformationDefense(new AdaptiveMisinformationOptions());
        Assert.Throws<ArgumentException>(() => am.Apply([0.5, 0.5], Misinformation));
        Assert.Throws<ArgumentException>(() => am.Apply([0.5, 0.6, 0.1], Misinformation));
        var e = Assert.Throws<ArgumentException>(() => Engine.Eval.BaselineDefenses.Create(Engine.Eval.DefenseIds.AdaptiveMisinformation, 0.5, 1, 3));
        Assert.Contains("misinformation", e.Message);
    }
}
