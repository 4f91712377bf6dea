using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using ModelGuardian.Engine.Core;
using ModelGuardian.Engine.Networks;
using ModelGuardian.Kernels;

namespace ModelGuardian.Bench;

/// <summary>A minimal protobuf encoder: enough for ONNX's ModelProto (varints, length-delimited fields, fixed32).</summary>
internal sealed class ProtoWriter
{
    private readonly MemoryStream _s = new();

    public ReadOnlySpan<byte> Span => _s.GetBuffer().AsSpan(0, (int)_s.Length);

    private void Varint(ulong v)
    {
        while (v >= 0x80) { _s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        _s.WriteByte((byte)v);
    }

    private void Tag(int field, int wireType) => Varint((ulong)((field << 3) | wireType));

    /// <summary>int32/int64/enum (wire type 0); negative values take ten bytes, as protobuf's int64 does.</summary>
    public ProtoWriter Int(int field, long value) { Tag(field, 0); Varint((ulong)value); return this; }

    public ProtoWriter Float(int field, float value)
    {
        Tag(field, 5);
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(b, value);
        _s.Write(b);
        return this;
    }

    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> value) { Tag(field, 2); Varint((ulong)value.Length); _s.Write(value); return this; }
    public ProtoWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));
    public ProtoWriter Message(int field, ProtoWriter message) => Bytes(field, message.Span);
    public byte[] ToArray() => _s.ToArray();
}

/// <summary>
/// Writes a torchvision ResNet (the engine's <see cref="ArchitectureDescriptor"/>, torchvision tensor
/// names in a <see cref="TensorSet"/>) as an ONNX model, opset 13, IR version 8, fixed input shape,
/// with batch-norm (eps 1e-5) folded into the convolutions exactly as the engine folds it:
/// Conv, Relu, MaxPool, Add, GlobalAveragePool, Flatten, Gemm.
/// </summary>
internal static class OnnxResNet
{
    // onnx.proto field numbers.
    private const int ModelIrVersion = 1, ModelProducerName = 2, ModelGraph = 7, ModelOpsetImport = 8;
    private const int OpsetVersion = 2;
    private const int GraphNode = 1, GraphName = 2, GraphInitializer = 5, GraphInput = 11, GraphOutput = 12;
    private const int NodeInput = 1, NodeOutput = 2, NodeName = 3, NodeOpType = 4, NodeAttribute = 5;
    private const int AttrName = 1, AttrI = 3, AttrInts = 8, AttrType = 20;
    private const int AttrTypeInt = 2, AttrTypeInts = 7;
    private const int TensorDims = 1, TensorDataType = 2, TensorName = 8, TensorRawData = 9;
    private const int TensorFloat = 1;
    private const int ValueInfoName = 1, ValueInfoType = 2;
    private const int TypeTensorType = 1, TypeTensorElemType = 1, TypeTensorShape = 2, ShapeDim = 1, DimValue = 1;

    private const double BatchNormEpsilon = 1e-5;

    public const string InputName = "input";
    public const string OutputName = "logits";

    public static byte[] Build(ArchitectureDescriptor a, TensorSet t, int batch, int side)
    {
        if (a.Kind != NetworkKind.ResNet) throw new ArgumentException($"{a} is not a ResNet.");
        var g = new GraphBuilder(t);
        string x = InputName;
        if (a.Stem == ResNetStem.ImageNet)
        {
            x = g.Relu(g.ConvBn(x, "conv1", "bn1", 2, 3));
            x = g.Node("MaxPool", [x], ("kernel_shape", new[] { 3, 3 }), ("strides", new[] { 2, 2 }), ("pads", new[] { 1, 1, 1, 1 }));
        }
        else x = g.Relu(g.ConvBn(x, "conv1", "bn1", 1, 1));

        // The descriptor's own block walk (names, widths, strides, shortcuts), as the network and the parameter schema use it.
        foreach (var block in a.ResNetBlocks())
        {
            string p = block.Prefix, body;
            if (block.Bottleneck)
            {
                body = g.Relu(g.ConvBn(x, $"{p}.conv1", $"{p}.bn1", 1, 0));
                body = g.Relu(g.ConvBn(body, $"{p}.conv2", $"{p}.bn2", block.Stride, 1));
                body = g.ConvBn(body, $"{p}.conv3", $"{p}.bn3", 1, 0);
            }
            else
            {
                body = g.Relu(g.ConvBn(x, $"{p}.conv1", $"{p}.bn1", block.Stride, 1));
                body = g.ConvBn(body, $"{p}.conv2", $"{p}.bn2", 1, 1);
            }
            string shortcut = block.HasDownsample ? g.ConvBn(x, $"{p}.downsample.0", $"{p}.downsample.1", block.Stride, 0) : x;
            x = g.Relu(g.Node("Add", [body, shortcut]));
        }
        x = g.Node("GlobalAveragePool", [x]);
        x = g.Node("Flatten", [x], ("axis", 1L));
        g.Initializer("fc.weight", t["fc.weight"].Shape, t["fc.weight"].Data);
        g.Initializer("fc.bias", t["fc.bias"].Shape, t["fc.bias"].Data);
        g.Node("Gemm", [x, "fc.weight", "fc.bias"], OutputName, ("transB", 1L));

        var graph = g.Graph;
        graph.String(GraphName, $"resnet{a.Depth}{(a.Stem == ResNetStem.Cifar ? "_cifar" : "")}");
        graph.Message(GraphInput, ValueInfo(InputName, [batch, a.InputChannels, side, side]));
        graph.Message(GraphOutput, ValueInfo(OutputName, [batch, a.Outputs]));

        return Model(graph);
    }

    /// <summary>One convolution with bias (and ReLU when asked) as a model: `bench --layers` times it alone.</summary>
    public static byte[] BuildConvolution(Conv2dShape s, float[] weight, float[] bias, bool relu)
    {
        var g = new GraphBuilder(new TensorSet());
        g.Initializer("w", [s.Cout, s.CinPerGroup, s.KH, s.KW], weight);
        g.Initializer("b", [s.Cout], bias);
        string y = g.Node("Conv", [InputName, "w", "b"], relu ? "conv" : OutputName, ("kernel_shape", new[] { s.KH, s.KW }),
            ("strides", new[] { s.StrideH, s.StrideW }), ("pads", new[] { s.PadH, s.PadW, s.PadH, s.PadW }), ("group", (long)s.Groups));
        if (relu) g.Node("Relu", [y], OutputName);
        g.Graph.String(GraphName, "conv");
        g.Graph.Message(GraphInput, ValueInfo(InputName, [s.N, s.Cin, s.H, s.W]));
        g.Graph.Message(GraphOutput, ValueInfo(OutputName, [s.N, s.Cout, s.OutH, s.OutW]));
        return Model(g.Graph);
    }

    private static byte[] Model(ProtoWriter graph) => new ProtoWriter()
        .Int(ModelIrVersion, 8)
        .String(ModelProducerName, "ModelGuardian.Bench")
        .Message(ModelGraph, graph)
        .Message(ModelOpsetImport, new ProtoWriter().Int(OpsetVersion, 13))
        .ToArray();

    private static ProtoWriter ValueInfo(string name, long[] dims)
    {
        var shape = new ProtoWriter();
        foreach (var d in dims) shape.Message(ShapeDim, new ProtoWriter().Int(DimValue, d));
        var tensorType = new ProtoWriter().Int(TypeTensorElemType, TensorFloat).Message(TypeTensorShape, shape);
        return new ProtoWriter().String(ValueInfoName, name).Message(ValueInfoType, new ProtoWriter().Message(TypeTensorType, tensorType));
    }

    private sealed class GraphBuilder(TensorSet t)
    {
        private int _counter;
        public ProtoWriter Graph { get; } = new();

        public void Initializer(string name, int[] shape, float[] data)
        {
            var tensor = new ProtoWriter();
            foreach (var d in shape) tensor.Int(TensorDims, d);
            tensor.Int(TensorDataType, TensorFloat).String(TensorName, name);
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw_data is little-endian.");
            tensor.Bytes(TensorRawData, MemoryMarshal.AsBytes(data.AsSpan()));
            Graph.Message(GraphInitializer, tensor);
        }

        public string Node(string op, string[] inputs, params (string Name, object Value)[] attributes)
            => Node(op, inputs, $"{op.ToLowerInvariant()}_{_counter}", attributes);

        public string Node(string op, string[] inputs, string output, params (string Name, object Value)[] attributes)
        {
            var node = new ProtoWriter();
            foreach (var i in inputs) node.String(NodeInput, i);
            node.String(NodeOutput, output).String(NodeName, $"n{_counter++}_{op}").String(NodeOpType, op);
            foreach (var (name, value) in attributes)
            {
                var attr = new ProtoWriter().String(AttrName, name);
                switch (value)
                {
                    case long i: attr.Int(AttrType, AttrTypeInt).Int(AttrI, i); break;
                    case int[] ints:
                        attr.Int(AttrType, AttrTypeInts);
                        foreach (var v in ints) attr.Int(AttrInts, v);
                        break;
                    default: throw new ArgumentException($"Unsupported attribute value {value.GetType()}.");
                }
                node.Message(NodeAttribute, attr);
            }
            Graph.Message(GraphNode, node);
            return output;
        }

        public string Relu(string x) => Node("Relu", [x]);

        /// <summary>conv (no bias) + inference batch-norm folded: w' = w·γ/√(σ²+ε), b' = β − μ·γ/√(σ²+ε).</summary>
        public string ConvBn(string x, string conv, string bn, int stride, int pad)
        {
            var w = t[$"{conv}.weight"];
            var gamma = t[$"{bn}.weight"].Data;
            var beta = t[$"{bn}.bias"].Data;
            var mean = t[$"{bn}.running_mean"].Data;
            var variance = t[$"{bn}.running_var"].Data;
            int cout = w.Shape[0], k = w.Shape[2], perOut = w.Length / cout;
            var folded = new float[w.Length];
            var bias = new float[cout];
            for (int o = 0; o < cout; o++)
            {
                double scale = gamma[o] / Math.Sqrt(variance[o] + BatchNormEpsilon);
                for (int i = 0; i < perOut; i++) folded[o * perOut + i] = (float)(w.Data[o * perOut + i] * scale);
                bias[o] = (float)(beta[o] - mean[o] * scale);
            }
            Initializer($"{conv}.weight", w.Shape, folded);
            Initializer($"{conv}.bias", [cout], bias);
            return Node("Conv", [x, $"{conv}.weight", $"{conv}.bias"],
                ("kernel_shape", new[] { k, k }), ("strides", new[] { stride, stride }), ("pads", new[] { pad, pad, pad, pad }));
        }
    }
}
