using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ModelGuardian.Tests.Serve;

/// <summary>`dotnet mg.dll serve` as a child process.</summary>
internal sealed class ServerProcess(string config, int port, Action<string> log)
{
    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private Process? _process;
    public Uri Address { get; } = new($"http://127.0.0.1:{port}");

    public async Task StartAsync()
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "mg.dll"), "serve", "--config", config, "--urls", Address.ToString().TrimEnd('/') }) psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        _process.ErrorDataReceived += (_, e) => { if (e.Data != null) try { log($"[{port}] {e.Data}"); } catch (InvalidOperationException) { } };
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
        using var c = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            Assert.False(_process.HasExited, $"mg serve on port {port} exited with {(_process.HasExited ? _process.ExitCode : 0)}");
            try { if ((await c.GetAsync(new Uri(Address, "/readyz"))).IsSuccessStatusCode) return; }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
            await Task.Delay(100);
        }
        Assert.Fail($"mg serve on port {port} did not become ready within 60 s");
    }

    /// <summary>Resident set size now and its peak so far (VmRSS, VmHWM), in MiB, from /proc.</summary>
    public (double Rss, double PeakRss) Memory()
    {
        var status = File.ReadAllLines($"/proc/{_process!.Id}/status");
        double Field(string name) => long.Parse(status.Single(l => l.StartsWith(name + ":")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
        return (Field("VmRSS"), Field("VmHWM"));
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill();
            p.WaitForExit();
        }
    }
}
