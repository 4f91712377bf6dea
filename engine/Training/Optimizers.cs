namespace ModelGuardian.Engine.Training;

/// <summary>Updates every trainable parameter from its accumulated gradient, then zeroes the gradients.</summary>
public abstract class Optimizer(ParameterStore parameters)
{
    public ParameterStore Parameters { get; } = parameters;
    /// <summary>The learning rate; schedules change it between steps.</summary>
    public float LearningRate { get; set; }
    public int Steps { get; private set; }

    public void Step()
    {
        Steps++;
        foreach (var p in Parameters.Trainable) Update(p);
        Parameters.ZeroGradients();
    }

    protected abstract void Update(Parameter p);

    protected static Kernels.DeviceBuffer State(ParameterStore store, Parameter p, bool second)
    {
        if (second) return p.State2 ??= store.Kernels.Allocate(p.Length);
        return p.State1 ??= store.Kernels.Allocate(p.Length);
    }
}

/// <summary>PyTorch's SGD with momentum and L2 weight decay.</summary>
public sealed class SgdOptimizer : Optimizer
{
    public SgdOptimizer(ParameterStore parameters, float learningRate, float momentum = 0.9f, float weightDecay = 0f) : base(parameters)
    {
        (LearningRate, Momentum, WeightDecay) = (learningRate, momentum, weightDecay);
    }

    public float Momentum { get; }
    public float WeightDecay { get; }

    protected override void Update(Parameter p)
        => Parameters.Kernels.SgdStep(p.Length, LearningRate, Momentum, WeightDecay, p.Value, p.Gradient!, State(Parameters, p, false));
}

/// <summary>PyTorch's Adam (L2 weight decay).</summary>
public sealed class AdamOptimizer : Optimizer
{
    public AdamOptimizer(ParameterStore parameters, float learningRate, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f, float weightDecay = 0f) : base(parameters)
    {
        (LearningRate, Beta1, Beta2, Epsilon, WeightDecay) = (learningRate, beta1, beta2, epsilon, weightDecay);
    }

    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Epsilon { get; }
    public float WeightDecay { get; }

    protected override void Update(Parameter p)
        => Parameters.Kernels.AdamStep(p.Length, LearningRate, Beta1, Beta2, Epsilon, WeightDecay, Steps, p.Value, p.Gradient!, State(Parameters, p, false), State(Parameters, p, true));
}

/// <summary>StepLR: the learning rate times γ every <c>stepSize</c> epochs (LGrad: ×0.8 every 10; the paper: ×0.9 every 10).</summary>
public sealed class StepLrSchedule(Optimizer optimizer, int stepSize, float gamma)
{
    private readonly float _initial = optimizer.LearningRate;

    /// <summary>Sets the rate for <paramref name="epoch"/> (0-based): initial · γ^⌊epoch / stepSize⌋.</summary>
    public void SetEpoch(int epoch) => optimizer.LearningRate = _initial * MathF.Pow(gamma, epoch / stepSize);
}
