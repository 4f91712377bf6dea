using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels;
using System.Numerics.Tensors;

namespace ModelGuardian.Engine.Attacks;

/// <summary>The built-in data-free stealing attacks (docs/design.md and the papers they name).</summary>
public enum AttackKind { Dfme, Maze, Dast, Disguide, DfmsHl, DualStudent }

/// <summary>How the attacks' learning rates change over the budget.</summary>
public enum LearningRateSchedule
{
    /// <summary>The same rate throughout.</summary>
    Constant,
    /// <summary>Half a cosine from the rate to 0 over the budget.</summary>
    Cosine,
    /// <summary>DFME's steps: ×0.3 at 10, 30 and 50 % of the budget.</summary>
    Steps,
}

/// <summary>
/// How an attack runs; immutable. <see cref="For"/> gives each attack its recipe: the reference values where
/// 2 CPU cores can afford them, and where not, the change and its reason in docs/attacks.md. Every property
/// can be set by name from the CLI (`mg attack --set Name=value`).
/// </summary>
public sealed record AttackOptions
{
    public required long Budget { get; init; }
    public int BatchSize { get; init; } = 64;
    /// <summary>Clone (student) architecture: a CIFAR-stem ResNet of this depth and width.</summary>
    public int StudentDepth { get; init; } = 18;
    public int StudentWidth { get; init; } = 8;
    public GeneratorFamily Generator { get; init; } = GeneratorFamily.NearestConv;
    public int GeneratorWidth { get; init; } = 32;
    /// <summary>
    /// The generator's image head: true, one grey plane through batch-norm (no affine) and tanh, repeated to three
    /// channels (DFME's head; MAZE's Fashion-MNIST generator is one-channel) — what suits a grey victim; false,
    /// three colour channels through a sigmoid (the detectors' generator families).
    /// </summary>
    public bool GreyImages { get; init; } = true;
    /// <summary>Grey head only: added before the tanh; negative starts the images darker, as the victim's are (objects on black).</summary>
    public float ImageShift { get; init; }
    /// <summary>
    /// The evasive attacker: σ of a Gaussian blur appended to the generator (its gradients pass through it), to wash out the
    /// up-sampling traces the detector looks for; 0, none.
    /// </summary>
    public double ImageBlur { get; init; }
    /// <summary>The evasive attacker: JPEG quality of a re-encoding after the blur (straight-through gradient); 0, none.</summary>
    public int ImageJpeg { get; init; }
    /// <summary>Student steps per iteration (each on a fresh, queried batch).</summary>
    public int StudentSteps { get; init; } = 5;
    /// <summary>Zeroth-order estimate: random directions per generated image (DFME 1, MAZE 10) and step ε.</summary>
    public int Directions { get; init; } = 1;
    public float Epsilon { get; init; } = 1e-3f;
    /// <summary>Student: SGD (DFME: 0.1, momentum 0.9, weight decay 5e-4).</summary>
    public float StudentLearningRate { get; init; } = 0.1f;
    public float GeneratorLearningRate { get; init; } = 1e-4f;
    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Constant;
    /// <summary>Extra student steps per iteration on remembered queries (experience replay; no new queries).</summary>
    public int ReplaySteps { get; init; }
    /// <summary>Queries the replay memory keeps (the oldest are forgotten past it); the default keeps every query of any budget run here.</summary>
    public int ReplayCapacity { get; init; } = 1 << 21;
    /// <summary>
    /// DFMS-HL: GAN steps on the proxy images before the first query (they cost none), as DFMS starts from a GAN
    /// pre-trained on its proxy set.
    /// </summary>
    public int ProxyPretrainSteps { get; init; }
    /// <summary>Weight of the class-diversity term in generator losses that use one (DFMS, DisGUIDE).</summary>
    public float DiversityWeight { get; init; } = 1f;
    /// <summary>How many times the clone is measured over the run (plus once before the first query).</summary>
    public int EvaluationPoints { get; init; } = 10;
    public ulong Seed { get; init; } = 1;
    /// <summary>
    /// The adaptive attacker: every answer passes through this before training (e.g. inverting DPreds). Null: answers are used as received.
    /// </summary>
    public Func<double[], double[]>? AnswerInterpreter { get; init; }

    /// <summary>The recipe of <paramref name="kind"/> at <paramref name="budget"/> queries (docs/attacks.md: each value beside the reference's).</summary>
    public static AttackOptions For(AttackKind kind, long budget, ulong seed = 1) => kind switch
    {
        // DFME: 1 direction, ε 1e-3 before the tanh, L1 on reconstructed logits; one student step per generator step
        // and 5 replay steps over every past answer, generator Adam 1e-3, cosine rates, a dark start (reference: 5
        // fresh steps, no replay, Adam 1e-4, ×0.3 steps, no shift).
        AttackKind.Dfme => new AttackOptions
        {
            Budget = budget, Seed = seed, BatchSize = 128, Directions = 1, StudentSteps = 1, ReplaySteps = 5,
            GeneratorLearningRate = 1e-3f, Schedule = LearningRateSchedule.Cosine, GeneratorWidth = 16, ImageShift = DarkStart,
        },
        // MAZE: KL, m = 10, batch 128 → 32, replay over every past answer; its Fashion-MNIST recipe's generator rate
        // 1e-3 with a cosine schedule.
        AttackKind.Maze => new AttackOptions
        {
            Budget = budget, Seed = seed, BatchSize = 32, Directions = 10, StudentSteps = 5, ReplaySteps = 2,
            GeneratorLearningRate = 1e-3f, Schedule = LearningRateSchedule.Cosine, ImageShift = DarkStart,
        },
        // DaST: one query batch per iteration, shared by the generator and the student steps; 5 replay steps over every
        // past answer as our DFME (the reference replays none).
        AttackKind.Dast => new AttackOptions { Budget = budget, Seed = seed, StudentSteps = 1, ReplaySteps = 5, GeneratorLearningRate = 1e-4f, ImageShift = DarkStart },
        // DisGUIDE: two students, white-box disagreement for G (no queries); one fresh batch and 3 replay steps per
        // generator step, diversity weight 0.2, as the reference; generator Adam 1e-3 and cosine rates as DFME here.
        AttackKind.Disguide => new AttackOptions
        {
            Budget = budget, Seed = seed, BatchSize = 128, StudentSteps = 1, ReplaySteps = 3, DiversityWeight = 0.2f,
            GeneratorLearningRate = 1e-3f, Schedule = LearningRateSchedule.Cosine, GeneratorWidth = 16, ImageShift = DarkStart,
        },
        // Dual Student: DisGUIDE's ancestor — two students whose disagreement the generator ascends, no diversity
        // term; the same fresh and replay steps as our DisGUIDE.
        AttackKind.DualStudent => new AttackOptions
        {
            Budget = budget, Seed = seed, BatchSize = 128, StudentSteps = 1, ReplaySteps = 3, DiversityWeight = 0,
            GeneratorLearningRate = 1e-3f, Schedule = LearningRateSchedule.Cosine, GeneratorWidth = 16, ImageShift = DarkStart,
        },
        // DFMS-HL: a GAN pre-trained on the proxy (MNIST digits), then trained on with class diversity; the student
        // learns from top-1 labels only, with replay as our other attacks (the reference trains on fresh batches).
        AttackKind.DfmsHl => new AttackOptions
        {
            Budget = budget, Seed = seed, StudentSteps = 1, ReplaySteps = 5, ProxyPretrainSteps = 1000,
            GeneratorLearningRate = 2e-4f, ImageShift = DarkStart,
        },
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>The grey head's shift in the recipes that learned: images start mostly dark, as the victim's are.</summary>
    public const float DarkStart = -1.5f;

    internal void Validate()
    {
        if (Budget < 1) throw new ArgumentException($"The query budget must be positive, got {Budget}.");
        if (BatchSize < 2) throw new ArgumentException($"Batch size must be at least 2 (batch-norm), got {BatchSize}.");
        if (StudentSteps < 1 || Directions < 1 || ReplaySteps < 0 || ProxyPretrainSteps < 0 || EvaluationPoints < 1)
            throw new ArgumentException("Student steps, directions and evaluation points must be positive; replay and pre-training steps not negative.");
        if (ReplayCapacity < 1) throw new ArgumentException($"The replay capacity must be positive, got {ReplayCapacity}.");
        if (!(Epsilon > 0) || !(StudentLearningRate > 0) || !(GeneratorLearningRate > 0)) throw new ArgumentException("ε and learning rates must be positive.");
        if (!float.IsFinite(ImageShift)) throw new ArgumentException($"The image shift must be a number, got {ImageShift}.");
        if (!(ImageBlur >= 0 && ImageBlur <= 16)) throw new ArgumentException($"The image blur σ must lie in [0, 16], got {ImageBlur}.");
        if (ImageJpeg is < 0 or > 100) throw new ArgumentException($"The image JPEG quality must lie in 1…100 (0: none), got {ImageJpeg}.");
    }
}

/// <summary>The victim's test set as the clone is measured on it: images (0…255) and true labels.</summary>
public sealed class CloneTestSet
{
    public CloneTestSet(IReadOnlyList<PlanarImage> images, IReadOnlyList<int> labels)
    {
        if (images.Count == 0 || images.Count != labels.Count) throw new ArgumentException($"{images.Count} test images for {labels.Count} labels.");
        Images = images;
        Labels = labels;
    }

    public IReadOnlyList<PlanarImage> Images { get; }
    public IReadOnlyList<int> Labels { get; }

    /// <summary>Top-1 accuracy of a clone, in evaluation mode (its training mode is restored after).</summary>
    public double Accuracy(TrainableNetwork clone, int batch = 200)
    {
        var a = clone.Architecture;
        bool training = clone.Mode.IsTraining;
        clone.Mode.IsTraining = false;
        int per = 3 * a.InputSide * a.InputSide, correct = 0;
        for (int start = 0; start < Images.Count; start += batch)
        {
            int n = Math.Min(batch, Images.Count - start);
            var x = new float[n * per];
            for (int i = 0; i < n; i++) NetworkInput.FromPlanar(a, clone.Kernels, Images[start + i]).CopyTo(x, i * per);
            var y = clone.Forward(x, new Shape4(n, 3, a.InputSide, a.InputSide));
            for (int i = 0; i < n; i++)
                if (ArgMax(y.AsSpan(i * a.Outputs, a.Outputs)) == Labels[start + i]) correct++;
        }
        clone.Mode.IsTraining = training;
        return (double)correct / Images.Count;
    }

    internal static int ArgMax(ReadOnlySpan<float> v)
    {
        int best = 0;
        for (int k = 1; k < v.Length; k++) if (v[k] > v[best]) best = k;
        return best;
    }
}

/// <summary>Clone accuracy after a number of queries.</summary>
public sealed record ClonePoint(long Queries, double CloneAccuracy);

public sealed record AttackProgress(AttackKind Attack, long Spent, long Budget, double? LastCloneAccuracy);

/// <summary>What an attack got: queries sent and answered, whether its account was cut off, and its clone's accuracy over the run.</summary>
public sealed record AttackResult(AttackKind Attack, long Budget, long QueriesSpent, long QueriesAnswered, bool Terminated, IReadOnlyList<ClonePoint> Curve)
{
    public double FinalCloneAccuracy => Curve[^1].CloneAccuracy;
}

/// <summary>
/// The common frame of a data-free attack: a student (the clone), a generator, the budget meter and the
/// clone measurements. Subclasses write one iteration; <see cref="RunAsync"/> repeats it until the budget
/// is spent exactly or the account is refused. Deterministic for a seed on the CPU backend.
/// </summary>
public abstract class DataFreeAttack : IDisposable
{
    private readonly List<IDisposable> _owned = new();

    protected DataFreeAttack(AttackKind kind, IKernels kernels, int classes, AttackOptions options)
    {
        options.Validate();
        if (classes < 2) throw new ArgumentException($"The victim must have at least 2 classes, got {classes}.");
        Kind = kind;
        Options = options;
        _evasion = options.ImageBlur > 0 || options.ImageJpeg > 0 ? new ImageEvasion(options.ImageBlur, options.ImageJpeg) : null;
        Classes = classes;
        Kernels = kernels;
        Random = new SeededRandom(SeededRandom.Mix(options.Seed, (ulong)kind + 1));
        StudentArchitecture = ArchitectureDescriptor.ResNet(options.StudentDepth, classes, ResNetStem.Cifar, ImageGenerator.Side, options.StudentWidth);
        Student = NewStudent(0);
        StudentOptimizer = NewStudentOptimizer(Student);
        ulong generatorSeed = SeededRandom.Mix(options.Seed, 100 + (ulong)kind);
        Generator = Own(options.GreyImages
            ? ImageGenerator.CreateGreyLogits(kernels, options.Generator, generatorSeed, options.GeneratorWidth)
            : ImageGenerator.Create(kernels, options.Generator, generatorSeed, options.GeneratorWidth));
        GeneratorOptimizer = Scheduled(new AdamOptimizer(Generator.Parameters, options.GeneratorLearningRate));
        if (options.ReplaySteps > 0) Replay = new ReplayBuffer(options.ReplayCapacity, PerImage, classes, options.GreyImages);
    }

    private readonly List<(Optimizer Optimizer, float Rate)> _scheduled = new();
    /// <summary>The evasive attacker's steps at the end of the generator; null when there are none.</summary>
    private readonly ImageEvasion? _evasion;

    /// <summary>Puts <paramref name="optimizer"/> under <see cref="AttackOptions.Schedule"/>, from its current rate.</summary>
    protected T Scheduled<T>(T optimizer) where T : Optimizer
    {
        _scheduled.Add((optimizer, optimizer.LearningRate));
        return optimizer;
    }

    /// <summary>The learning-rate factor at a share of the budget spent.</summary>
    public static double ScheduleFactor(LearningRateSchedule schedule, double spent) => schedule switch
    {
        LearningRateSchedule.Constant => 1,
        LearningRateSchedule.Cosine => (1 + Math.Cos(Math.PI * Math.Clamp(spent, 0, 1))) / 2,
        LearningRateSchedule.Steps => Math.Pow(0.3, (spent >= 0.1 ? 1 : 0) + (spent >= 0.3 ? 1 : 0) + (spent >= 0.5 ? 1 : 0)),
        _ => throw new ArgumentOutOfRangeException(nameof(schedule)),
    };

    public AttackKind Kind { get; }
    public AttackOptions Options { get; }
    public int Classes { get; }
    protected IKernels Kernels { get; }
    protected SeededRandom Random { get; }
    protected ArchitectureDescriptor StudentArchitecture { get; }
    /// <summary>The clone being trained (what is measured).</summary>
    public TrainableNetwork Student { get; }
    protected Optimizer StudentOptimizer { get; }
    protected ImageGenerator Generator { get; }
    protected Optimizer GeneratorOptimizer { get; }
    /// <summary>Every answered query, for <see cref="AttackOptions.ReplaySteps"/>; null when the recipe does not replay.</summary>
    protected ReplayBuffer? Replay { get; }
    protected static int Side => ImageGenerator.Side;
    protected static int PerImage => 3 * Side * Side;

    protected T Own<T>(T resource) where T : IDisposable
    {
        _owned.Add(resource);
        return resource;
    }

    protected TrainableNetwork NewStudent(ulong index) => Own(TrainableNetwork.ResNet(Kernels, StudentArchitecture, SeededRandom.Mix(Options.Seed, 200 + index)));

    protected Optimizer NewStudentOptimizer(TrainableNetwork student) => Scheduled(new SgdOptimizer(student.Parameters, Options.StudentLearningRate, 0.9f, 5e-4f));

    public async Task<AttackResult> RunAsync(IVictimClient victim, CloneTestSet test, IProgress<AttackProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (victim.Classes != Classes) throw new ArgumentException($"The attack was built for {Classes} classes; the victim has {victim.Classes}.");
        var meter = new BudgetedClient(victim, Options.Budget);
        var curve = new List<ClonePoint> { new(0, test.Accuracy(Student)) };
        int nextPoint = 1;
        progress?.Report(new AttackProgress(Kind, 0, Options.Budget, curve[^1].CloneAccuracy));
        while (meter.Remaining > 0 && !meter.Terminated)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long before = meter.Spent;
            double factor = ScheduleFactor(Options.Schedule, (double)meter.Spent / Options.Budget);
            foreach (var (optimizer, rate) in _scheduled) optimizer.LearningRate = (float)(rate * factor);
            await IterateAsync(meter, cancellationToken).ConfigureAwait(false);
            if (meter.Spent == before) throw new InvalidOperationException($"{Kind}: an iteration spent no queries with {meter.Remaining} left.");
            bool measure = meter.Spent * Options.EvaluationPoints >= nextPoint * Options.Budget || meter.Remaining == 0 || meter.Terminated;
            if (measure)
            {
                curve.Add(new ClonePoint(meter.Spent, test.Accuracy(Student)));
                while (nextPoint * Options.Budget <= meter.Spent * Options.EvaluationPoints) nextPoint++;
            }
            progress?.Report(new AttackProgress(Kind, meter.Spent, Options.Budget, curve[^1].CloneAccuracy));
        }
        return new AttackResult(Kind, Options.Budget, meter.Spent, meter.Answered, meter.Terminated, curve);
    }

    /// <summary>One iteration: spends at least one query and never more than <see cref="BudgetedClient.Remaining"/>.</summary>
    protected abstract Task IterateAsync(BudgetedClient victim, CancellationToken cancellationToken);

    // ---- building blocks -------------------------------------------------------------------

    /// <summary>Images per step that fit the rest of the budget when each costs <paramref name="queriesPerImage"/> queries.</summary>
    protected int Affordable(BudgetedClient victim, int queriesPerImage = 1) => (int)Math.Min(Options.BatchSize, victim.Remaining / queriesPerImage);

    /// <summary>Generator noise for n images, drawn from <paramref name="rng"/> (the attack's own stream by default).</summary>
    protected float[] Noise(int n, SeededRandom? rng = null)
    {
        rng ??= Random;
        var z = new float[n * ImageGenerator.NoiseSize];
        for (int i = 0; i < z.Length; i++) z[i] = (float)rng.NextGaussian();
        Trace?.Invoke("noise", z);
        return z;
    }

    /// <summary>
    /// Sees the attack's random draws ("noise", "directions", DaST's "labels", DFMS-HL's "proxy" images), its
    /// zeroth-order losses ("losses", "slopes") and the gradients before each optimizer step ("generator-gradient",
    /// "discriminator-gradient") in order, so that a test can replay an iteration in another framework.
    /// </summary>
    internal Action<string, float[]>? Trace { get; set; }

    /// <summary>The generator, for tests that compare its parameters with another framework's.</summary>
    internal ImageGenerator GeneratorNetwork => Generator;

    /// <summary>Every trainable parameter's accumulated gradient, concatenated in the store's order (for <see cref="Trace"/>).</summary>
    protected static float[] GradientValues(ParameterStore parameters)
    {
        var all = new List<float>();
        foreach (var p in parameters.Trainable)
        {
            var g = new float[p.Length];
            parameters.Kernels.Download(p.Gradient!, g);
            all.AddRange(g);
        }
        return all.ToArray();
    }

    protected static Shape4 NoiseShape(int n) => new(n, ImageGenerator.NoiseSize, 1, 1);

    /// <summary>n generator images (values in 0…1), no backward.</summary>
    protected float[] Sample(int n, SeededRandom? rng = null) => GeneratorPass.Head(Generator.Forward(Noise(n, rng), NoiseShape(n)), Options.GreyImages ? Options.ImageShift : null, _evasion).Images;

    /// <summary>A recorded generator forward on <paramref name="z"/>: its images and the way back to the generator's parameters.</summary>
    protected GeneratorPass Generate(float[] z, int n) => new(Generator.Record(z, NoiseShape(n)), Options.GreyImages ? Options.ImageShift : null, _evasion);

    /// <summary>
    /// One recorded generator forward. <see cref="Perturbable"/> is where zeroth-order attacks step: the normalised
    /// pre-tanh plane of the grey head (S² per image), or the colour images themselves (3S²).
    /// </summary>
    protected sealed class GeneratorPass : IDisposable
    {
        private readonly RecordedPass _raw;
        private readonly float? _shift;
        private readonly ImageEvasion? _evasion;
        private readonly double _inverseStd;

        internal GeneratorPass(RecordedPass raw, float? greyShift, ImageEvasion? evasion)
        {
            _raw = raw;
            _shift = greyShift;
            _evasion = evasion;
            (Perturbable, _inverseStd, Images) = Head(raw.Outputs, greyShift, evasion);
        }

        /// <summary>
        /// The head on the generator's raw output: the grey head's normalised plane (and 1/std) and its images, or the colour
        /// images as they are; then the evasive attacker's steps, if any.
        /// </summary>
        internal static (float[] Perturbable, double InverseStd, float[] Images) Head(float[] raw, float? greyShift, ImageEvasion? evasion)
        {
            if (greyShift is null) return (raw, 0, evasion?.Forward(raw, Side) ?? raw);
            var (normalised, inverseStd) = GreyImageHead.Normalise(raw);
            var images = GreyImageHead.ToImages(normalised, Side * Side, greyShift.Value);
            return (normalised, inverseStd, evasion?.Forward(images, Side) ?? images);
        }

        public float[] Images { get; }
        public float[] Perturbable { get; }
        public int PerturbableLength => _shift is null ? 3 * Side * Side : Side * Side;

        /// <summary>Images (values in 0…1) at points of the perturbable space.</summary>
        public float[] ImagesAt(float[] perturbable)
        {
            var images = _shift is { } shift ? GreyImageHead.ToImages(perturbable, Side * Side, shift) : Clamp01(perturbable);
            return _evasion?.Forward(images, Side) ?? images;
        }

        /// <summary>Backward from ∂loss/∂images into the generator's parameter gradients.</summary>
        public void Backward(float[] dImages)
        {
            var dHead = _evasion?.Backward(dImages, Side) ?? dImages;
            BackwardPerturbable(_shift is { } shift ? GreyImageHead.ToImagesBackward(Perturbable, Side * Side, shift, dHead) : dHead);
        }

        /// <summary>Backward from ∂loss/∂(perturbable values) into the generator's parameter gradients.</summary>
        public void BackwardPerturbable(float[] gradient) =>
            _raw.Backward(_shift is null ? gradient : GreyImageHead.NormaliseBackward(Perturbable, _inverseStd, gradient));

        public void Dispose() => _raw.Dispose();
    }

    /// <summary>
    /// Queries the victim; answers pass through the adaptive interpreter. Null when the account was refused
    /// (the attack then stops: every later query would be refused too).
    /// </summary>
    protected async Task<double[][]?> AskAsync(BudgetedClient victim, float[] images, int n, CancellationToken cancellationToken)
    {
        var answers = await victim.QueryAsync(new QueryBatch(Clamp01(images), n, Side), cancellationToken).ConfigureAwait(false);
        if (answers.Any(a => a.Refused)) return null;
        return answers.Select(a => Options.AnswerInterpreter is { } f ? f(a.Probabilities) : a.Probabilities).ToArray();
    }

    /// <summary>
    /// A fresh generator batch — as many images as the budget allows, up to the batch size — and the victim's answers.
    /// Null when no budget is left or the account was refused.
    /// </summary>
    protected async Task<(float[] Images, double[][] Answers)?> QueryFreshBatchAsync(BudgetedClient victim, CancellationToken cancellationToken)
    {
        int b = Affordable(victim);
        if (b < 1) return null;
        var x = Sample(b);
        var answers = await AskAsync(victim, x, b, cancellationToken).ConfigureAwait(false);
        return answers == null ? null : (x, answers);
    }

    private static float[] Clamp01(float[] x)
    {
        var y = new float[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = Math.Clamp(x[i], 0f, 1f);
        return y;
    }

    protected static float[] ToNetworkInput(ArchitectureDescriptor a, ReadOnlySpan<float> images) => NetworkInput.FromUnit(a, images, Side * Side);

    protected static float[] FromNetworkInputGradient(ArchitectureDescriptor a, float[] gradient) => NetworkInput.FromUnitBackward(a, gradient, Side * Side);

    protected static Shape4 ImageShape(int n) => new(n, 3, Side, Side);

    /// <summary>One optimizer step of <paramref name="net"/> on images in 0…1 with a loss of its outputs.</summary>
    protected static double TrainStep(TrainableNetwork net, Optimizer optimizer, float[] images, int n, Func<float[], (double, float[])> loss)
    {
        var (value, _) = net.ForwardBackward(ToNetworkInput(net.Architecture, images), ImageShape(n), loss);
        optimizer.Step();
        return value;
    }

    /// <summary>Keeps answered queries for replay (nothing when the recipe does not replay).</summary>
    protected void Remember(float[] images, double[][] answers) => Replay?.Add(images, answers);

    /// <summary><see cref="AttackOptions.ReplaySteps"/> training steps, each on a batch drawn from every remembered answer; no queries.</summary>
    protected void TrainOnReplay(Action<float[], double[][]> train)
    {
        for (int s = 0; s < Options.ReplaySteps && Replay is { Count: > 0 }; s++)
        {
            var (x, answers) = Replay.Sample(Options.BatchSize, Random);
            train(x, answers);
        }
    }

    /// <summary>Outputs of a network on images in 0…1 (in its current mode), no backward.</summary>
    protected static float[] Outputs(TrainableNetwork net, float[] images, int n) => net.Forward(ToNetworkInput(net.Architecture, images), ImageShape(n));

    public void Dispose()
    {
        foreach (var d in _owned) d.Dispose();
        _owned.Clear();
        GC.SuppressFinalize(this);
    }
}

/// <summary>
/// The attacker's memory of answered queries for experience replay: images and the answers trained on, up to a
/// capacity (then the oldest are overwritten). Images are kept in half precision, and grey ones as one plane (the
/// three channels are equal), so a run keeps every one of its queries: 2 KB a grey 32² image.
/// </summary>
public sealed class ReplayBuffer
{
    private const int ChunkImages = 1024;
    private readonly int _capacity, _perImage, _classes, _stored;
    private readonly bool _grey;
    private readonly List<Half[]> _chunks = new();
    private readonly List<double[][]> _answers = new();
    private long _added;

    /// <param name="grey">Keep one plane per image: every image added must have three equal channels.</param>
    public ReplayBuffer(int capacity, int perImage, int classes, bool grey = false)
    {
        if (capacity < 1 || perImage < 1 || classes < 1) throw new ArgumentException($"A replay buffer of {capacity} images of {perImage} values and {classes} classes.");
        if (grey && perImage % 3 != 0) throw new ArgumentException($"Grey images of {perImage} values are not three planes.");
        (_capacity, _perImage, _classes, _grey) = (capacity, perImage, classes, grey);
        _stored = grey ? perImage / 3 : perImage;
    }

    public int Count => (int)Math.Min(_added, _capacity);

    public void Add(ReadOnlySpan<float> images, IReadOnlyList<double[]> answers)
    {
        if (images.Length != answers.Count * _perImage) throw new ArgumentException($"{images.Length} values for {answers.Count} images of {_perImage}.");
        for (int i = 0; i < answers.Count; i++)
        {
            if (answers[i].Length != _classes) throw new ArgumentException($"An answer of {answers[i].Length} probabilities in a buffer of {_classes} classes.");
            int slot = (int)(_added++ % _capacity);
            if (slot / ChunkImages == _chunks.Count)
            {
                _chunks.Add(new Half[ChunkImages * _stored]);
                _answers.Add(new double[ChunkImages][]);
            }
            var dst = _chunks[slot / ChunkImages].AsSpan(slot % ChunkImages * _stored, _stored);
            var src = images.Slice(i * _perImage, _stored);
            TensorPrimitives.ConvertToHalf(src, dst);
            _answers[slot / ChunkImages][slot % ChunkImages] = answers[i];
        }
    }

    public (float[] Images, double[][] Answers) Sample(int n, Random rng)
    {
        if (Count == 0) throw new InvalidOperationException("The replay buffer is empty.");
        var images = new float[n * _perImage];
        var answers = new double[n][];
        for (int i = 0; i < n; i++)
        {
            int slot = rng.Next(Count);
            var src = _chunks[slot / ChunkImages].AsSpan(slot % ChunkImages * _stored, _stored);
            var dst = images.AsSpan(i * _perImage, _stored);
            TensorPrimitives.ConvertToSingle(src, dst);
            if (_grey)
            {
                dst.CopyTo(images.AsSpan(i * _perImage + _stored, _stored));
                dst.CopyTo(images.AsSpan(i * _perImage + 2 * _stored, _stored));
            }
            answers[i] = _answers[slot / ChunkImages][slot % ChunkImages];
        }
        return (images, answers);
    }
}
