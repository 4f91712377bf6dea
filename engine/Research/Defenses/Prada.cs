namespace ModelGuardian.Engine.Defenses;

/// <param name="ImageLength">Length of every flattened query image (all queries of a user must match).</param>
/// <param name="ClassCount">Number of classes the victim predicts.</param>
/// <param name="WThreshold">Flag when Shapiro–Wilk W of the pooled distances falls below this (PRADA: 0.9).</param>
/// <param name="CheckEvery">Run the normality test every this many queries.</param>
/// <param name="MinClassDistances">A class's distances join the pool once it has this many.</param>
/// <param name="MinPooled">The test needs more than this many pooled distances after outlier removal.</param>
/// <param name="OutlierSigmas">Pooled distances further than this many σ from their mean are dropped.</param>
public sealed record PradaOptions(
    int ImageLength,
    int ClassCount,
    double WThreshold = 0.9,
    int CheckEvery = 10,
    int MinClassDistances = 10,
    int MinPooled = 100,
    double OutlierSigmas = 3.0);

/// <summary>
/// PRADA (Juuti et al., EuroS&amp;P 2019) for one user: natural queries have minimum L2 distances to earlier
/// queries that are roughly normally distributed, while synthetic attack queries (small perturbations of
/// earlier ones mixed with seeds) give a skewed / bimodal distance distribution.
/// <para>
/// Per predicted class c: a growing set G_c, a threshold T_c (starts at 0) and the list of all recorded
/// minimum distances. A query x of class c: if G_c is empty, x joins G_c (no distance exists yet);
/// otherwise d = min over G_c of ‖x − g‖₂ (float arithmetic) is recorded, and if d &gt; T_c, x joins G_c,
/// d joins the growing-set distances DG_c, and T_c = max(T_c, mean(DG_c) − std(DG_c)) (population std).
/// Every <see cref="PradaOptions.CheckEvery"/> queries the distance lists of classes with at least
/// <see cref="PradaOptions.MinClassDistances"/> entries are pooled, points beyond 3σ dropped, and if more than
/// <see cref="PradaOptions.MinPooled"/> remain the user is flagged when W &lt; <see cref="PradaOptions.WThreshold"/>.
/// Flagging is sticky. Memory and time grow with |G_c|, as in the paper. Not thread-safe: one instance per user.
/// </para>
/// </summary>
public sealed class PradaDetector
{
    private readonly PradaOptions _options;
    private readonly List<float[]>[] _growing;
    private readonly List<double>[] _growingDistances;
    private readonly List<double>[] _distances;
    private readonly double[] _threshold;

    public long QueriesSeen { get; private set; }
    /// <summary>W of the latest test that ran, NaN before the first.</summary>
    public double LastW { get; private set; } = double.NaN;
    public bool Flagged { get; private set; }

    public PradaDetector(PradaOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.ImageLength <= 0) throw new ArgumentException($"ImageLength must be positive, got {options.ImageLength}.", nameof(options));
        if (options.ClassCount <= 0) throw new ArgumentException($"ClassCount must be positive, got {options.ClassCount}.", nameof(options));
        if (!(options.WThreshold > 0 && options.WThreshold <= 1)) throw new ArgumentException($"WThreshold must be in (0, 1], got {options.WThreshold}.", nameof(options));
        if (options.CheckEvery <= 0) throw new ArgumentException($"CheckEvery must be positive, got {options.CheckEvery}.", nameof(options));
        if (options.MinClassDistances < 1) throw new ArgumentException($"MinClassDistances must be ≥ 1, got {options.MinClassDistances}.", nameof(options));
        if (options.MinPooled < ShapiroWilk.MinSize - 1) throw new ArgumentException($"MinPooled must be ≥ {ShapiroWilk.MinSize - 1} (Shapiro–Wilk needs {ShapiroWilk.MinSize} points), got {options.MinPooled}.", nameof(options));
        if (!(options.OutlierSigmas > 0)) throw new ArgumentException($"OutlierSigmas must be positive, got {options.OutlierSigmas}.", nameof(options));
        _options = options;
        _growing = new List<float[]>[options.ClassCount];
        _growingDistances = new List<double>[options.ClassCount];
        _distances = new List<double>[options.ClassCount];
        _threshold = new double[options.ClassCount];
        for (int c = 0; c < options.ClassCount; c++) { _growing[c] = []; _growingDistances[c] = []; _distances[c] = []; }
    }

    public PradaOptions Options => _options;

    /// <summary>Records one query; returns whether the user is flagged (now or earlier).</summary>
    public bool Observe(ReadOnlySpan<float> image, int predictedClass)
    {
        if (image.Length != _options.ImageLength) throw new ArgumentException($"Expected an image of {_options.ImageLength} values, got {image.Length}.", nameof(image));
        if ((uint)predictedClass >= (uint)_options.ClassCount) throw new ArgumentException($"Predicted class must be in 0…{_options.ClassCount - 1}, got {predictedClass}.", nameof(predictedClass));
        foreach (float v in image)
            if (!float.IsFinite(v)) throw new ArgumentException($"Image values must be finite, got {v}.", nameof(image));

        QueriesSeen++;
        var growing = _growing[predictedClass];
        if (growing.Count == 0)
        {
            growing.Add(image.ToArray());
        }
        else
        {
            double d = MinDistance(image, growing);
            _distances[predictedClass].Add(d);
            if (d > _threshold[predictedClass])
            {
                growing.Add(image.ToArray());
                var dg = _growingDistances[predictedClass];
                dg.Add(d);
                var (mean, std) = MeanStd(dg);
                _threshold[predictedClass] = Math.Max(_threshold[predictedClass], mean - std);
            }
        }

        if (!Flagged && QueriesSeen % _options.CheckEvery == 0) Check();
        return Flagged;
    }

    private void Check()
    {
        var pooled = new List<double>();
        foreach (var list in _distances)
            if (list.Count >= _options.MinClassDistances) pooled.AddRange(list);
        if (pooled.Count <= _options.MinPooled) return;
        var (mean, std) = MeanStd(pooled);
        double limit = _options.OutlierSigmas * std;
        var kept = pooled.Where(d => Math.Abs(d - mean) <= limit).ToArray();
        if (kept.Length <= _options.MinPooled) return;
        // AS R94 is defined for at most 5000 points: beyond that test an evenly strided subsample of the pool
        // (deterministic, and spread over every class rather than the tail of one).
        double[] sample = kept;
        if (kept.Length > ShapiroWilk.MaxSize)
        {
            sample = new double[ShapiroWilk.MaxSize];
            for (int i = 0; i < sample.Length; i++) sample[i] = kept[(int)((long)i * kept.Length / sample.Length)];
        }
        double first = sample[0];
        bool constant = true;
        foreach (double d in sample) if (d != first) { constant = false; break; }
        // Identical distances (e.g. one step size repeated) are as far from "natural" as it gets: W := 0.
        LastW = constant ? 0 : ShapiroWilk.Test(sample).W;
        if (LastW < _options.WThreshold) Flagged = true;
    }

    /// <summary>Minimum L2 distance in float arithmetic (as PRADA's reference computes on float images).</summary>
    private static double MinDistance(ReadOnlySpan<float> x, List<float[]> set)
    {
        float best = float.PositiveInfinity;
        foreach (var g in set)
        {
            float sum = 0;
            for (int i = 0; i < x.Length; i++) { float diff = x[i] - g[i]; sum += diff * diff; }
            if (sum < best) best = sum;
        }
        return MathF.Sqrt(best);
    }

    private static (double Mean, double Std) MeanStd(List<double> values)
    {
        double mean = 0;
        foreach (double v in values) mean += v;
        mean /= values.Count;
        double ss = 0;
        foreach (double v in values) ss += (v - mean) * (v - mean);
        return (mean, Math.Sqrt(ss / values.Count));
    }
}
