namespace ModelGuardian.Engine.Data;

/// <summary>
/// A dataset or photo source is not installed (or not where it was looked for). The message says how to install
/// it — the Debian package(s), or the command for data that comes from elsewhere — and every path tried.
/// </summary>
public sealed class DatasetNotFoundException : FileNotFoundException
{
    public DatasetNotFoundException(string what, IReadOnlyList<string> packages, IReadOnlyList<string> pathsTried, string? hint = null)
        : base($"{what} not found. Install with: apt-get install {string.Join(' ', packages)}" +
               (hint is null ? "" : $" ({hint})") +
               $". Paths tried: {string.Join(", ", pathsTried)}.")
        => (Packages, PathsTried) = (packages, pathsTried);

    /// <summary>Data that no Debian package ships: <paramref name="install"/> is the command that fetches it.</summary>
    public DatasetNotFoundException(string what, string install, IReadOnlyList<string> pathsTried)
        : base($"{what} not found. Install with: {install}. Paths tried: {string.Join(", ", pathsTried)}.")
        => (Packages, PathsTried) = ([], pathsTried);

    /// <summary>The Debian packages that provide the data (empty when it comes from elsewhere).</summary>
    public IReadOnlyList<string> Packages { get; }

    public IReadOnlyList<string> PathsTried { get; }
}
