using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGuardian.Tests.Oracle;

/// <summary>
/// PyTorch as a test-time oracle: Debian's python3-torch 1.13 (installed by .ci/run) in a child
/// process that answers requests from tests/Oracle/torch_oracle.py. If it cannot start, every
/// test that needs it FAILS with the reason: a missing oracle must never pass silently.
/// </summary>
public sealed class TorchOracle : IDisposable
{
    public const string Python = "/usr/bin/python3";
    private readonly Process _process;
    private readonly string _dir = Directory.CreateTempSubdirectory("mg-oracle-").FullName;
    private readonly object _lock = new();
    private int _counter;

    public TorchOracle()
    {
        string script = Path.Combine(AppContext.BaseDirectory, "Oracle", "torch_oracle.py");
        if (!File.Exists(Python))
            throw new InvalidOperationException($"The PyTorch oracle needs {Python} with python3-torch: apt-get install python3-torch python3-torchvision (.ci/run does this).");
        var psi = new ProcessStartInfo(Python, $"\"{script}\"")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        _process = Process.Start(psi) ?? throw new InvalidOperationException("Could not start the PyTorch oracle.");
        var hello = _process.StandardOutput.ReadLine();
        if (hello is null || !hello.Contains("\"ok\": true"))
            throw new InvalidOperationException($"The PyTorch oracle did not start (is python3-torch installed? apt-get install python3-torch python3-torchvision): {_process.StandardError.ReadToEnd()}");
        Versions = hello;
    }

    public string Versions { get; }

    /// <summary>Runs op on the named input tensors; returns "y" (output) and "dx" (input gradient).</summary>
    /// <param name="float64">compute in float64 (the tensors still travel as float32): the ground truth for whole
    /// networks, where Debian's fp32 CPU kernels are themselves less accurate than the tolerance asked of us.</param>
    public Dictionary<string, (int[] Shape, float[] Data)> Run(string op, object parameters, IReadOnlyDictionary<string, (int[] Shape, float[] Data)> inputs, bool float64 = false)
    {
        lock (_lock)
        {
            int id = _counter++;
            string inPath = Path.Combine(_dir, $"in{id}.bin"), outPath = Path.Combine(_dir, $"out{id}.bin");
            TensorFile.Write(inPath, inputs);
            var p = JsonSerializer.SerializeToNode(parameters)!.AsObject();
            p["float64"] = float64;
            var request = new JsonObject { ["op"] = op, ["params"] = p, ["inputs"] = inPath, ["outputs"] = outPath };
            _process.StandardInput.WriteLine(request.ToJsonString());
            _process.StandardInput.Flush();
            var answer = _process.StandardOutput.ReadLine() ?? throw new InvalidOperationException("The PyTorch oracle died: " + _process.StandardError.ReadToEnd());
            var node = JsonNode.Parse(answer)!;
            if (!(bool)node["ok"]!) throw new InvalidOperationException("PyTorch oracle error: " + (string?)node["error"]);
            var result = TensorFile.Read(outPath);
            File.Delete(inPath); File.Delete(outPath);
            return result;
        }
    }

    public void Dispose()
    {
        try { _process.StandardInput.Close(); _process.WaitForExit(5000); } catch (IOException) { }
        if (!_process.HasExited) _process.Kill();
        _process.Dispose();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}

[CollectionDefinition(Name)]
public sealed class OracleCollection : ICollectionFixture<TorchOracle>
{
    public const string Name = "PyTorch oracle";
}
