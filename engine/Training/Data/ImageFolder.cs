using System.Collections.ObjectModel;
using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Engine.Data;

/// <summary>A decoded image and the file it came from.</summary>
public sealed record ImageFile(string Path, RgbImage Image);

/// <summary>A decoded image, its file, and the index of its class in <see cref="LabelledImageFolder.ClassNames"/>.</summary>
public sealed record LabelledImage(string Path, RgbImage Image, int Label);

/// <summary>A file left out, and why.</summary>
public sealed record SkippedFile(string Path, string Reason);

/// <summary>The images of a folder (a read-only list of <see cref="ImageFile"/>), plus the files skipped as undecodable.</summary>
public sealed class ImageFolderContents(IList<ImageFile> images, IReadOnlyList<SkippedFile> skipped) : ReadOnlyCollection<ImageFile>(images)
{
    /// <summary>Undecodable files left out; empty unless loaded with <c>skipBad: true</c>.</summary>
    public IReadOnlyList<SkippedFile> Skipped { get; } = skipped;
}

/// <summary>A folder whose sub-folders are classes (as torchvision's ImageFolder).</summary>
public sealed record LabelledImageFolder(IReadOnlyList<string> ClassNames, IReadOnlyList<LabelledImage> Images, IReadOnlyList<SkippedFile> Skipped);

/// <summary>
/// Loads every PNG, JPEG and BMP file under a folder (recursively; matched by extension, any case; hidden
/// files and folders skipped), in ordinal order of their full paths, so the same folder always gives the
/// same list. An undecodable or oversized file stops the load with an <see cref="InvalidDataException"/>
/// naming it, unless <c>skipBad</c> is set, in which case it is left out and reported in
/// <see cref="ImageFolderContents.Skipped"/>.
/// </summary>
public static class ImageFolder
{
    public static IReadOnlyList<string> Extensions { get; } = [".png", ".jpg", ".jpeg", ".bmp"];

    public static ImageFolderContents Load(string path, int maxSide = RgbImage.DefaultMaxSide, bool skipBad = false)
    {
        var images = new List<ImageFile>();
        var skipped = new List<SkippedFile>();
        foreach (var file in ImageFiles(path))
            if (TryDecode(file, maxSide, skipBad, skipped) is { } image) images.Add(new ImageFile(file, image));
        return new ImageFolderContents(images, skipped);
    }

    /// <summary>
    /// One class per immediate sub-folder (ordinal order of names; a class keeps its index even when its folder
    /// is empty), its images found recursively. An image file directly in <paramref name="path"/> belongs to no
    /// class and is an error.
    /// </summary>
    public static LabelledImageFolder LoadLabelled(string path, int maxSide = RgbImage.DefaultMaxSide, bool skipBad = false)
    {
        RequireDirectory(path);
        var stray = Directory.EnumerateFiles(path).Where(IsImageFile).Order(StringComparer.Ordinal).FirstOrDefault();
        if (stray is not null)
            throw new InvalidDataException($"{stray}: an image directly in {path} belongs to no class; put each class's images in a sub-folder named after it.");
        var classDirs = Directory.EnumerateDirectories(path, "*", new EnumerationOptions()).Order(StringComparer.Ordinal).ToList();
        if (classDirs.Count == 0) throw new InvalidDataException($"{path}: no class sub-folders (one per class, holding its images).");
        var images = new List<LabelledImage>();
        var skipped = new List<SkippedFile>();
        for (int label = 0; label < classDirs.Count; label++)
            foreach (var file in ImageFiles(classDirs[label]))
                if (TryDecode(file, maxSide, skipBad, skipped) is { } image) images.Add(new LabelledImage(file, image, label));
        return new LabelledImageFolder(classDirs.Select(d => Path.GetFileName(d)).ToList(), images, skipped);
    }

    /// <summary>The image files under <paramref name="path"/>, recursively, in ordinal path order (nothing decoded).</summary>
    public static IReadOnlyList<string> ImageFiles(string path)
    {
        RequireDirectory(path);
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = false };
        return Directory.EnumerateFiles(path, "*", options).Where(IsImageFile).Order(StringComparer.Ordinal).ToList();
    }

    public static bool IsImageFile(string path) => Extensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    private static void RequireDirectory(string path)
    {
        if (!Directory.Exists(path)) throw new DirectoryNotFoundException($"No such image folder: {path}");
    }

    private static RgbImage? TryDecode(string file, int maxSide, bool skipBad, List<SkippedFile> skipped)
    {
        try
        {
            return RgbImage.Load(file, maxSide);
        }
        catch (InvalidDataException e)
        {
            if (!skipBad) throw new InvalidDataException($"{file}: {e.Message} (load with skipBad: true to leave such files out)", e);
            skipped.Add(new SkippedFile(file, e.Message));
            return null;
        }
    }
}
