using System.Globalization;
using System.Text;

namespace ModelGuardian.Engine.Reports;

/// <summary>
/// RFC 4180 CSV with one deliberate difference: records end in LF, not CRLF (diff- and git-friendly; the
/// reader accepts both). Fields are separated by ',' and quoted when they contain a comma, a quote, CR or LF, with
/// quotes doubled. A record of one empty field is written as <c>""</c> so that it survives a round trip.
/// </summary>
public static class Csv
{
    public const string LineEnding = "\n";

    /// <summary>The shortest text that parses back to exactly <paramref name="value"/> (invariant culture: "0.1", "1E-07", "-0", "NaN", "Infinity").</summary>
    public static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Invariant-culture parse, the inverse of <see cref="Format(double)"/>.</summary>
    /// <exception cref="FormatException">not a number.</exception>
    public static double ParseDouble(string text) =>
        double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);

    /// <summary>The field as it appears in a record: quoted (quotes doubled) when it holds a comma, quote, CR or LF.</summary>
    public static string Escape(string? field)
    {
        field ??= "";
        return field.AsSpan().IndexOfAny(",\"\r\n") < 0 ? field : "\"" + field.Replace("\"", "\"\"") + "\"";
    }

    /// <summary>One record without its line ending.</summary>
    /// <exception cref="ArgumentException">no fields (a record has at least one).</exception>
    public static string FormatRecord(IEnumerable<string?> fields)
    {
        ArgumentNullException.ThrowIfNull(fields);
        var list = fields as IReadOnlyList<string?> ?? fields.ToList();
        if (list.Count == 0) throw new ArgumentException("A CSV record needs at least one field.", nameof(fields));
        if (list.Count == 1 && string.IsNullOrEmpty(list[0])) return "\"\"";
        return string.Join(',', list.Select(Escape));
    }

    /// <summary>Whole records, each followed by <see cref="LineEnding"/>.</summary>
    public static string Format(IEnumerable<IEnumerable<string?>> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var sb = new StringBuilder();
        foreach (var r in records) sb.Append(FormatRecord(r)).Append(LineEnding);
        return sb.ToString();
    }

    /// <summary>
    /// Parses CSV text into records. Accepts LF or CRLF endings, a final record with or without a line ending, and a
    /// leading byte-order mark; an empty line is a record of one empty field; CR and LF inside quotes are kept as they are.
    /// </summary>
    /// <exception cref="FormatException">a quote inside an unquoted field, text after a closing quote, or an unclosed quote (the message gives the line).</exception>
    public static IReadOnlyList<string[]> Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var records = new List<string[]>();
        var fields = new List<string>();
        var field = new StringBuilder();
        int i = text.Length > 0 && text[0] == '\uFEFF' ? 1 : 0, line = 1;
        if (i >= text.Length) return records;
        while (true)
        {
            // At the start of a field.
            if (i < text.Length && text[i] == '"')
            {
                int startLine = line;
                i++;
                while (true)
                {
                    if (i >= text.Length) throw new FormatException($"CSV line {startLine}: a quoted field is never closed.");
                    char c = text[i];
                    if (c == '"')
                    {
                        if (i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i += 2; continue; }
                        i++;
                        break;
                    }
                    if (c == '\n') line++;
                    field.Append(c);
                    i++;
                }
                if (i < text.Length && text[i] != ',' && text[i] != '\n' && !(text[i] == '\r' && i + 1 < text.Length && text[i + 1] == '\n'))
                    throw new FormatException($"CSV line {line}: unexpected '{text[i]}' after a closing quote.");
            }
            else
            {
                while (i < text.Length && text[i] != ',' && text[i] != '\n' && !(text[i] == '\r' && i + 1 < text.Length && text[i + 1] == '\n'))
                {
                    if (text[i] == '"') throw new FormatException($"CSV line {line}: a quote inside an unquoted field (quote the whole field and double the quote).");
                    field.Append(text[i]);
                    i++;
                }
            }

            fields.Add(field.ToString());
            field.Clear();
            if (i >= text.Length) { records.Add([.. fields]); break; }
            if (text[i] == ',') { i++; continue; }
            // End of record: LF or CRLF.
            i += text[i] == '\r' ? 2 : 1;
            line++;
            records.Add([.. fields]);
            fields.Clear();
            if (i >= text.Length) break;
        }
        return records;
    }
}

/// <summary>Writes CSV records (see <see cref="Csv"/>) to a <see cref="TextWriter"/>, one LF-terminated line each.</summary>
public sealed class CsvWriter : IDisposable
{
    private readonly TextWriter _writer;
    private readonly bool _leaveOpen;

    public CsvWriter(TextWriter writer, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(writer);
        (_writer, _leaveOpen) = (writer, leaveOpen);
    }

    /// <exception cref="ArgumentException">no fields.</exception>
    public void WriteRecord(IEnumerable<string?> fields)
    {
        _writer.Write(Csv.FormatRecord(fields));
        _writer.Write(Csv.LineEnding);
    }

    public void WriteRecord(params string?[] fields) => WriteRecord((IEnumerable<string?>)fields);

    /// <summary>A record of numbers, each in <see cref="Csv.Format(double)"/>'s round-trip form.</summary>
    public void WriteRecord(IEnumerable<double> values) => WriteRecord(values.Select(v => (string?)Csv.Format(v)));

    public void Flush() => _writer.Flush();

    public void Dispose()
    {
        _writer.Flush();
        if (!_leaveOpen) _writer.Dispose();
    }
}
