using ILGPU;
using ILGPU.Runtime;
using B = ModelGuardian.Kernels.Ilgpu.IlgpuKernelBodies;

namespace ModelGuardian.Kernels.Ilgpu;

public sealed partial class IlgpuKernels
{
    private Action<Index1D, ConvParams, ArrayView<float>, ArrayView<float>, ArrayView<float>> _convBackwardWeight = null!;
    private Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>> _channelSum = null!;
    private Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>> _denseBackwardWeight = null!;
    private Action<Index1D, int, int, int, float, float, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _bnStatistics = null!;
    private Action<Index1D, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _bnNormalize = null!;
    private Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _bnParameterGradients = null!;
    private Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _bnBackwardInput = null!;
    private Action<Index1D, float, float, float, ArrayView<float>, ArrayView<float>, ArrayView<float>> _sgdStep = null!;
    private Action<Index1D, float, float, float, float, float, float, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _adamStep = null!;

    private void LoadTrainingKernels(Accelerator a)
    {
        _convBackwardWeight = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, ConvParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.Conv2dBackwardWeight));
        _channelSum = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>>>(B.ChannelSum));
        _denseBackwardWeight = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.DenseBackwardWeight));
        _bnStatistics = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, int, int, float, float, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.BatchNormStatistics));
        _bnNormalize = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.BatchNormNormalize));
        _bnParameterGradients = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.BatchNormParameterGradients));
        _bnBackwardInput = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.BatchNormBackwardInput));
        _sgdStep = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, float, float, float, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.SgdStep));
        _adamStep = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, float, float, float, float, float, float, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.AdamStep));
    }

    // x: (N, Cin, H, W) · dy: (N, Cout, OH, OW) → dw: (Cout, Cin/G, KH, KW), dbias: (Cout)
    public void Conv2dBackwardWeight(in Conv2dShape s, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, DeviceBuffer? dbias)
    {
        s.Validate();
        var X = V(x, s.InputLength, "conv x"); var DY = V(dy, s.OutputLength, "conv dy"); var DW = V(dw, s.WeightLength, "conv dw");
        var p = ConvParams.From(s, hasBias: false);
        int count = s.WeightLength;
        Launch(count, () => _convBackwardWeight(count, p, X, DY, DW));
        if (dbias is not null)
        {
            var DB = V(dbias, s.Cout, "conv dbias");
            int n = s.N, c = s.Cout, hw = s.OutH * s.OutW;
            Launch(c, () => _channelSum(c, n, c, hw, DY, DB));
        }
    }

    // dy: (N, C, HW) → sum: (C)
    public void ChannelSum(int n, int c, int hw, DeviceBuffer dy, DeviceBuffer sum)
    {
        Positive("ChannelSum", n, c, hw);
        var DY = V(dy, (long)n * c * hw, "channel-sum dy"); var S = V(sum, c, "channel-sum sum");
        Launch(c, () => _channelSum(c, n, c, hw, DY, S));
    }

    // x: (N, In) · dy: (N, Out) → dw: (Out, In), dbias: (Out)
    public void DenseBackwardWeight(int n, int inFeatures, int outFeatures, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, DeviceBuffer? dbias)
    {
        Positive("Dense", n, inFeatures, outFeatures);
        var X = V(x, (long)n * inFeatures, "dense x"); var DY = V(dy, (long)n * outFeatures, "dense dy"); var DW = V(dw, (long)inFeatures * outFeatures, "dense dw");
        int count = inFeatures * outFeatures;
        Launch(count, () => _denseBackwardWeight(count, n, inFeatures, outFeatures, X, DY, DW));
        if (dbias is not null)
        {
            var DB = V(dbias, outFeatures, "dense dbias");
            Launch(outFeatures, () => _channelSum(outFeatures, n, outFeatures, 1, DY, DB)); // dy as (N, Out, 1)
        }
    }

    // x: (N, C, HW) → y: (N, C, HW); gamma, beta, running*, save*: (C)
    public void BatchNormTrainForward(int n, int c, int hw, float epsilon, float momentum, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer beta,
                                      DeviceBuffer runningMean, DeviceBuffer runningVar, DeviceBuffer saveMean, DeviceBuffer saveInvStd, DeviceBuffer y)
    {
        Positive("BatchNorm", n, c, hw);
        long count = (long)n * c * hw;
        var X = V(x, count, "bn x"); var G = V(gamma, c, "bn gamma"); var Bt = V(beta, c, "bn beta"); var Y = V(y, count, "bn y");
        var RM = V(runningMean, c, "bn running mean"); var RV = V(runningVar, c, "bn running var");
        var SM = V(saveMean, c, "bn save mean"); var SI = V(saveInvStd, c, "bn save istd");
        // μ's float rounding error (one value per channel) passes from the statistics kernel to the normalisation in scratch.
        lock (_gate)
        {
            Enter();
            var residual = Scratch(ref _scratch1, c);
            _bnStatistics(c, n, c, hw, epsilon, momentum, X, RM, RV, SM, SI, residual);
            _bnNormalize((int)count, c, hw, X, G, Bt, SM, residual, SI, Y);
            _accelerator.Synchronize();
        }
    }

    // dy: (N, C, HW) → dx: (N, C, HW); dgamma, dbeta: (C)
    public void BatchNormTrainBackward(int n, int c, int hw, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer gamma, DeviceBuffer saveMean, DeviceBuffer saveInvStd,
                                       DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta)
    {
        Positive("BatchNorm", n, c, hw);
        long count = (long)n * c * hw;
        var X = V(x, count, "bn x"); var DY = V(dy, count, "bn dy"); var G = V(gamma, c, "bn gamma");
        var SM = V(saveMean, c, "bn save mean"); var SI = V(saveInvStd, c, "bn save istd");
        var DX = V(dx, count, "bn dx"); var DG = V(dgamma, c, "bn dgamma"); var DB = V(dbeta, c, "bn dbeta");
        Launch(c, () => _bnParameterGradients(c, n, c, hw, X, DY, SM, SI, DG, DB));
        Launch((int)count, () => _bnBackwardInput((int)count, n, c, hw, X, DY, G, SM, SI, DG, DB, DX));
    }

    public void SgdStep(int count, float lr, float momentum, float weightDecay, DeviceBuffer w, DeviceBuffer g, DeviceBuffer velocity)
    {
        NonNegative(count, "sgd");
        var W = V(w, count, "sgd w"); var Gr = V(g, count, "sgd g"); var Vel = V(velocity, count, "sgd velocity");
        Launch(count, () => _sgdStep(count, lr, momentum, weightDecay, W, Gr, Vel));
    }

    public void AdamStep(int count, float lr, float beta1, float beta2, float epsilon, float weightDecay, int step, DeviceBuffer w, DeviceBuffer g, DeviceBuffer m, DeviceBuffer v)
    {
        NonNegative(count, "adam");
        if (step < 1) throw new ArgumentException($"Adam steps count from 1, got {step}.");
        var W = V(w, count, "adam w"); var Gr = V(g, count, "adam g"); var M = V(m, count, "adam m"); var Vv = V(v, count, "adam v");
        float stepSize = lr / (1 - MathF.Pow(beta1, step)), correction2 = MathF.Sqrt(1 - MathF.Pow(beta2, step));
        Launch(count, () => _adamStep(count, beta1, beta2, epsilon, weightDecay, stepSize, correction2, W, Gr, M, Vv));
    }
}
