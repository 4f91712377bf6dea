using ModelGuardian.Engine.Defenses;
using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Tests.Defenses;

public sealed class MadTests
{
    private static double[] Softmax(double[] z)
    {
        double max = z.Max();
        var e = z.Select(x => Math.Exp(x - max)).ToArray();
        double s = e.Sum();
        return e.Select(x => x / s).ToArray();
    }

    private static double[] RandomSimplex(Random rng, int k, double sharpness) =>
        Softmax(Enumerable.Range(0, k).Select(_ => sharpness * (rng.NextDouble() * 2 - 1)).ToArray());

    private static double L1(double[] a, double[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Sum();

    /// <summary>
    /// A surrogate's last layer z = W h + b and the Jacobian G = ∂ log softmax(z) / ∂(W, b), K rows, by central differences
    /// (step 1e-5; the entries are O(1), so the differences are good to ~1e-9).
    /// </summary>
    private static (double[] P, double[][] G) LastLayer(Random rng, int classes, int features)
    {
        var h = Enumerable.Range(0, features).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
        var theta = Enumerable.Range(0, classes * (features + 1)).Select(_ => rng.NextDouble() - 0.5).ToArray();
        double[] LogSoftmax(double[] t)
        {
            var z = new double[classes];
            for (int k = 0; k < classes; k++)
            {
                z[k] = t[classes * features + k];
                for (int f = 0; f < features; f++) z[k] += t[k * features + f] * h[f];
            }
            return Softmax(z).Select(v => Math.Log(v)).ToArray();
        }
        var g = Enumerable.Range(0, classes).Select(_ => new double[theta.Length]).ToArray();
        const double step = 1e-5;
        for (int i = 0; i < theta.Length; i++)
        {
            var plus = (double[])theta.Clone();
            var minus = (double[])theta.Clone();
            plus[i] += step;
            minus[i] -= step;
            var lp = LogSoftmax(plus);
            var lm = LogSoftmax(minus);
            for (int k = 0; k < classes; k++) g[k][i] = (lp[k] - lm[k]) / (2 * step);
        }
        return (LogSoftmax(theta).Select(v => Math.Exp(v)).ToArray(), g);
    }

    /// <summary>cos(Gᵀa, Gᵀb) for the Jacobian's rows G.</summary>
    private static double GradientCosine(double[][] g, double[] a, double[] b)
    {
        int d = g[0].Length;
        var ga = new double[d];
        var gb = new double[d];
        for (int k = 0; k < g.Length; k++)
            for (int i = 0; i < d; i++) { ga[i] += a[k] * g[k][i]; gb[i] += b[k] * g[k][i]; }
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < d; i++) { dot += ga[i] * gb[i]; na += ga[i] * ga[i]; nb += gb[i] * gb[i]; }
        return dot / Math.Sqrt(na * nb);
    }

    /// <summary>
    /// The vertex MAD picks is the one whose attacker gradient turns farthest from the true answer's, checked against the
    /// Jacobian of an explicit last layer by finite differences over every vertex (the features must cancel, as derived).
    /// </summary>
    [Fact]
    public void The_chosen_vertex_maximises_the_gradient_angle_of_an_explicit_last_layer()
    {
        var rng = new Random(11);
        for (int trial = 0; trial < 20; trial++)
        {
            var (p, g) = LastLayer(rng, 6, 5);
            var y = RandomSimplex(rng, 6, 4);
            var cos = Enumerable.Range(0, 6).Select(k => GradientCosine(g, Enumerable.Range(0, 6).Select(j => j == k ? 1.0 : 0).ToArray(), y)).ToArray();
            int expected = Array.IndexOf(cos, cos.Min());
            Assert.Equal(expected, MadDefense.Vertex(y, p));
            // And the poisoned answer's gradient is turned away from the true one's.
            var poisoned = new MadDefense(new MadOptions(Epsilon: 0.5)).Apply(y, p);
            Assert.True(GradientCosine(g, poisoned, y) < 1 - 1e-6, $"trial {trial}: cos {GradientCosine(g, poisoned, y)}");
        }
    }

    [Fact]
    public void Answers_stay_on_the_simplex_within_the_L1_budget_and_use_all_of_it()
    {
        var rng = new Random(3);
        foreach (double epsilon in new[] { 0.0, 0.1, 0.5, 1.0, 2.0 })
            for (int trial = 0; trial < 50; trial++)
            {
                var y = RandomSimplex(rng, 10, 6);
                var p = RandomSimplex(rng, 10, 1);
                var q = new MadDefense(new MadOptions(epsilon)).Apply(y, p);
                Assert.All(q, x => Assert.True(x >= 0 && x <= 1));
                Assert.Equal(1.0, q.Sum(), 1e-12);
                double moved = L1(q, y);
                Assert.True(moved <= epsilon + 1e-12, $"ε {epsilon}: moved {moved}");
                int k = MadDefense.Vertex(y, p);
                // Full budget unless the vertex itself is nearer than ε (then the answer is the vertex).
                Assert.Equal(Math.Min(epsilon, 2 * (1 - y[k])), moved, 1e-9);
            }
    }

    [Fact]
    public void Mad_argmax_keeps_the_top_class_where_plain_mad_does_not()
    {
        var rng = new Random(5);
        int flipped = 0;
        for (int trial = 0; trial < 200; trial++)
        {
            var y = RandomSimplex(rng, 10, 3);
            var p = RandomSimplex(rng, 10, 1);
            var kept = new MadDefense(new MadOptions(1.5, KeepArgmax: true)).Apply(y, p);
            Assert.Equal(DeceptivePredictions.ArgMax(y), DeceptivePredictions.ArgMax(kept));
            Assert.True(L1(kept, y) <= 1.5 + 1e-12);
            if (DeceptivePredictions.ArgMax(new MadDefense(new MadOptions(1.5)).Apply(y, p)) != DeceptivePredictions.ArgMax(y)) flipped++;
        }
        Assert.True(flipped > 50, $"plain MAD at ε 1.5 flipped the top class {flipped} times of 200");
    }

    [Fact]
    public void Bad_settings_and_inputs_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new MadDefense(new MadOptions(-0.1)));
        Assert.Throws<ArgumentException>(() => new MadDefense(new MadOptions(2.5)));
        Assert.Throws<ArgumentException>(() => new MadDefense(new MadOptions(double.NaN)));
        var mad = new MadDefense(new MadOptions());
        Assert.Throws<ArgumentException>(() => mad.Apply([0.5, 0.5], [0.2, 0.3, 0.5]));
        Assert.Throws<ArgumentException>(() => mad.Apply([0.5, 0.6], [0.5, 0.5]));
        // In an evaluation, MAD without its surrogate model says what is missing.
        var e = Assert.Throws<ArgumentException>(() => Engine.Eval.BaselineDefenses.Create(Engine.Eval.DefenseIds.Mad, 0.5, 1, 10));
        Assert.Contains("surrogate", e.Message);
    }
}
