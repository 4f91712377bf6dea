using System.Diagnostics;
using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Training;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Eval;

/// <summary>
/// The models and data an evaluation runs on (loaded by the caller). Trained generators (name, generator), if any, join the
/// generalisation table. <see cref="DetectorFamilies"/>, aligned with the detector's sub-detectors, names the generator
/// families each was trained on (null where unknown): what the leave-one-family-out table holds out. <see cref="Baselines"/>
/// holds the networks that baseline defences other than the victim need (MAD's surrogate, AM's misinformation model, SEAT's encoder).
/// </summary>
public sealed record EvaluationSetup(IKernels Kernels, VictimClassifier Victim, DfmsDetector Detector, CloneTestSet Test, IProxyImages? Proxy,
                                     IReadOnlyList<(string Name, ImageGenerator Generator)>? TrainedGenerators = null,
                                     IReadOnlyList<IReadOnlySet<GeneratorFamily>?>? DetectorFamilies = null, BaselineModels? Baselines = null);

/// <param name="Flagged">Behind a Guardian: the attacker's queries its ledger counted as flagged (null for other defences).</param>
public sealed record AttackCellResult(string Key, AttackKind Attack, string Defense, AttackerKind Attacker, long Budget, long Spent, long Answered,
                                      bool Terminated, double FinalCloneAccuracy, IReadOnlyList<ClonePoint> Curve, double Seconds, long? Flagged = null);

/// <summary>A benign user sending the victim's test set through a defence: BAcc counts refusals as errors.</summary>
public sealed record BenignResult(string Defense, int Queries, int Answered, int Correct, int Flagged, bool Terminated)
{
    public double BenignAccuracy => (double)Correct / Queries;
}

/// <summary>
/// How the DFMS-Detector's sub-detectors, and their OR, judged a set of images of one source: as made, or after
/// <see cref="PostProcess"/> (a step name such as "blur-1"). <see cref="Family"/> names the generator family
/// behind a synthetic source; <see cref="DetectorFlags"/> holds, per image, bit j set when sub-detector j flagged it
/// (so the OR of any subset of sub-detectors can be read back).
/// </summary>
public sealed record DetectionResult(string Source, bool Synthetic, int Samples, IReadOnlyList<string> Detectors, IReadOnlyList<int> FlaggedBy, int FlaggedByEnsemble,
                                     IReadOnlyList<bool> Verdicts, string? Family = null, string? PostProcess = null, IReadOnlyList<int>? DetectorFlags = null)
{
    public double EnsembleRate => (double)FlaggedByEnsemble / Samples;

    /// <summary>Share of images flagged by at least one sub-detector whose bit is in <paramref name="mask"/>.</summary>
    public double RateOf(int mask) => DetectorFlags is null
        ? throw new InvalidOperationException($"The detection result for '{Source}' keeps no per-detector verdicts.")
        : (double)DetectorFlags.Count(f => (f & mask) != 0) / Samples;
}

/// <summary>Everything an evaluation measured; <see cref="DetectorFamilies"/> as in <see cref="EvaluationSetup"/>.</summary>
public sealed record EvaluationResults(IReadOnlyList<AttackCellResult> Attacks, IReadOnlyList<BenignResult> Benign, IReadOnlyList<DetectionResult> Detection,
                                       IReadOnlyList<IReadOnlySet<GeneratorFamily>?>? DetectorFamilies = null);

public sealed record EvaluationProgress(string Step, int Done, int Total, string Detail);

/// <summary>
/// Runs the attack × defence matrix, the benign runs and the detection measurements, each once: a result
/// already in the <see cref="ResultStore"/> is loaded, not recomputed (resumable after an interruption).
/// </summary>
public sealed class EvaluationRunner(EvaluationSetup setup, EvaluationOptions options, ResultStore store)
{
    public const string AttackerUser = "attacker", BenignUser = "benign";

    /// <summary>DFMS-HL's pre-trained GANs by <see cref="DfmsHlAttack.PretrainingKey"/>: made once, shared by every defence's cell.</summary>
    private readonly Dictionary<string, PretrainedGan> _pretrainedGans = new();

    public async Task<EvaluationResults> RunAsync(IProgress<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        var cells = options.Cells().OrderBy(c => c.Defense == DefenseIds.None ? 0 : 1).ToList(); // undefended runs first: they supply the attack samples
        var attackResults = new List<AttackCellResult>();
        for (int i = 0; i < cells.Count; i++)
        {
            var cell = cells[i];
            if (!store.TryLoad(cell.Key, out AttackCellResult result))
            {
                result = await RunAttackAsync(cell, p => progress?.Report(new EvaluationProgress($"{AttackFactory.DisplayName(cell.Attack)} vs {DefenseIds.DisplayName(cell.Defense)}{(cell.Attacker == AttackerKind.Naive ? "" : $" ({cell.Attacker.ToString().ToLowerInvariant()})")}",
                    i, cells.Count, $"{p.Spent}/{p.Budget} queries, clone {p.LastCloneAccuracy:P1}")), cancellationToken).ConfigureAwait(false);
                store.Save(cell.Key, result);
            }
            attackResults.Add(result);
        }

        var benign = new List<BenignResult>();
        foreach (var d in options.Defenses)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new EvaluationProgress("benign user", benign.Count, options.Defenses.Count, DefenseIds.DisplayName(d)));
            string key = $"benign-{d}";
            if (!store.TryLoad(key, out BenignResult result))
            {
                result = await RunBenignAsync(d, cancellationToken).ConfigureAwait(false);
                store.Save(key, result);
            }
            benign.Add(result);
        }

        var detection = new List<DetectionResult>();
        var sources = new List<(string Key, string Source, bool Synthetic, string? Family, Func<IReadOnlyList<PlanarImage>> Images)>
        {
            ("detect-benign", "benign test images", false, null, () => setup.Test.Images),
        };
        foreach (var family in Enum.GetValues<GeneratorFamily>())
            sources.Add(($"detect-family-{family.ToString().ToLowerInvariant()}", $"generator: {family}", true, GeneratorFamilies.Name(family), () => FamilyImages(family)));
        // What an attack whose generator is of that family sends first: the attacks' grey head on an untrained body.
        foreach (var family in Enum.GetValues<GeneratorFamily>())
            sources.Add(($"detect-grey-{family.ToString().ToLowerInvariant()}", $"grey generator: {family}", true, GeneratorFamilies.Name(family), () => GreyFamilyImages(family)));
        foreach (var (name, generator) in setup.TrainedGenerators ?? [])
            sources.Add(($"detect-trained-{name}", $"trained generator: {name}", true, GeneratorFamilies.Name(generator.Family),
                () => generator.Generate(options.FamilySamples, 82_000).Select(PlanarImage.From).ToList()));
        foreach (var a in options.Attacks)
            sources.Add(($"detect-attack-{a.ToString().ToLowerInvariant()}", $"attack: {AttackFactory.DisplayName(a)}", true,
                GeneratorFamilies.Name(AttackOptions.For(a, 1).Generator), () => AttackSamples(a)));
        int total = sources.Count * (1 + options.PostProcessing.Count), done = 0;
        foreach (var (key, source, synthetic, family, images) in sources)
        {
            IReadOnlyList<PlanarImage>? raw = null;
            foreach (var step in options.PostProcessing.Prepend(null))
            {
                cancellationToken.ThrowIfCancellationRequested();
                progress?.Report(new EvaluationProgress("detection", done++, total, step is null ? source : $"{source}, {step.Name}"));
                string cellKey = step is null ? key : $"{key}.{step.Name}";
                // Results from before per-detector verdicts were kept are screened again (seconds) rather than reported partly.
                if (!store.TryLoad(cellKey, out DetectionResult result) || result.DetectorFlags is null)
                {
                    raw ??= images();
                    result = Screen(source, synthetic, family, step, step is null ? raw : PostProcessed(raw, step, SeedOf(cellKey)));
                    store.Save(cellKey, result);
                }
                detection.Add(result);
            }
        }
        return new EvaluationResults(attackResults, benign, detection, setup.DetectorFamilies);
    }

    /// <summary>Each image rounded to bytes (as an upload is) and put through <paramref name="step"/>, noise seeded per image.</summary>
    private static IReadOnlyList<PlanarImage> PostProcessed(IReadOnlyList<PlanarImage> images, PostProcess step, ulong seed)
        => images.Select((img, i) => PlanarImage.From(step.Apply(RgbImage.FromPlanar(img.Values, img.Width, img.Height), SeededRandom.Mix(seed, (ulong)i)))).ToList();

    private async Task<AttackCellResult> RunAttackAsync(AttackCell cell, Action<AttackProgress> report, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var attackOptions = AttackOptions.For(cell.Attack, options.BudgetFor(cell.Attack), options.Seed) with
        {
            StudentWidth = options.StudentWidth,
            AnswerInterpreter = cell.Attacker == AttackerKind.Adaptive ? AdaptiveAttacker.Interpreter(setup.Victim.Classes) : null,
            ImageBlur = cell.Attacker == AttackerKind.Evasive ? cell.Blur : 0,
            ImageJpeg = cell.Attacker == AttackerKind.Evasive ? cell.Jpeg : 0,
        };
        using var defended = CreateClient(cell.Defense, SeedOf(cell.Key));
        IVictimClient client = defended.Client;
        SamplingClient? sampler = null;
        if (cell.Defense == DefenseIds.None && cell.Attacker == AttackerKind.Naive)
            client = sampler = new SamplingClient(client, Math.Max(1, options.BudgetFor(cell.Attack) / options.DetectionSamples), options.DetectionSamples);
        using var attack = AttackFactory.Create(cell.Attack, setup.Kernels, setup.Victim.Classes, attackOptions, setup.Proxy);
        if (attack is DfmsHlAttack dfms)
        {
            string key = DfmsHlAttack.PretrainingKey(attackOptions);
            if (_pretrainedGans.TryGetValue(key, out var gan)) dfms.UsePretrained(gan);
            else _pretrainedGans[key] = dfms.Pretrain(cancellationToken);
        }
        var r = await attack.RunAsync(client, setup.Test, new Progress<AttackProgress>(report), cancellationToken).ConfigureAwait(false);
        if (sampler != null) store.SaveFloats($"samples-{cell.Attack.ToString().ToLowerInvariant()}", sampler.Samples());
        long? flagged = defended.Ledger is { } ledger ? (await ledger.GetAsync(AttackerUser, cancellationToken).ConfigureAwait(false))?.Flagged ?? 0 : null;
        return new AttackCellResult(cell.Key, cell.Attack, cell.Defense, cell.Attacker, r.Budget, r.QueriesSpent, r.QueriesAnswered, r.Terminated,
                                    r.FinalCloneAccuracy, r.Curve, clock.Elapsed.TotalSeconds, flagged);
    }

    private async Task<BenignResult> RunBenignAsync(string defense, CancellationToken cancellationToken)
    {
        using var defended = CreateClient(defense, SeedOf("benign-" + defense), BenignUser);
        var test = setup.Test;
        int correct = 0, answered = 0, flagged = 0;
        bool terminated = false;
        const int batch = 50;
        for (int start = 0; start < test.Images.Count; start += batch)
        {
            int n = Math.Min(batch, test.Images.Count - start);
            var values = new float[n * 3 * 32 * 32];
            for (int i = 0; i < n; i++)
            {
                var img = test.Images[start + i];
                if (img.Width != 32 || img.Height != 32) throw new ArgumentException($"Test images must be 32×32, image {start + i} is {img.Width}×{img.Height}.");
                for (int j = 0; j < img.Values.Length; j++) values[i * img.Values.Length + j] = img.Values[j] / 255f;
            }
            var answers = await defended.Client.QueryAsync(new QueryBatch(values, n, 32), cancellationToken).ConfigureAwait(false);
            for (int i = 0; i < n; i++)
            {
                if (answers[i].Refused) { terminated = true; continue; }
                answered++;
                if (DeceptivePredictions.ArgMax(answers[i].Probabilities) == test.Labels[start + i]) correct++;
            }
        }
        if (defended.Ledger != null) flagged = (int)((await defended.Ledger.GetAsync(BenignUser, cancellationToken).ConfigureAwait(false))?.Flagged ?? 0);
        return new BenignResult(defense, test.Images.Count, answered, correct, flagged, terminated);
    }

    private IReadOnlyList<PlanarImage> FamilyImages(GeneratorFamily family)
    {
        // Generator instances (seeds) that no default detector was trained on, as in `mg demo`.
        using var g = ImageGenerator.Create(setup.Kernels, family, 80_000 + (ulong)family);
        return g.Generate(options.FamilySamples, 81_000 + (ulong)family).Select(PlanarImage.From).ToList();
    }

    private IReadOnlyList<PlanarImage> GreyFamilyImages(GeneratorFamily family)
    {
        using var g = ImageGenerator.CreateGreyLogits(setup.Kernels, family, 85_000 + (ulong)family, width: 16);
        return GreyImageHead.Sample(g, options.FamilySamples, 86_000 + (ulong)family, AttackOptions.DarkStart).Select(PlanarImage.From).ToList();
    }

    private IReadOnlyList<PlanarImage> AttackSamples(AttackKind attack)
    {
        var values = store.LoadFloats($"samples-{attack.ToString().ToLowerInvariant()}")
                     ?? throw new InvalidOperationException($"The undefended {attack} run kept no query samples; delete its result file to rerun it.");
        int per = 3 * 32 * 32;
        return Enumerable.Range(0, values.Length / per).Select(i => new QueryBatch(values[(i * per)..((i + 1) * per)], 1, 32).Planar(0)).ToList();
    }

    private DetectionResult Screen(string source, bool synthetic, string? family, PostProcess? step, IReadOnlyList<PlanarImage> images)
    {
        var names = setup.Detector.Detectors.Select(d => d.Name).ToList();
        if (names.Count > 30) throw new InvalidOperationException($"Per-detector verdicts are kept as bits of an int: at most 30 sub-detectors, got {names.Count}.");
        var by = new int[names.Count];
        var verdicts = new List<bool>(images.Count);
        var flags = new List<int>(images.Count);
        foreach (var chunk in images.Chunk(50))
            foreach (var v in setup.Detector.Screen(chunk))
            {
                int bits = 0;
                for (int j = 0; j < by.Length; j++)
                    if (v.Scores[j] > setup.Detector.Detectors[j].Threshold) { by[j]++; bits |= 1 << j; }
                verdicts.Add(v.Flagged);
                flags.Add(bits);
            }
        return new DetectionResult(source, synthetic, images.Count, names, by, verdicts.Count(f => f), verdicts, family, step?.Name, flags);
    }

    private ulong SeedOf(string key) => SeededRandom.Mix(options.Seed, (ulong)key.Aggregate(17L, (h, c) => h * 31 + c));

    /// <summary>A client for one account behind <paramref name="defense"/>, and what must be disposed with it.</summary>
    private DefendedClient CreateClient(string defense, ulong seed, string user = AttackerUser)
    {
        var victim = setup.Victim;
        switch (defense)
        {
            case DefenseIds.ModelGuardian:
            case DefenseIds.ModelGuardianSequential:
            case DefenseIds.ModelGuardianNoTermination:
                var ledger = new InMemoryLedger();
                var policy = defense switch
                {
                    DefenseIds.ModelGuardian => new TerminationPolicy(options.Tau, options.Delta),
                    DefenseIds.ModelGuardianSequential => TerminationPolicy.WithSequentialTest(options.Tau, options.Delta, options.SprtFpr),
                    _ => new TerminationPolicy(int.MaxValue, options.Delta),
                };
                var guardian = new Guardian.Guardian(new GuardianModels(victim, setup.Detector), ledger, NullAuditLog.Instance, new GuardianOptions { Policy = policy, DeceptionV = options.V });
                return new DefendedClient(new GuardianVictimClient(guardian, user, victim.Classes), ledger);
            default:
                return new DefendedClient(new DefendedVictimClient(victim, BaselineDefenses.Create(defense, options.V, seed, victim.Classes, setup.Baselines)), null);
        }
    }

    private sealed record DefendedClient(IVictimClient Client, InMemoryLedger? Ledger) : IDisposable
    {
        public void Dispose() => Ledger?.Dispose();
    }
}

/// <summary>An audit log that keeps nothing: evaluations simulate users, there is nothing to audit.</summary>
public sealed class NullAuditLog : IAuditLog
{
    public static NullAuditLog Instance { get; } = new();

    public Task AppendAsync(string kind, string? user, IReadOnlyDictionary<string, object?> details, CancellationToken cancellationToken = default) => Task.CompletedTask;
}

/// <summary>Keeps every <c>every</c>-th query image (up to a cap) while forwarding all of them.</summary>
public sealed class SamplingClient(IVictimClient inner, long every, int cap) : IVictimClient
{
    private readonly List<float[]> _kept = new();
    private long _seen;

    public int Classes => inner.Classes;

    public Task<VictimAnswer[]> QueryAsync(QueryBatch batch, CancellationToken cancellationToken = default)
    {
        for (int i = 0; i < batch.Count; i++, _seen++)
            if (_seen % every == 0 && _kept.Count < cap) _kept.Add(batch.Image(i).ToArray());
        return inner.QueryAsync(batch, cancellationToken);
    }

    public float[] Samples() => _kept.SelectMany(x => x).ToArray();
}
