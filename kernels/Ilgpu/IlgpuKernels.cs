using System.Collections.ObjectModel;
using System.Reflection;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using B = ModelGuardian.Kernels.Ilgpu.IlgpuKernelBodies;

namespace ModelGuardian.Kernels.Ilgpu;

/// <summary>
/// The layer contract on ILGPU: CUDA in production (<see cref="CreateCuda"/>), ILGPU's CPU accelerator
/// in tests (<see cref="CreateCpuAccelerator"/>; very slow, tiny shapes only). Semantics are those of
/// <see cref="Reference.ReferenceKernels"/>. Every kernel is a method of <see cref="IlgpuKernelBodies"/>,
/// loaded once in the constructor; a call validates its arguments, then launches and synchronises
/// under one lock, so calls are synchronous and thread-safe (they serialise on the device).
/// </summary>
public sealed partial class IlgpuKernels : IKernels
{
    private readonly object _gate = new();
    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private readonly List<string> _loaded = new();
    private bool _disposed;

    // Launchers, one per kernel of IlgpuKernelBodies (loaded once; auto-grouped, default stream).
    private readonly Action<Index1D, ArrayView<float>, float> _fill;
    private readonly Action<Index1D, ConvParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _convForward;
    private readonly Action<Index1D, ConvParams, ArrayView<float>, ArrayView<float>, ArrayView<float>> _convBackwardInput;
    private readonly Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _denseForward;
    private readonly Action<Index1D, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>> _denseBackwardInput;
    private readonly Action<Index1D, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _affineForward;
    private readonly Action<Index1D, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>> _affineBackward;
    private readonly Action<Index1D, float, ArrayView<float>, ArrayView<float>> _lreluForward;
    private readonly Action<Index1D, float, ArrayView<float>, ArrayView<float>, ArrayView<float>> _lreluBackward;
    private readonly Action<Index1D, int, int, float, ArrayView<float>, ArrayView<float>, ArrayView<float>> _biasLrelu;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>> _sigmoidForward;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>> _sigmoidBackward;
    private readonly Action<Index1D, int, ArrayView<float>, ArrayView<float>> _softmaxForward;
    private readonly Action<Index1D, int, ArrayView<float>, ArrayView<float>, ArrayView<float>> _softmaxBackward;
    private readonly Action<Index1D, PoolParams, ArrayView<float>, ArrayView<float>> _maxPoolForward;
    private readonly Action<Index1D, PoolParams, ArrayView<float>, ArrayView<float>, ArrayView<float>> _maxPoolBackward;
    private readonly Action<Index1D, PoolParams, ArrayView<float>, ArrayView<float>> _avgPoolForward;
    private readonly Action<Index1D, PoolParams, ArrayView<float>, ArrayView<float>> _avgPoolBackward;
    private readonly Action<Index1D, PoolParams, ArrayView<float>, ArrayView<float>> _adaptiveForward;
    private readonly Action<Index1D, PoolParams, ArrayView<float>, ArrayView<float>> _adaptiveBackward;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>> _add;
    private readonly Action<Index1D, float, ArrayView<float>, ArrayView<float>> _axpy;
    private readonly Action<Index1D, int, int, ArrayView<float>, int, int, ArrayView<float>, int, int> _copyChannels;
    private readonly Action<Index1D, ResizeParams, ArrayView<float>, ArrayView<float>> _resizeForward;
    private readonly Action<Index1D, ResizeParams, ArrayView<float>, ArrayView<float>> _resizeBackward;
    private readonly Action<Index1D, MbstdParams, ArrayView<float>, ArrayView<float>> _mbstdGroupStd;
    private readonly Action<Index1D, MbstdParams, ArrayView<float>, ArrayView<float>> _mbstdMean;
    private readonly Action<Index1D, MbstdParams, ArrayView<float>, ArrayView<float>, ArrayView<float>> _mbstdForwardOutput;
    private readonly Action<Index1D, MbstdParams, ArrayView<float>, ArrayView<float>> _mbstdStatGrad;
    private readonly Action<Index1D, MbstdParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _mbstdBackwardInput;

    private IlgpuKernels(Context context, Accelerator accelerator, string name)
    {
        _context = context;
        _accelerator = accelerator;
        Name = name;
        var a = accelerator;
        _fill = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, ArrayView<float>, float>>(B.Fill));
        _convForward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, ConvParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.Conv2dForward));
        _convBackwardInput = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, ConvParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.Conv2dBackwardInput));
        _denseForward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.DenseForward));
        _denseBackwardInput = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.DenseBackwardInput));
        _affineForward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.ChannelAffineForward));
        _affineBackward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.ChannelAffineBackward));
        _lreluForward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, float, ArrayView<float>, ArrayView<float>>>(B.LeakyReluForward));
        _lreluBackward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, float, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.LeakyReluBackward));
        _biasLrelu = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, int, float, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.BiasLeakyReluForward));
        _sigmoidForward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, ArrayView<float>, ArrayView<float>>>(B.SigmoidForward));
        _sigmoidBackward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.SigmoidBackward));
        _softmaxForward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, ArrayView<float>, ArrayView<float>>>(B.SoftmaxForward));
        _softmaxBackward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.SoftmaxBackward));
        _maxPoolForward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, PoolParams, ArrayView<float>, ArrayView<float>>>(B.MaxPool2dForward));
        _maxPoolBackward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, PoolParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.MaxPool2dBackward));
        _avgPoolForward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, PoolParams, ArrayView<float>, ArrayView<float>>>(B.AvgPool2dForward));
        _avgPoolBackward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, PoolParams, ArrayView<float>, ArrayView<float>>>(B.AvgPool2dBackward));
        _adaptiveForward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, PoolParams, ArrayView<float>, ArrayView<float>>>(B.AdaptiveAvgPool2dForward));
        _adaptiveBackward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, PoolParams, ArrayView<float>, ArrayView<float>>>(B.AdaptiveAvgPool2dBackward));
        _add = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.Add));
        _axpy = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, float, ArrayView<float>, ArrayView<float>>>(B.Axpy));
        _copyChannels = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, int, int, ArrayView<float>, int, int, ArrayView<float>, int, int>>(B.CopyChannels));
        _resizeForward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, ResizeParams, ArrayView<float>, ArrayView<float>>>(B.ResizeForward));
        _resizeBackward = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, ResizeParams, ArrayView<float>, ArrayView<float>>>(B.ResizeBackward));
        _mbstdGroupStd = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, MbstdParams, ArrayView<float>, ArrayView<float>>>(B.MbstdGroupStd));
        _mbstdMean = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, MbstdParams, ArrayView<float>, ArrayView<float>>>(B.MbstdMean));
        _mbstdForwardOutput = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, MbstdParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.MbstdForwardOutput));
        _mbstdStatGrad = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, MbstdParams, ArrayView<float>, ArrayView<float>>>(B.MbstdStatGrad));
        _mbstdBackwardInput = a.LoadAutoGroupedStreamKernel(Track<Action<Index1D, MbstdParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(B.MbstdBackwardInput));
        LoadTrainingKernels(a);
    }

    private T Track<T>(T body) where T : Delegate
    {
        _loaded.Add(body.Method.Name);
        return body;
    }

    // ---- creation --------------------------------------------------------------------------

    /// <summary>The backend on CUDA device <paramref name="deviceIndex"/>; throws <see cref="InvalidOperationException"/> when there is none.</summary>
    public static IlgpuKernels CreateCuda(int deviceIndex = 0)
    {
        Context? context = null;
        Accelerator? accelerator = null;
        try
        {
            context = Context.Create(b => b.Cuda().EnableAlgorithms());
            int count = context.GetCudaDevices().Count;
            if (deviceIndex < 0 || deviceIndex >= count)
                throw new InvalidOperationException(count == 0
                    ? "ILGPU found no CUDA device (is an NVIDIA GPU with a CUDA driver present?)."
                    : $"CUDA device {deviceIndex} requested, but ILGPU found only {count}.");
            accelerator = context.CreateCudaAccelerator(deviceIndex);
            return new IlgpuKernels(context, accelerator, $"ilgpu-cuda ({accelerator.Name})");
        }
        catch (Exception e)
        {
            accelerator?.Dispose();
            context?.Dispose();
            if (e is InvalidOperationException) throw;
            throw new InvalidOperationException($"ILGPU could not start CUDA: {e.Message}", e);
        }
    }

    /// <summary>The backend on ILGPU's CPU accelerator: a correctness check for the CUDA kernels on tiny shapes.</summary>
    public static IlgpuKernels CreateCpuAccelerator()
    {
        var context = Context.Create(b => b.DefaultCPU().EnableAlgorithms());
        Accelerator? accelerator = null;
        try
        {
            accelerator = context.CreateCPUAccelerator(0);
            return new IlgpuKernels(context, accelerator, "ilgpu-cpu");
        }
        catch
        {
            accelerator?.Dispose();
            context.Dispose();
            throw;
        }
    }

    /// <summary>Whether ILGPU can see at least one usable CUDA device (never throws).</summary>
    public static bool IsCudaAvailable()
    {
        try
        {
            using var context = Context.Create(b => b.Cuda().EnableAlgorithms());
            return context.GetCudaDevices().Count > 0;
        }
        catch (Exception)
        {
            return false;
        }
    }

    // ---- the kernel list (single source of truth) and the PTX check ----------------------------

    /// <summary>Every kernel entry point of the backend: the methods of <see cref="IlgpuKernelBodies"/>.</summary>
    internal static IReadOnlyList<MethodInfo> KernelMethods { get; } = typeof(IlgpuKernelBodies)
        .GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)
        .Where(m => m.ReturnType == typeof(void) && m.GetParameters() is { Length: > 0 } ps && ps[0].ParameterType == typeof(Index1D))
        .OrderBy(m => m.Name, StringComparer.Ordinal)
        .ToArray();

    /// <summary>Names of every kernel of the backend, sorted.</summary>
    public static IReadOnlyList<string> KernelNames { get; } = KernelMethods.Select(m => m.Name).ToArray();

    /// <summary>Names of the kernels this instance loaded, sorted (equals <see cref="KernelNames"/>).</summary>
    public IReadOnlyList<string> LoadedKernelNames => _loaded.OrderBy(n => n, StringComparer.Ordinal).ToArray();

    /// <summary>
    /// Compiles every kernel of <see cref="KernelNames"/> to PTX with ILGPU's PTX backend, no GPU needed
    /// (default target sm_90 / PTX ISA 8.0, i.e. H100). Returns kernel name → PTX assembly; throws
    /// <see cref="InvalidOperationException"/> naming the kernel when one fails to compile.
    /// </summary>
    public static IReadOnlyDictionary<string, string> CompileAllKernelsToPtx(CudaArchitecture? architecture = null, CudaInstructionSet? instructionSet = null)
    {
        var arch = architecture ?? CudaArchitecture.SM_90;
        var isa = instructionSet ?? CudaInstructionSet.ISA_80;
        using var context = Context.Create(b => b.DefaultCPU().EnableAlgorithms());
        using var backend = new PTXBackend(context, new CudaCapabilityContext(arch), arch, isa, null);
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var method in KernelMethods)
        {
            string ptx;
            try
            {
                var compiled = backend.Compile(EntryPointDescription.FromImplicitlyGroupedKernel(method), default);
                ptx = ((PTXCompiledKernel)compiled).PTXAssembly;
            }
            catch (Exception e)
            {
                throw new InvalidOperationException($"Kernel {method.Name} does not compile to PTX ({arch}, {isa}): {e.Message}", e);
            }
            if (!ptx.Contains(".entry", StringComparison.Ordinal))
                throw new InvalidOperationException($"Kernel {method.Name}: the PTX backend produced no entry point.");
            result.Add(method.Name, ptx);
        }
        return new ReadOnlyDictionary<string, string>(result);
    }

    // ---- IKernels ------------------------------------------------------------------------------

    public string Name { get; }

    /// <summary>The ILGPU accelerator this backend runs on.</summary>
    public Accelerator Accelerator => _accelerator;

    public DeviceBuffer Allocate(int length)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, "Buffer length must be ≥ 0.");
        lock (_gate)
        {
            Enter();
            var memory = _accelerator.Allocate1D<float>(Math.Max(length, 1));
            try
            {
                memory.MemSetToZero();
                _accelerator.Synchronize();
            }
            catch
            {
                memory.Dispose();
                throw;
            }
            return new IlgpuBuffer(this, memory, length);
        }
    }

    public void Upload(ReadOnlySpan<float> source, DeviceBuffer destination, int destinationOffset = 0)
    {
        if (destinationOffset < 0) throw new ArgumentOutOfRangeException(nameof(destinationOffset), destinationOffset, "Upload: offset must be ≥ 0.");
        DeviceBuffer.ThrowIfConstant(destination, nameof(Upload));
        var d = V(destination, (long)destinationOffset + source.Length, nameof(Upload));
        if (source.Length == 0) return;
        lock (_gate)
        {
            Enter();
            ArrayView1D<float, Stride1D.Dense> view = d.SubView(destinationOffset, source.Length);
            view.CopyFromCPU(_accelerator.DefaultStream, source);
            _accelerator.Synchronize();
        }
    }

    public void Download(DeviceBuffer source, Span<float> destination, int sourceOffset = 0)
    {
        if (sourceOffset < 0) throw new ArgumentOutOfRangeException(nameof(sourceOffset), sourceOffset, "Download: offset must be ≥ 0.");
        var s = V(source, (long)sourceOffset + destination.Length, nameof(Download));
        if (destination.Length == 0) return;
        lock (_gate)
        {
            Enter();
            ArrayView1D<float, Stride1D.Dense> view = s.SubView(sourceOffset, destination.Length);
            view.CopyToCPU(_accelerator.DefaultStream, destination);
            _accelerator.Synchronize();
        }
    }

    public void Fill(DeviceBuffer buffer, int count, float value)
    {
        NonNegative(count, nameof(Fill));
        DeviceBuffer.ThrowIfConstant(buffer, nameof(Fill));
        var b = V(buffer, count, nameof(Fill));
        Launch(count, () => _fill(count, b, value));
    }

    // x: (N, Cin, H, W) · w: (Cout, Cin/G, KH, KW) · bias: (Cout) or null → y: (N, Cout, OH, OW)
    public void Conv2dForward(in Conv2dShape s, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, DeviceBuffer y, float? leakyReluSlope = null, DeviceBuffer? residual = null)
    {
        s.Validate();
        var X = V(x, s.InputLength, "conv x"); var Wt = V(w, s.WeightLength, "conv w");
        var Bv = bias is null ? Wt : V(bias, s.Cout, "conv bias"); var Y = V(y, s.OutputLength, "conv y");
        var p = ConvParams.From(s, bias is not null);
        int count = p.ForwardThreads;
        Launch(count, () => _convForward(count, p, X, Wt, Bv, Y));
        if (residual is not null) Add(s.OutputLength, y, residual, y);
        if (leakyReluSlope is { } slope) LeakyReluForward(s.OutputLength, slope, y, y);
    }

    // dy: (N, Cout, OH, OW) · w: (Cout, Cin/G, KH, KW) → dx: (N, Cin, H, W)
    public void Conv2dBackwardInput(in Conv2dShape s, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer dx)
    {
        s.Validate();
        var DY = V(dy, s.OutputLength, "conv dy"); var Wt = V(w, s.WeightLength, "conv w"); var DX = V(dx, s.InputLength, "conv dx");
        var p = ConvParams.From(s, false);
        int count = s.InputLength;
        Launch(count, () => _convBackwardInput(count, p, DY, Wt, DX));
    }

    // x: (N, In) · w: (Out, In) · bias: (Out) or null → y: (N, Out)
    public void DenseForward(int n, int inFeatures, int outFeatures, DeviceBuffer x, DeviceBuffer w, DeviceBuffer? bias, DeviceBuffer y)
    {
        Positive("Dense", n, inFeatures, outFeatures);
        var X = V(x, (long)n * inFeatures, "dense x"); var Wt = V(w, (long)inFeatures * outFeatures, "dense w");
        var Bv = bias is null ? Wt : V(bias, outFeatures, "dense bias"); var Y = V(y, (long)n * outFeatures, "dense y");
        int count = n * outFeatures, hasBias = bias is null ? 0 : 1;
        Launch(count, () => _denseForward(count, inFeatures, outFeatures, hasBias, X, Wt, Bv, Y));
    }

    // dy: (N, Out) · w: (Out, In) → dx: (N, In)
    public void DenseBackwardInput(int n, int inFeatures, int outFeatures, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer dx)
    {
        Positive("Dense", n, inFeatures, outFeatures);
        var DY = V(dy, (long)n * outFeatures, "dense dy"); var Wt = V(w, (long)inFeatures * outFeatures, "dense w"); var DX = V(dx, (long)n * inFeatures, "dense dx");
        int count = n * inFeatures;
        Launch(count, () => _denseBackwardInput(count, inFeatures, outFeatures, DY, Wt, DX));
    }

    // x: (N, C, HW) · scale, shift: (C) → y = x·scale[c] + shift[c]
    public void ChannelAffineForward(int n, int c, int hw, DeviceBuffer x, DeviceBuffer scale, DeviceBuffer shift, DeviceBuffer y)
    {
        Positive("ChannelAffine", n, c, hw);
        long len = (long)n * c * hw;
        var X = V(x, len, "affine x"); var S = V(scale, c, "affine scale"); var T = V(shift, c, "affine shift"); var Y = V(y, len, "affine y");
        Launch((int)len, () => _affineForward((int)len, c, hw, X, S, T, Y));
    }

    // dy: (N, C, HW) · scale: (C) → dx = dy·scale[c]
    public void ChannelAffineBackward(int n, int c, int hw, DeviceBuffer dy, DeviceBuffer scale, DeviceBuffer dx)
    {
        Positive("ChannelAffine", n, c, hw);
        long len = (long)n * c * hw;
        var DY = V(dy, len, "affine dy"); var S = V(scale, c, "affine scale"); var DX = V(dx, len, "affine dx");
        Launch((int)len, () => _affineBackward((int)len, c, hw, DY, S, DX));
    }

    // x, y: (count) → y = x > 0 ? x : slope·x
    public void LeakyReluForward(int count, float slope, DeviceBuffer x, DeviceBuffer y)
    {
        NonNegative(count, "lrelu");
        var X = V(x, count, "lrelu x"); var Y = V(y, count, "lrelu y");
        Launch(count, () => _lreluForward(count, slope, X, Y));
    }

    // y, dy: (count) → dx = dy · (y > 0 ? 1 : slope)
    public void LeakyReluBackward(int count, float slope, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx)
    {
        NonNegative(count, "lrelu");
        var Y = V(y, count, "lrelu y"); var DY = V(dy, count, "lrelu dy"); var DX = V(dx, count, "lrelu dx");
        Launch(count, () => _lreluBackward(count, slope, Y, DY, DX));
    }

    // x: (N, C, HW) · bias: (C) → y = lrelu(x + bias[c])
    public void BiasLeakyReluForward(int n, int c, int hw, float slope, DeviceBuffer x, DeviceBuffer bias, DeviceBuffer y)
    {
        Positive("BiasLeakyRelu", n, c, hw);
        long len = (long)n * c * hw;
        var X = V(x, len, "bias-lrelu x"); var Bv = V(bias, c, "bias-lrelu bias"); var Y = V(y, len, "bias-lrelu y");
        Launch((int)len, () => _biasLrelu((int)len, c, hw, slope, X, Bv, Y));
    }

    // x, y: (count) → y = σ(x)
    public void SigmoidForward(int count, DeviceBuffer x, DeviceBuffer y)
    {
        NonNegative(count, "sigmoid");
        var X = V(x, count, "sigmoid x"); var Y = V(y, count, "sigmoid y");
        Launch(count, () => _sigmoidForward(count, X, Y));
    }

    // y, dy: (count) → dx = dy · y · (1 − y)
    public void SigmoidBackward(int count, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx)
    {
        NonNegative(count, "sigmoid");
        var Y = V(y, count, "sigmoid y"); var DY = V(dy, count, "sigmoid dy"); var DX = V(dx, count, "sigmoid dx");
        Launch(count, () => _sigmoidBackward(count, Y, DY, DX));
    }

    // x, y: (N, K) softmax over K
    public void SoftmaxForward(int n, int k, DeviceBuffer x, DeviceBuffer y)
    {
        Positive("Softmax", n, k, 1);
        var X = V(x, (long)n * k, "softmax x"); var Y = V(y, (long)n * k, "softmax y");
        Launch(n, () => _softmaxForward(n, k, X, Y));
    }

    // y, dy: (N, K) → dx = y ⊙ (dy − Σ_k dy·y)
    public void SoftmaxBackward(int n, int k, DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx)
    {
        Positive("Softmax", n, k, 1);
        var Y = V(y, (long)n * k, "softmax y"); var DY = V(dy, (long)n * k, "softmax dy"); var DX = V(dx, (long)n * k, "softmax dx");
        Launch(n, () => _softmaxBackward(n, k, Y, DY, DX));
    }

    // x: (N, C, H, W) → y: (N, C, OH, OW)
    public void MaxPool2dForward(in Pool2dShape s, DeviceBuffer x, DeviceBuffer y)
    {
        s.Validate();
        var X = V(x, s.InputLength, "maxpool x"); var Y = V(y, s.OutputLength, "maxpool y");
        var p = PoolParams.From(s, false);
        int count = s.OutputLength;
        Launch(count, () => _maxPoolForward(count, p, X, Y));
    }

    // x: forward input, dy: (N, C, OH, OW) → dx: (N, C, H, W)
    public void MaxPool2dBackward(in Pool2dShape s, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx)
    {
        s.Validate();
        var X = V(x, s.InputLength, "maxpool x"); var DY = V(dy, s.OutputLength, "maxpool dy"); var DX = V(dx, s.InputLength, "maxpool dx");
        var p = PoolParams.From(s, false);
        int count = s.InputLength;
        Launch(count, () => _maxPoolBackward(count, p, X, DY, DX));
    }

    // x: (N, C, H, W) → y: (N, C, OH, OW)
    public void AvgPool2dForward(in Pool2dShape s, bool countIncludePad, DeviceBuffer x, DeviceBuffer y)
    {
        s.Validate();
        var X = V(x, s.InputLength, "avgpool x"); var Y = V(y, s.OutputLength, "avgpool y");
        var p = PoolParams.From(s, countIncludePad);
        int count = s.OutputLength;
        Launch(count, () => _avgPoolForward(count, p, X, Y));
    }

    // dy: (N, C, OH, OW) → dx: (N, C, H, W)
    public void AvgPool2dBackward(in Pool2dShape s, bool countIncludePad, DeviceBuffer dy, DeviceBuffer dx)
    {
        s.Validate();
        var DY = V(dy, s.OutputLength, "avgpool dy"); var DX = V(dx, s.InputLength, "avgpool dx");
        var p = PoolParams.From(s, countIncludePad);
        int count = s.InputLength;
        Launch(count, () => _avgPoolBackward(count, p, DY, DX));
    }

    // x: (N, C, H, W) → y: (N, C, OH, OW)
    public void AdaptiveAvgPool2dForward(int n, int c, int h, int w, int outH, int outW, DeviceBuffer x, DeviceBuffer y)
    {
        CheckAdaptive(n, c, h, w, outH, outW);
        long inLen = (long)n * c * h * w, outLen = (long)n * c * outH * outW;
        var X = V(x, inLen, "adaptive x"); var Y = V(y, outLen, "adaptive y");
        var p = PoolParams.Adaptive(n, c, h, w, outH, outW);
        Launch((int)outLen, () => _adaptiveForward((int)outLen, p, X, Y));
    }

    // dy: (N, C, OH, OW) → dx: (N, C, H, W)
    public void AdaptiveAvgPool2dBackward(int n, int c, int h, int w, int outH, int outW, DeviceBuffer dy, DeviceBuffer dx)
    {
        CheckAdaptive(n, c, h, w, outH, outW);
        long inLen = (long)n * c * h * w, outLen = (long)n * c * outH * outW;
        var DY = V(dy, outLen, "adaptive dy"); var DX = V(dx, inLen, "adaptive dx");
        var p = PoolParams.Adaptive(n, c, h, w, outH, outW);
        Launch((int)inLen, () => _adaptiveBackward((int)inLen, p, DY, DX));
    }

    // a, b, y: (count) → y = a + b
    public void Add(int count, DeviceBuffer a, DeviceBuffer b, DeviceBuffer y)
    {
        NonNegative(count, "add");
        var Av = V(a, count, "add a"); var Bv = V(b, count, "add b"); var Y = V(y, count, "add y");
        Launch(count, () => _add(count, Av, Bv, Y));
    }

    // x, y: (count) → y = a·x + y
    public void Axpy(int count, float a, DeviceBuffer x, DeviceBuffer y)
    {
        NonNegative(count, "axpy");
        var X = V(x, count, "axpy x"); var Y = V(y, count, "axpy y");
        Launch(count, () => _axpy(count, a, X, Y));
    }

    // src: (N, srcC, HW)[:, srcChannel …] → dst: (N, dstC, HW)[:, dstChannel …]
    public void CopyChannels(int n, int hw, int channels, DeviceBuffer src, int srcC, int srcChannel, DeviceBuffer dst, int dstC, int dstChannel)
    {
        if (srcChannel < 0 || srcChannel + channels > srcC || dstChannel < 0 || dstChannel + channels > dstC)
            throw new ArgumentException($"CopyChannels: channels [{srcChannel}, +{channels}) of {srcC} into [{dstChannel}, +{channels}) of {dstC} is out of range.");
        if (n < 0 || hw < 0 || channels < 0)
            throw new ArgumentException($"CopyChannels: sizes must be ≥ 0, got n={n}, hw={hw}, channels={channels}.");
        long srcLen = (long)n * srcC * hw;
        var S = V(src, srcLen, "copy src"); var D = V(dst, (long)n * dstC * hw, "copy dst");
        int count = n * channels * hw;
        if (count == 0) return;
        if (!ReferenceEquals(src, dst))
        {
            Launch(count, () => _copyChannels(count, hw, channels, S, srcC, srcChannel, D, dstC, dstChannel));
            return;
        }
        // Source and destination share a buffer: stage the source so that overlapping ranges copy like memmove.
        lock (_gate)
        {
            Enter();
            using var staged = _accelerator.Allocate1D<float>(srcLen);
            ArrayView1D<float, Stride1D.Dense> from = S.SubView(0, srcLen);
            from.CopyTo(_accelerator.DefaultStream, staged.View);
            _copyChannels(count, hw, channels, staged.View, srcC, srcChannel, D, dstC, dstChannel);
            _accelerator.Synchronize();
        }
    }

    // x: (N, C, H, W) → y: (N, C, OH, OW)
    public void ResizeForward(in ResizeShape s, DeviceBuffer x, DeviceBuffer y)
    {
        s.Validate();
        var X = V(x, s.InputLength, "resize x"); var Y = V(y, s.OutputLength, "resize y");
        var p = ResizeParams.From(s);
        int count = s.OutputLength;
        Launch(count, () => _resizeForward(count, p, X, Y));
    }

    // dy: (N, C, OH, OW) → dx: (N, C, H, W)
    public void ResizeBackward(in ResizeShape s, DeviceBuffer dy, DeviceBuffer dx)
    {
        s.Validate();
        var DY = V(dy, s.OutputLength, "resize dy"); var DX = V(dx, s.InputLength, "resize dx");
        var p = ResizeParams.From(s);
        int count = s.InputLength;
        Launch(count, () => _resizeBackward(count, p, DY, DX));
    }

    // x: (N, C, H, W) → y: (N, C + 1, H, W)
    public void MinibatchStddevForward(int n, int c, int h, int w, int groupSize, float epsilon, DeviceBuffer x, DeviceBuffer y)
    {
        CheckMbstd(n, c, h, w, groupSize);
        long chw = (long)c * h * w;
        var X = V(x, n * chw, "mbstd x"); var Y = V(y, n * (chw + (long)h * w), "mbstd y");
        var p = MbstdParams.From(n, c, h, w, groupSize, epsilon);
        lock (_gate)
        {
            Enter();
            var std = Scratch(ref _scratch0, (long)p.M * p.CHW);
            var stat = Scratch(ref _scratch1, p.M);
            _mbstdGroupStd(p.M * p.CHW, p, X, std);
            _mbstdMean(p.M, p, std, stat);
            _mbstdForwardOutput(n * (p.CHW + p.HW), p, X, stat, Y);
            _accelerator.Synchronize();
        }
    }

    // x: forward input, dy: (N, C + 1, H, W) → dx: (N, C, H, W)
    public void MinibatchStddevBackward(int n, int c, int h, int w, int groupSize, float epsilon, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx)
    {
        CheckMbstd(n, c, h, w, groupSize);
        long chw = (long)c * h * w;
        var X = V(x, n * chw, "mbstd x"); var DY = V(dy, n * (chw + (long)h * w), "mbstd dy"); var DX = V(dx, n * chw, "mbstd dx");
        var p = MbstdParams.From(n, c, h, w, groupSize, epsilon);
        lock (_gate)
        {
            Enter();
            var dStd = Scratch(ref _scratch0, p.M);
            _mbstdStatGrad(p.M, p, DY, dStd);
            _mbstdBackwardInput(n * p.CHW, p, X, DY, dStd, DX);
            _accelerator.Synchronize();
        }
    }

    // Scratch of multi-kernel ops (minibatch-stddev, batch-norm), kept between calls: a device allocation per call
    // costs more on CUDA than the tiny kernels themselves. Only touched under _gate; grown on demand,
    // freed with the accelerator.
    private MemoryBuffer1D<float, Stride1D.Dense>? _scratch0, _scratch1;

    private ArrayView<float> Scratch(ref MemoryBuffer1D<float, Stride1D.Dense>? buffer, long length)
    {
        if (buffer is null || buffer.Length < length)
        {
            buffer?.Dispose();
            buffer = _accelerator.Allocate1D<float>(Math.Max(length, 1));
        }
        return buffer.View.SubView(0, length);
    }

    /// <summary>Frees a buffer's device memory with the accelerator current (CUDA frees need the context).</summary>
    internal void ReleaseMemory(MemoryBuffer memory)
    {
        lock (_gate)
        {
            if (_disposed) return; // the accelerator already freed everything it allocated
            _accelerator.Bind();
            memory.Dispose();
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _accelerator.Dispose();
            _context.Dispose();
        }
    }

    // ---- helpers ----------------------------------------------------------------------------------

    /// <summary>The device view of <paramref name="buffer"/>, checking owner, disposal and length (messages as the reference's).</summary>
    private ArrayView<float> V(DeviceBuffer buffer, long needed, string name)
    {
        ArgumentNullException.ThrowIfNull(buffer, name);
        ThrowIfDisposed(); // the accelerator frees all its memory when disposed
        if (buffer is not IlgpuBuffer device || !ReferenceEquals(buffer.Owner, this))
            throw new ArgumentException($"{name}: buffer of backend '{buffer.Owner.Name}' passed to '{Name}'.");
        if (buffer.IsDisposed) throw new ObjectDisposedException(name, $"{name}: buffer was disposed.");
        if (needed > buffer.Length)
            throw new ArgumentException($"{name}: buffer holds {buffer.Length} floats, the shape needs {needed}.");
        return device.View;
    }

    /// <summary>Launches one kernel over <paramref name="count"/> threads and waits for it, under the device lock.</summary>
    private void Launch(int count, Action launch)
    {
        if (count == 0) return;
        lock (_gate)
        {
            Enter();
            launch();
            _accelerator.Synchronize();
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Under the lock: checks the backend is alive and makes its accelerator (CUDA context) current on this thread.</summary>
    private void Enter()
    {
        ThrowIfDisposed();
        _accelerator.Bind();
    }

    private static void NonNegative(int count, string op)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), count, $"{op}: count must be ≥ 0.");
    }

    private static void Positive(string op, int a, int b, int c)
    {
        if (a < 1 || b < 1 || c < 1)
            throw new ArgumentException($"{op}: all sizes must be positive, got ({a}, {b}, {c}).");
    }

    private static void CheckAdaptive(int n, int c, int h, int w, int outH, int outW)
    {
        if (n < 1 || c < 1 || h < 1 || w < 1 || outH < 1 || outW < 1)
            throw new ArgumentException($"AdaptiveAvgPool2d: sizes must be positive, got ({n}, {c}, {h}, {w}) → {outH}×{outW}.");
    }

    private static void CheckMbstd(int n, int c, int h, int w, int groupSize)
    {
        if (n < 1 || c < 1 || h < 1 || w < 1)
            throw new ArgumentException($"Minibatch-stddev: sizes must be positive, got ({n}, {c}, {h}, {w}).");
        if (groupSize < 1 || n % groupSize != 0)
            throw new ArgumentException($"Minibatch-stddev: group size {groupSize} must be ≥ 1 and divide the batch size {n}.");
    }
}
