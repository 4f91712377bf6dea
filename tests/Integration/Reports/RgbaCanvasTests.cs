using ModelGuardian.Engine.Reports;

namespace ModelGuardian.Tests.Reports;

public class RgbaCanvasTests
{
    private static readonly string[] Zero =
    [
        ".###.",
        "#...#",
        "#..##",
        "#.#.#",
        "##..#",
        "#...#",
        ".###.",
    ];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Glyph0_FillsExactlyItsCell(int scale)
    {
        var canvas = new RgbaCanvas(30, 30);
        const int ox = 3, oy = 4;
        canvas.DrawText(ox, oy, "0", Rgba.Black, scale);
        for (int y = 0; y < canvas.Height; y++)
            for (int x = 0; x < canvas.Width; x++)
            {
                int col = (x - ox) / scale, row = (y - oy) / scale;
                bool inCell = x >= ox && y >= oy && col < BitmapFont.GlyphWidth && row < BitmapFont.GlyphHeight;
                bool expected = inCell && Zero[row][col] == '#';
                Assert.True(expected == (canvas.GetPixel(x, y) == Rgba.Black), $"pixel ({x}, {y}) at scale {scale}");
            }
    }

    [Fact]
    public void Font_HasAGlyphForEveryPrintableAsciiCharacter()
    {
        for (char c = '!'; c <= '~'; c++)
        {
            int ink = 0;
            for (int col = 0; col < BitmapFont.GlyphWidth; col++)
                for (int row = 0; row < BitmapFont.GlyphHeight; row++)
                    if (BitmapFont.IsSet(c, col, row)) ink++;
            Assert.True(ink > 0, $"'{c}' has no pixels");
        }
        for (int col = 0; col < BitmapFont.GlyphWidth; col++)
            for (int row = 0; row < BitmapFont.GlyphHeight; row++)
            {
                Assert.False(BitmapFont.IsSet(' ', col, row));
                Assert.Equal(BitmapFont.IsSet('?', col, row), BitmapFont.IsSet('é', col, row));
            }
        Assert.False(BitmapFont.IsSet('A', 5, 0));
        Assert.False(BitmapFont.IsSet('A', 0, 7));
    }

    [Fact]
    public void Descenders_UseTheRowBelowTheBody()
    {
        foreach (char c in "gjpqy")
            Assert.True(Enumerable.Range(0, BitmapFont.GlyphWidth).Any(col => BitmapFont.IsSet(c, col, BitmapFont.GlyphHeight)), $"'{c}' has no descender");
        foreach (char c in "0Aabx")
            Assert.False(Enumerable.Range(0, BitmapFont.GlyphWidth).Any(col => BitmapFont.IsSet(c, col, BitmapFont.GlyphHeight)), $"'{c}' reaches below the baseline");
        Assert.Equal(BitmapFont.LineHeight * 2, RgbaCanvas.TextHeight(2));
    }

    [Fact]
    public void Glyphs_AreDistinct()
    {
        var seen = new Dictionary<string, char>();
        for (char c = ' '; c <= '~'; c++)
        {
            var bits = string.Concat(Enumerable.Range(0, 40).Select(i => BitmapFont.IsSet(c, i % 5, i / 5) ? '#' : '.'));
            Assert.False(seen.TryGetValue(bits, out var other), $"'{c}' looks like '{other}'");
            seen[bits] = c;
        }
    }

    [Fact]
    public void MeasureText_MatchesDrawnExtent()
    {
        Assert.Equal(0, RgbaCanvas.MeasureText(""));
        Assert.Equal(5 * 2, RgbaCanvas.MeasureText("H"));
        Assert.Equal((3 * 6 - 1) * 2, RgbaCanvas.MeasureText("HHH"));
        var canvas = new RgbaCanvas(60, 20);
        canvas.DrawText(0, 0, "HHH", Rgba.Black);
        int maxX = -1;
        for (int y = 0; y < 20; y++) for (int x = 0; x < 60; x++) if (canvas.GetPixel(x, y) == Rgba.Black) maxX = Math.Max(maxX, x);
        Assert.Equal(RgbaCanvas.MeasureText("HHH") - 1, maxX);
    }

    [Fact]
    public void VerticalText_ReadsBottomToTop()
    {
        var canvas = new RgbaCanvas(20, 40);
        canvas.DrawTextVertical(2, 30, "L", Rgba.Black, 1);
        // 'L' has its vertical stroke in column 0 → along the bottom edge row y = 29, x = 2…8;
        // its foot (row 6) → column x = 8, from y = 29 up to 25.
        for (int x = 2; x <= 8; x++) Assert.Equal(Rgba.Black, canvas.GetPixel(x, 29));
        for (int y = 25; y <= 29; y++) Assert.Equal(Rgba.Black, canvas.GetPixel(8, y));
        Assert.Equal(Rgba.White, canvas.GetPixel(2, 25));
    }

    [Fact]
    public void DrawingOutsideTheCanvasOrClip_IsIgnored()
    {
        var canvas = new RgbaCanvas(10, 10);
        canvas.SetPixel(-1, 3, Rgba.Black);
        canvas.SetPixel(10, 3, Rgba.Black);
        canvas.FillRect(-5, -5, 100, 100, new Rgba(1, 2, 3));
        Assert.Equal(new Rgba(1, 2, 3), canvas.GetPixel(9, 9));
        canvas.SetClip(2, 2, 3, 3);
        canvas.FillRect(0, 0, 10, 10, Rgba.Black);
        canvas.DrawLine(0, 0, 10, 10, Rgba.White, 3);
        canvas.ResetClip();
        Assert.Equal(new Rgba(1, 2, 3), canvas.GetPixel(1, 1));
        Assert.Equal(new Rgba(1, 2, 3), canvas.GetPixel(5, 5));
        Assert.NotEqual(new Rgba(1, 2, 3), canvas.GetPixel(3, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => canvas.GetPixel(10, 0));
    }

    [Fact]
    public void HorizontalLine_CoversTheRowsAroundItsCentre()
    {
        var canvas = new RgbaCanvas(20, 20);
        var c = new Rgba(10, 20, 200);
        canvas.DrawLine(2, 10, 18, 10, c, 2);
        Assert.Equal(c, canvas.GetPixel(10, 9));
        Assert.Equal(c, canvas.GetPixel(10, 10));
        Assert.Equal(Rgba.White, canvas.GetPixel(10, 12));
        Assert.Equal(Rgba.White, canvas.GetPixel(10, 7));
    }
}
