using ModelGuardian.Engine.Training;
using ModelGuardian.Engine.Gradients;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;
using ModelGuardian.Weights;

namespace ModelGuardian.Tools;

/// <summary>
/// A folder of Guardian models as the defaults are laid out — victim.mgw, transform.mgw, detector-*.mgw —
/// loaded together (and released together, also when one of them fails to load).
/// </summary>
internal sealed class ModelFolder : IDisposable
{
    private readonly List<Network> _loaded = new();
    private readonly List<Engine.Training.ImageGenerator> _generators = new();

    private ModelFolder(string folder) => Folder = folder;

    public string Folder { get; }
    public Network Victim { get; private set; } = null!;
    public Network Transform { get; private set; } = null!;
    public IReadOnlyList<SubDetector> Detectors { get; private set; } = [];
    public IReadOnlyList<string> DetectorFiles { get; private set; } = [];
    /// <summary>Per sub-detector, the generator families its synthetic training images came from; null where its weight file does not say.</summary>
    public IReadOnlyList<IReadOnlySet<GeneratorFamily>?> DetectorFamilies { get; private set; } = [];
    /// <summary>Trained generators found in gan-&lt;family&gt;/generator.mgw (none is fine).</summary>
    public IReadOnlyList<(string Name, Engine.Training.ImageGenerator Generator)> TrainedGenerators { get; private set; } = [];

    public static ModelFolder Load(IKernels kernels, string folder)
    {
        var m = new ModelFolder(folder);
        try
        {
            m.Victim = m.Keep(ModelFiles.Load(kernels, m.File("victim.mgw")).Network);
            m.Transform = m.Keep(ModelFiles.LoadTransform(kernels, m.File("transform.mgw")).Network);
            m.DetectorFiles = Directory.GetFiles(folder, "detector-*.mgw").Order(StringComparer.Ordinal).ToList();
            if (m.DetectorFiles.Count == 0) throw new FileNotFoundException($"No detector-*.mgw in '{folder}'.");
            var detectors = new List<SubDetector>();
            var families = new List<IReadOnlySet<GeneratorFamily>?>();
            foreach (var f in m.DetectorFiles)
            {
                var (network, contents) = ModelFiles.Load(kernels, f);
                detectors.Add(new SubDetector(Path.GetFileNameWithoutExtension(f), m.Keep(network)));
                families.Add(TrainingFamilies(kernels, folder, contents.Provenance.SourceFile));
            }
            m.Detectors = detectors;
            m.DetectorFamilies = families;
            var generators = new List<(string, Engine.Training.ImageGenerator)>();
            foreach (var dir in Directory.GetDirectories(folder, "gan-*").Order(StringComparer.Ordinal))
            {
                string file = Path.Combine(dir, "generator.mgw");
                if (!System.IO.File.Exists(file)) continue;
                var g = GeneratorFiles.Load(kernels, file).Generator;
                m._generators.Add(g);
                generators.Add((Path.GetFileName(dir)["gan-".Length..], g));
            }
            m.TrainedGenerators = generators;
            return m;
        }
        catch
        {
            m.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The families behind `mg train detector --fake` as its provenance records it ("…, fake A+B, transform …"): generator:F
    /// and generator-grey:F name F; generator-file:P is read for its family, at P or, as the defaults are laid out, at P's last folder and name
    /// inside <paramref name="folder"/>. Null when any source is a folder of images or a file not found: a detector whose
    /// training families are not all known cannot be part of a held-out comparison.
    /// </summary>
    internal static IReadOnlySet<GeneratorFamily>? TrainingFamilies(IKernels kernels, string folder, string source)
    {
        var match = System.Text.RegularExpressions.Regex.Match(source, @"fake (.+?), transform ");
        if (!match.Success) return null;
        var set = new HashSet<GeneratorFamily>();
        foreach (var part in match.Groups[1].Value.Split('+'))
        {
            if (part.StartsWith("generator:", StringComparison.Ordinal)) { set.Add(GeneratorFamilies.Parse(part["generator:".Length..])); continue; }
            if (part.StartsWith("generator-grey:", StringComparison.Ordinal)) { set.Add(GeneratorFamilies.Parse(part["generator-grey:".Length..])); continue; }
            if (!part.StartsWith("generator-file:", StringComparison.Ordinal)) return null;
            string recorded = part["generator-file:".Length..];
            string beside = Path.Combine(folder, Path.GetFileName(Path.GetDirectoryName(recorded) ?? ""), Path.GetFileName(recorded));
            string? path = System.IO.File.Exists(recorded) ? recorded : System.IO.File.Exists(beside) ? beside : null;
            if (path is null) return null;
            var (g, _) = GeneratorFiles.Load(kernels, path);
            using (g) set.Add(g.Family);
        }
        return set;
    }

    /// <summary>The path of a model in the folder; a clear error when it is missing.</summary>
    public string File(string name) => System.IO.File.Exists(Path.Combine(Folder, name)) ? Path.Combine(Folder, name)
        : throw new FileNotFoundException($"Model '{name}' is missing from '{Folder}' (weights/default/make-defaults.sh re-creates the defaults).");

    /// <summary>Fashion-MNIST test images: the 1,000 bundled with the models (null), Debian's 10,000 ("debian"), or an IDX folder.</summary>
    public Engine.Data.FashionMnist TestImages(string? source) => Engine.Data.FashionMnist.Load(Engine.Data.DatasetSplit.Test, source switch
    {
        null => Path.Combine(Folder, "fashion-mnist-demo"),
        "debian" => null,
        var dir => dir,
    });

    /// <summary>The first <paramref name="limit"/> (default all) of <see cref="TestImages"/> as the set a clone is measured on.</summary>
    public Engine.Attacks.CloneTestSet CloneTestSet(string? source, int? limit = null)
    {
        var test = TestImages(source);
        if (limit is < 1 || limit > test.Count) throw new ArgumentException($"--test-images must be in 1…{test.Count}, got {limit}.");
        int count = limit ?? test.Count;
        return new(Enumerable.Range(0, count).Select(test.ToPlanar32).ToList(), Enumerable.Range(0, count).Select(test.Label).ToList());
    }

    /// <summary>Another network of the folder (e.g. misinformation.mgw), disposed with it; a clear error when it is missing.</summary>
    public Network LoadNetwork(IKernels kernels, string name) => Keep(ModelFiles.Load(kernels, File(name)).Network);

    public GuardianModels GuardianModels() => new(new VictimClassifier(Victim), new DfmsDetector(new GradientTransform(Transform), Detectors));

    private Network Keep(Network n)
    {
        _loaded.Add(n);
        return n;
    }

    public void Dispose()
    {
        foreach (var n in _loaded) n.Dispose();
        foreach (var g in _generators) g.Dispose();
        _loaded.Clear();
        _generators.Clear();
    }
}
