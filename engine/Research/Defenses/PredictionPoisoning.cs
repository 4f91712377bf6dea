using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Engine.Defenses;

/// <param name="Epsilon">The L1 budget: the answer moves at most this far from the true softmax (0…2).</param>
/// <param name="KeepArgmax">MAD-argmax: the answer keeps the victim's top class (benign accuracy untouched).</param>
public sealed record MadOptions(double Epsilon = 0.5, bool KeepArgmax = false);

/// <summary>
/// MAD, maximising angular deviation (Orekondy et al., "Prediction Poisoning", ICLR 2020): the answer ỹ is moved within
/// ‖ỹ − y‖₁ ≤ ε so that the gradient an attacker would take from it, G^T ỹ with G = ∇_w log F(x; w) of a surrogate
/// model, points as far as possible from the gradient of the true answer, G^T y.
/// <para>
/// G is taken at the surrogate's last layer (z = W h + b): row k is (e_k − p) ⊗ (h, 1), so on the simplex
/// G^T ỹ = (ỹ − p) ⊗ (h, 1) and the angle between G^T ỹ and G^T y is the angle between ỹ − p and y − p — the
/// features cancel and only the surrogate's softmax p matters. The full-network Jacobian costs K backward passes per
/// query, which 2 cores cannot spend on every query of an evaluation. As the reference's solver, the objective
/// (convex in ỹ) is maximised over the simplex's vertices e_k, then ỹ = (1 − α) y + α e_k with the largest α the
/// budget allows (and, with <see cref="MadOptions.KeepArgmax"/>, that keeps the top class).
/// </para>
/// </summary>
public sealed class MadDefense
{
    public MadOptions Options { get; }

    public MadDefense(MadOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!(options.Epsilon >= 0 && options.Epsilon <= 2)) throw new ArgumentException($"MAD's L1 budget ε must lie in [0, 2], got {options.Epsilon}.", nameof(options));
        Options = options;
    }

    /// <summary>The poisoned answer for the victim's softmax <paramref name="y"/> and the surrogate's softmax <paramref name="surrogate"/> on the same query.</summary>
    public double[] Apply(ReadOnlySpan<double> y, ReadOnlySpan<double> surrogate)
    {
        ProbabilityVector.Validate(y, nameof(y));
        ProbabilityVector.Validate(surrogate, nameof(surrogate));
        if (y.Length != surrogate.Length) throw new ArgumentException($"{y.Length} victim and {surrogate.Length} surrogate probabilities.");
        int k = Vertex(y, surrogate);
        var answer = y.ToArray();
        if (k < 0) return answer;
        double distance = 2 * (1 - y[k]); // ‖e_k − y‖₁
        if (distance <= 0) return answer;
        double alpha = Math.Min(1, Options.Epsilon / distance);
        int top = DeceptivePredictions.ArgMax(y);
        // Mixing toward e_k keeps the top class t while (1 − α) y_t > (1 − α) y_k + α, i.e. α < (y_t − y_k)/(1 + y_t − y_k).
        if (Options.KeepArgmax && k != top) alpha = Math.Min(alpha, (y[top] - y[k]) / (1 + y[top] - y[k]) * (1 - 1e-9));
        for (int j = 0; j < answer.Length; j++) answer[j] = (1 - alpha) * y[j] + (j == k ? alpha : 0);
        return answer;
    }

    /// <summary>
    /// The vertex e_k whose gradient direction e_k − p is farthest in angle from y − p (−1 when every e_k − p vanishes).
    /// When y = p, every direction is equally far; the vertex of y's smallest entry is taken.
    /// </summary>
    public static int Vertex(ReadOnlySpan<double> y, ReadOnlySpan<double> p)
    {
        int classes = y.Length;
        double vNorm = 0;
        for (int j = 0; j < classes; j++) vNorm += (y[j] - p[j]) * (y[j] - p[j]);
        vNorm = Math.Sqrt(vNorm);
        if (vNorm < 1e-12)
        {
            int smallest = 0;
            for (int j = 1; j < classes; j++) if (y[j] < y[smallest]) smallest = j;
            return smallest;
        }
        int best = -1;
        double bestCos = double.PositiveInfinity;
        for (int k = 0; k < classes; k++)
        {
            double dot = 0, uNorm = 0;
            for (int j = 0; j < classes; j++)
            {
                double u = (j == k ? 1 : 0) - p[j];
                dot += u * (y[j] - p[j]);
                uNorm += u * u;
            }
            if (uNorm < 1e-24) continue;
            double cos = dot / (Math.Sqrt(uNorm) * vNorm);
            if (cos < bestCos) (bestCos, best) = (cos, k);
        }
        return best;
    }
}
