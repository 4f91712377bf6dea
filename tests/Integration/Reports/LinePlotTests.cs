using ModelGuardian.Engine.Reports;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ModelGuardian.Tests.Reports;

public class LinePlotTests
{
    private static PlotSeries Constant(string name, double y, double x0 = 0, double x1 = 10, int n = 11) =>
        new(name, Enumerable.Range(0, n).Select(i => (x0 + (x1 - x0) * i / (n - 1), y)).ToArray());

    private static bool ColumnHas(RgbaCanvas c, int x, int yCentre, int radius, Rgba color)
    {
        for (int y = yCentre - radius; y <= yCentre + radius; y++)
            if (y >= 0 && y < c.Height && c.GetPixel(x, y) == color) return true;
        return false;
    }

    private static int CountIn(RgbaCanvas c, PlotRect r, Func<Rgba, bool> predicate)
    {
        int n = 0;
        for (int y = r.Y; y < r.Bottom; y++)
            for (int x = r.X; x < r.Right; x++)
                if (predicate(c.GetPixel(x, y))) n++;
        return n;
    }

    private static bool IsDark(Rgba p) => p.R < 100 && p.G < 100 && p.B < 100;

    [Fact]
    public void RenderPng_DecodesAsAPngOfTheRequestedSize()
    {
        var png = LinePlot.RenderPng([Constant("a", 1), Constant("b", 2)],
            new LinePlotOptions { Title = "Accuracy", XLabel = "queries", YLabel = "acc", Width = 640, Height = 400 });

        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        Assert.Equal(640, (png[16] << 24) | (png[17] << 16) | (png[18] << 8) | png[19]);
        Assert.Equal(400, (png[20] << 24) | (png[21] << 16) | (png[22] << 8) | png[23]);
        using var decoded = Image.Load<Rgba32>(png);
        Assert.Equal(640, decoded.Width);
        Assert.Equal(400, decoded.Height);
    }

    [Fact]
    public void DecodedPng_MatchesTheCanvasPixels()
    {
        var series = new[] { Constant("a", 1), Constant("b", 2) };
        var options = new LinePlotOptions { Title = "t", Width = 300, Height = 200 };
        var canvas = LinePlot.Render(series, options);
        using var decoded = Image.Load<Rgba32>(LinePlot.RenderPng(series, options));
        var pixels = new byte[decoded.Width * decoded.Height * 4];
        decoded.CopyPixelDataTo(pixels);
        Assert.Equal(canvas.Pixels, pixels);

        using var ms = new MemoryStream();
        LinePlot.WritePng(series, options, ms);
        Assert.Equal(LinePlot.RenderPng(series, options), ms.ToArray());
    }

    [Fact]
    public void HorizontalSeries_AreDrawnInTheirColoursOnTheExpectedRows()
    {
        var series = new[] { Constant("low", 0.25), Constant("high", 0.75), Constant("floor", 0), Constant("top", 1) };
        var canvas = LinePlot.Render(series, new LinePlotOptions { Title = "Levels", XLabel = "x", YLabel = "y" }, out var layout);

        Assert.Equal(0, layout.YAxis.Min);
        Assert.Equal(1, layout.YAxis.Max);
        Assert.Equal(LinePlot.Palette[0], layout.SeriesColors[0]);
        Assert.Equal(LinePlot.Palette[1], layout.SeriesColors[1]);
        // Columns between markers, away from the legend's corner (it sits at the right or the left).
        foreach (double x in new[] { 3.5, 4.5, 5.5, 6.5 })
        {
            int px = (int)Math.Floor(layout.MapX(x));
            Assert.True(ColumnHas(canvas, px, (int)Math.Floor(layout.MapY(0.25)), 2, LinePlot.Palette[0]), $"series 'low' at x={x}");
            Assert.True(ColumnHas(canvas, px, (int)Math.Floor(layout.MapY(0.75)), 2, LinePlot.Palette[1]), $"series 'high' at x={x}");
            // Half-way between the lines there is only background or grid.
            var between = canvas.GetPixel(px, (int)Math.Floor(layout.MapY(0.5)) + 3);
            Assert.True(between == LinePlot.Background || between == LinePlot.GridColor, $"between lines at x={x}: {between}");
        }
    }

    [Fact]
    public void Lines_AreAtLeastTwoPixelsThickAndAntiAliased()
    {
        var canvas = LinePlot.Render([new PlotSeries("diag", [(0, 0), (10, 1)])], new LinePlotOptions(), out var layout);
        var color = LinePlot.Palette[0];
        int px = (int)Math.Floor(layout.MapX(5)), py = (int)Math.Floor(layout.MapY(0.5));
        int full = 0, partial = 0;
        for (int y = py - 4; y <= py + 4; y++)
        {
            var p = canvas.GetPixel(px, y);
            if (p == color) full++;
            else if (p != LinePlot.Background && p != LinePlot.GridColor) partial++;
        }
        Assert.True(full >= 2, $"{full} fully covered pixels in the column");
        Assert.True(partial >= 1, "no blended edge pixels: the line is not anti-aliased");
    }

    [Fact]
    public void Legend_HoldsTextAndEachSeriesColour()
    {
        var series = new[] { Constant("baseline", 0.2), Constant("guarded", 0.8), Constant("third", 0.5) };
        var canvas = LinePlot.Render(series, new LinePlotOptions { Title = "Legend" }, out var layout);

        Assert.NotNull(layout.Legend);
        var legend = layout.Legend.Value;
        Assert.True(legend.X >= layout.PlotArea.X && legend.Right <= layout.PlotArea.Right, "legend inside the plot area");
        Assert.True(CountIn(canvas, legend, IsDark) > 100, "legend text is missing");
        for (int s = 0; s < series.Length; s++)
        {
            var color = LinePlot.Palette[s];
            Assert.True(CountIn(canvas, legend, p => p == color) > 10, $"legend swatch of series {s}");
        }
    }

    [Fact]
    public void Legend_AvoidsTheCornerTheDataCross()
    {
        // A line rising to the top-right: the top-left corner is empty.
        var canvas = LinePlot.Render([new PlotSeries("rise", [(0, 0), (5, 0.1), (10, 1)])], new LinePlotOptions(), out var layout);
        var legend = layout.Legend!.Value;
        Assert.True(legend.X < layout.PlotArea.X + layout.PlotArea.Width / 2, "legend should move to the left");
        Assert.True(legend.Y < layout.PlotArea.Y + layout.PlotArea.Height / 2, "legend should stay at the top");
        Assert.True(canvas.Width > 0);
    }

    [Fact]
    public void Legend_MovesBelowTheChartWhenTheDataCrossEveryCorner()
    {
        var series = new[] { Constant("high", 0.95), Constant("low", 0.05) };
        var canvas = LinePlot.Render(series, new LinePlotOptions { XLabel = "queries", YMin = 0, YMax = 1 }, out var layout);
        var legend = layout.Legend!.Value;
        Assert.True(legend.Y > layout.PlotArea.Bottom + 40, $"legend {legend} should be below the plot area {layout.PlotArea} and its x label");
        Assert.True(legend.Bottom <= canvas.Height && legend.X >= 0 && legend.Right <= canvas.Width);
        Assert.True(CountIn(canvas, legend, IsDark) > 50, "legend text is missing");
        Assert.True(CountIn(canvas, legend, p => p == LinePlot.Palette[1]) > 10, "legend swatch of series 1");
    }

    [Fact]
    public void EmptySeriesList_StillDrawsAxesAndNoData()
    {
        var canvas = LinePlot.Render([], new LinePlotOptions { Title = "Nothing", XLabel = "x", YLabel = "y" }, out var layout);

        Assert.True(layout.NoData);
        Assert.Null(layout.Legend);
        var area = layout.PlotArea;
        for (int y = area.Y; y < area.Bottom; y += 10) Assert.Equal(LinePlot.AxisColor, canvas.GetPixel(area.X - 1, y));
        for (int x = area.X; x < area.Right; x += 10) Assert.Equal(LinePlot.AxisColor, canvas.GetPixel(x, area.Bottom - 1));
        var centre = new PlotRect(area.X + area.Width / 2 - 50, area.Y + area.Height / 2 - 10, 100, 20);
        Assert.True(CountIn(canvas, centre, p => p != LinePlot.Background && p != LinePlot.GridColor) > 50, "'no data' text");
        Assert.NotEmpty(LinePlot.RenderPng([], new LinePlotOptions()));
    }

    [Fact]
    public void SeriesWithOnlyNaNs_IsNoDataButKeepsItsLegend()
    {
        LinePlot.Render([new PlotSeries("gaps", [(double.NaN, 1), (2, double.NaN)])], new LinePlotOptions(), out var layout);
        Assert.True(layout.NoData);
        Assert.NotNull(layout.Legend);
    }

    [Fact]
    public void SinglePoint_IsInsideBothAxesAndMarked()
    {
        var canvas = LinePlot.Render([new PlotSeries("one", [(5, 3)])], new LinePlotOptions(), out var layout);
        Assert.True(layout.XAxis.Min < 5 && 5 < layout.XAxis.Max, $"x axis {layout.XAxis}");
        Assert.True(layout.YAxis.Min < 3 && 3 < layout.YAxis.Max, $"y axis {layout.YAxis}");
        Assert.Equal(LinePlot.Palette[0], canvas.GetPixel((int)Math.Floor(layout.MapX(5)), (int)Math.Floor(layout.MapY(3))));
    }

    [Fact]
    public void AllEqualY_PadsTheRangeAndDrawsTheLine()
    {
        var canvas = LinePlot.Render([Constant("flat", 2)], new LinePlotOptions(), out var layout);
        Assert.True(layout.YAxis.Min < 2 && 2 < layout.YAxis.Max, $"y axis {layout.YAxis}");
        Assert.True(ColumnHas(canvas, (int)Math.Floor(layout.MapX(4.5)), (int)Math.Floor(layout.MapY(2)), 2, LinePlot.Palette[0]));

        LinePlot.Render([Constant("zero", 0)], new LinePlotOptions(), out var zero);
        Assert.True(zero.YAxis.Min < 0 && 0 < zero.YAxis.Max, $"y axis {zero.YAxis}");
    }

    [Fact]
    public void NaNPoints_AreSkippedAndBreakTheLine()
    {
        var canvas = LinePlot.Render([new PlotSeries("gap", [(0, 0), (5, double.NaN), (10, 1), (double.NaN, 50)])],
            new LinePlotOptions(), out var layout);
        Assert.Equal(0, layout.YAxis.Min);
        Assert.Equal(1, layout.YAxis.Max);
        Assert.Equal(10, layout.XAxis.Max);
        // No segment across the gap: the middle of (0,0)–(10,1) stays empty.
        var mid = canvas.GetPixel((int)Math.Floor(layout.MapX(5)), (int)Math.Floor(layout.MapY(0.5)));
        Assert.True(mid == LinePlot.Background || mid == LinePlot.GridColor, $"middle pixel {mid}");
    }

    [Fact]
    public void FixedYRange_IsKeptAndDataOutsideItIsClipped()
    {
        var canvas = LinePlot.Render([Constant("above", 2), Constant("inside", 0.5)],
            new LinePlotOptions { YMin = 0, YMax = 1 }, out var layout);
        Assert.Equal(0, layout.YAxis.Min);
        Assert.Equal(1, layout.YAxis.Max);
        int px = (int)Math.Floor(layout.MapX(4.5));
        for (int y = 0; y < layout.PlotArea.Y; y++) Assert.NotEqual(LinePlot.Palette[0], canvas.GetPixel(px, y));
    }

    [Fact]
    public void LargeX_GetsThousandsTicks()
    {
        var points = Enumerable.Range(0, 201).Select(i => (i * 100.0, 1.0 - 1.0 / (1 + i))).ToArray();
        LinePlot.Render([new PlotSeries("acc", points)], new LinePlotOptions { XLabel = "queries" }, out var layout);
        Assert.Equal(5000, layout.XAxis.Step);
        Assert.Equal([0, 5000, 10000, 15000, 20000], layout.XAxis.Ticks);
        Assert.Equal("20k", LinePlot.FormatTick(layout.XAxis.Ticks[^1], layout.XAxis.Step));
    }

    [Fact]
    public void NarrowChart_WidensTheXStepUntilLabelsFit()
    {
        LinePlot.Render([Constant("n", 1, 0, 20000)], new LinePlotOptions { Width = 160, Height = 120 }, out var layout);
        double spacing = layout.PlotArea.Width * layout.XAxis.Step / (layout.XAxis.Max - layout.XAxis.Min);
        Assert.True(spacing >= RgbaCanvas.MeasureText("20k"), $"tick spacing {spacing}px with step {layout.XAxis.Step}");
    }

    [Fact]
    public void ManySeries_CycleThePalette()
    {
        var series = Enumerable.Range(0, 10).Select(i => Constant($"s{i}", i)).ToArray();
        LinePlot.Render(series, new LinePlotOptions(), out var layout);
        Assert.Equal(8, LinePlot.Palette.Distinct().Count());
        Assert.Equal(LinePlot.Palette[0], layout.SeriesColors[8]);
        Assert.Equal(series.Length, layout.SeriesColors.Count);
    }

    [Fact]
    public void NonFiniteRanges_AreRejected()
    {
        var ok = new[] { Constant("a", 1) };
        Assert.Throws<ArgumentException>(() => LinePlot.Render([new PlotSeries("inf", [(0, 1), (1, double.PositiveInfinity)])], new LinePlotOptions()));
        Assert.Throws<ArgumentException>(() => LinePlot.Render([new PlotSeries("inf", [(double.NegativeInfinity, 1)])], new LinePlotOptions()));
        Assert.Throws<ArgumentException>(() => LinePlot.Render(ok, new LinePlotOptions { YMin = double.NaN }));
        Assert.Throws<ArgumentException>(() => LinePlot.Render(ok, new LinePlotOptions { YMax = double.PositiveInfinity }));
        Assert.Throws<ArgumentException>(() => LinePlot.Render(ok, new LinePlotOptions { YMin = 1, YMax = 1 }));
        Assert.Throws<ArgumentException>(() => LinePlot.Render(ok, new LinePlotOptions { YMin = 2, YMax = 1 }));
        Assert.Throws<ArgumentException>(() => LinePlot.Render([new PlotSeries("huge", [(0, -1e308), (1, 1e308)])], new LinePlotOptions()));
        Assert.ThrowsAny<ArgumentException>(() => LinePlot.Render(ok, new LinePlotOptions { Width = 10 }));
    }

    [Theory]
    [InlineData(0, 1, 0.2)]
    [InlineData(0, 20000, 5000)]
    [InlineData(0, 100, 20)]
    [InlineData(0, 10, 2)]
    [InlineData(0, 7, 1)]
    [InlineData(-3, 3, 1)]
    [InlineData(0, 0.05, 0.01)]
    [InlineData(0.31, 0.33, 0.005)]
    [InlineData(0, 3e6, 5e5)]
    [InlineData(0, 40, 10)]
    public void NiceStep_Is1_2Or5TimesAPowerOfTen(double min, double max, double expected)
    {
        Assert.Equal(expected, LinePlot.NiceStep(min, max), 12);
    }

    [Theory]
    [InlineData(1, 2)]
    [InlineData(2, 5)]
    [InlineData(5, 10)]
    [InlineData(0.2, 0.5)]
    [InlineData(5000, 10000)]
    public void NextNiceStep_Climbs1_2_5(double step, double expected) => Assert.Equal(expected, LinePlot.NextNiceStep(step), 12);

    [Fact]
    public void Ticks_AreTheMultiplesOfTheStepInTheRange()
    {
        var t = LinePlot.Ticks(0, 1, 0.2);
        Assert.Equal(6, t.Count);
        for (int i = 0; i < t.Count; i++) Assert.Equal(i * 0.2, t[i], 12);
        Assert.Equal([-1.0, 0, 1, 2], LinePlot.Ticks(-1.5, 2.5, 1));
        Assert.Throws<ArgumentException>(() => LinePlot.NiceStep(1, 1));
        Assert.Throws<ArgumentException>(() => LinePlot.NiceStep(0, double.NaN));
    }

    [Theory]
    [InlineData(20000, 5000, "20k")]
    [InlineData(15000, 5000, "15k")]
    [InlineData(2500, 500, "2500")]
    [InlineData(1500000, 500000, "1.5M")]
    [InlineData(1000000, 500000, "1M")]
    [InlineData(2500000, 500000, "2.5M")]
    [InlineData(3e9, 1e9, "3G")]
    [InlineData(200000, 100000, "200k")]
    [InlineData(0, 5000, "0")]
    [InlineData(0.2, 0.2, "0.2")]
    [InlineData(0.30000000000000004, 0.1, "0.3")]
    [InlineData(-0.05, 0.05, "-0.05")]
    [InlineData(4, 2, "4")]
    [InlineData(2e-5, 1e-5, "2e-5")]
    public void FormatTick_IsShortAndInvariant(double value, double step, string expected) =>
        Assert.Equal(expected, LinePlot.FormatTick(value, step));

    [Fact]
    public void TextDrawing_PutsTitleAndAxisLabelsOnTheCanvas()
    {
        var plain = LinePlot.Render([Constant("a", 1)], new LinePlotOptions(), out var l0);
        var labelled = LinePlot.Render([Constant("a", 1)], new LinePlotOptions { Title = "TITLE", XLabel = "XLABEL", YLabel = "YLABEL" }, out var l1);
        Assert.True(l1.PlotArea.Y > l0.PlotArea.Y, "the title takes room above the plot");
        Assert.True(l1.PlotArea.X > l0.PlotArea.X, "the y label takes room on the left");
        Assert.True(l1.PlotArea.Bottom < l0.PlotArea.Bottom, "the x label takes room below");
        Assert.True(CountIn(labelled, new PlotRect(0, 0, labelled.Width, l1.PlotArea.Y - 2), IsDark) > 100, "title pixels");
        Assert.True(CountIn(labelled, new PlotRect(0, l1.PlotArea.Y, 30, l1.PlotArea.Height), IsDark) > 50, "y label pixels");
        Assert.Equal(0, CountIn(plain, new PlotRect(0, 0, plain.Width, l0.PlotArea.Y - 8), IsDark));
    }
}
