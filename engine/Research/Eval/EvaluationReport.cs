using System.Globalization;
using System.Text;
using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Reports;

namespace ModelGuardian.Engine.Eval;

/// <summary>
/// The paper's tables from an evaluation's results (Markdown in report.md, every number also in
/// results.csv and curves.csv) and one PNG per attack of clone accuracy against queries, per defence.
/// </summary>
public static class EvaluationReport
{
    public static string Write(ResultStore store, EvaluationOptions o, EvaluationResults r, string? extraSections = null)
    {
        var md = new StringBuilder();
        md.AppendLine("# Model-Guardian evaluation").AppendLine();
        string budgets = o.AttackBudgets.Count == 0 ? $"Budget {o.Budget:N0} queries per attack run"
            : "Queries per attack run: " + string.Join(", ", o.Attacks.Select(a => $"{AttackFactory.DisplayName(a)} {o.BudgetFor(a):N0}"));
        md.AppendLine($"{budgets}; τ = {o.Tau}, δ = {o.Delta}, v = {o.V}; attacker's clone: ResNet-18 (CIFAR stem) of width {o.StudentWidth}; seed {o.Seed}; " +
                      $"{r.Benign.FirstOrDefault()?.Queries ?? 0} victim test images.").AppendLine();
        var attacks = o.Attacks;
        AttackCellResult? Cell(AttackKind a, string d, AttackerKind k = AttackerKind.Naive) => r.Attacks.FirstOrDefault(c => c.Attack == a && c.Defense == d && c.Attacker == k);
        string CAcc(AttackKind a, string d, AttackerKind k = AttackerKind.Naive) => Cell(a, d, k) is { } c ? Pct(c.FinalCloneAccuracy) : "–";

        md.AppendLine("## Table I — benign accuracy (BAcc) and clone accuracy (CAcc) per defence, %").AppendLine();
        var header = new List<string> { "Defence", "BAcc" };
        header.AddRange(attacks.Select(AttackFactory.DisplayName));
        var rows = o.Defenses.Select(d => (IReadOnlyList<string>)new List<string> { DefenseIds.DisplayName(d), r.Benign.FirstOrDefault(b => b.Defense == d) is { } b ? Pct(b.BenignAccuracy) : "–" }
            .Concat(attacks.Select(a => CAcc(a, d))).ToList()).ToList();
        md.AppendLine(MarkdownTable.Render(header, rows)).AppendLine();

        md.AppendLine("Queries each attack got answered (of its budget) and whether its account was terminated:").AppendLine();
        rows = o.Defenses.Select(d => (IReadOnlyList<string>)new List<string> { DefenseIds.DisplayName(d) }
            .Concat(attacks.Select(a => Cell(a, d) is { } c ? $"{c.Answered:N0}{(c.Terminated ? " (terminated)" : "")}" : "–")).ToList()).ToList();
        md.AppendLine(MarkdownTable.Render(header.Where((_, i) => i != 1).ToList(), rows)).AppendLine();

        // Table II, the generalisation table and the collusion replay are about images as made; post-processed ones have their own section.
        var asMade = r.Detection.Where(d => d.PostProcess is null).ToList();
        var benignDetection = asMade.FirstOrDefault(d => !d.Synthetic);
        md.AppendLine("## Table II — DFMS-Detector: detection accuracy (DAcc) on each attack's queries and false-positive rate (FPR) on benign test images, %").AppendLine();
        var t2 = asMade.Where(d => d.Source.StartsWith("attack: ", StringComparison.Ordinal))
            .Select(d => (IReadOnlyList<string>)[d.Source["attack: ".Length..], Pct(d.EnsembleRate), $"{d.FlaggedByEnsemble}/{d.Samples}", benignDetection is null ? "–" : Pct(benignDetection.EnsembleRate)]).ToList();
        md.AppendLine(MarkdownTable.Render(["Attack", "DAcc", "flagged", "FPR"], t2)).AppendLine();

        if (o.Defenses.Contains(DefenseIds.DPreds))
        {
            md.AppendLine($"## Table V — DPreds alone (every answer deceived, v = {o.V}): CAcc, %").AppendLine();
            var t5 = attacks.Select(a => (IReadOnlyList<string>)[AttackFactory.DisplayName(a), CAcc(a, DefenseIds.None), CAcc(a, DefenseIds.DPreds)]).ToList();
            md.AppendLine(MarkdownTable.Render(["Attack", "No defence", "DPreds"], t5)).AppendLine();
        }

        var deceptive = new[] { DefenseIds.DPreds, DefenseIds.DPredsRandomized }.Where(o.Defenses.Contains).ToList();
        if (o.Adaptive && deceptive.Count > 0)
        {
            md.AppendLine("## Beyond the paper — the adaptive attacker who inverts DPreds: CAcc, %").AppendLine();
            md.AppendLine("Naive: trains on answers as received. Adaptive: spots answers whose smallest probability is at DPreds' floor, estimates v from it and inverts p = p′(1 + Kv) − v. " +
                          "The randomised mode draws v and a temperature afresh per query (ranking kept), so the inversion has nothing fixed to undo.").AppendLine();
            var hd = new List<string> { "Attack" };
            foreach (var d in deceptive) { hd.Add($"{DefenseIds.DisplayName(d)} naive"); hd.Add($"{DefenseIds.DisplayName(d)} adaptive"); }
            var ta = attacks.Select(a => (IReadOnlyList<string>)new List<string> { AttackFactory.DisplayName(a) }
                .Concat(deceptive.SelectMany(d => new[] { CAcc(a, d), CAcc(a, d, AttackerKind.Adaptive) })).ToList()).ToList();
            md.AppendLine(MarkdownTable.Render(hd, ta)).AppendLine();
        }

        var evasive = new List<(string Label, Func<string, AttackCell> Of)>();
        if (o.EvasiveBlur > 0) evasive.Add(($"blur σ {o.EvasiveBlur.ToString(CultureInfo.InvariantCulture)}", d => new AttackCell(default, d, AttackerKind.Evasive, Blur: o.EvasiveBlur)));
        if (o.EvasiveJpeg > 0) evasive.Add(($"JPEG {o.EvasiveJpeg}", d => new AttackCell(default, d, AttackerKind.Evasive, Jpeg: o.EvasiveJpeg)));
        var guardians = new[] { DefenseIds.ModelGuardian, DefenseIds.ModelGuardianSequential }.Where(o.Defenses.Contains).ToList();
        if (evasive.Count > 0 && guardians.Count > 0)
        {
            md.AppendLine("## Beyond the paper — the evasive attacker: a step at the end of its generator that washes out up-sampling traces, against Model-Guardian").AppendLine();
            md.AppendLine("Blur is differentiable; JPEG is trained through with a straight-through gradient. Queries answered (of the budget), whether the account was terminated, " +
                          "the share of answered queries the detector flagged, and CAcc, %. The SPRT line (`mg-sprt`, H0: FPR " +
                          $"{(100 * o.SprtFpr).ToString("0.##", CultureInfo.InvariantCulture)} %) acts on the flagged count as it grows; the paper's rule only once τ queries are in and more than δ of them flagged:").AppendLine();
            string Outcome(AttackCellResult? c) => c is null ? "–"
                : $"{c.Answered:N0}{(c.Terminated ? " (terminated)" : "")}{(c.Flagged is { } f && c.Answered > 0 ? $", {Pct((double)f / c.Answered)} flagged" : "")}, {Pct(c.FinalCloneAccuracy)}";
            AttackCellResult? ByKey(string key) => r.Attacks.FirstOrDefault(c => c.Key == key);
            var te = attacks.SelectMany(a => guardians.Select(d => (IReadOnlyList<string>)new List<string> { AttackFactory.DisplayName(a), DefenseIds.DisplayName(d), Outcome(Cell(a, d)) }
                .Concat(evasive.Select(e => Outcome(ByKey((e.Of(d) with { Attack = a }).Key)))).ToList())).ToList();
            md.AppendLine(MarkdownTable.Render(new List<string> { "Attack", "Defence", "naive" }.Concat(evasive.Select(e => e.Label)).ToList(), te)).AppendLine();
        }

        if (asMade.Count > 0)
        {
            md.AppendLine("## Generalisation — share flagged by each sub-detector and by the ensemble, per image source, %").AppendLine();
            md.AppendLine("Each sub-detector's training families are named in its weight file's provenance (the defaults': two of the three known families, the file named for the one left out); " +
                          "the leave-one-family-out tables below judge each family by the sub-detectors that never saw it. The benign row is the FPR.").AppendLine();
            var names = asMade[0].Detectors;
            var tg = asMade.Select(d => (IReadOnlyList<string>)new List<string> { d.Source, d.Samples.ToString(CultureInfo.InvariantCulture) }
                .Concat(d.FlaggedBy.Select(f => Pct((double)f / d.Samples))).Append(Pct(d.EnsembleRate)).ToList()).ToList();
            md.AppendLine(MarkdownTable.Render(new List<string> { "Source", "images" }.Concat(names).Append("ensemble (OR)").ToList(), tg)).AppendLine();
        }
        md.Append(DetectionReport.Sections(r));
        if (benignDetection != null) md.Append(CollusionSection(o, r, benignDetection));
        if (extraSections != null) md.AppendLine(extraSections);

        md.AppendLine("## Files").AppendLine();
        md.AppendLine("`results.csv` (one row per attack run), `curves.csv` (clone accuracy against queries), `detection.csv` (share flagged per source, post-processing step and sub-detector), " +
                      "`plot-<attack>.png`; the raw results are in `cells/`.");
        store.WriteReport("report.md", md.ToString());
        store.WriteReport("results.csv", Csv.Format(new[] { new[] { "attack", "defense", "attacker", "budget", "spent", "answered", "terminated", "clone_accuracy", "seconds", "flagged" } }
            .Concat(r.Attacks.Select(c => new[] { AttackFactory.DisplayName(c.Attack), c.Defense, c.Attacker.ToString().ToLowerInvariant(), c.Budget.ToString(CultureInfo.InvariantCulture),
                c.Spent.ToString(CultureInfo.InvariantCulture), c.Answered.ToString(CultureInfo.InvariantCulture), c.Terminated ? "true" : "false", Csv.Format(c.FinalCloneAccuracy), Csv.Format(Math.Round(c.Seconds, 1)),
                c.Flagged?.ToString(CultureInfo.InvariantCulture) ?? "" }))));
        store.WriteReport("detection.csv", DetectionReport.CsvText(r));
        store.WriteReport("curves.csv", Csv.Format(new[] { new[] { "attack", "defense", "attacker", "queries", "clone_accuracy" } }
            .Concat(r.Attacks.SelectMany(c => c.Curve.Select(p => new[] { AttackFactory.DisplayName(c.Attack), c.Defense, c.Attacker.ToString().ToLowerInvariant(),
                p.Queries.ToString(CultureInfo.InvariantCulture), Csv.Format(p.CloneAccuracy) })))));
        foreach (var a in attacks)
        {
            var series = r.Attacks.Where(c => c.Attack == a).OrderBy(c => o.Defenses.ToList().IndexOf(c.Defense)).ThenBy(c => c.Attacker)
                .Select(c => new PlotSeries(DefenseIds.DisplayName(c.Defense) + (c.Attacker == AttackerKind.Naive ? "" : $" ({c.Attacker.ToString().ToLowerInvariant()})"),
                    c.Curve.Select(p => ((double)p.Queries, 100 * p.CloneAccuracy)).ToList())).ToList();
            store.WriteReport($"plot-{a.ToString().ToLowerInvariant()}.png", LinePlot.RenderPng(series, new LinePlotOptions
            {
                Title = $"{AttackFactory.DisplayName(a)}: clone accuracy against queries", XLabel = "queries", YLabel = "clone accuracy (%)", YMin = 0, YMax = 100,
            }));
        }
        return md.ToString();
    }

    private static string CollusionSection(EvaluationOptions o, EvaluationResults r, DetectionResult benign)
    {
        var md = new StringBuilder();
        double fpr = benign.EnsembleRate;
        var paper = new Guardian.TerminationPolicy(o.Tau, o.Delta);
        var ours = CollusionSimulation.Ours(o.Tau, o.Delta, fpr);
        md.AppendLine($"## Beyond the paper — collusion and early termination ({o.Collusion} accounts)").AppendLine();
        md.AppendLine($"Queries answered (of {o.Budget:N0}) when the attacker spreads them round-robin over accounts, replaying each attack's sampled detector verdicts in order. " +
                      $"Paper: τ = {o.Tau}, δ = {o.Delta}. Ours: the same plus the SPRT line flagged ≥ {ours.Sequential!.Intercept:F2} + {ours.Sequential.Slope:F4}·total " +
                      $"(H0 = the measured FPR {Pct(fpr)} %, floored at 0.1 %; H1 = 0.5; α = 0.001). Grouped: the accounts share one ledger (same owner or client network).").AppendLine();
        var rows = new List<IReadOnlyList<string>>();
        foreach (var d in r.Detection.Where(d => d.PostProcess is null && d.Source.StartsWith("attack: ", StringComparison.Ordinal)))
            foreach (int k in new[] { 1, o.Collusion }.Distinct())
            {
                var row = CollusionSimulation.Row(d.Source["attack: ".Length..], d.Verdicts, k, o.Budget, paper, ours);
                rows.Add([row.Attack, k.ToString(CultureInfo.InvariantCulture), $"{row.PaperRule:N0}", $"{row.PaperRuleGrouped:N0}", $"{row.Sequential:N0}", $"{row.SequentialGrouped:N0}"]);
            }
        md.AppendLine(MarkdownTable.Render(["Attack", "accounts", "paper", "paper, grouped", "ours", "ours, grouped"], rows)).AppendLine();
        md.AppendLine("The price on benign users — probability that a benign user, each query flagged independently at the measured FPR, is ever terminated:").AppendLine();
        var risk = new[] { 1_000, 10_000 }.Select(n => (IReadOnlyList<string>)[$"within {n:N0} queries",
            Guardian.TerminationRisk.ProbabilityWithin(paper, fpr, n).ToString("G3", CultureInfo.InvariantCulture),
            Guardian.TerminationRisk.ProbabilityWithin(ours, fpr, n).ToString("G3", CultureInfo.InvariantCulture)]).ToList();
        md.AppendLine(MarkdownTable.Render(["", "paper", "ours"], risk)).AppendLine();
        return md.ToString();
    }

    private static string Pct(double v) => (100 * v).ToString("F1", CultureInfo.InvariantCulture);
}
