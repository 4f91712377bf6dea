using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace ModelGuardian.Bench;

/// <summary>
/// Ours / theirs on medians, beside BenchmarkDotNet's Ratio (which divides means). The benchmark page states its
/// yardstick figures as medians; on this shared 2-core VM a neighbour's burst lands in a few
/// iterations and moves a mean more than a median, so both ratios are printed and README quotes both.
/// </summary>
public sealed class MedianRatioColumn : IColumn
{
    public string Id => nameof(MedianRatioColumn);
    public string ColumnName => "Ratio (median)";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Baseline;
    public int PriorityInCategory => 1;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Median of this benchmark / median of its category's baseline";
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var baseline = summary.GetBaseline(summary.GetLogicalGroupKey(benchmarkCase));
        double? ours = summary[benchmarkCase]?.ResultStatistics?.Median;
        double? theirs = baseline is null ? null : summary[baseline]?.ResultStatistics?.Median;
        return ours is { } o && theirs is { } t && t > 0 ? (o / t).ToString("F2", System.Globalization.CultureInfo.InvariantCulture) : "?";
    }
}
