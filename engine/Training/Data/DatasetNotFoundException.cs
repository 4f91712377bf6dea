namespace ModelGuardian.Engine.Data;

/// <summary>
/// A dataset or photo source that ships as a Debian package is not installed (or not where it was looked for).
/// The message names the package(s) to install and every path tried.
/// </summary>
public sealed class DatasetNotFoundException : FileNotFoundException
{
    public DatasetNotFoundException(string what, IReadOnlyList<string> packages, IReadOnlyList<string> pathsTried, string? hint = null)
        : base($"{what} not found. Install with: apt-get install {string.Join(' ', packages)}" +
               (hint is null ? "" : $" ({hint})") +
               $". Paths tried: {string.Join(", ", pathsTried)}.")
        => (Packages, PathsTried) = (packages, pathsTried);

    /// <summary>The Debian packages that provide the data.</summary>
    public IReadOnlyList<string> Packages { get; }

    public IReadOnlyList<string> PathsTried { get; }
}
