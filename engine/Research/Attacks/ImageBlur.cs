namespace ModelGuardian.Engine.Attacks;

/// <summary>
/// The Gaussian blur an evasive attacker appends to its generator to wash out up-sampling traces before the
/// detector sees them. It works on planar float images (any number of S×S planes), separable, radius round(4σ),
/// weights summing to 1, borders clamped — the same blur as the post-processing step, in float and without
/// rounding to bytes — and has its adjoint beside it, so that gradients of a loss on blurred images reach the
/// generator. Forward and backward are checked against finite differences.
/// </summary>
public sealed class ImageBlur
{
    private readonly float[] _weights;
    private readonly int _radius;

    public ImageBlur(double sigma)
    {
        if (!(sigma > 0 && sigma <= 16)) throw new ArgumentException($"Blur σ must lie in (0, 16], got {sigma}.");
        Sigma = sigma;
        _radius = Math.Max(1, (int)(Data.Augmentations.BlurTruncate * sigma + 0.5));
        _weights = Data.Augmentations.GaussianWeights(sigma, _radius);
    }

    public double Sigma { get; }

    // x: (planes, S, S) → y: (planes, S, S); y[r, c] = Σ_i Σ_j w_i w_j x[clamp(r + i), clamp(c + j)].
    public float[] Forward(ReadOnlySpan<float> x, int side)
    {
        var y = new float[x.Length];
        var tmp = new float[side * side];
        for (int p = 0; p < Planes(x.Length, side); p++)
        {
            var src = x.Slice(p * side * side, side * side);
            var dst = y.AsSpan(p * side * side, side * side);
            for (int r = 0; r < side; r++)
                for (int c = 0; c < side; c++)
                {
                    float s = 0;
                    for (int k = -_radius; k <= _radius; k++) s += _weights[k + _radius] * src[r * side + Math.Clamp(c + k, 0, side - 1)];
                    tmp[r * side + c] = s;
                }
            for (int r = 0; r < side; r++)
                for (int c = 0; c < side; c++)
                {
                    float s = 0;
                    for (int k = -_radius; k <= _radius; k++) s += _weights[k + _radius] * tmp[Math.Clamp(r + k, 0, side - 1) * side + c];
                    dst[r * side + c] = s;
                }
        }
        return y;
    }

    // dy: (planes, S, S) → dx: (planes, S, S); the transpose: each output's gradient scattered to the (clamped) inputs it read.
    public float[] Backward(ReadOnlySpan<float> dy, int side)
    {
        var dx = new float[dy.Length];
        var tmp = new float[side * side];
        for (int p = 0; p < Planes(dy.Length, side); p++)
        {
            var g = dy.Slice(p * side * side, side * side);
            var d = dx.AsSpan(p * side * side, side * side);
            Array.Clear(tmp);
            for (int r = 0; r < side; r++)
                for (int c = 0; c < side; c++)
                    for (int k = -_radius; k <= _radius; k++) tmp[Math.Clamp(r + k, 0, side - 1) * side + c] += _weights[k + _radius] * g[r * side + c];
            for (int r = 0; r < side; r++)
                for (int c = 0; c < side; c++)
                    for (int k = -_radius; k <= _radius; k++) d[r * side + Math.Clamp(c + k, 0, side - 1)] += _weights[k + _radius] * tmp[r * side + c];
        }
        return dx;
    }

    private static int Planes(int length, int side) =>
        side > 0 && length % (side * side) == 0 ? length / (side * side) : throw new ArgumentException($"{length} values do not form {side}×{side} planes.");
}
