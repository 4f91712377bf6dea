using System.Globalization;
using System.Text;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Engine.Reports;

namespace ModelGuardian.Engine.Eval;

/// <summary>
/// The detector's generalisation protocol as tables: every image source as made and after each post-processing
/// step, for the ensemble and each sub-detector, and leave-one-family-out — each generator family's sources judged
/// only by the sub-detectors that never saw that family in training. The targets (held-out sources flagged ≥ 90 %,
/// benign images ≤ 1 %, raw and post-processed) are checked cell by cell, and every miss is listed with its gap.
/// </summary>
public static class DetectionReport
{
    public const double SyntheticTarget = 0.90, BenignTarget = 0.01;

    /// <summary>One held-out family: the sub-detectors (as a bit mask) trained without it, and their names.</summary>
    public sealed record HeldOut(string Family, int Mask, IReadOnlyList<string> Detectors);

    /// <summary>
    /// For each family some sub-detector was trained on, the mask of the sub-detectors known to be trained without it;
    /// a family every sub-detector saw, or one with a sub-detector of unknown training data, cannot be held out.
    /// </summary>
    public static IReadOnlyList<HeldOut> HeldOutFamilies(IReadOnlyList<string> detectors, IReadOnlyList<IReadOnlySet<GeneratorFamily>?>? families)
    {
        if (families is null || families.Count != detectors.Count || families.Any(f => f is null)) return [];
        var list = new List<HeldOut>();
        foreach (var family in Enum.GetValues<GeneratorFamily>())
        {
            if (!families.Any(f => f!.Contains(family))) continue;
            int mask = 0;
            for (int j = 0; j < families.Count; j++) if (!families[j]!.Contains(family)) mask |= 1 << j;
            if (mask != 0) list.Add(new HeldOut(GeneratorFamilies.Name(family), mask, detectors.Where((_, j) => (mask & (1 << j)) != 0).ToList()));
        }
        return list;
    }

    public static string Sections(EvaluationResults r)
    {
        var raw = r.Detection.Where(d => d.PostProcess is null).ToList();
        if (raw.Count == 0) return "";
        var steps = r.Detection.Select(d => d.PostProcess).OfType<string>().Distinct().ToList();
        if (steps.Count == 0) return "";
        var names = raw[0].Detectors;
        int all = (1 << names.Count) - 1;
        var md = new StringBuilder();
        var misses = new List<string>();
        DetectionResult? Cell(DetectionResult source, string? step) => step is null ? source
            : r.Detection.FirstOrDefault(d => d.Source == source.Source && d.PostProcess == step);
        var header = new List<string> { "Source", "as made" }.Concat(steps).ToList();

        string Table(IEnumerable<DetectionResult> sources, int mask, bool checkTargets, string scope)
        {
            var rows = new List<IReadOnlyList<string>>();
            foreach (var source in sources)
            {
                var row = new List<string> { source.Source };
                foreach (var step in steps.Prepend(null))
                {
                    if (Cell(source, step) is not { DetectorFlags: not null } c) { row.Add("–"); continue; }
                    double rate = c.RateOf(mask);
                    bool miss = checkTargets && (c.Synthetic ? rate < SyntheticTarget : rate > BenignTarget);
                    row.Add(Pct(rate) + (miss ? " ✗" : ""));
                    if (miss)
                        misses.Add($"{scope}, {source.Source}, {step ?? "as made"}: {Pct(rate)} % " +
                                   (c.Synthetic ? $"({Pct(SyntheticTarget - rate)} points under {Pct(SyntheticTarget)} %)" : $"({Pct(rate - BenignTarget)} points over {Pct(BenignTarget)} %)"));
                }
                rows.Add(row);
            }
            return MarkdownTable.Render(header, rows);
        }

        md.AppendLine("## Detection under post-processing — share flagged by the ensemble, per source and step, %").AppendLine();
        md.AppendLine("Every source's images as made, then after one post-processing step (blur-σ, jpeg-quality, downup-factor, noise-σ in grey levels). " +
                      $"The benign row is the false-positive rate under the same step: a benign client's uploads are re-encoded too. ✗ marks a cell off target " +
                      $"(synthetic ≥ {Pct(SyntheticTarget)} %, benign ≤ {Pct(BenignTarget)} %).").AppendLine();
        md.AppendLine(Table(raw, all, checkTargets: true, "ensemble")).AppendLine();

        var heldOut = HeldOutFamilies(names, r.DetectorFamilies);
        if (heldOut.Count > 0)
        {
            md.AppendLine("## Leave-one-family-out — each family's sources judged only by sub-detectors never trained on it, %").AppendLine();
            md.AppendLine("What an attacker with a generator of a family the detector has not seen meets. The benign row is those sub-detectors' false-positive rate.").AppendLine();
            foreach (var h in heldOut)
            {
                var sources = raw.Where(d => !d.Synthetic || d.Family == h.Family).ToList();
                if (sources.Count(d => d.Synthetic) == 0) continue;
                md.AppendLine($"### {h.Family} held out: {string.Join(" OR ", h.Detectors)}").AppendLine();
                md.AppendLine(Table(sources, h.Mask, checkTargets: true, $"without {h.Family}")).AppendLine();
            }
        }
        else md.AppendLine("No leave-one-family-out table: the families each sub-detector was trained on are not all known, or none can be held out.").AppendLine();

        md.AppendLine("## Detection under post-processing — each sub-detector alone, %").AppendLine();
        for (int j = 0; j < names.Count; j++)
        {
            md.AppendLine($"### {names[j]}").AppendLine();
            md.AppendLine(Table(raw, 1 << j, checkTargets: false, names[j])).AppendLine();
        }

        md.AppendLine("## Detection targets").AppendLine();
        if (misses.Count == 0) md.AppendLine("Every cell above is on target.").AppendLine();
        else
        {
            md.AppendLine($"{misses.Count} cells miss their target:").AppendLine();
            foreach (var m in misses) md.AppendLine($"- {m}");
            md.AppendLine();
        }
        return md.ToString();
    }

    /// <summary>detection.csv: one row per source and step, the share flagged by each sub-detector and by the ensemble.</summary>
    public static string CsvText(EvaluationResults r)
    {
        var names = r.Detection.FirstOrDefault()?.Detectors ?? [];
        var header = new[] { "source", "synthetic", "family", "post_process", "samples" }.Concat(names).Append("ensemble");
        var rows = r.Detection.Select(d => new[] { d.Source, d.Synthetic ? "true" : "false", d.Family ?? "", d.PostProcess ?? "", d.Samples.ToString(CultureInfo.InvariantCulture) }
            .Concat(d.FlaggedBy.Select(f => Csv.Format((double)f / d.Samples))).Append(Csv.Format(d.EnsembleRate)));
        return Csv.Format(rows.Prepend(header));
    }

    private static string Pct(double v) => (100 * v).ToString("F1", CultureInfo.InvariantCulture);
}
