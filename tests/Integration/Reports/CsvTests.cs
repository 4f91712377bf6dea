using ModelGuardian.Engine.Reports;

namespace ModelGuardian.Tests.Reports;

public class CsvTests
{
    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("", "")]
    [InlineData("a,b", "\"a,b\"")]
    [InlineData("say \"hi\"", "\"say \"\"hi\"\"\"")]
    [InlineData("line1\nline2", "\"line1\nline2\"")]
    [InlineData("cr\rhere", "\"cr\rhere\"")]
    [InlineData(" spaced ", " spaced ")]
    [InlineData("ünïcødé ✓", "ünïcødé ✓")]
    public void Escape_QuotesOnlyWhenNeeded(string field, string expected) => Assert.Equal(expected, Csv.Escape(field));

    [Fact]
    public void Format_EndsRecordsWithLf()
    {
        var text = Csv.Format([["a", "b"], ["1", "2"]]);
        Assert.Equal("a,b\n1,2\n", text);
        Assert.Equal("\"\"\n", Csv.Format([[""]]));
        Assert.Equal(",\n", Csv.Format([["", ""]]));
        Assert.Throws<ArgumentException>(() => Csv.FormatRecord([]));
    }

    [Fact]
    public void TrickyFields_RoundTrip()
    {
        string[][] records =
        [
            ["comma,inside", "quote\"inside", "\"starts and ends\"", "multi\nline", "crlf\r\nin field", "lone\rcr"],
            ["ünïcødé ✓", "日本語", "emoji 🛡️", "", " lead and trail ", "tab\there"],
            ["", ""],
            [""],
            ["x"],
            [",", "\"", "\n", "\"\"", ",,"],
        ];
        var text = Csv.Format(records);
        var parsed = Csv.Parse(text);
        Assert.Equal(records.Length, parsed.Count);
        for (int i = 0; i < records.Length; i++) Assert.Equal(records[i], parsed[i]);
    }

    [Fact]
    public void Parse_AcceptsCrLfMissingFinalNewlineBomAndEmptyInput()
    {
        Assert.Equal([["a", "b"], ["c", "d"]], Csv.Parse("a,b\r\nc,d\r\n"));
        Assert.Equal([["a", "b"], ["c", "d"]], Csv.Parse("a,b\nc,d"));
        Assert.Equal([["a"]], Csv.Parse("\uFEFFa\n"));
        Assert.Empty(Csv.Parse(""));
        Assert.Equal([["a", ""], [""], ["b"]], Csv.Parse("a,\n\nb\n"));
        Assert.Equal([["q\r\nx", "y"]], Csv.Parse("\"q\r\nx\",y\r\n"));
    }

    [Theory]
    [InlineData("a\"b,c\n", 1)]
    [InlineData("ok\n\"never closed\n", 2)]
    [InlineData("\"a\"x,b\n", 1)]
    public void Parse_RejectsMalformedQuotingWithTheLine(string text, int line)
    {
        var e = Assert.Throws<FormatException>(() => Csv.Parse(text));
        Assert.Contains($"line {line}", e.Message);
    }

    [Fact]
    public void Doubles_RoundTripBitForBit()
    {
        double[] values =
        [
            0.1, 1.0 / 3, -0.0, 0.0, double.Epsilon, double.MaxValue, double.MinValue, 1e-7, 1e21, 123456789.123456789,
            0.30000000000000004, Math.PI, -2.5e-300, double.NaN, double.PositiveInfinity, double.NegativeInfinity,
        ];
        foreach (var v in values)
        {
            string s = Csv.Format(v);
            Assert.DoesNotContain(",", s);
            Assert.Equal(BitConverter.DoubleToInt64Bits(v), BitConverter.DoubleToInt64Bits(Csv.ParseDouble(s)));
        }
        Assert.Equal("0.1", Csv.Format(0.1));
        Assert.Equal("0.30000000000000004", Csv.Format(0.1 + 0.2));
        Assert.Equal("1E-07", Csv.Format(1e-7));
        Assert.Equal("-0", Csv.Format(-0.0));
        Assert.Equal("NaN", Csv.Format(double.NaN));
        Assert.Equal("Infinity", Csv.Format(double.PositiveInfinity));
    }

    [Fact]
    public void CsvWriter_WritesRecordsThatParseBack()
    {
        var sw = new StringWriter();
        using (var w = new CsvWriter(sw, leaveOpen: true))
        {
            w.WriteRecord("queries", "accuracy", "note");
            w.WriteRecord(["1000", Csv.Format(0.8125), "warm-up, first"]);
            w.WriteRecord(new[] { 20000.0, 1.0 / 3, -0.0 });
        }
        var text = sw.ToString();
        Assert.DoesNotContain("\r", text);
        var rows = Csv.Parse(text);
        Assert.Equal(["queries", "accuracy", "note"], rows[0]);
        Assert.Equal(["1000", "0.8125", "warm-up, first"], rows[1]);
        Assert.Equal(1.0 / 3, Csv.ParseDouble(rows[2][1]));
        Assert.True(double.IsNegative(Csv.ParseDouble(rows[2][2])));
    }
}
