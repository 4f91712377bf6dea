using ModelGuardian.Engine.Networks;
using TorchSharp;
using TorchSharp.Modules;
using Tensor = TorchSharp.torch.Tensor;
using TensorSet = ModelGuardian.Engine.Core.TensorSet;
using F = TorchSharp.torch.nn.functional;

namespace ModelGuardian.Bench;

/// <summary>
/// A torchvision ResNet training step in libtorch through TorchSharp functional ops: batch-norm in
/// training mode (running statistics updated), cross-entropy, backward, SGD with momentum — the
/// same step as ours (TrainableNetwork + SgdOptimizer), from the same tensors.
/// </summary>
internal sealed class TorchResNetTraining : IDisposable
{
    private readonly ArchitectureDescriptor _a;
    private readonly Dictionary<string, Tensor> _t = new(StringComparer.Ordinal);
    private readonly List<Parameter> _parameters = [];
    private readonly torch.optim.Optimizer _sgd;

    public TorchResNetTraining(ArchitectureDescriptor a, TensorSet tensors, double lr, double momentum)
    {
        _a = a;
        foreach (var (name, h) in tensors.Tensors)
        {
            var t = torch.tensor(h.Data, h.Shape.Select(d => (long)d).ToArray());
            if (name.EndsWith("running_mean", StringComparison.Ordinal) || name.EndsWith("running_var", StringComparison.Ordinal)) _t[name] = t;
            else
            {
                var p = new Parameter(t);
                _parameters.Add(p);
                _t[name] = p;
            }
        }
        _sgd = torch.optim.SGD(_parameters, lr, momentum);
    }

    private Tensor ConvBn(Tensor x, string conv, string bn, int stride, int pad, bool relu)
    {
        var y = F.conv2d(x, _t[$"{conv}.weight"], strides: [stride, stride], padding: [pad, pad]);
        y = F.batch_norm(y, _t[$"{bn}.running_mean"], _t[$"{bn}.running_var"], _t[$"{bn}.weight"], _t[$"{bn}.bias"], training: true, momentum: 0.1, eps: 1e-5);
        return relu ? F.relu(y) : y;
    }

    private Tensor Forward(Tensor x)
    {
        x = _a.Stem == ResNetStem.ImageNet
            ? F.max_pool2d(ConvBn(x, "conv1", "bn1", 2, 3, true), [3, 3], [2, 2], [1, 1])
            : ConvBn(x, "conv1", "bn1", 1, 1, true);
        foreach (var b in _a.ResNetBlocks())
        {
            string p = b.Prefix;
            var h = b.Bottleneck
                ? ConvBn(ConvBn(ConvBn(x, $"{p}.conv1", $"{p}.bn1", 1, 0, true), $"{p}.conv2", $"{p}.bn2", b.Stride, 1, true), $"{p}.conv3", $"{p}.bn3", 1, 0, false)
                : ConvBn(ConvBn(x, $"{p}.conv1", $"{p}.bn1", b.Stride, 1, true), $"{p}.conv2", $"{p}.bn2", 1, 1, false);
            var s = b.HasDownsample ? ConvBn(x, $"{p}.downsample.0", $"{p}.downsample.1", b.Stride, 0, false) : x;
            x = F.relu(h + s);
        }
        x = F.adaptive_avg_pool2d(x, [1, 1]).flatten(1);
        return F.linear(x, _t["fc.weight"], _t["fc.bias"]);
    }

    /// <summary>One step on (x, labels); returns the loss.</summary>
    public float Step(float[] input, long[] labels, int n)
    {
        using var scope = torch.NewDisposeScope();
        _sgd.zero_grad();
        var x = torch.tensor(input, [n, _a.InputChannels, _a.InputSide, _a.InputSide]);
        var loss = F.cross_entropy(Forward(x), torch.tensor(labels));
        loss.backward();
        _sgd.step();
        return loss.item<float>();
    }

    public float[] Values(string name) => _t[name].detach().data<float>().ToArray();

    public void Dispose()
    {
        _sgd.Dispose();
        foreach (var t in _t.Values) t.Dispose();
    }
}
