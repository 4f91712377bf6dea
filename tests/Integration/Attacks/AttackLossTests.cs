using ModelGuardian.Engine.Attacks;

namespace ModelGuardian.Tests.Attacks;

/// <summary>The attacks' own losses: gradients against central finite differences (h = 1e-2 in float logits, agreement within 3e-4 absolute), and known values.</summary>
public sealed class AttackLossTests
{
    private const int K = 4;

    private static void AssertGradient(string name, float[] z, Func<float[], double> f, float[] grad)
    {
        for (int i = 0; i < z.Length; i++)
        {
            const float h = 1e-2f;
            var up = (float[])z.Clone(); up[i] += h;
            var down = (float[])z.Clone(); down[i] -= h;
            double fd = (f(up) - f(down)) / (2 * h);
            Assert.True(Math.Abs(fd - grad[i]) < 3e-4, $"{name}: ∂/∂z{i} = {grad[i]}, finite difference {fd}");
        }
    }

    private static double[][] Probabilities(int rows, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, rows).Select(_ =>
        {
            var p = Enumerable.Range(0, K).Select(_ => rng.NextDouble() + 0.05).ToArray();
            double s = p.Sum();
            return p.Select(v => v / s).ToArray();
        }).ToArray();
    }

    [Fact]
    public void GradientsMatchFiniteDifferences()
    {
        var a = TestUtil.Random(3 * K, 1, 2f);
        var b = TestUtil.Random(3 * K, 2, 2f);
        var target = Probabilities(3, 3);
        AssertGradient("class diversity", a, z => AttackLosses.ClassDiversity(z, K).Loss, AttackLosses.ClassDiversity(a, K).Gradient);
        AssertGradient("probability MSE", a, z => AttackLosses.ProbabilityMse(z, target, K).Loss, AttackLosses.ProbabilityMse(a, target, K).Gradient);
        var (_, ga, gb) = AttackLosses.SoftmaxDisagreement(a, b, K);
        AssertGradient("disagreement (first)", a, z => AttackLosses.SoftmaxDisagreement(z, b, K).Loss, ga);
        AssertGradient("disagreement (second)", b, z => AttackLosses.SoftmaxDisagreement(a, z, K).Loss, gb);
    }

    [Fact]
    public void KnownValues()
    {
        // Reconstructed logits are the log-probabilities centred per row: softmax gives the probabilities back.
        var p = Probabilities(2, 4);
        var r = AttackLosses.ReconstructedLogits(p, K);
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(0, r.Skip(i * K).Take(K).Sum(), 5);
            var back = AttackLosses.Softmax(r, i, K);
            for (int k = 0; k < K; k++) Assert.Equal(p[i][k], back[k], 6);
        }
        // KL of a distribution to itself is 0; class diversity of uniform predictions is −ln K (its minimum).
        Assert.All(AttackLosses.RowKl(r, p, K), v => Assert.Equal(0, v, 6));
        Assert.Equal(-Math.Log(K), AttackLosses.ClassDiversity(new float[2 * K], K).Loss, 12);
        Assert.Equal(new[] { 1.0, 0.0 }, AttackLosses.RowL1([1, 1, 1, 1, 2, 2, 2, 2], [0, 0, 0, 0, 2, 2, 2, 2], K));
        // Exact zeros (a confident softmax underflowing) stay finite.
        Assert.All(AttackLosses.ReconstructedLogits([[1.0, 0, 0, 0]], K), v => Assert.True(float.IsFinite(v)));
    }

    /// <summary>
    /// DFME's zeroth-order estimate against the true gradient of a known smooth function, f(x) = w·x + ½|x|² in
    /// d = 20 dimensions: with m = 20,000 random unit directions the estimate's relative L2 error is about √(d/m) ≈ 0.03
    /// (asserted below 0.1); the forward-difference bias is ε/2·|u|²-sized (ε = 1e-3, negligible here).
    /// </summary>
    [Fact]
    public void ZerothOrderEstimateConvergesToTheGradient()
    {
        const int d = 20, m = 20_000;
        const float eps = 1e-3f;
        var rng = new Random(7);
        var w = Enumerable.Range(0, d).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
        var x = Enumerable.Range(0, d).Select(_ => rng.NextDouble() - 0.5).ToArray();
        double F(double[] p) => p.Select((v, t) => w[t] * v + 0.5 * v * v).Sum();
        var directions = new float[m * d];
        var loss = new double[m + 1];
        loss[0] = F(x);
        for (int j = 0; j < m; j++)
        {
            var u = directions.AsSpan(j * d, d);
            double norm = 0;
            for (int t = 0; t < d; t++) { u[t] = (float)NextGaussian(rng); norm += u[t] * u[t]; }
            for (int t = 0; t < d; t++) u[t] /= (float)Math.Sqrt(norm);
            var moved = new double[d];
            for (int t = 0; t < d; t++) moved[t] = x[t] + eps * (double)u[t];
            loss[1 + j] = F(moved);
        }
        var estimate = ZerothOrderAttack.EstimateGradient(loss, directions, 1, m, d, eps);
        var truth = x.Select((v, t) => (float)(w[t] + v)).ToArray();
        TestUtil.AssertRelativeL2(truth, estimate, 0.1, "zeroth-order gradient");
        Assert.Throws<ArgumentException>(() => ZerothOrderAttack.EstimateGradient(loss.AsSpan(1), directions, 1, m, d, eps));
    }

    private static double NextGaussian(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
