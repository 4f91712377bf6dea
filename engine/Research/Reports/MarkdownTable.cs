using System.Globalization;
using System.Text;

namespace ModelGuardian.Engine.Reports;

/// <summary>Column alignment in a Markdown table's delimiter row.</summary>
public enum Alignment
{
    /// <summary>No colon: the renderer's default (left).</summary>
    Default,
    Left,
    Center,
    Right,
}

/// <summary>GitHub-flavoured Markdown tables that also read well as plain text.</summary>
public static class MarkdownTable
{
    /// <summary>
    /// A GFM table: every column padded to the width of its widest cell (at least 3, counted in text elements),
    /// pipes in cells escaped as <c>\|</c>, line breaks in cells written as <c>&lt;br&gt;</c>, lines ending in LF.
    /// Right-aligned columns are padded on the left and centred ones on both sides, so the source lines up too.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// an empty header, an <paramref name="align"/> of another length than the header, or a row with another number of
    /// cells than the header (the message names the row's index in <paramref name="rows"/>).
    /// </exception>
    public static string Render(IReadOnlyList<string> header, IReadOnlyList<IReadOnlyList<string>> rows, IReadOnlyList<Alignment>? align = null)
    {
        ArgumentNullException.ThrowIfNull(header);
        ArgumentNullException.ThrowIfNull(rows);
        int n = header.Count;
        if (n == 0) throw new ArgumentException("A Markdown table needs at least one column.", nameof(header));
        if (align is not null && align.Count != n)
            throw new ArgumentException($"align has {align.Count} entries; the header has {n} columns.", nameof(align));
        for (int r = 0; r < rows.Count; r++)
        {
            if (rows[r] is null) throw new ArgumentException($"rows[{r}] is null; the header has {n} columns.", nameof(rows));
            if (rows[r].Count != n)
                throw new ArgumentException($"rows[{r}] has {rows[r].Count} cells; the header has {n} columns.", nameof(rows));
        }

        var head = header.Select(Escape).ToArray();
        var body = rows.Select(row => row.Select(Escape).ToArray()).ToArray();
        var widths = new int[n];
        for (int c = 0; c < n; c++)
        {
            widths[c] = Math.Max(3, Width(head[c]));
            foreach (var row in body) widths[c] = Math.Max(widths[c], Width(row[c]));
        }
        Alignment At(int c) => align?[c] ?? Alignment.Default;

        var sb = new StringBuilder();
        AppendRow(sb, head, widths, At);
        sb.Append('|');
        for (int c = 0; c < n; c++)
        {
            int w = widths[c];
            sb.Append(' ').Append(At(c) switch
            {
                Alignment.Left => ":" + new string('-', w - 1),
                Alignment.Right => new string('-', w - 1) + ":",
                Alignment.Center => ":" + new string('-', w - 2) + ":",
                _ => new string('-', w),
            }).Append(" |");
        }
        sb.Append('\n');
        foreach (var row in body) AppendRow(sb, row, widths, At);
        return sb.ToString();
    }

    private static void AppendRow(StringBuilder sb, string[] cells, int[] widths, Func<int, Alignment> align)
    {
        sb.Append('|');
        for (int c = 0; c < cells.Length; c++)
        {
            int gap = widths[c] - Width(cells[c]);
            int before = align(c) switch { Alignment.Right => gap, Alignment.Center => gap / 2, _ => 0 };
            sb.Append(' ').Append(' ', before).Append(cells[c]).Append(' ', gap - before).Append(" |");
        }
        sb.Append('\n');
    }

    /// <summary>A cell's text made safe inside a table row: <c>|</c> → <c>\|</c>, CR/LF line breaks → <c>&lt;br&gt;</c>.</summary>
    public static string Escape(string? cell) =>
        (cell ?? "").Replace("\r\n", "<br>").Replace('\r', '\n').Replace("\n", "<br>").Replace("|", "\\|");

    private static int Width(string s) => new StringInfo(s).LengthInTextElements;
}
