using ModelGuardian.Engine.Core;
using ModelGuardian.Kernels;

namespace ModelGuardian.Engine.Networks;

/// <summary>
/// A run of a Sequential's layers that an inference pass computes on channel-blocked activations
/// (<see cref="IBlockedKernels"/>): from its first layer, every layer the backend can run blocked —
/// convolutions, max pooling, residual blocks of those — up to a global average pool, which leaves the
/// blocked layout with the (N, C) features. On the CPU backend that is all of a ResNet but its dense
/// head: the input is put in blocks once, and every convolution then reads its input where it lies
/// instead of packing or copying it first. A network with no such run (other layers, another backend,
/// a pass that records a tape) runs on NCHW kernels throughout.
/// </summary>
internal sealed class BlockedRun
{
    /// <summary>The zero border every blocked activation carries: enough for the 3×3 convolutions and pools that read it.</summary>
    public const int Border = 1;

    private readonly IReadOnlyList<ILayer> _layers;
    private readonly BlockedLayout _entry;

    private BlockedRun(IReadOnlyList<ILayer> layers, BlockedLayout entry, int end) => (_layers, _entry, End) = (layers, entry, end);

    /// <summary>The (N, C, H, W) a blocked layout holds.</summary>
    public static Shape4 ShapeOf(BlockedLayout x) => new(x.N, x.C, x.H, x.W);

    /// <summary>Index of the layer after the run's global pool.</summary>
    public int End { get; }

    /// <summary>The run starting at the first layer, or null when there is none (or it does not reach a global pool).</summary>
    public static BlockedRun? Find(IBlockedKernels k, IReadOnlyList<ILayer> layers, Shape4 input)
    {
        if (layers.Count < 2) return null;
        // The entry's border is what the first convolution's padding reads (the ImageNet stem's 7×7: 3).
        int border = layers[0] is Conv2dLayer first ? Math.Max(Border, first.Pad) : Border;
        var entry = BlockedLayout.For(input.N, input.C, input.H, input.W, border);
        BlockedLayout? layout = entry;
        for (int i = 0; i < layers.Count; i++)
        {
            if (layers[i] is AdaptiveAvgPoolLayer { IsGlobal: true } && i > 0 && layout.Value.Block == BlockedLayout.Vector)
                return new BlockedRun(layers, entry, i + 1);
            layout = Output(k, layers[i], layout.Value);
            if (layout is null) return null;
        }
        return null;
    }

    /// <summary>A layer's blocked output layout, or null when it cannot run blocked on this input.</summary>
    public static BlockedLayout? Output(IBlockedKernels k, ILayer layer, BlockedLayout x) => layer switch
    {
        Conv2dLayer conv => conv.BlockedOutput(k, x),
        Pool2dLayer pool => pool.BlockedOutput(x),
        ResidualLayer block => block.BlockedOutput(k, x),
        _ => null,
    };

    public static BlockedTensor Forward(Pass pass, IBlockedKernels k, ILayer layer, BlockedTensor x) => layer switch
    {
        Conv2dLayer conv => conv.ForwardBlocked(pass, k, x),
        Pool2dLayer pool => pool.ForwardBlocked(pass, k, x),
        ResidualLayer block => block.ForwardBlocked(pass, k, x),
        _ => throw new InvalidOperationException($"{layer.GetType().Name} has no blocked forward."),
    };

    /// <summary>x: (N, C, H, W) → the global pool's (N, C, 1, 1), through the run's layers.</summary>
    public Tensor Forward(Pass pass, IBlockedKernels k, Tensor x)
    {
        var h = pass.NewBlocked(_entry);
        k.ToBlocked(_entry, x.Buffer, h.Buffer);
        for (int i = 0; i < End - 1; i++)
        {
            var next = Forward(pass, k, _layers[i], h);
            pass.Release(h);
            h = next;
        }
        var features = pass.New(new Shape4(h.Layout.N, h.Layout.C, 1, 1));
        k.BlockedGlobalAveragePool(h.Layout, h.Buffer, features.Buffer);
        pass.Release(h);
        return features;
    }
}
