using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Training;

/// <summary>
/// A synthetic-image source: noise z (seeded) → dense → 8×8 maps → two ×2 up-samplings of its
/// family (<see cref="GeneratorFamily"/>) → 3×32×32 through a sigmoid, with batch-norm and leaky-ReLU (0.2) between, as
/// data-free stealing generators are built. Its parameters are trainable (for GAN training); at
/// initialisation it is what such an attack queries with first.
/// </summary>
public sealed class ImageGenerator : TrainableGraph
{
    public const int Side = GeneratorShape.Side, NoiseSize = GeneratorShape.NoiseSize;

    private ImageGenerator(ArchitectureDescriptor architecture, ILayer root, ParameterStore parameters, TrainingMode mode) : base(root, parameters, mode)
        => Architecture = architecture;

    /// <summary>Family and width: what a weight file records to re-create this generator.</summary>
    public ArchitectureDescriptor Architecture { get; }
    public GeneratorFamily Family => Architecture.GeneratorFamily;
    public int Width => Architecture.Width;


    public static ImageGenerator Create(IKernels kernels, GeneratorFamily family, ulong seed, int width = 32) => Build(kernels, family, seed, width, grey: false);

    /// <summary>
    /// The same body ending in one channel of raw pre-activations, (N, 1, 32, 32), no output function: for
    /// callers that apply their own image head (the attacks' batch-norm and tanh). Not a weight-file network.
    /// </summary>
    public static ImageGenerator CreateGreyLogits(IKernels kernels, GeneratorFamily family, ulong seed, int width = 32) => Build(kernels, family, seed, width, grey: true);

    private static ImageGenerator Build(IKernels kernels, GeneratorFamily family, ulong seed, int width, bool grey)
    {
        var architecture = ArchitectureDescriptor.Generator(family, width);
        var rng = new Data.SeededRandom(seed);
        var store = new ParameterStore(kernels);
        var mode = new TrainingMode();
        try
        {
            var (c0, c1, c2) = GeneratorShape.Channels(width);
            float[] Conv(int cout, int cin, int k) => rng.Normals(cout * cin * k * k, MathF.Sqrt(2f / (cin * k * k)));
            var layers = new List<ILayer>
            {
                new TrainDense(store, "fc", NoiseSize, c0 * 8 * 8, rng.Normals(c0 * 64 * NoiseSize, MathF.Sqrt(1f / NoiseSize)), new float[c0 * 64]),
                new ReshapeLayer(c0, 8, 8),
                new TrainBatchNorm(store, "bn0", c0, mode),
                new LeakyReluLayer(0.2f),
            };
            int side = 8;
            foreach (var (cin, cout, i) in new[] { (c0, c1, 1), (c1, c2, 2) })
            {
                side *= 2;
                switch (family)
                {
                    case GeneratorFamily.TransposedConv:
                    case GeneratorFamily.TransposedBlur:
                        layers.Add(new TrainConvTranspose2d(store, $"up{i}", cin, cout, 4, 2, 1, Conv(cin, cout, 4)));
                        if (family == GeneratorFamily.TransposedBlur) layers.Add(FixedConvLayer.Blur3x3(cout));
                        break;
                    case GeneratorFamily.PixelShuffle:
                        layers.Add(new TrainConv2d(store, $"up{i}", cin, 4 * cout, 3, 1, 1, bias: false, Conv(4 * cout, cin, 3)));
                        layers.Add(FixedConvLayer.DepthToSpace2(cout));
                        break;
                    case GeneratorFamily.NearestConv:
                    case GeneratorFamily.BilinearConv:
                        layers.Add(new ResizeLayer(side, side, family == GeneratorFamily.NearestConv ? ResizeMode.Nearest : ResizeMode.Bilinear));
                        layers.Add(new TrainConv2d(store, $"up{i}", cin, cout, 3, 1, 1, bias: false, Conv(cout, cin, 3)));
                        break;
                    default:
                        throw new ArgumentException($"Unknown generator family {family}.");
                }
                layers.Add(new TrainBatchNorm(store, $"bn{i}", cout, mode));
                layers.Add(new LeakyReluLayer(0.2f));
            }
            if (grey) layers.Add(new TrainConv2d(store, "to_grey", c2, 1, 3, 1, 1, bias: true, Conv(1, c2, 3), new float[1]));
            else
            {
                layers.Add(new TrainConv2d(store, "to_rgb", c2, 3, 3, 1, 1, bias: true, Conv(3, c2, 3), new float[3]));
                layers.Add(new SigmoidLayer());
            }
            return new ImageGenerator(architecture, new Sequential(layers), store, mode);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A generator of <paramref name="architecture"/> holding <paramref name="tensors"/> (what <see cref="Export"/> gave):
    /// every tensor by name and shape, nothing else.
    /// </summary>
    public static ImageGenerator FromTensors(IKernels kernels, ArchitectureDescriptor architecture, TensorSet tensors)
    {
        if (architecture.Kind != NetworkKind.ImageGenerator) throw new ArgumentException($"Not an image generator: {architecture}.");
        var g = Create(kernels, architecture.GeneratorFamily, 0, architecture.Width);
        try
        {
            var extra = tensors.Tensors.Keys.Except(g.Parameters.All.Select(p => p.Name)).ToList();
            if (extra.Count > 0) throw new ArgumentException($"Unexpected tensors for {architecture}: {string.Join(", ", extra)}.");
            g.Parameters.Load(tensors);
            return g;
        }
        catch
        {
            g.Dispose();
            throw;
        }
    }

    /// <summary>Every tensor (batch-norm running statistics included) under its name.</summary>
    public TensorSet Export() => Parameters.ToTensorSet();

    /// <summary><paramref name="count"/> images from noise seeded by <paramref name="seed"/>, made in batches of <paramref name="batch"/> (batch-norm normalises each batch).</summary>
    public IReadOnlyList<RgbImage> Generate(int count, ulong seed, int batch = 32)
    {
        var rng = new Data.SeededRandom(seed);
        var images = new List<RgbImage>(count);
        for (int start = 0; start < count; start += batch)
        {
            int n = Math.Min(batch, count - start);
            var z = rng.Normals(n * NoiseSize, 1f);
            var y = Forward(z, new Shape4(n, NoiseSize, 1, 1));
            System.Numerics.Tensors.TensorPrimitives.Multiply(y, 255f, y); // sigmoid outputs → 0…255
            int per = 3 * Side * Side;
            for (int i = 0; i < n; i++) images.Add(RgbImage.FromPlanar(y.AsSpan(i * per, per), Side, Side));
        }
        return images;
    }
}
