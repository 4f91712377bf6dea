namespace ModelGuardian.Tools;

/// <summary>A one-line progress bar on stderr, for files large enough that the user would otherwise wait in silence.</summary>
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

    /// <summary>The one progress line every mg command draws on stderr: label, a 20-cell bar, percent, detail.</summary>
    public static void Draw(string label, int percent, string detail)
    {
        int filled = Math.Clamp(percent, 0, 100) / 5;
        Console.Error.Write($"\r{label} [{new string('#', filled)}{new string('.', 20 - filled)}] {percent,3}% {detail}");
    }

    public void Dispose()
    {
        if (_done) return;
        _done = true;
        if (_shown >= 0) Console.Error.WriteLine();
    }
}
