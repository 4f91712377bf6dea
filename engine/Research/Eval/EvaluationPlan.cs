using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Data;

namespace ModelGuardian.Engine.Eval;

/// <summary>
/// What kind of attacker: naive (uses answers as received), adaptive (knows DPreds and inverts it), or evasive (blurs its
/// generator's images to wash out the traces the detector looks for).
/// </summary>
public enum AttackerKind { Naive, Adaptive, Evasive }

/// <summary>The defences `mg eval` compares, by their stable ids (used in file names, tables and the CLI).</summary>
public static class DefenseIds
{
    public const string None = "none", RandomNoise = "rs", ReverseSigmoid = "reverse-sigmoid", DPreds = "dpreds", DPredsRandomized = "dpreds-random",
        Prada = "prada", ModelGuardian = "mg", ModelGuardianNoTermination = "mg-no-term", Mad = "mad",
        AdaptiveMisinformation = "am", Seat = "seat", ModelGuardianSequential = "mg-sprt";

    /// <summary>Table I's columns, in order.</summary>
    public static IReadOnlyList<string> TableOne { get; } = [None, RandomNoise, Mad, AdaptiveMisinformation, ReverseSigmoid, Prada, Seat, ModelGuardian];

    public static IReadOnlyList<string> All { get; } = [None, RandomNoise, Mad, AdaptiveMisinformation, ReverseSigmoid, DPreds, DPredsRandomized, Prada, Seat, ModelGuardian, ModelGuardianSequential, ModelGuardianNoTermination];

    public static string DisplayName(string id) => id switch
    {
        None => "None", RandomNoise => "RS", Mad => "MAD", AdaptiveMisinformation => "AM", ReverseSigmoid => "Reverse sigmoid", DPreds => "DPreds", DPredsRandomized => "DPreds (randomised)",
        Prada => "PRADA", Seat => "SEAT", ModelGuardian => "Model-Guardian", ModelGuardianSequential => "MG with the SPRT line", ModelGuardianNoTermination => "MG without termination",
        _ => throw new ArgumentException($"Unknown defence '{id}'; known: {string.Join(", ", All)}."),
    };

    public static string Check(string id) => All.Contains(id) ? id : throw new ArgumentException($"Unknown defence '{id}'; known: {string.Join(", ", All)}.");
}

/// <summary>
/// One attack run of the matrix; <see cref="Blur"/> and <see cref="Jpeg"/> are the evasive attacker's blur σ and JPEG quality
/// (in its key, so other settings are another result).
/// </summary>
public sealed record AttackCell(AttackKind Attack, string Defense, AttackerKind Attacker, double Blur = 0, int Jpeg = 0)
{
    public string Key => $"attack-{Attack.ToString().ToLowerInvariant()}-{Defense}-{Attacker.ToString().ToLowerInvariant()}" +
                         (Attacker == AttackerKind.Evasive && Blur > 0 ? $"-blur{Blur.ToString(System.Globalization.CultureInfo.InvariantCulture)}" : "") +
                         (Attacker == AttackerKind.Evasive && Jpeg > 0 ? $"-jpeg{Jpeg}" : "");
}

/// <summary>What `mg eval` runs; immutable. Defaults are sized for 2 CPU cores (the whole matrix in well under an hour; see README).</summary>
public sealed record EvaluationOptions
{
    /// <summary>Queries per attack run (the paper: 20 M on CIFAR-10 with a GPU), unless <see cref="AttackBudgets"/> names the attack.</summary>
    public long Budget { get; init; } = 2000;
    /// <summary>Per-attack budgets: attacks differ several-fold in CPU time per query, so a preset sized in minutes gives each its own.</summary>
    public IReadOnlyDictionary<AttackKind, long> AttackBudgets { get; init; } = new Dictionary<AttackKind, long>();

    /// <summary>The queries each run of this attack may spend.</summary>
    public long BudgetFor(AttackKind attack) => AttackBudgets.TryGetValue(attack, out long b) ? b : Budget;
    /// <summary>The short default run's five attacks; Dual Student on request (`--attacks`), as it costs a DisGUIDE run again.</summary>
    public IReadOnlyList<AttackKind> Attacks { get; init; } = [AttackKind.Dfme, AttackKind.Maze, AttackKind.Dast, AttackKind.Disguide, AttackKind.DfmsHl];
    public IReadOnlyList<string> Defenses { get; init; } = DefenseIds.All;
    /// <summary>Also run the adaptive attacker against the deceptive defences.</summary>
    public bool Adaptive { get; init; } = true;
    /// <summary>σ of the blur the evasive attacker appends to its generator, run against Model-Guardian; 0 leaves it out.</summary>
    public double EvasiveBlur { get; init; } = 1.0;
    /// <summary>JPEG quality of the second evasive attacker's re-encoding (straight-through gradient), against Model-Guardian; 0 leaves it out.</summary>
    public int EvasiveJpeg { get; init; } = 50;
    public int Tau { get; init; } = Guardian.GuardianOptions.DefaultTau;
    /// <summary>
    /// `mg-sprt`'s H0: the detector's false-positive rate the SPRT line assumes (as `mg serve`'s policy.sprt_fpr). Above the
    /// measured FPR, so that the line is conservative for benign users.
    /// </summary>
    public double SprtFpr { get; init; } = 0.01;
    public double Delta { get; init; } = 0.5;
    public double V { get; init; } = 0.5;
    /// <summary>Attack queries kept per attack (spread evenly over its undefended run) for DAcc and the generalisation table.</summary>
    public int DetectionSamples { get; init; } = 200;
    /// <summary>Images per generator family (instances no detector was trained on) for the generalisation table.</summary>
    public int FamilySamples { get; init; } = 200;
    /// <summary>Every detection source is also screened after each of these steps (benign images included: uploads are re-encoded too).</summary>
    public IReadOnlyList<PostProcess> PostProcessing { get; init; } = PostProcess.Protocol;
    public int StudentWidth { get; init; } = 8;
    /// <summary>Accounts of the colluding attacker in the early-termination comparison (`--collusion K`).</summary>
    public int Collusion { get; init; } = 10;
    public ulong Seed { get; init; } = 1;

    /// <summary>
    /// `mg eval --preset long`: every built attack against every defence, each attack with a budget sized by its CPU
    /// time per query — the attacks differ several-fold — so that the whole matrix takes three to four hours on 2 cores
    /// (docs/evaluation.md has the sizing).
    /// <see cref="Budget"/> is DFME's, and the collusion table's.
    /// </summary>
    public static EvaluationOptions Long { get; } = new()
    {
        Attacks = [AttackKind.Dfme, AttackKind.Maze, AttackKind.Dast, AttackKind.Disguide, AttackKind.DualStudent, AttackKind.DfmsHl],
        Budget = 40_000,
        AttackBudgets = new Dictionary<AttackKind, long>
        {
            [AttackKind.Dfme] = 40_000, [AttackKind.Maze] = 60_000, [AttackKind.Dast] = 20_000,
            [AttackKind.Disguide] = 12_000, [AttackKind.DualStudent] = 12_000, [AttackKind.DfmsHl] = 15_000,
        },
    };

    /// <summary>The attack runs: every attack against every defence naively; adaptively against the deceptive ones.</summary>
    public IReadOnlyList<AttackCell> Cells()
    {
        var cells = new List<AttackCell>();
        foreach (var a in Attacks)
            foreach (var d in Defenses)
            {
                cells.Add(new AttackCell(a, d, AttackerKind.Naive));
                // The adaptive attacker against both deception modes alone (item 4's two-by-two); Model-Guardian's own answers
                // are the paper's DPreds, so the DPreds column stands for it.
                if (Adaptive && d is DefenseIds.DPreds or DefenseIds.DPredsRandomized)
                    cells.Add(new AttackCell(a, d, AttackerKind.Adaptive));
                // The evasive attacker where detection decides: does a blurred stream still get its account closed?
                if (EvasiveBlur > 0 && d is DefenseIds.ModelGuardian or DefenseIds.ModelGuardianSequential)
                    cells.Add(new AttackCell(a, d, AttackerKind.Evasive, Blur: EvasiveBlur));
                if (EvasiveJpeg > 0 && d is DefenseIds.ModelGuardian or DefenseIds.ModelGuardianSequential)
                    cells.Add(new AttackCell(a, d, AttackerKind.Evasive, Jpeg: EvasiveJpeg));
            }
        return cells;
    }

    public void Validate()
    {
        if (Budget < 1) throw new ArgumentException($"--budget must be positive, got {Budget}.");
        foreach (var (attack, b) in AttackBudgets)
            if (b < 1) throw new ArgumentException($"The budget of {AttackFactory.DisplayName(attack)} must be positive, got {b}.");
        if (Attacks.Count == 0 || Defenses.Count == 0) throw new ArgumentException("At least one attack and one defence are needed.");
        foreach (var d in Defenses) DefenseIds.Check(d);
        if (!Defenses.Contains(DefenseIds.None)) throw new ArgumentException("The undefended run ('none') is needed: it is the baseline and supplies the attack queries for DAcc.");
        if (!(SprtFpr > 0 && SprtFpr < 0.5)) throw new ArgumentException($"--sprt-fpr must lie in (0, 0.5), got {SprtFpr}.");
        if (Collusion < 1) throw new ArgumentException($"--collusion must be at least 1 account, got {Collusion}.");
        if (DetectionSamples < 1 || FamilySamples < 1 || StudentWidth < 1) throw new ArgumentException("Sample counts and the student width must be positive.");
        if (!(EvasiveBlur >= 0 && EvasiveBlur <= 16)) throw new ArgumentException($"The evasive attacker's blur σ must lie in [0, 16], got {EvasiveBlur}.");
        if (EvasiveJpeg is < 0 or > 100) throw new ArgumentException($"The evasive attacker's JPEG quality must lie in 1…100 (0: none), got {EvasiveJpeg}.");
    }
}
