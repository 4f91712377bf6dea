using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Tests.Serve;

/// <summary>
/// Requests a client library would never send, written byte by byte on a socket: each must get a 4xx with the
/// JSON error body, and none may be counted. Kestrel's own parse errors (a request line or header it cannot
/// read) are answered by Kestrel before the application sees the request: a 400 with an empty body.
/// </summary>
public sealed class MalformedRequestTests
{
    private static async Task<(int Status, string Body)> Raw(Uri server, byte[] request, Func<NetworkStream, Task>? body = null)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.Host, server.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(request);
        if (body != null)
            try { await body(stream); }
            catch (IOException) { } // the server may answer and close before the body is sent
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var response = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, cts.Token)) > 0) response.Write(buffer, 0, n);
        }
        catch (IOException) { } // connection reset after the answer
        byte[] bytes = response.ToArray();
        string head = Encoding.ASCII.GetString(bytes);
        Assert.True(head.StartsWith("HTTP/1.1 "), $"no HTTP answer: '{head}'");
        int status = int.Parse(head.AsSpan(9, 3));
        int split = head.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4;
        bool chunked = head[..split].Contains("Transfer-Encoding: chunked", StringComparison.OrdinalIgnoreCase);
        return (status, Encoding.UTF8.GetString(chunked ? Unchunk(bytes.AsSpan(split)) : bytes.AsSpan(split)));
    }

    private static byte[] Unchunk(ReadOnlySpan<byte> chunked)
    {
        var body = new List<byte>();
        while (true)
        {
            int eol = chunked.IndexOf("\r\n"u8);
            if (eol <= 0) return [.. body]; // the connection was closed mid-body
            int size = Convert.ToInt32(Encoding.ASCII.GetString(chunked[..eol]), 16);
            if (size == 0) return [.. body];
            body.AddRange(chunked.Slice(eol + 2, size));
            chunked = chunked[(eol + 2 + size + 2)..];
        }
    }

    private static byte[] Head(string key, params string[] headers)
        => Encoding.ASCII.GetBytes($"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n"
                                   + string.Concat(headers.Select(h => h + "\r\n")) + "\r\n");

    private static void AssertJsonError(int status, string code, (int Status, string Body) answer)
    {
        Assert.True(answer.Status == status, $"expected {status}, got {answer.Status}: {answer.Body}");
        Assert.Equal(code, JsonDocument.Parse(answer.Body).RootElement.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Every_malformed_request_is_a_4xx_and_none_is_counted()
    {
        await using var s = await ServerFixture.StartAsync(l => l with { MaxBodyBytes = 64 << 10, RequestTimeoutMs = 1500 });
        string key = await s.AddUserAsync("u");
        var uri = s.BaseAddress;

        // Chunked framing that is not hex sizes.
        AssertJsonError(400, "bad_request", await Raw(uri, [.. Head(key, "Transfer-Encoding: chunked", "Content-Type: image/png"), .. "ZZZ\r\nabc\r\n0\r\n\r\n"u8]));
        // A Content-Length far above the limit (the body is never sent): refused before reading it.
        AssertJsonError(413, "body_too_large", await Raw(uri, Head(key, "Content-Length: 99999999999999", "Content-Type: image/png")));
        // A body that trickles in past the request timeout.
        AssertJsonError(408, "request_timeout", await Raw(uri, Head(key, "Content-Length: 2000", "Content-Type: image/png"), async stream =>
        {
            for (int i = 0; i < 25; i++)
            {
                await stream.WriteAsync(new byte[] { 0x89 });
                await Task.Delay(100);
            }
        }));
        // Declared types the API does not take are refused whatever the bytes are.
        var png = s.Natural[0];
        foreach (var type in new[] { "text/plain", "multipart/form-data; boundary=x", "application/xml", "image/tiff" })
            AssertJsonError(415, "unsupported_media_type", await Raw(uri, [.. Head(key, $"Content-Length: {png.Length}", $"Content-Type: {type}"), .. png]));
        // Image bytes a decoder refuses: the 37-byte JPEG that hung the previous decoder, and a PNG cut short.
        AssertJsonError(400, "bad_image", await Raw(uri, [.. Head(key, "Content-Length: 37", "Content-Type: image/jpeg"), .. HostileImages.Truncated37ByteJpeg]));
        AssertJsonError(400, "bad_image", await Raw(uri, [.. Head(key, $"Content-Length: {png.Length / 2}", "Content-Type: image/png"), .. png.AsSpan(0, png.Length / 2)]));
        // Kestrel's own parse errors: an unreadable Content-Length. A 400, answered before the application runs.
        var (status, body) = await Raw(uri, Head(key, "Content-Length: 12abc", "Content-Type: image/png"));
        Assert.True(status == 400, $"{status}: '{body}'");

        Assert.Null(await s.Host.Ledger.GetAsync("u"));
    }

    [Fact]
    public async Task The_image_format_is_read_from_the_bytes_not_the_declared_type()
    {
        await using var s = await ServerFixture.StartAsync();
        string key = await s.AddUserAsync("u");
        var image = RgbImage.Decode(s.Natural[0]);
        using var ms = new MemoryStream();
        ImageCodec.WriteBmp(image.Pixels, image.Width, image.Height, ms);
        byte[] bmp = ms.ToArray();
        // A BMP declared as PNG, as JPEG, and with no type at all: each is sniffed and answered.
        foreach (var type in new[] { "Content-Type: image/png", "Content-Type: image/jpeg", "Content-Type: application/octet-stream" })
        {
            var (status, body) = await Raw(s.BaseAddress, [.. Head(key, $"Content-Length: {bmp.Length}", type), .. bmp]);
            Assert.True(status == 200, $"{type}: {status} {body}");
        }
        var (noTypeStatus, _) = await Raw(s.BaseAddress, [.. Head(key, $"Content-Length: {bmp.Length}"), .. bmp]);
        Assert.Equal(200, noTypeStatus);
        Assert.Equal(4L, (await s.Host.Ledger.GetAsync("u"))!.Total);
    }
}
