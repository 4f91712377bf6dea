using ModelGuardian.Weights.Format;
using ModelGuardian.Weights.Pickle;

namespace ModelGuardian.Weights.Sources;

/// <summary>
/// NVIDIA's StyleGAN TensorFlow pickles (<c>karras2019stylegan-*.pkl</c>): a tuple (G, D, Gs) of
/// <c>dnnlib.tflib.network.Network</c> objects. Unpickling them in Python runs the network's
/// embedded build source; here a Network is only an inert record of its state, from which the
/// locator takes the <c>variables</c> list of (TF scope name, numpy array). The source code
/// stays an unread string.
/// </summary>
internal static class TfPickle
{
    public const string NetworkClass = "dnnlib.tflib.network.Network";

    public static readonly IReadOnlySet<string> AllowedGlobals = new HashSet<string>(
        new[] { NetworkClass, "dnnlib.util.EasyDict", "collections.OrderedDict" }.Concat(Numpy.Globals), StringComparer.Ordinal);

    public static Checkpoint Open(string path)
    {
        var map = MappedFile.Open(path);
        try
        {
            var root = Unpickler.Load(map.Memory, AllowedGlobals, new Hooks(), 0, out int end);
            if (end != map.Length) throw new WeightFormatException($"'{path}' has {map.Length - end} bytes after its pickle.");
            return new Checkpoint(path, "tf-pickle", root, map);
        }
        catch
        {
            map.Dispose();
            throw;
        }
    }

    private sealed class Hooks : PickleHooks
    {
        public override object? Reduce(PyGlobal f, PyTuple args)
        {
            if (Numpy.TryReduce(f, args, out var value)) return value;
            if (f.ToString() == "collections.OrderedDict" && args.Count == 0) return new PyDict();
            return base.Reduce(f, args);
        }

        // EasyDict is a dict subclass: its items arrive by SETITEMS, so it is built as a dict.
        public override object? NewObject(PyGlobal type, PyTuple args)
            => type.ToString() == "dnnlib.util.EasyDict" ? new PyDict() : base.NewObject(type, args);

        public override void Build(object? target, object? state)
        {
            if (!Numpy.TryBuild(target, state)) base.Build(target, state);
        }
    }
}
