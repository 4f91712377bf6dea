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
            m.Detectors = m.DetectorFiles.Select(f => new SubDetector(Path.GetFileNameWithoutExtension(f), m.Keep(ModelFiles.Load(kernels, f).Network))).ToList();
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
