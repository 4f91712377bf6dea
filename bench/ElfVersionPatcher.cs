using System.Buffers.Binary;
using System.Text;

namespace ModelGuardian.Bench;

/// <summary>
/// Marks one symbol-version requirement of an ELF64 little-endian shared object as weak
/// (VER_FLG_WEAK in the vna_flags of its Vernaux entry in <c>.gnu.version_r</c>), so that the
/// dynamic loader accepts a libstdc++ that lacks that version (TorchSharp 0.107's
/// libLibTorchSharp.so asks for GLIBCXX_3.4.32, Debian 12 has 3.4.30, and the only symbol
/// behind it is never called). Only ever applied to the copy in this program's output folder.
/// </summary>
public static class ElfVersionPatcher
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    public enum Outcome { Patched, AlreadyWeak, NotRequired }

    /// <summary>
    /// Sets VER_FLG_WEAK on every Vernaux named <paramref name="versionName"/>; idempotent.
    /// The file is rewritten through a temporary file and a rename, so a hard link to it (e.g.
    /// into a package cache) is never written through.
    /// </summary>
    public static Outcome MakeVersionWeak(string path, string versionName)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"ELF patcher: '{path}' does not exist (has the project been built? the TorchSharp native library is copied there at build time).", path);
        var nugetCache = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        if (Path.GetFullPath(path).StartsWith(Path.GetFullPath(nugetCache) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new InvalidOperationException($"ELF patcher: refusing to modify '{path}', which lies in the NuGet cache.");

        var bytes = File.ReadAllBytes(path);
        var entries = FindVernaux(bytes, versionName, path);
        if (entries.Count == 0) return Outcome.NotRequired;
        bool changed = false;
        foreach (int flagsOffset in entries)
        {
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(flagsOffset));
            if ((flags & VerFlgWeak) != 0) continue;
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(flagsOffset), (ushort)(flags | VerFlgWeak));
            changed = true;
        }
        if (!changed) return Outcome.AlreadyWeak;

        var temp = path + ".patching-" + Environment.ProcessId;
        File.WriteAllBytes(temp, bytes);
        try
        {
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temp, File.GetUnixFileMode(path));
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
        return Outcome.Patched;
    }

    /// <summary>File offsets of the vna_flags fields of the Vernaux entries named <paramref name="versionName"/>.</summary>
    public static List<int> FindVernaux(byte[] elf, string versionName, string pathForErrors = "ELF file")
    {
        var s = elf.AsSpan();
        if (s.Length < 64 || s[0] != 0x7f || s[1] != (byte)'E' || s[2] != (byte)'L' || s[3] != (byte)'F')
            throw new InvalidDataException($"{pathForErrors} is not an ELF file.");
        if (s[4] != 2 || s[5] != 1)
            throw new InvalidDataException($"{pathForErrors} is not a 64-bit little-endian ELF file (class {s[4]}, data {s[5]}).");

        ulong shoff = U64(s, 0x28);
        int shentsize = U16(s, 0x3a), shnum = U16(s, 0x3c);
        if (shoff == 0 || shnum == 0) throw new InvalidDataException($"{pathForErrors} has no section headers.");
        if (shentsize < 64 || shoff + (ulong)shentsize * (ulong)shnum > (ulong)s.Length)
            throw new InvalidDataException($"{pathForErrors}: section header table out of range.");

        var result = new List<int>();
        var name = Encoding.ASCII.GetBytes(versionName);
        for (int i = 0; i < shnum; i++)
        {
            int sh = checked((int)shoff + i * shentsize);
            if (U32(s, sh + 4) != ShtGnuVerneed) continue;
            int verneedOffset = checked((int)U64(s, sh + 24));
            int verneedSize = checked((int)U64(s, sh + 32));
            int link = (int)U32(s, sh + 40), count = (int)U32(s, sh + 44);
            if (link >= shnum) throw new InvalidDataException($"{pathForErrors}: .gnu.version_r links to section {link} of {shnum}.");
            int strSh = checked((int)shoff + link * shentsize);
            int strOffset = checked((int)U64(s, strSh + 24)), strSize = checked((int)U64(s, strSh + 32));
            CheckRange(s, verneedOffset, verneedSize, pathForErrors);
            CheckRange(s, strOffset, strSize, pathForErrors);
            var strings = s.Slice(strOffset, strSize);

            int vn = 0;
            for (int n = 0; n < count; n++)
            {
                if (vn + 16 > verneedSize) throw new InvalidDataException($"{pathForErrors}: Verneed entry out of range.");
                int at = verneedOffset + vn;
                int cnt = U16(s, at + 2);
                int aux = (int)U32(s, at + 8), next = (int)U32(s, at + 12);
                int va = vn + aux;
                for (int k = 0; k < cnt; k++)
                {
                    if (va + 16 > verneedSize) throw new InvalidDataException($"{pathForErrors}: Vernaux entry out of range.");
                    int vat = verneedOffset + va;
                    int nameOff = (int)U32(s, vat + 8);
                    if (NameAt(strings, nameOff).SequenceEqual(name)) result.Add(vat + 4);
                    int vnaNext = (int)U32(s, vat + 12);
                    if (vnaNext == 0) break;
                    va += vnaNext;
                }
                if (next == 0) break;
                vn += next;
            }
        }
        return result;
    }

    private static ReadOnlySpan<byte> NameAt(ReadOnlySpan<byte> strings, int offset)
    {
        if ((uint)offset >= (uint)strings.Length) return [];
        var rest = strings[offset..];
        int end = rest.IndexOf((byte)0);
        return end < 0 ? rest : rest[..end];
    }

    private static void CheckRange(ReadOnlySpan<byte> s, int offset, int size, string pathForErrors)
    {
        if (offset < 0 || size < 0 || (long)offset + size > s.Length)
            throw new InvalidDataException($"{pathForErrors}: section at {offset} (+{size}) lies outside the file.");
    }

    private static ushort U16(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt16LittleEndian(s[at..]);
    private static uint U32(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt32LittleEndian(s[at..]);
    private static ulong U64(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt64LittleEndian(s[at..]);
}

/// <summary>Makes the TorchSharp native library in this program's folder loadable on Debian 12.</summary>
public static class TorchSharpNative
{
    public const string Library = "libLibTorchSharp.so";
    public const string Version = "GLIBCXX_3.4.32";
    private static readonly object Gate = new();

    /// <summary>Where the build copied libLibTorchSharp.so (runtimes/linux-x64/native, or the app folder itself).</summary>
    public static string LibraryPath
    {
        get
        {
            var baseDir = AppContext.BaseDirectory;
            var candidates = new[]
            {
                Path.Combine(baseDir, "runtimes", "linux-x64", "native", Library),
                Path.Combine(baseDir, Library),
            };
            return candidates.FirstOrDefault(File.Exists) ?? candidates[0];
        }
    }

    /// <summary>Idempotent; must run before the first TorchSharp call of the process.</summary>
    public static ElfVersionPatcher.Outcome EnsurePatched()
    {
        lock (Gate)
        {
            if (!OperatingSystem.IsLinux()) return ElfVersionPatcher.Outcome.NotRequired;
            var path = LibraryPath;
            if (!File.Exists(path))
                throw new FileNotFoundException(
                    $"TorchSharp's native library is missing at '{path}'. Build bench/ModelGuardian.Bench.csproj (it references TorchSharp and libtorch-cpu-linux-x64) and run it from its output folder.", path);
            return ElfVersionPatcher.MakeVersionWeak(path, Version);
        }
    }
}
