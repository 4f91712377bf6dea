using ModelGuardian.Engine.Reports;

namespace ModelGuardian.Tests.Reports;

public class MarkdownTableTests
{
    [Fact]
    public void Render_PadsEveryColumnToItsWidestCell()
    {
        var md = MarkdownTable.Render(["model", "acc"], [["resnet18", "0.91"], ["mlp", "1"]]);
        Assert.Equal(
            "| model    | acc  |\n" +
            "| -------- | ---- |\n" +
            "| resnet18 | 0.91 |\n" +
            "| mlp      | 1    |\n", md);
    }

    [Fact]
    public void Render_WritesAlignmentColonsAndPadsAccordingly()
    {
        var md = MarkdownTable.Render(["left", "centre", "right", "plain"],
            [["a", "b", "c", "d"], ["long cell", "xy", "12345", ""]],
            [Alignment.Left, Alignment.Center, Alignment.Right, Alignment.Default]);
        Assert.Equal(
            "| left      | centre | right | plain |\n" +
            "| :-------- | :----: | ----: | ----- |\n" +
            "| a         |   b    |     c | d     |\n" +
            "| long cell |   xy   | 12345 |       |\n", md);
    }

    [Fact]
    public void Render_KeepsAtLeastThreeDashes()
    {
        var md = MarkdownTable.Render(["a"], [["b"]], [Alignment.Center]);
        Assert.Equal("|  a  |\n| :-: |\n|  b  |\n", md);
    }

    [Fact]
    public void Render_EscapesPipesAndLineBreaksInCells()
    {
        var md = MarkdownTable.Render(["a|b", "c"], [["x | y", "one\ntwo\r\nthree"]]);
        Assert.Equal(
            "| a\\|b   | c                   |\n" +
            "| ------ | ------------------- |\n" +
            "| x \\| y | one<br>two<br>three |\n", md);
        Assert.All(md.TrimEnd('\n').Split('\n'), line => Assert.Equal(md.IndexOf('\n'), line.Length));
    }

    [Fact]
    public void Render_CountsWidthInTextElements()
    {
        var md = MarkdownTable.Render(["name"], [["e\u0301te\u0301"], ["ümlaut"]]);
        var lines = md.Split('\n');
        Assert.Equal("| e\u0301te\u0301    |", lines[2]);
        Assert.Equal("| ümlaut |", lines[3]);
    }

    [Fact]
    public void Render_WithNoRowsIsHeaderAndDelimiter()
    {
        Assert.Equal("| x   | y   |\n| --- | --- |\n", MarkdownTable.Render(["x", "y"], []));
    }

    [Fact]
    public void Render_RejectsARowWithTheWrongNumberOfCellsNamingIt()
    {
        var e = Assert.Throws<ArgumentException>(() => MarkdownTable.Render(["a", "b"], [["1", "2"], ["3"], ["4", "5"]]));
        Assert.Contains("rows[1]", e.Message);
        Assert.Contains("1 cells", e.Message);
        var e2 = Assert.Throws<ArgumentException>(() => MarkdownTable.Render(["a"], [["1"], ["2", "3"]]));
        Assert.Contains("rows[1]", e2.Message);
    }

    [Fact]
    public void Render_RejectsEmptyHeaderAndMismatchedAlignment()
    {
        Assert.Throws<ArgumentException>(() => MarkdownTable.Render([], []));
        Assert.Throws<ArgumentException>(() => MarkdownTable.Render(["a", "b"], [], [Alignment.Left]));
    }
}
