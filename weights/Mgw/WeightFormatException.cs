namespace ModelGuardian.Weights;

/// <summary>
/// The one exception every weight reader throws for a file it will not load: malformed,
/// truncated, corrupted, hostile (a disallowed pickle global, sizes beyond the file), of an
/// unknown version, or not matching the architecture. The message names the problem; any
/// other exception escaping a reader is a bug.
/// </summary>
public sealed class WeightFormatException : IOException
{
    public WeightFormatException(string message) : base(message) { }
    public WeightFormatException(string message, Exception inner) : base(message, inner) { }
}
