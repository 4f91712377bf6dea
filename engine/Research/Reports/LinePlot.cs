using System.Globalization;

namespace ModelGuardian.Engine.Reports;

/// <summary>One named line of a chart; points are drawn in the order given, and a NaN coordinate leaves a gap.</summary>
public sealed record PlotSeries(string Name, IReadOnlyList<(double X, double Y)> Points);

public sealed record LinePlotOptions
{
    public string Title { get; init; } = "";
    public string XLabel { get; init; } = "";
    public string YLabel { get; init; } = "";
    public int Width { get; init; } = 800;
    public int Height { get; init; } = 500;
    /// <summary>Fixed bottom of the y axis; null: the data's minimum, rounded down to a tick.</summary>
    public double? YMin { get; init; }
    /// <summary>Fixed top of the y axis; null: the data's maximum, rounded up to a tick.</summary>
    public double? YMax { get; init; }
}

/// <summary>A pixel rectangle, half-open: [X, X+Width) × [Y, Y+Height).</summary>
public readonly record struct PlotRect(int X, int Y, int Width, int Height)
{
    public int Right => X + Width;
    public int Bottom => Y + Height;
    public bool Contains(double px, double py) => px >= X && px < Right && py >= Y && py < Bottom;
}

/// <summary>An axis's range, tick step and tick values.</summary>
public sealed record PlotAxis(double Min, double Max, double Step, IReadOnlyList<double> Ticks);

/// <summary>Where <see cref="LinePlot.Render(IReadOnlyList{PlotSeries}, LinePlotOptions, out LinePlotLayout)"/> put things.</summary>
public sealed record LinePlotLayout(PlotRect PlotArea, PlotRect? Legend, PlotAxis XAxis, PlotAxis YAxis, bool NoData, IReadOnlyList<Rgba> SeriesColors)
{
    /// <summary>Continuous canvas x of a data x (pixel centres at +0.5).</summary>
    public double MapX(double x) => PlotArea.X + (x - XAxis.Min) / (XAxis.Max - XAxis.Min) * PlotArea.Width;

    /// <summary>Continuous canvas y of a data y (grows downwards).</summary>
    public double MapY(double y) => PlotArea.Bottom - (y - YAxis.Min) / (YAxis.Max - YAxis.Min) * PlotArea.Height;
}

/// <summary>
/// Renders line charts to PNG without any graphics library: axes with "nice" ticks (1, 2 or 5 × 10^k), light
/// grid lines, 2-px anti-aliased series lines in the Okabe–Ito colour-blind-safe palette with point markers
/// (circle, square, diamond in turn; left out when a series has more points than about one per 8 px), a legend in
/// the plot corner the data crosses least, a title and axis labels in an embedded 5×7 font drawn at 2×.
/// </summary>
public static class LinePlot
{
    /// <summary>Okabe &amp; Ito's colour-blind-safe palette, darkest first (yellow last: weakest on white).</summary>
    public static IReadOnlyList<Rgba> Palette { get; } =
    [
        Rgba.FromHex(0x0072B2), // blue
        Rgba.FromHex(0xD55E00), // vermillion
        Rgba.FromHex(0x009E73), // bluish green
        Rgba.FromHex(0xCC79A7), // reddish purple
        Rgba.FromHex(0xE69F00), // orange
        Rgba.FromHex(0x56B4E9), // sky blue
        Rgba.FromHex(0x000000), // black
        Rgba.FromHex(0xF0E442), // yellow
    ];

    public static Rgba Background => Rgba.White;
    public static Rgba GridColor => new(228, 228, 228);
    public static Rgba AxisColor => new(40, 40, 40);
    public static Rgba TextColor => new(20, 20, 20);

    private const int Scale = 2, TitleScale = 3, Pad = 10, TickLength = 6, TickGap = 4, LineWidth = 2;
    private const int MinPlotSide = 40, MaxTicks = 200, LegendSwatch = 28, LegendEntryGap = 24;

    public static byte[] RenderPng(IReadOnlyList<PlotSeries> series, LinePlotOptions options) => Render(series, options).ToPng();

    public static void WritePng(IReadOnlyList<PlotSeries> series, LinePlotOptions options, Stream destination) =>
        Render(series, options).WritePng(destination);

    public static RgbaCanvas Render(IReadOnlyList<PlotSeries> series, LinePlotOptions options) => Render(series, options, out _);

    /// <exception cref="ArgumentException">
    /// a point with an infinite coordinate, a non-finite or empty <see cref="LinePlotOptions.YMin"/>…<see cref="LinePlotOptions.YMax"/>,
    /// a range too wide or too narrow for doubles, or a size too small for the labels.
    /// </exception>
    public static RgbaCanvas Render(IReadOnlyList<PlotSeries> series, LinePlotOptions options, out LinePlotLayout layout)
    {
        ArgumentNullException.ThrowIfNull(series);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Width < 100 || options.Height < 80)
            throw new ArgumentOutOfRangeException(nameof(options), $"A chart needs at least 100×80 pixels, got {options.Width}×{options.Height}.");
        for (int i = 0; i < series.Count; i++)
        {
            if (series[i] is null) throw new ArgumentNullException(nameof(series), $"series[{i}] is null.");
            if (series[i].Points is null) throw new ArgumentException($"series[{i}] ('{series[i].Name}') has no point list.", nameof(series));
        }

        // ---- data ranges ----
        double xLo = double.PositiveInfinity, xHi = double.NegativeInfinity, yLo = double.PositiveInfinity, yHi = double.NegativeInfinity;
        foreach (var s in series)
            for (int i = 0; i < s.Points.Count; i++)
            {
                var (x, y) = s.Points[i];
                if (double.IsNaN(x) || double.IsNaN(y)) continue;
                if (!double.IsFinite(x) || !double.IsFinite(y))
                    throw new ArgumentException($"Series '{s.Name}' point {i} is ({x}, {y}): coordinates must be finite (NaN marks a gap).", nameof(series));
                xLo = Math.Min(xLo, x); xHi = Math.Max(xHi, x); yLo = Math.Min(yLo, y); yHi = Math.Max(yHi, y);
            }
        bool noData = xLo > xHi;
        if (noData) (xLo, xHi, yLo, yHi) = (0, 1, 0, 1);

        if (options.YMin is { } fixedMin && !double.IsFinite(fixedMin)) throw new ArgumentException($"YMin must be finite, got {fixedMin}.", nameof(options));
        if (options.YMax is { } fixedMax && !double.IsFinite(fixedMax)) throw new ArgumentException($"YMax must be finite, got {fixedMax}.", nameof(options));
        if (options.YMin is { } a && options.YMax is { } b && !(a < b)) throw new ArgumentException($"YMin ({a}) must be below YMax ({b}).", nameof(options));

        var yAxis = MakeAxis(yLo, yHi, options.YMin, options.YMax, 5, "y");
        var yLabels = yAxis.Ticks.Select(t => FormatTick(t, yAxis.Step)).ToArray();

        // ---- margins ----
        int charH = RgbaCanvas.TextHeight(Scale);
        string title = options.Title ?? "", xLabel = options.XLabel ?? "", yLabel = options.YLabel ?? "";
        int titleScale = RgbaCanvas.MeasureText(title, TitleScale) <= options.Width - 2 * Pad ? TitleScale : Scale;
        title = Fit(title, options.Width - 2 * Pad, titleScale);
        int top = Pad + (title.Length > 0 ? RgbaCanvas.TextHeight(titleScale) + 12 : 4);
        int yLabelWidth = yLabel.Length > 0 ? charH + 10 : 0;
        int left = Pad + yLabelWidth + yLabels.Max(l => RgbaCanvas.MeasureText(l, Scale)) + TickGap + TickLength;
        int bottom = Pad + TickLength + TickGap + charH + (xLabel.Length > 0 ? 8 + charH : 0);
        int plotH = options.Height - top - bottom;

        // The x step grows until its labels stop overlapping; the right margin leaves room for half the last label,
        // the bottom one for a legend below the chart when there is one.
        (PlotRect Area, PlotAxis Axis, string[] Labels) Place(int reservedBottom)
        {
            int plotH = options.Height - top - bottom - reservedBottom;
            PlotAxis axis = MakeAxis(xLo, xHi, null, null, 5, "x");
            string[] labels = [];
            int plotW = 0;
            for (int attempt = 0; attempt < 12; attempt++)
            {
                labels = axis.Ticks.Select(t => FormatTick(t, axis.Step)).ToArray();
                int right = Math.Max(Pad + 10, Pad + RgbaCanvas.MeasureText(labels[^1], Scale) / 2);
                plotW = options.Width - left - right;
                double spacing = axis.Ticks.Count > 1 ? plotW * axis.Step / (axis.Max - axis.Min) : double.PositiveInfinity;
                int widest = labels.Max(l => RgbaCanvas.MeasureText(l, Scale));
                if (spacing >= widest + 2 * BitmapFont.Advance * Scale || plotW < MinPlotSide) break;
                axis = MakeAxis(xLo, xHi, null, null, 5, "x", NextNiceStep(axis.Step));
            }
            if (plotW < MinPlotSide || plotH < MinPlotSide)
                throw new ArgumentException($"A {options.Width}×{options.Height} chart leaves a {plotW}×{plotH} plot area beside its labels; make it larger.", nameof(options));
            return (new PlotRect(left, top, plotW, plotH), axis, labels);
        }

        var colors = series.Select((_, i) => Palette[i % Palette.Count]).ToArray();
        var (area, xAxis, xLabels) = Place(0);
        var provisional = new LinePlotLayout(area, null, xAxis, yAxis, noData, colors);

        // The legend goes in the plot corner the data cross least when no data cross it; otherwise in rows below the
        // chart (when those take at most a quarter of its height); otherwise in that corner all the same.
        int legendRowH = charH + 4, reservedBottom = 0;
        PlotRect? legend = null;
        bool boxedLegend = true;
        var entries = new (int X, int Y)[series.Count];
        string[] names = [];
        if (series.Count > 0)
        {
            int nameRoom = Math.Max(BitmapFont.Advance * Scale, area.Width - 16 - 8 - LegendSwatch - 8 - 8);
            string[] insideNames = series.Select(s => Fit(s.Name ?? "", nameRoom, Scale)).ToArray();
            int w = 8 + LegendSwatch + 8 + insideNames.Max(n => RgbaCanvas.MeasureText(n, Scale)) + 8, h = 6 + series.Count * legendRowH;
            bool fitsInside = w <= area.Width - 16 && h <= area.Height - 16;
            var (corner, crossings) = PickLegendCorner(series, provisional, w, h);

            if (crossings > 0 || !fitsInside)
            {
                // Rows of entries, wrapped to the chart's width and centred.
                int room = options.Width - 2 * Pad;
                string[] belowNames = series.Select(s => Fit(s.Name ?? "", room - LegendSwatch - 8, Scale)).ToArray();
                var rows = new List<List<int>> { new() };
                var rowWidths = new List<int> { 0 };
                for (int s = 0; s < series.Count; s++)
                {
                    int ew = LegendSwatch + 8 + RgbaCanvas.MeasureText(belowNames[s], Scale);
                    int needed = rows[^1].Count == 0 ? ew : rowWidths[^1] + LegendEntryGap + ew;
                    if (rows[^1].Count > 0 && needed > room) { rows.Add([]); rowWidths.Add(0); needed = ew; }
                    rows[^1].Add(s);
                    rowWidths[^1] = needed;
                }
                int blockH = rows.Count * legendRowH;
                if (blockH + 8 <= options.Height / 4 && options.Height - top - bottom - blockH - 8 >= MinPlotSide)
                {
                    reservedBottom = blockH + 8;
                    (area, xAxis, xLabels) = Place(reservedBottom);
                    provisional = provisional with { PlotArea = area, XAxis = xAxis };
                    int blockTop = options.Height - Pad - blockH, blockW = rowWidths.Max();
                    for (int r = 0; r < rows.Count; r++)
                    {
                        int x = (options.Width - rowWidths[r]) / 2;
                        foreach (int s in rows[r])
                        {
                            entries[s] = (x, blockTop + r * legendRowH);
                            x += LegendSwatch + 8 + RgbaCanvas.MeasureText(belowNames[s], Scale) + LegendEntryGap;
                        }
                    }
                    legend = new PlotRect((options.Width - blockW) / 2, blockTop, blockW, blockH);
                    boxedLegend = false;
                    names = belowNames;
                }
            }
            if (legend is null && fitsInside)
            {
                legend = corner;
                names = insideNames;
                for (int s = 0; s < series.Count; s++) entries[s] = (corner.X + 8, corner.Y + 6 + s * legendRowH);
            }
        }

        var canvas = new RgbaCanvas(options.Width, options.Height, Background);

        // ---- grid, axes, ticks, labels ----
        foreach (double t in yAxis.Ticks)
        {
            int py = (int)Math.Floor(provisional.MapY(t));
            if (py > area.Y && py < area.Bottom) canvas.FillRect(area.X + 1, py, area.Width, 1, GridColor);
        }
        foreach (double t in xAxis.Ticks)
        {
            int px = (int)Math.Floor(provisional.MapX(t));
            if (px > area.X && px < area.Right) canvas.FillRect(px, area.Y, 1, area.Height, GridColor);
        }
        canvas.FillRect(area.X - 1, area.Y, 2, area.Height + 1, AxisColor);            // y axis
        canvas.FillRect(area.X - 1, area.Bottom - 1, area.Width + 1, 2, AxisColor);    // x axis
        for (int i = 0; i < yAxis.Ticks.Count; i++)
        {
            int py = Math.Clamp((int)Math.Floor(provisional.MapY(yAxis.Ticks[i])), area.Y, area.Bottom - 1);
            canvas.FillRect(area.X - 1 - TickLength, py, TickLength, 1, AxisColor);
            int w = RgbaCanvas.MeasureText(yLabels[i], Scale);
            canvas.DrawText(area.X - 1 - TickLength - TickGap - w, py - BitmapFont.GlyphHeight * Scale / 2, yLabels[i], TextColor, Scale);
        }
        for (int i = 0; i < xAxis.Ticks.Count; i++)
        {
            int px = Math.Clamp((int)Math.Floor(provisional.MapX(xAxis.Ticks[i])), area.X, area.Right - 1);
            canvas.FillRect(px, area.Bottom + 1, 1, TickLength, AxisColor);
            int w = RgbaCanvas.MeasureText(xLabels[i], Scale);
            canvas.DrawText(px - w / 2, area.Bottom + 1 + TickLength + TickGap, xLabels[i], TextColor, Scale);
        }
        if (title.Length > 0)
            canvas.DrawText((options.Width - RgbaCanvas.MeasureText(title, titleScale)) / 2, Pad, title, TextColor, titleScale);
        if (xLabel.Length > 0)
        {
            string fitted = Fit(xLabel, options.Width - 2 * Pad, Scale);
            int w = RgbaCanvas.MeasureText(fitted, Scale);
            int x = Math.Clamp(area.X + (area.Width - w) / 2, Pad, Math.Max(Pad, options.Width - Pad - w));
            canvas.DrawText(x, options.Height - Pad - charH - reservedBottom, fitted, TextColor, Scale);
        }
        if (yLabel.Length > 0)
        {
            string fitted = Fit(yLabel, options.Height - 2 * Pad, Scale);
            int h = RgbaCanvas.MeasureText(fitted, Scale);
            int y = Math.Clamp(area.Y + (area.Height + h) / 2, Pad + h, options.Height - Pad);
            canvas.DrawTextVertical(Pad, y, fitted, TextColor, Scale);
        }

        // ---- series ----
        canvas.SetClip(area.X, area.Y, area.Width, area.Height);
        for (int s = 0; s < series.Count; s++)
        {
            var pts = series[s].Points;
            (double X, double Y)? previous = null;
            int finite = 0;
            foreach (var (x, y) in pts)
            {
                if (double.IsNaN(x) || double.IsNaN(y)) { previous = null; continue; }
                finite++;
                var p = (provisional.MapX(x), provisional.MapY(y));
                if (previous is { } q) canvas.DrawLine(q.X, q.Y, p.Item1, p.Item2, colors[s], LineWidth);
                previous = p;
            }
            if (finite > 0 && finite <= Math.Max(1, area.Width / 8))
                foreach (var (x, y) in pts)
                    if (!double.IsNaN(x) && !double.IsNaN(y))
                        DrawMarker(canvas, s, provisional.MapX(x), provisional.MapY(y), colors[s]);
        }
        canvas.ResetClip();

        if (noData)
        {
            const string text = "no data";
            int w = RgbaCanvas.MeasureText(text, Scale);
            canvas.DrawText(area.X + (area.Width - w) / 2, area.Y + (area.Height - BitmapFont.GlyphHeight * Scale) / 2, text, new Rgba(120, 120, 120), Scale);
        }

        // ---- legend ----
        if (legend is { } rect)
        {
            if (boxedLegend)
            {
                canvas.FillRect(rect.X, rect.Y, rect.Width, rect.Height, Background);
                canvas.StrokeRect(rect.X, rect.Y, rect.Width, rect.Height, new Rgba(170, 170, 170));
            }
            for (int s = 0; s < series.Count; s++)
            {
                var (ex, ey) = entries[s];
                double cy = ey + BitmapFont.GlyphHeight * Scale / 2.0;
                canvas.DrawLine(ex, cy, ex + LegendSwatch, cy, colors[s], LineWidth);
                DrawMarker(canvas, s, ex + LegendSwatch / 2.0, cy, colors[s]);
                canvas.DrawText(ex + LegendSwatch + 8, ey, names[s], TextColor, Scale);
            }
        }

        layout = provisional with { Legend = legend };
        return canvas;
    }

    private static void DrawMarker(RgbaCanvas canvas, int seriesIndex, double x, double y, Rgba color)
    {
        switch (seriesIndex % 3)
        {
            case 0: canvas.FillCircle(x, y, 3.5, color); break;
            case 1: canvas.FillRect((int)Math.Floor(x) - 3, (int)Math.Floor(y) - 3, 7, 7, color); break;
            default: canvas.FillDiamond(x, y, 4.5, color); break;
        }
    }

    /// <summary>The legend goes in the corner of the plot area (top-right first) that the fewest drawn data cross.</summary>
    private static (PlotRect Rect, int Crossings) PickLegendCorner(IReadOnlyList<PlotSeries> series, LinePlotLayout layout, int width, int height)
    {
        var a = layout.PlotArea;
        const int inset = 8;
        PlotRect[] corners =
        [
            new(a.Right - inset - width, a.Y + inset, width, height),
            new(a.X + inset, a.Y + inset, width, height),
            new(a.Right - inset - width, a.Bottom - inset - height, width, height),
            new(a.X + inset, a.Bottom - inset - height, width, height),
        ];
        var hits = new int[corners.Length];
        void Count(double px, double py)
        {
            for (int c = 0; c < corners.Length; c++) if (corners[c].Contains(px, py)) hits[c]++;
        }
        foreach (var s in series)
        {
            (double X, double Y)? previous = null;
            foreach (var (x, y) in s.Points)
            {
                if (double.IsNaN(x) || double.IsNaN(y)) { previous = null; continue; }
                double px = layout.MapX(x), py = layout.MapY(y);
                if (previous is { } q)
                {
                    double len = Math.Sqrt((px - q.X) * (px - q.X) + (py - q.Y) * (py - q.Y));
                    int n = (int)Math.Clamp(len / 4, 1, 64);
                    for (int k = 1; k < n; k++) Count(q.X + (px - q.X) * k / n, q.Y + (py - q.Y) * k / n);
                }
                Count(px, py);
                previous = (px, py);
            }
        }
        int best = 0;
        for (int c = 1; c < corners.Length; c++) if (hits[c] < hits[best]) best = c;
        return (corners[best], hits[best]);
    }

    private static string Fit(string text, int maxWidth, int scale)
    {
        if (RgbaCanvas.MeasureText(text, scale) <= maxWidth) return text;
        int chars = Math.Max(0, (maxWidth / scale + 1) / BitmapFont.Advance - 3);
        return chars == 0 ? "" : text[..chars] + "...";
    }

    // ---- ticks ----

    /// <summary>
    /// The tick step for about <paramref name="targetTicks"/> intervals over min…max: 1, 2 or 5 × 10^k, whichever is
    /// nearest the raw step (range / target) on the thresholds 1.5, 3 and 7 — 0…1 gives 0.2, 0…20000 gives 5000.
    /// </summary>
    public static double NiceStep(double min, double max, int targetTicks = 5)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(targetTicks, 1);
        if (!double.IsFinite(min) || !double.IsFinite(max) || !(max > min))
            throw new ArgumentException($"A tick range needs finite min < max, got {min} … {max}.");
        double raw = (max - min) / targetTicks;
        if (!double.IsFinite(raw) || raw <= 0) throw new ArgumentException($"The range {min} … {max} is not finite in doubles.");
        int exponent = (int)Math.Floor(Math.Log10(raw));
        double magnitude = Math.Pow(10, exponent);
        double norm = raw / magnitude;
        double mantissa = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
        // Dividing by an exact power of ten keeps 0.2 as the double nearest 0.2 (2 × 0.1 would not always).
        return exponent >= 0 ? mantissa * magnitude : mantissa / Math.Pow(10, -exponent);
    }

    /// <summary>The next larger nice step: 1 → 2 → 5 → 10 (× 10^k).</summary>
    public static double NextNiceStep(double step)
    {
        if (!double.IsFinite(step) || step <= 0) throw new ArgumentException($"A step must be positive and finite, got {step}.", nameof(step));
        int exponent = (int)Math.Floor(Math.Log10(step) + 1e-9);
        double mantissa = step / Math.Pow(10, exponent);
        double next = mantissa < 1.5 ? 2 : mantissa < 3.5 ? 5 : 10;
        return exponent >= 0 ? next * Math.Pow(10, exponent) : next / Math.Pow(10, -exponent);
    }

    /// <summary>The multiples of <paramref name="step"/> within min…max (inclusive, with a little rounding slack).</summary>
    public static IReadOnlyList<double> Ticks(double min, double max, double step)
    {
        if (!double.IsFinite(min) || !double.IsFinite(max) || !double.IsFinite(step) || step <= 0 || max < min)
            throw new ArgumentException($"Ticks need finite min ≤ max and a positive step, got {min} … {max} by {step}.");
        double first = Math.Ceiling(min / step - 1e-9), last = Math.Floor(max / step + 1e-9);
        if (last - first + 1 > MaxTicks)
            throw new ArgumentException($"{min} … {max} by {step} would make {last - first + 1} ticks; at most {MaxTicks}.");
        var ticks = new List<double>();
        for (double k = first; k <= last; k++)
        {
            double v = k * step;
            ticks.Add(v == 0 ? 0 : v); // no -0
        }
        return ticks;
    }

    /// <summary>
    /// A tick label: with steps of 1000 or more, thousands as "20k" (steps from 500k in millions, "1.5M", and from
    /// 500M in billions, "2G"; no trailing zeros); otherwise as
    /// many decimals as the step needs ("0.2", "0.05"); steps below 1e-4 in scientific notation ("2.5e-05").
    /// </summary>
    public static string FormatTick(double value, double step)
    {
        if (!double.IsFinite(value) || !double.IsFinite(step) || step <= 0)
            throw new ArgumentException($"Cannot label tick {value} with step {step}.");
        var inv = CultureInfo.InvariantCulture;
        if (Math.Abs(value) < step * 1e-9) return "0";
        if (step >= 1000)
        {
            if (step >= 1e15) return value.ToString("0.###e0", inv);
            (double unit, string suffix) = step >= 5e8 ? (1e9, "G") : step >= 5e5 ? (1e6, "M") : (1e3, "k");
            int decimals = Decimals(step / unit);
            return (value / unit).ToString(decimals == 0 ? "0" : "0." + new string('#', decimals), inv) + suffix;
        }
        if (step < 1e-4) return value.ToString("0.###e0", inv);
        return value.ToString("F" + Decimals(step), inv);
    }

    private static int Decimals(double step) => Math.Max(0, -(int)Math.Floor(Math.Log10(step) + 1e-9));

    private static PlotAxis MakeAxis(double lo, double hi, double? fixedMin, double? fixedMax, int target, string name, double? stepOverride = null)
    {
        if (fixedMin is { } fmin) { lo = fmin; if (fixedMax is null && hi <= lo) hi = lo + Pad1(lo); }
        if (fixedMax is { } fmax) { hi = fmax; if (fixedMin is null && lo >= hi) lo = hi - Pad1(hi); }
        if (lo == hi) { double p = Pad1(lo); lo -= p; hi += p; }
        if (!double.IsFinite(hi - lo)) throw new ArgumentException($"The {name} range {lo} … {hi} is not finite in doubles.");
        double step = stepOverride ?? NiceStep(lo, hi, target);
        if (fixedMin is null) lo = Math.Floor(lo / step + 1e-9) * step;
        if (fixedMax is null) hi = Math.Ceiling(hi / step - 1e-9) * step;
        if (!(lo + step > lo) || !double.IsFinite(hi - lo) || hi <= lo)
            throw new ArgumentException($"The {name} range {lo} … {hi} is too narrow or too wide for its magnitude.");
        var ticks = Ticks(lo, hi, step);
        if (ticks.Count == 0) ticks = [lo, hi];
        return new PlotAxis(lo == 0 ? 0 : lo, hi == 0 ? 0 : hi, step, ticks);
    }

    private static double Pad1(double v) => v == 0 ? 1 : Math.Abs(v) * 0.1;
}
