using TensorSet = ModelGuardian.Engine.Core.TensorSet;
using ModelGuardian.Engine.Networks;
using TorchSharp;
using Tensor = TorchSharp.torch.Tensor;
using F = TorchSharp.torch.nn.functional;

namespace ModelGuardian.Bench;

/// <summary>
/// The StyleGAN v1 discriminator (lod 0, genforce names) in libtorch through TorchSharp functional
/// ops, written as tests/Oracle/torch_oracle.py's <c>stylegan_d</c>: equalised-lr scale
/// gain/√fan_in, blur [1,2,1]ᵀ[1,2,1]/16 before every down-sampling, fused 4×4 stride-2 conv when
/// the side is ≥ 128 else conv + 2×2 average pool, minibatch-stddev, 4×4 conv, two dense layers.
/// Weight transforms (scaling, fusing) are done once here, as the engine does at load.
/// </summary>
internal sealed class TorchStyleGan : IDisposable
{
    private readonly ArchitectureDescriptor _a;
    private readonly List<Tensor> _owned = [];
    private readonly Dictionary<string, Tensor> _w = new(StringComparer.Ordinal);

    /// <summary>Sets libtorch's intra-op threads (once per process) and patches the native library first.</summary>
    public static void Initialize(int threads)
    {
        TorchSharpNative.EnsurePatched();
        InitializeTorch(threads);
    }

    // Kept apart so that no TorchSharp type is touched before the patch above has run.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void InitializeTorch(int threads)
    {
        torch.set_num_threads(threads);
        torch.set_grad_enabled(true);
    }

    public TorchStyleGan(ArchitectureDescriptor a, TensorSet t)
    {
        if (a.Kind != NetworkKind.StyleGanDiscriminator) throw new ArgumentException($"{a} is not a StyleGAN discriminator.");
        _a = a;
        using var noGrad = torch.no_grad();
        float sq2 = MathF.Sqrt(2f);
        Tensor Load(string name)
        {
            var h = t[name];
            return Own(torch.tensor(h.Data, h.Shape.Select(d => (long)d).ToArray()));
        }
        Tensor Scaled(string name, float gain)
        {
            var w = t[name + ".weight"];
            int fanIn = w.Length / w.Shape[0];
            using var raw = torch.tensor(w.Data, w.Shape.Select(d => (long)d).ToArray());
            return Own(raw * (gain / MathF.Sqrt(fanIn)));
        }

        _w["input0.w"] = Scaled("input0", sq2);
        _w["input0.b"] = Load("input0.bias");
        int idx = 0;
        for (int r = a.Resolution; r > 4; r /= 2, idx += 2)
        {
            int cin = Nf(r);
            _w[$"layer{idx}.w"] = Scaled($"layer{idx}", sq2);
            _w[$"layer{idx}.b"] = Load($"layer{idx}.bias");
            using var k1 = torch.tensor(new float[] { 1, 2, 1 });
            using var k2 = k1.unsqueeze(1) * k1.unsqueeze(0) / 16f;
            _w[$"blur{idx}"] = Own(k2.reshape(1, 1, 3, 3).repeat(cin, 1, 1, 1).contiguous());
            var w = Scaled($"layer{idx + 1}", sq2);
            if (r >= 128)
            {
                using var p = F.pad(w, [1, 1, 1, 1]);
                using var a00 = p[.., .., 1.., 1..];
                using var a10 = p[.., .., ..^1, 1..];
                using var a01 = p[.., .., 1.., ..^1];
                using var a11 = p[.., .., ..^1, ..^1];
                w = Own(((a00 + a10 + a01 + a11) * 0.25f).contiguous());
            }
            _w[$"layer{idx + 1}.w"] = w;
            _w[$"layer{idx + 1}.b"] = Own(Load($"layer{idx + 1}.bias").reshape(1, -1, 1, 1));
        }
        _w["conv4.w"] = Scaled($"layer{idx}", sq2);
        _w["conv4.b"] = Load($"layer{idx}.bias");
        _w["dense0.w"] = Scaled($"layer{idx + 1}", sq2);
        _w["dense0.b"] = Load($"layer{idx + 1}.bias");
        _w["dense1.w"] = Scaled($"layer{idx + 2}", 1f);
        _w["dense1.b"] = Load($"layer{idx + 2}.bias");
    }

    private int Nf(int r) => Math.Min(_a.FmapBase / r, _a.FmapMax);

    private Tensor Own(Tensor t) { _owned.Add(t); return t; }

    private static Tensor Lrelu(Tensor x) => F.leaky_relu(x, 0.2);

    public Tensor Forward(Tensor x)
    {
        x = Lrelu(F.conv2d(x, _w["input0.w"], _w["input0.b"]));
        int idx = 0;
        for (int r = _a.Resolution; r > 4; r /= 2, idx += 2)
        {
            int cin = Nf(r);
            x = Lrelu(F.conv2d(x, _w[$"layer{idx}.w"], _w[$"layer{idx}.b"], padding: [1, 1]));
            x = F.conv2d(x, _w[$"blur{idx}"], padding: [1, 1], groups: cin);
            var w = _w[$"layer{idx + 1}.w"];
            var b = _w[$"layer{idx + 1}.b"];
            x = r >= 128
                ? F.conv2d(x, w, strides: [2, 2], padding: [1, 1]) + b
                : F.avg_pool2d(F.conv2d(x, w, padding: [1, 1]), [2, 2]) + b;
            x = Lrelu(x);
        }
        x = Mbstd(x, _a.MbstdGroupSize);
        x = Lrelu(F.conv2d(x, _w["conv4.w"], _w["conv4.b"], padding: [1, 1]));
        x = x.reshape(x.shape[0], -1);
        x = Lrelu(F.linear(x, _w["dense0.w"], _w["dense0.b"]));
        return F.linear(x, _w["dense1.w"], _w["dense1.b"]);
    }

    /// <summary>StyleGAN v1 (TF) minibatch-stddev: groups are n = g·M + m, ε = 1e-8, one extra channel.</summary>
    private static Tensor Mbstd(Tensor x, int group)
    {
        long n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        long g = Math.Min(group, n);
        var y = x.reshape(g, -1, c, h, w);
        y = y - y.mean([0]);
        y = (y * y).mean([0]);
        y = torch.sqrt(y + 1e-8);
        y = y.mean([1, 2, 3]);
        y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w);
        return torch.cat([x, y], 1);
    }

    /// <summary>Outputs and ∂(Σ outputs)/∂input for an NCHW batch.</summary>
    public (float[] Outputs, float[] InputGradient) ForwardWithInputGradient(float[] input, int n)
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(input, [n, 3, _a.Resolution, _a.Resolution]).requires_grad_(true);
        var y = Forward(x);
        var outputs = y.detach().data<float>().ToArray();
        y.sum().backward();
        var grad = x.grad ?? throw new InvalidOperationException("libtorch produced no input gradient.");
        return (outputs, grad.data<float>().ToArray());
    }

    public void Dispose()
    {
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
        _w.Clear();
    }
}
