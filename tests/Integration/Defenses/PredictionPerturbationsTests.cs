using ModelGuardian.Engine.Defenses;
using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Tests.Defenses;

public sealed class PredictionPerturbationsTests
{
    private static double[] RandomSimplex(Random rng, int k, double sharpness)
    {
        // Softmax of scaled Gaussian logits: sharpness 5 gives confident, network-like vectors.
        var z = Enumerable.Range(0, k).Select(_ => sharpness * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble())).ToArray();
        double max = z.Max();
        var e = z.Select(x => Math.Exp(x - max)).ToArray();
        double s = e.Sum();
        return e.Select(x => x / s).ToArray();
    }

    private static void AssertProbabilityVector(double[] q)
    {
        Assert.All(q, x => Assert.True(x >= 0 && double.IsFinite(x), $"entry {x}"));
        Assert.Equal(1.0, q.Sum(), 1e-12); // renormalised: rounding only
    }

    private static double TotalVariation(double[] a, double[] b) => 0.5 * a.Zip(b, (x, y) => Math.Abs(x - y)).Sum();

    // ---------------- validation ----------------

    [Fact]
    public void BadProbabilityVectorsAreRejectedWithClearMessages()
    {
        Assert.Contains("sum to 1 within 1E-06", Assert.Throws<ArgumentException>(() => ProbabilityVector.Validate([0.5, 0.4])).Message);
        Assert.Contains("not finite", Assert.Throws<ArgumentException>(() => ProbabilityVector.Validate([double.NaN, 1.0])).Message);
        Assert.Contains("negative", Assert.Throws<ArgumentException>(() => ProbabilityVector.Validate([-0.1, 1.1])).Message);
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => ProbabilityVector.Validate([])).Message);
        ProbabilityVector.Validate([0.5, 0.5 + 9e-7]); // inside the 1e-6 tolerance
        var rs = new ReverseSigmoidDefense(new ReverseSigmoidOptions());
        Assert.Contains("at least 2", Assert.Throws<ArgumentException>(() => rs.Apply([1.0])).Message);
        Assert.Contains("β", Assert.Throws<ArgumentException>(() => new ReverseSigmoidDefense(new ReverseSigmoidOptions(Beta: 0))).Message);
        Assert.Contains("scale", Assert.Throws<ArgumentException>(() => new RandomNoiseDefense(new RandomNoiseOptions(Scale: double.NaN))).Message);
        Assert.Contains("vMin", Assert.Throws<ArgumentException>(() => new RandomizedDeception(0.5, 0.1, 1, 2)).Message);
    }

    // ---------------- RS ----------------

    [Theory]
    [InlineData(NoiseKind.Gaussian)]
    [InlineData(NoiseKind.Uniform)]
    public void RandomNoiseKeepsASimplexAndActuallyPerturbs(NoiseKind kind)
    {
        var defense = new RandomNoiseDefense(new RandomNoiseOptions(kind, 0.1));
        var rng = new Random(3);
        double meanTv = 0;
        for (int i = 0; i < 500; i++)
        {
            var p = RandomSimplex(rng, 10, 3);
            var q = defense.Apply(p, rng);
            AssertProbabilityVector(q);
            meanTv += TotalVariation(p, q) / 500;
        }
        Assert.True(meanTv > 0.05, $"noise of scale 0.1 should move the vector; mean TV {meanTv}");
        // Same seed, same answer: the Random passed in is the only source of randomness.
        double[] p0 = [0.7, 0.2, 0.1];
        Assert.Equal(defense.Apply(p0, new Random(9)), defense.Apply(p0, new Random(9)));
        // Scale 0 is the identity up to the renormalisation's rounding (1e-15).
        var same = new RandomNoiseDefense(new RandomNoiseOptions(kind, 0)).Apply(p0, new Random(1));
        for (int i = 0; i < p0.Length; i++) Assert.Equal(p0[i], same[i], 1e-15);
    }

    // ---------------- Reverse sigmoid ----------------

    [Fact]
    public void ReverseSigmoidMatchesArtsFormulaByHand()
    {
        // Expected values computed independently in numpy from ART's formula (beta 1, gamma 0.1, clip 1e-9):
        //   c = clip(p, 1e-9, 1-1e-9); r = beta*(1/(1+exp(gamma*log((1-c)/c))) - 0.5)
        //   q = clip(p - r, 0, 1); q / q.sum()
        // Tolerance 1e-12 (double rounding only).
        var rs = new ReverseSigmoidDefense(new ReverseSigmoidOptions());
        var q = rs.Apply([0.7, 0.2, 0.1, 0.0]);
        double[] expected = [0.4661248298643864, 0.16109153156362088, 0.10623347076586798, 0.26655016780612467];
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], q[i], 1e-12);
        AssertProbabilityVector(q);
        // One perturbation by hand: p = 0.2, logit = ln(0.25), σ(0.1·ln 0.25) − ½ = 1/(1 + 4^0.1) − ½.
        Assert.Equal(1 / (1 + Math.Pow(4, 0.1)) - 0.5, rs.Perturbation(0.2), 1e-15);
        // A zero probability is clipped to 1e-9 inside the logit: r = σ(0.1·logit 1e-9) − ½ ≈ −0.38818.
        Assert.Equal(-0.38818, rs.Perturbation(0.0), 1e-5);
    }

    [Fact]
    public void ReverseSigmoidDoesNotKeepTheRanking()
    {
        // ART's formula at its defaults: a 0-probability class (→ 0.388 before normalising) overtakes a 0.01 class
        // (→ 0.123); the argmax survives here (numpy: 0.6318, 0.0885, 0.2796).
        var q = new ReverseSigmoidDefense(new ReverseSigmoidOptions()).Apply([0.99, 0.01, 0.0]);
        Assert.Equal(0.6318337162132479, q[0], 1e-12);
        Assert.Equal(0.08853176427295328, q[1], 1e-12);
        Assert.Equal(0.27963451951379875, q[2], 1e-12);
        Assert.True(q[2] > q[1]);
        // With β = 3 even the argmax moves to the impossible class (numpy: 0.32565, 0.17435, 0.5).
        var q3 = new ReverseSigmoidDefense(new ReverseSigmoidOptions(Beta: 3)).Apply([0.99, 0.01, 0.0]);
        Assert.Equal(0.5, q3[2], 1e-12);
        Assert.Equal(2, DeceptivePredictions.ArgMax(q3));
    }

    [Fact]
    public void ReverseSigmoidBinaryCaseFollowsArt()
    {
        // numpy, ART's one-output branch: 0.8 → 0.7653980386192365; 0 → 0.38818423032098354. 1e-12.
        var rs = new ReverseSigmoidDefense(new ReverseSigmoidOptions());
        Assert.Equal(0.7653980386192365, rs.ApplyBinary(0.8), 1e-12);
        Assert.Equal(0.38818423032098354, rs.ApplyBinary(0.0), 1e-12);
        // Symmetric: the two outputs of p and 1 − p are complementary.
        Assert.Equal(1.0, rs.ApplyBinary(0.3) + rs.ApplyBinary(0.7), 1e-12);
    }

    [Fact]
    public void ReverseSigmoidAlwaysReturnsASimplex()
    {
        var rng = new Random(5);
        foreach (double beta in new[] { 0.5, 1.0, 3.0, 10.0 })
        {
            var rs = new ReverseSigmoidDefense(new ReverseSigmoidOptions(beta, 0.1));
            for (int i = 0; i < 300; i++) AssertProbabilityVector(rs.Apply(RandomSimplex(rng, 10, 4)));
        }
    }

    // ---------------- DPreds inversion & randomized deception ----------------

    [Fact]
    public void InversionRecoversDPredsExactlyWhenTheTrueMinimumIsZero()
    {
        // p̂ᵢ = (pᵢ − μ)/(1 − Kμ) with μ = 0 is p itself: 1e-12 (rounding of the affine map).
        double[] p = [0.6, 0.25, 0.1, 0.05, 0.0];
        foreach (double v in new[] { 0.05, 0.5, 2.0 })
        {
            var answer = DeceptivePredictions.Apply(p, v);
            Assert.True(DPredsInversion.LooksDeceptive(answer));
            Assert.Equal(v, DPredsInversion.EstimateV(answer), 1e-12);
            var recovered = DPredsInversion.Invert(answer);
            for (int i = 0; i < p.Length; i++) Assert.Equal(p[i], recovered[i], 1e-12);
        }
    }

    [Fact]
    public void InversionErrorIsBoundedByTheTrueMinimum()
    {
        // Derived bound (see DPredsInversion): |p̂ᵢ − pᵢ| = μ|Kpᵢ − 1|/(1 − Kμ) ≤ (K − 1)μ/(1 − Kμ), μ = min p.
        // Checked with the exact per-entry value (1e-12) and the bound, over 1,000 random confident vectors.
        var rng = new Random(17);
        for (int n = 0; n < 1000; n++)
        {
            var p = RandomSimplex(rng, 10, 2);
            double mu = p.Min(), k = p.Length;
            var recovered = DPredsInversion.Invert(DeceptivePredictions.Apply(p, 0.05 + 1.95 * rng.NextDouble()));
            for (int i = 0; i < p.Length; i++)
            {
                double err = Math.Abs(recovered[i] - p[i]);
                Assert.Equal(mu * Math.Abs(k * p[i] - 1) / (1 - k * mu), err, 1e-12);
                Assert.True(err <= (k - 1) * mu / (1 - k * mu) + 1e-12);
            }
        }
    }

    [Fact]
    public void GenuineConfidentSoftmaxIsNotTakenForDPreds()
    {
        // The attacker's rule (min ≥ 0.01) separates a confident softmax (min ~1e-4) from DPreds (min ≥ v/(1+Kv)).
        double[] p = [0.971, 0.01, 0.005, 0.004, 0.0035, 0.003, 0.002, 0.0012, 0.0002, 0.0001];
        Assert.False(DPredsInversion.LooksDeceptive(p));
        Assert.True(DPredsInversion.LooksDeceptive(DeceptivePredictions.Apply(p, 0.05)));
    }

    [Fact]
    public void RandomizedDeceptionDefeatsTheInversion()
    {
        // Fixed seed, a confident p: the best the DPreds inverter can do is p^{1/T} shifted by its minimum, so the
        // total variation from the truth stays large (asserted > 0.1 on each of 100 answers) while plain DPreds
        // is undone to 1e-12.
        double[] p = [0.9, 0.05, 0.03, 0.01, 0.005, 0.003, 0.001, 0.0005, 0.0003, 0.0002];
        var deception = new RandomizedDeception(vMin: 0.05, vMax: 2.0, tMin: 2.0, tMax: 5.0);
        var rng = new Random(23);
        for (int i = 0; i < 100; i++)
        {
            var answer = deception.Apply(p, rng);
            Assert.True(DPredsInversion.LooksDeceptive(answer)); // it is still detected as deceptive...
            double tv = TotalVariation(p, DPredsInversion.Invert(answer));
            Assert.True(tv > 0.1, $"answer {i}: TV {tv} ≤ 0.1");  // ...but cannot be inverted
        }
        Assert.True(TotalVariation(p, DPredsInversion.Invert(DeceptivePredictions.Apply(p, 0.5))) < 0.01);
    }

    [Fact]
    public void RandomizedDeceptionKeepsTheRankingAndIsASimplex()
    {
        // Property over 1,000 random vectors: pᵢ > pⱼ ⇒ qᵢ ≥ qⱼ always (every step is monotone, so rounding can
        // only tie, never invert), and strictly qᵢ > qⱼ when pᵢ ≥ 1.01·pⱼ and pⱼ ≥ 1e-4: there the tempered gap
        // (≥ 2e-10 for T ∈ [0.5, 5]) is far above the rounding of adding v ≤ 2 (ulp 4.4e-16). Argmax kept.
        var rng = new Random(29);
        var deception = new RandomizedDeception(0.05, 2.0, 0.5, 5.0);
        for (int n = 0; n < 1000; n++)
        {
            var p = RandomSimplex(rng, 2 + rng.Next(19), 0.5 + 5 * rng.NextDouble());
            var q = deception.Apply(p, rng);
            AssertProbabilityVector(q);
            Assert.Equal(q.Max(), q[DeceptivePredictions.ArgMax(p)]);
            for (int i = 0; i < p.Length; i++)
                for (int j = 0; j < p.Length; j++)
                {
                    if (p[i] >= 1.01 * p[j] && p[j] >= 1e-4) Assert.True(q[i] > q[j], $"vector {n}: order of {i},{j} lost");
                    if (p[i] > p[j]) Assert.True(q[i] >= q[j], $"vector {n}: order of {i},{j} inverted");
                }
        }
        // Ties and zeros: equal in, equal out.
        var tied = RandomizedDeception.Apply([0.4, 0.4, 0.2, 0.0, 0.0], 0.3, 3.0);
        Assert.Equal(tied[0], tied[1]);
        Assert.Equal(tied[3], tied[4]);
        Assert.True(tied[2] > tied[3]);
    }
}
