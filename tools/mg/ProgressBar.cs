namespace ModelGuardian.Tools;

/// <summary>
/// Progress on stderr: a live one-line bar on a terminal; in a log (stderr redirected) a plain line only when
/// the label changes or another quarter is done, so `mg demo 2>log` gets a few lines instead of hundreds of redraws.
/// </summary>
internal sealed class ProgressBar : IProgress<double>, IDisposable
{
    private const long Threshold = 4L << 20;
    private readonly string _label;
    private readonly long _bytes;
    private int _shown = -1;
    private bool _done;

    private ProgressBar(string label, long bytes)
    {
        _label = label;
        _bytes = bytes;
    }

    /// <summary>A bar for reading <paramref name="path"/>, or null when the file is small.</summary>
    public static ProgressBar? ForFile(string path, string label)
    {
        long size = new FileInfo(path).Length;
        return size >= Threshold ? new ProgressBar(label, size) : null;
    }

    public void Report(double value)
    {
        int percent = (int)Math.Clamp(value * 100, 0, 100);
        if (percent == _shown || _done) return;
        _shown = percent;
        Draw(_label, percent, $"of {_bytes / 1048576.0:F1} MB");
    }

    /// <summary>Whether stderr is a terminal that can redraw a line; tests set it.</summary>
    internal static Func<bool> IsLive { get; set; } = () => !Console.IsErrorRedirected;

    private static readonly Lock Gate = new();
    private static string? _loggedLabel;
    private static int _loggedQuarter = -1;

    /// <summary>The one progress line every mg command draws on stderr: label, a 20-cell bar, percent, detail.</summary>
    public static void Draw(string label, int percent, string detail)
    {
        percent = Math.Clamp(percent, 0, 100);
        if (IsLive())
        {
            int filled = percent / 5;
            Console.Error.Write($"\r{label} [{new string('#', filled)}{new string('.', 20 - filled)}] {percent,3}% {detail}");
            return;
        }
        int quarter = percent / 25;
        lock (Gate)
        {
            if (label == _loggedLabel && quarter == _loggedQuarter) return;
            (_loggedLabel, _loggedQuarter) = (label, quarter);
        }
        Console.Error.WriteLine($"{label.TrimEnd()} {percent}% {detail.Trim()}");
    }

    /// <summary>Ends a live bar's line; a log's lines are already ended.</summary>
    public static void EndLine()
    {
        if (IsLive()) Console.Error.WriteLine();
    }

    public void Dispose()
    {
        if (_done) return;
        _done = true;
        if (_shown >= 0) EndLine();
    }
}
