using System.Text.RegularExpressions;

namespace ModelGuardian.Tests.Docs;

/// <summary>Every relative link in README.md and docs/ names a file or folder of the repository.</summary>
public sealed partial class DocLinkTests
{
    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ModelGuardian.sln"))) return dir.FullName;
        throw new InvalidOperationException($"No ModelGuardian.sln above {AppContext.BaseDirectory}.");
    }

    [GeneratedRegex(@"\]\(([^)\s]+)\)")]
    private static partial Regex MarkdownLink();

    [Fact]
    public void Every_relative_link_resolves()
    {
        string root = RepositoryRoot();
        var pages = new[] { Path.Combine(root, "README.md") }.Concat(Directory.GetFiles(Path.Combine(root, "docs"), "*.md")).ToList();
        var broken = new List<string>();
        int checkedLinks = 0;
        foreach (var page in pages)
            foreach (Match m in MarkdownLink().Matches(File.ReadAllText(page)))
            {
                string target = m.Groups[1].Value;
                if (target.Contains("://") || target.StartsWith('#') || target.StartsWith("mailto:")) continue;
                string path = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(page)!, target.Split('#')[0]));
                checkedLinks++;
                if (!File.Exists(path) && !Directory.Exists(path)) broken.Add($"{Path.GetRelativePath(root, page)}: {target}");
            }
        Assert.True(broken.Count == 0, "broken links:\n" + string.Join("\n", broken));
        Assert.True(checkedLinks >= 10, $"only {checkedLinks} links found: is the pattern right?");
    }
}
