using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Attacks;

/// <summary>
/// DFME and MAZE: the generator cannot see the victim's gradient, so it estimates the gradient of the
/// student–victim disagreement at each generated image from forward differences along random unit
/// directions (in the grey head's pre-tanh plane, as DFME perturbs), and ascends it. Cost per iteration:
/// B·(m + 1) queries for the generator step, then B per student step; replay steps cost none.
/// </summary>
public abstract class ZerothOrderAttack(AttackKind kind, IKernels kernels, int classes, AttackOptions options) : DataFreeAttack(kind, kernels, classes, options)
{
    /// <summary>Per query: how much student and victim disagree (the generator's objective).</summary>
    protected abstract double[] Disagreement(float[] studentLogits, double[][] answers);

    /// <summary>The student's loss on a batch of answers.</summary>
    protected abstract (double, float[]) StudentLoss(float[] studentLogits, double[][] answers);

    /// <summary>
    /// DFME's forward-difference estimate of ∇L at each of n points: ĝ_i = (d / m) Σ_j (L(x_i + εu_j) − L(x_i)) / ε · u_j,
    /// with u_j unit directions in d dimensions (E[u uᵀ] = I/d, hence the factor d). <paramref name="loss"/> holds, per point,
    /// L at the point and then at its m displaced copies; <paramref name="directions"/> is (n, m, d).
    /// </summary>
    public static float[] EstimateGradient(ReadOnlySpan<double> loss, ReadOnlySpan<float> directions, int n, int m, int d, float epsilon)
    {
        if (loss.Length != n * (m + 1) || directions.Length != (long)n * m * d) throw new ArgumentException($"{loss.Length} losses and {directions.Length} direction values for {n} points, {m} directions, {d} dimensions.");
        var g = new float[n * d];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++)
            {
                float scale = (float)((double)d / m * (loss[i * (m + 1) + 1 + j] - loss[i * (m + 1)]) / epsilon);
                var u = directions.Slice((i * m + j) * d, d);
                var gi = g.AsSpan(i * d, d);
                for (int t = 0; t < d; t++) gi[t] += scale * u[t];
            }
        return g;
    }

    protected override async Task IterateAsync(BudgetedClient victim, CancellationToken cancellationToken)
    {
        int m = Options.Directions;
        int n = Affordable(victim, m + 1);
        if (n >= 2)
        {
            using var pass = Generate(Noise(n), n);
            int d = pass.PerturbableLength;
            var x = pass.Perturbable;
            // Query points, per image: the base point, then m points ε along unit directions u_j.
            var points = new float[n * (m + 1) * d];
            var directions = new float[n * m * d];
            for (int i = 0; i < n; i++)
            {
                var xi = x.AsSpan(i * d, d);
                xi.CopyTo(points.AsSpan(i * (m + 1) * d, d));
                for (int j = 0; j < m; j++)
                {
                    var u = directions.AsSpan((i * m + j) * d, d);
                    double norm = 0;
                    for (int t = 0; t < d; t++) { u[t] = (float)Random.NextGaussian(); norm += (double)u[t] * u[t]; }
                    float inv = (float)(1 / Math.Sqrt(norm));
                    var p = points.AsSpan((i * (m + 1) + 1 + j) * d, d);
                    for (int t = 0; t < d; t++) { u[t] *= inv; p[t] = xi[t] + Options.Epsilon * u[t]; }
                }
            }
            Trace?.Invoke("directions", directions);
            var images = pass.ImagesAt(points);
            var answers = await AskAsync(victim, images, n * (m + 1), cancellationToken).ConfigureAwait(false);
            if (answers == null) return;
            // The student is measured in evaluation mode for the estimate, as DFME does: batch statistics would
            // mix the displaced copies with their base points.
            bool training = Student.Mode.IsTraining;
            Student.Mode.IsTraining = false;
            double[] loss;
            try { loss = Disagreement(Outputs(Student, images, n * (m + 1)), answers); }
            finally { Student.Mode.IsTraining = training; }
            if (Trace is { } trace)
            {
                // The losses, and their forward differences over ε in double before any rounding (what the estimate scales).
                trace("losses", loss.Select(v => (float)v).ToArray());
                trace("slopes", Enumerable.Range(0, n * m).Select(q => (float)((loss[q / m * (m + 1) + 1 + q % m] - loss[q / m * (m + 1)]) / Options.Epsilon)).ToArray());
            }
            // The generator ascends the mean disagreement: its loss is −mean L, so ∂/∂x_i = −ĝ_i / n.
            var dx = EstimateGradient(loss, directions, n, m, d, Options.Epsilon);
            for (int i = 0; i < dx.Length; i++) dx[i] = -dx[i] / n;
            pass.BackwardPerturbable(dx);
            Trace?.Invoke("generator-gradient", GradientValues(Generator.Parameters));
            GeneratorOptimizer.Step();
            var bases = new float[n * PerImage];
            var baseAnswers = new double[n][];
            for (int i = 0; i < n; i++)
            {
                images.AsSpan(i * (m + 1) * PerImage, PerImage).CopyTo(bases.AsSpan(i * PerImage, PerImage));
                baseAnswers[i] = answers[i * (m + 1)];
            }
            Remember(bases, baseAnswers);
        }
        for (int s = 0; s < Options.StudentSteps; s++)
        {
            if (await QueryFreshBatchAsync(victim, cancellationToken).ConfigureAwait(false) is not (var x, var answers)) break;
            TrainStep(Student, StudentOptimizer, x, answers.Length, logits => StudentLoss(logits, answers));
            Remember(x, answers);
        }
        TrainOnReplay((x, answers) => TrainStep(Student, StudentOptimizer, x, answers.Length, logits => StudentLoss(logits, answers)));
    }
}

/// <summary>DFME (Truong et al. 2021): L1 between the student's logits and the victim's reconstructed logits.</summary>
public sealed class DfmeAttack(IKernels kernels, int classes, AttackOptions options) : ZerothOrderAttack(AttackKind.Dfme, kernels, classes, options)
{
    protected override double[] Disagreement(float[] studentLogits, double[][] answers)
        => AttackLosses.RowL1(studentLogits, AttackLosses.ReconstructedLogits(answers, Classes), Classes);

    protected override (double, float[]) StudentLoss(float[] studentLogits, double[][] answers)
        => Losses.L1(studentLogits, AttackLosses.ReconstructedLogits(answers, Classes));
}

/// <summary>MAZE (Kariyappa et al. 2021): KL divergence, m = 10 directions, experience replay.</summary>
public sealed class MazeAttack(IKernels kernels, int classes, AttackOptions options) : ZerothOrderAttack(AttackKind.Maze, kernels, classes, options)
{
    protected override double[] Disagreement(float[] studentLogits, double[][] answers) => AttackLosses.RowKl(studentLogits, answers, Classes);

    protected override (double, float[]) StudentLoss(float[] studentLogits, double[][] answers) => Losses.KlDivergence(studentLogits, Flatten(answers), Classes);

    internal static float[] Flatten(double[][] rows) => rows.SelectMany(r => r.Select(v => (float)v)).ToArray();
}

/// <summary>
/// DaST (Zhou et al. 2020): a label-controlled generator — here the class label enters as a one-hot code in the
/// first K noise dimensions, so the generator's dense layer gives each class its own branch of features. It is
/// trained white-box through the student: maximise the student–victim distance (e^(−d)) while the student
/// assigns the image its code's class (α = 0.2); the student minimises d (squared distance of probabilities).
/// One query batch per iteration, shared by both steps.
/// </summary>
public sealed class DastAttack(IKernels kernels, int classes, AttackOptions options) : DataFreeAttack(AttackKind.Dast, kernels, classes, options)
{
    private const float LabelWeight = 0.2f;

    protected override async Task IterateAsync(BudgetedClient victim, CancellationToken cancellationToken)
    {
        int n = Affordable(victim);
        var labels = new int[n];
        var z = Noise(n);
        for (int i = 0; i < n; i++)
        {
            labels[i] = Random.Next(Classes);
            for (int k = 0; k < Math.Min(Classes, ImageGenerator.NoiseSize); k++) z[i * ImageGenerator.NoiseSize + k] = k == labels[i] ? 1f : 0f;
        }
        Trace?.Invoke("labels", labels.Select(l => (float)l).ToArray());
        using var recorded = Generate(z, n);
        var x = recorded.Images;
        var answers = await AskAsync(victim, x, n, cancellationToken).ConfigureAwait(false);
        if (answers == null) return;
        using (var student = Student.Record(ToNetworkInput(StudentArchitecture, x), ImageShape(n)))
        {
            var (distance, dDistance) = AttackLosses.ProbabilityMse(student.Outputs, answers, Classes);
            var (_, dLabel) = Losses.CrossEntropy(student.Outputs, labels, Classes);
            var dLogits = new float[dDistance.Length];
            float imitation = (float)-Math.Exp(-distance);
            for (int i = 0; i < dLogits.Length; i++) dLogits[i] = imitation * dDistance[i] + LabelWeight * dLabel[i];
            var dx = FromNetworkInputGradient(StudentArchitecture, student.Backward(dLogits));
            Student.Parameters.ZeroGradients(); // the generator's loss must not train the student
            recorded.Backward(dx);
        }
        Trace?.Invoke("generator-gradient", GradientValues(Generator.Parameters));
        GeneratorOptimizer.Step();
        TrainStep(Student, StudentOptimizer, x, n, logits => AttackLosses.ProbabilityMse(logits, answers, Classes));
        Remember(x, answers);
        TrainOnReplay((xs, a) => TrainStep(Student, StudentOptimizer, xs, a.Length, logits => AttackLosses.ProbabilityMse(logits, a, Classes)));
    }
}

/// <summary>
/// DisGUIDE (Rosenthal et al. 2023): two students; the generator seeks images they disagree on (white-box
/// through both, no queries) with a class-diversity term; both students learn the victim's answers with replay.
/// The clone measured is the first student.
/// </summary>
public class DisguideAttack : DataFreeAttack
{
    private readonly TrainableNetwork _second;
    private readonly Optimizer _secondOptimizer;

    public DisguideAttack(IKernels kernels, int classes, AttackOptions options) : this(AttackKind.Disguide, kernels, classes, options) { }

    protected DisguideAttack(AttackKind kind, IKernels kernels, int classes, AttackOptions options) : base(kind, kernels, classes, options)
    {
        _second = NewStudent(1);
        _secondOptimizer = NewStudentOptimizer(_second);
    }

    /// <summary>The second student, for tests that compare it with another framework's.</summary>
    internal TrainableNetwork SecondStudent => _second;

    protected override async Task IterateAsync(BudgetedClient victim, CancellationToken cancellationToken)
    {
        int n = Options.BatchSize;
        using (var recorded = Generate(Noise(n), n))
        {
            var input = ToNetworkInput(StudentArchitecture, recorded.Images);
            using var a = Student.Record(input, ImageShape(n));
            using var b = _second.Record(input, ImageShape(n));
            var (_, ga, gb) = AttackLosses.SoftmaxDisagreement(a.Outputs, b.Outputs, Classes);
            var (_, da) = AttackLosses.ClassDiversity(a.Outputs, Classes);
            var (_, db) = AttackLosses.ClassDiversity(b.Outputs, Classes);
            float w = Options.DiversityWeight / 2;
            for (int i = 0; i < ga.Length; i++) { ga[i] = -ga[i] + w * da[i]; gb[i] = -gb[i] + w * db[i]; }
            var dx = a.Backward(ga);
            var dxb = b.Backward(gb);
            for (int i = 0; i < dx.Length; i++) dx[i] += dxb[i];
            Student.Parameters.ZeroGradients();
            _second.Parameters.ZeroGradients();
            recorded.Backward(FromNetworkInputGradient(StudentArchitecture, dx));
        }
        Trace?.Invoke("generator-gradient", GradientValues(Generator.Parameters));
        GeneratorOptimizer.Step();
        for (int s = 0; s < Options.StudentSteps; s++)
        {
            if (await QueryFreshBatchAsync(victim, cancellationToken).ConfigureAwait(false) is not (var x, var answers)) return;
            Remember(x, answers);
            TrainBoth(x, answers);
        }
        TrainOnReplay(TrainBoth);
    }

    // Both students learn DFME's way (L1 to the victim's reconstructed logits), which DisGUIDE's reference keeps.
    private void TrainBoth(float[] x, double[][] answers)
    {
        var target = AttackLosses.ReconstructedLogits(answers, Classes);
        TrainStep(Student, StudentOptimizer, x, answers.Length, logits => Losses.L1(logits, target));
        TrainStep(_second, _secondOptimizer, x, answers.Length, logits => Losses.L1(logits, target));
    }
}

/// <summary>
/// Dual Student (Beetham et al., ICLR 2023): two students trained alike on the victim's answers; the generator
/// ascends their disagreement white-box (no queries), which bounds the disagreement with the victim from below.
/// DisGUIDE is this plus a class-diversity term, so the two share one implementation; the recipe sets no diversity.
/// </summary>
public sealed class DualStudentAttack(IKernels kernels, int classes, AttackOptions options) : DisguideAttack(AttackKind.DualStudent, kernels, classes, options);

/// <summary>Natural images from another distribution than the victim's (DFMS's proxy data), values in 0…1, (n, 3, 32, 32).</summary>
public interface IProxyImages
{
    float[] Next(int n, Random rng);
}

/// <summary>
/// DFMS-HL's GAN after its proxy-only pre-training (generator and discriminator values). It depends on the seed, the proxy
/// and the generator's settings (<see cref="DfmsHlAttack.PretrainingKey"/>) but never on the victim or its defence, so runs
/// that share those can share it: an evaluation pre-trains once per key instead of once per defence.
/// </summary>
public sealed record PretrainedGan(TensorSet Generator, TensorSet Discriminator);

/// <summary>
/// DFMS-HL (Sanyal et al. 2022, hard-label): the generator is a GAN on proxy images (a small ResNet discriminator,
/// non-saturating loss), first trained on the proxy alone (<see cref="AttackOptions.ProxyPretrainSteps"/>, no queries,
/// its own random stream and optimizers), then with a class-diversity term from the student, so its images stay near the
/// proxy and cover the victim's classes; the student learns from the victim's top-1 label only (cross-entropy), on fresh
/// and replayed queries. Top-1 labels are all it uses — so an output perturbation that keeps the ranking cannot hurt it.
/// </summary>
public sealed class DfmsHlAttack : DataFreeAttack
{
    private readonly IProxyImages _proxy;
    private readonly TrainableNetwork _discriminator;
    private readonly Optimizer _discriminatorOptimizer;
    private bool _pretrained;

    public DfmsHlAttack(IKernels kernels, int classes, AttackOptions options, IProxyImages proxy) : base(AttackKind.DfmsHl, kernels, classes, options)
    {
        _proxy = proxy;
        var arch = ArchitectureDescriptor.ResNet(18, 1, ResNetStem.Cifar, Side, width: 4);
        _discriminator = Own(TrainableNetwork.ResNet(kernels, arch, Data.SeededRandom.Mix(options.Seed, 300)));
        _discriminatorOptimizer = NewDiscriminatorOptimizer();
    }

    /// <summary>The discriminator, for tests that compare it with another framework's.</summary>
    internal TrainableNetwork Discriminator => _discriminator;

    /// <summary>The settings the pre-trained GAN depends on (with the proxy set): equal keys, equal <see cref="PretrainedGan"/>.</summary>
    public static string PretrainingKey(AttackOptions o) =>
        FormattableString.Invariant($"seed {o.Seed}, {o.Generator} width {o.GeneratorWidth}, grey {o.GreyImages}, shift {o.ImageShift}, blur {o.ImageBlur}, jpeg {o.ImageJpeg}, batch {o.BatchSize}, lr {o.GeneratorLearningRate}, steps {o.ProxyPretrainSteps}");

    private AdamOptimizer NewDiscriminatorOptimizer() => new(_discriminator.Parameters, Options.GeneratorLearningRate, beta1: 0.5f);

    /// <summary>
    /// Pre-trains the GAN on the proxy now (<see cref="AttackOptions.ProxyPretrainSteps"/> steps) and returns it. The attack's
    /// own optimizers start afresh afterwards, so a run from here equals a run that was handed the result through
    /// <see cref="UsePretrained"/>.
    /// </summary>
    public PretrainedGan Pretrain(CancellationToken cancellationToken = default)
    {
        if (_pretrained) throw new InvalidOperationException("The GAN is pre-trained already.");
        var rng = new Data.SeededRandom(Data.SeededRandom.Mix(Options.Seed, 301));
        var generatorOptimizer = new AdamOptimizer(Generator.Parameters, Options.GeneratorLearningRate);
        var discriminatorOptimizer = NewDiscriminatorOptimizer();
        for (int s = 0; s < Options.ProxyPretrainSteps; s++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            GanStep(withDiversity: false, rng, generatorOptimizer, discriminatorOptimizer);
        }
        Generator.Parameters.ResetOptimizerState();
        _discriminator.Parameters.ResetOptimizerState();
        _pretrained = true;
        return new PretrainedGan(Generator.Export(), _discriminator.Export());
    }

    /// <summary>Starts from a GAN that <see cref="Pretrain"/> made for the same <see cref="PretrainingKey"/> and proxy (not checked).</summary>
    public void UsePretrained(PretrainedGan gan)
    {
        ArgumentNullException.ThrowIfNull(gan);
        if (_pretrained) throw new InvalidOperationException("The GAN is pre-trained already.");
        Generator.Parameters.Load(gan.Generator);
        _discriminator.Parameters.Load(gan.Discriminator);
        _pretrained = true;
    }

    protected override async Task IterateAsync(BudgetedClient victim, CancellationToken cancellationToken)
    {
        if (!_pretrained) Pretrain(cancellationToken);
        GanStep(withDiversity: true, Random, GeneratorOptimizer, _discriminatorOptimizer);
        for (int step = 0; step < Options.StudentSteps; step++)
        {
            if (await QueryFreshBatchAsync(victim, cancellationToken).ConfigureAwait(false) is not (var x, var answers)) break;
            TrainOnLabels(x, answers);
            Remember(x, answers);
        }
        TrainOnReplay(TrainOnLabels);
    }

    private void TrainOnLabels(float[] x, double[][] answers)
    {
        var labels = answers.Select(a => Guardian.DeceptivePredictions.ArgMax(a)).ToArray();
        TrainStep(Student, StudentOptimizer, x, answers.Length, logits => Losses.CrossEntropy(logits, labels, Classes));
    }

    /// <summary>
    /// One discriminator step (proxy images real, generator images fake) and one generator step: fool the discriminator
    /// (non-saturating) and, with <paramref name="withDiversity"/>, spread the student's predictions over the classes.
    /// </summary>
    private void GanStep(bool withDiversity, Data.SeededRandom rng, Optimizer generatorOptimizer, Optimizer discriminatorOptimizer)
    {
        int n = Options.BatchSize;
        var ones = Enumerable.Repeat(1f, n).ToArray();
        var zeros = new float[n];
        var real = _proxy.Next(n, rng);
        Trace?.Invoke("proxy", real);
        _discriminator.ForwardBackward(ToNetworkInput(_discriminator.Architecture, real), ImageShape(n), y => Losses.BceWithLogits(y, ones));
        _discriminator.ForwardBackward(ToNetworkInput(_discriminator.Architecture, Sample(n, rng)), ImageShape(n), y => Losses.BceWithLogits(y, zeros));
        Trace?.Invoke("discriminator-gradient", GradientValues(_discriminator.Parameters));
        discriminatorOptimizer.Step();
        using (var recorded = Generate(Noise(n, rng), n))
        {
            var x = recorded.Images;
            using var d = _discriminator.Record(ToNetworkInput(_discriminator.Architecture, x), ImageShape(n));
            var (_, dAdv) = Losses.BceWithLogits(d.Outputs, ones);
            var dx = FromNetworkInputGradient(_discriminator.Architecture, d.Backward(dAdv));
            if (withDiversity)
            {
                using var s = Student.Record(ToNetworkInput(StudentArchitecture, x), ImageShape(n));
                var (_, dDiv) = AttackLosses.ClassDiversity(s.Outputs, Classes);
                for (int i = 0; i < dDiv.Length; i++) dDiv[i] *= Options.DiversityWeight;
                var dxs = FromNetworkInputGradient(StudentArchitecture, s.Backward(dDiv));
                for (int i = 0; i < dx.Length; i++) dx[i] += dxs[i];
                Student.Parameters.ZeroGradients();
            }
            _discriminator.Parameters.ZeroGradients();
            recorded.Backward(dx);
        }
        Trace?.Invoke("generator-gradient", GradientValues(Generator.Parameters));
        generatorOptimizer.Step();
    }
}

/// <summary>Creates attacks by kind.</summary>
public static class AttackFactory
{
    public static DataFreeAttack Create(AttackKind kind, IKernels kernels, int classes, AttackOptions options, IProxyImages? proxy = null) => kind switch
    {
        AttackKind.Dfme => new DfmeAttack(kernels, classes, options),
        AttackKind.Maze => new MazeAttack(kernels, classes, options),
        AttackKind.Dast => new DastAttack(kernels, classes, options),
        AttackKind.Disguide => new DisguideAttack(kernels, classes, options),
        AttackKind.DualStudent => new DualStudentAttack(kernels, classes, options),
        AttackKind.DfmsHl => new DfmsHlAttack(kernels, classes, options, proxy ?? throw new ArgumentException("DFMS-HL needs proxy images (e.g. MNIST digits).")),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static string DisplayName(AttackKind kind) => kind switch
    {
        AttackKind.Dfme => "DFME", AttackKind.Maze => "MAZE", AttackKind.Dast => "DaST", AttackKind.Disguide => "DisGUIDE", AttackKind.DfmsHl => "DFMS-HL", AttackKind.DualStudent => "Dual Student",
        _ => kind.ToString(),
    };
}

/// <summary>
/// Proxy images from MNIST digits (grey, objects centred on black, unrelated to the victim's classes — DFMS's idea
/// of a proxy for a grey clothing victim): a random digit padded with 2 black pixels to 32², as the victim's
/// contract places a 28² upload, the grey plane repeated to three channels; values in 0…1.
/// </summary>
public sealed class DigitProxyImages(Data.MnistDigits digits) : IProxyImages
{
    public float[] Next(int n, Random rng)
    {
        const int side = Data.MnistDigits.Side, pad = (ImageGenerator.Side - side) / 2, hw = ImageGenerator.Side * ImageGenerator.Side;
        var x = new float[n * 3 * hw];
        for (int i = 0; i < n; i++)
        {
            var digit = digits.Image(rng.Next(digits.Count));
            var plane = x.AsSpan(i * 3 * hw, hw);
            for (int y = 0; y < side; y++)
                for (int c = 0; c < side; c++) plane[(y + pad) * ImageGenerator.Side + c + pad] = digit[y * side + c] / 255f;
            plane.CopyTo(x.AsSpan(i * 3 * hw + hw, hw));
            plane.CopyTo(x.AsSpan(i * 3 * hw + 2 * hw, hw));
        }
        return x;
    }
}
