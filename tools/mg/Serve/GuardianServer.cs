using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;

namespace ModelGuardian.Tools.Serve;

/// <summary>
/// The HTTP API: thin endpoints over <see cref="GuardianHost"/>. Every error is JSON
/// <c>{"error": code, "message": text}</c> with a stable code.
/// </summary>
public static class GuardianServer
{
    public static WebApplication Build(GuardianHost host, string[]? urls = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseKestrel(k => k.Limits.MaxRequestBodySize = host.Config.Limits.MaxBodyBytes);
        builder.WebHost.UseUrls(urls ?? [host.Config.Listen]);
        builder.Services.AddOpenApi();
        var app = builder.Build();
        var api = new Endpoints(host, new ServerMetrics());

        app.Use(api.CatchAll);
        app.MapOpenApi();
        app.MapPost("/v1/predict", (Func<HttpContext, Task<IResult>>)api.Predict).WithSummary("Classify one image (PNG/JPEG bytes, or JSON {\"shape\":[3,H,W],\"data\":[0…1 floats]}).");
        app.MapGet("/v1/admin/users/{user}/ledger", api.Ledger).WithSummary("Admin: a user's counts and termination.");
        app.MapPost("/v1/admin/users/{user}/reinstate", api.Reinstate).WithSummary("Admin: lift a termination and reset the counts.");
        app.MapGet("/v1/admin/terminated", (Func<HttpContext, Task<IResult>>)api.Terminated).WithSummary("Admin: terminated users.");
        app.MapGet("/v1/admin/audit", api.AuditTail).WithSummary("Admin: the last records of the audit log (?tail=N, default 100).");
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/readyz", (Func<HttpContext, Task<IResult>>)api.Ready);
        app.MapGet("/metrics", () => Results.Text(api.Metrics.Render(), "text/plain; version=0.0.4"));
        return app;
    }

    private sealed class Endpoints(GuardianHost host, ServerMetrics metrics)
    {
        private readonly ConcurrentDictionary<string, TokenBucketRateLimiter> _limiters = new(StringComparer.Ordinal);
        private readonly byte[]? _adminHash = host.Config.AdminKeyHash is { } hex ? Convert.FromHexString(hex) : null;

        public ServerMetrics Metrics => metrics;

        private static IResult Error(int status, string code, string message) => Results.Json(new { error = code, message }, statusCode: status);

        public async Task CatchAll(HttpContext ctx, RequestDelegate next)
        {
            try { await next(ctx); }
            catch (BadHttpRequestException e) when (!ctx.Response.HasStarted)
            {
                await BadRequest(e).ExecuteAsync(ctx);
            }
            catch (Exception e) when (!ctx.Response.HasStarted)
            {
                await Console.Error.WriteLineAsync($"mg serve: error on {ctx.Request.Method} {ctx.Request.Path}: {e}");
                await Error(500, "internal_error", "The request failed inside the server; it was logged.").ExecuteAsync(ctx);
            }
        }

        /// <summary>The user a key belongs to: its SHA-256 is looked up and the stored hash compared in constant time.</summary>
        private async Task<string?> Authenticate(HttpContext ctx)
        {
            var key = ApiKeys.FromAuthorizationHeader(ctx.Request.Headers.Authorization);
            if (key == null) return null;
            var hash = ApiKeys.Hash(key);
            var found = await host.Ledger.FindActiveByKeyHashAsync(hash, ctx.RequestAborted);
            return found is { } f && ApiKeys.Matches(hash, f.KeySha256) ? f.Name : null;
        }

        private static IResult Unauthorized(HttpContext ctx)
        {
            ctx.Response.Headers.WWWAuthenticate = "Bearer";
            return Error(401, "unauthorized", "A valid API key is required: Authorization: Bearer <key>.");
        }

        public async Task<IResult> Predict(HttpContext ctx)
        {
            var clock = Stopwatch.StartNew();
            var user = await Authenticate(ctx);
            if (user == null) { metrics.Rejected(); return Unauthorized(ctx); }

            var limiter = _limiters.GetOrAdd(user, _ => new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
            {
                TokenLimit = host.Config.Limits.RateBurst, TokensPerPeriod = Math.Max(1, (int)Math.Ceiling(host.Config.Limits.RatePerSecond / 10)),
                ReplenishmentPeriod = TimeSpan.FromSeconds(Math.Max(1, (int)Math.Ceiling(host.Config.Limits.RatePerSecond / 10)) / host.Config.Limits.RatePerSecond),
                QueueLimit = 0, AutoReplenishment = true,
            }));
            using var lease = limiter.AttemptAcquire();
            if (!lease.IsAcquired)
            {
                metrics.Rejected();
                var retry = lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromSeconds(1);
                ctx.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds)).ToString();
                return Error(429, "rate_limited", $"More than {host.Config.Limits.RatePerSecond} requests per second (burst {host.Config.Limits.RateBurst}); retry later.");
            }

            PlanarImage image;
            try { image = await ReadImage(ctx); }
            catch (BadHttpRequestException e)
            {
                metrics.Rejected();
                return BadRequest(e);
            }
            catch (UnsupportedMediaTypeException e)
            {
                metrics.Rejected();
                return Error(415, "unsupported_media_type", e.Message);
            }
            catch (Exception e) when (e is InvalidDataException or ArgumentException or JsonException)
            {
                metrics.Rejected();
                return Error(400, "bad_image", e.Message);
            }

            string? requestId = ctx.Request.Headers["Idempotency-Key"].FirstOrDefault();
            if (requestId is { Length: > 128 }) { metrics.Rejected(); return Error(400, "bad_request", "Idempotency-Key is at most 128 characters."); }
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
            timeout.CancelAfter(host.Config.Limits.RequestTimeoutMs);
            QueryOutcome outcome;
            // The ledger account the query counts against: the user's own, or (policy.accounts = network) their client network's.
            string account = host.Grouping.AccountFor(user, ctx.Connection.RemoteIpAddress?.ToString());
            // Retries are recognised per user: in a shared account one user's key must not swallow another's.
            if (account != user && requestId != null)
                requestId = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(user + "\n" + requestId)))[..32];
            try { outcome = await host.Guardian.QueryAsync(account, image, requestId, timeout.Token); }
            catch (GuardianOverloadedException e)
            {
                metrics.Rejected();
                ctx.Response.Headers.RetryAfter = "1";
                return Error(503, "overloaded", e.Message);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ctx.RequestAborted.IsCancellationRequested)
            {
                metrics.Rejected();
                ctx.Response.Headers.RetryAfter = "1";
                return Error(503, "timeout", $"The query was not screened within {host.Config.Limits.RequestTimeoutMs} ms; it was not counted.");
            }
            metrics.Observe(clock.Elapsed);
            if (outcome.Answer.Status == QueryStatus.Refused)
            {
                metrics.Refused();
                return Error(403, "user_terminated", "This account was terminated for sustained model-stealing queries; contact the operator.");
            }
            metrics.Answered(outcome.Evaluation!.Verdict.Flagged, outcome.Record?.TerminatedNow ?? false);
            return Results.Json(new { probabilities = outcome.Answer.Probabilities, label = outcome.Answer.Label });
        }

        /// <summary>
        /// The query's image. Image bodies are recognised by their signature (PNG, JPEG, BMP, GIF, WebP), whatever
        /// image type they declare; JSON bodies are tensors; any other declared type is refused before the body is read.
        /// The body must arrive within the request timeout.
        /// </summary>
        private async Task<PlanarImage> ReadImage(HttpContext ctx)
        {
            bool json = IsJson(ctx.Request.ContentType);
            if (!json && !IsImageOrUnspecified(ctx.Request.ContentType))
                throw new UnsupportedMediaTypeException($"Content-Type '{ctx.Request.ContentType}' is not accepted: send image/png, image/jpeg, "
                    + "image/bmp, image/gif, image/webp or application/octet-stream bytes (the format is read from the file's signature), "
                    + "or application/json {\"shape\":[3,H,W],\"data\":[…]}.");
            using var body = new MemoryStream();
            // The deadline cancels the pending read (not the read's token, which would leave Kestrel's body reader
            // mid-read), so the answer can still be written.
            var reader = ctx.Request.BodyReader;
            using (var deadline = new CancellationTokenSource(host.Config.Limits.RequestTimeoutMs))
            using (deadline.Token.Register(() => reader.CancelPendingRead()))
                while (true)
                {
                    var result = await reader.ReadAsync(ctx.RequestAborted);
                    foreach (var segment in result.Buffer) body.Write(segment.Span);
                    reader.AdvanceTo(result.Buffer.End);
                    if (result.IsCompleted) break;
                    if (result.IsCanceled)
                    {
                        // The rest of the body is not waited for: the connection closes after the answer.
                        ctx.Response.Headers.Connection = "close";
                        throw new BadHttpRequestException($"The request body did not arrive within {host.Config.Limits.RequestTimeoutMs} ms.", 408);
                    }
                }
            if (body.Length == 0) throw new InvalidDataException("The request body is empty: send PNG/JPEG bytes or a JSON tensor.");
            int maxSide = host.Config.Limits.MaxImageSide;
            var bytes = body.GetBuffer().AsSpan(0, (int)body.Length);
            return json ? TensorRequest.Parse(bytes, maxSide) : PlanarImage.From(RgbImage.Decode(bytes, maxSide));
        }

        private static bool IsJson(string? contentType) => MediaType(contentType) is "application/json";

        private static bool IsImageOrUnspecified(string? contentType) => MediaType(contentType) is null or "application/octet-stream"
            or "image/png" or "image/jpeg" or "image/jpg" or "image/bmp" or "image/x-ms-bmp" or "image/gif" or "image/webp";

        private static string? MediaType(string? contentType)
            => Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var parsed) ? parsed.MediaType.Value?.ToLowerInvariant() : null;

        /// <summary>A request Kestrel could not read (bad chunking, a body over the limit or too slow): its own 4xx status, as JSON.</summary>
        private IResult BadRequest(BadHttpRequestException e) => e.StatusCode switch
        {
            413 => Error(413, "body_too_large", $"The request body exceeds {host.Config.Limits.MaxBodyBytes} bytes."),
            408 => Error(408, "request_timeout", e.Message),
            _ => Error(e.StatusCode is >= 400 and < 500 ? e.StatusCode : 400, "bad_request", "The request could not be read: " + e.Message),
        };

        /// <summary>Admin endpoints: the admin key only. A user's key gets 403, no key or an unknown one 401.</summary>
        private async Task<IResult?> RequireAdmin(HttpContext ctx, string action, string? target)
        {
            var key = ApiKeys.FromAuthorizationHeader(ctx.Request.Headers.Authorization);
            if (key != null && _adminHash != null && ApiKeys.Matches(ApiKeys.Hash(key), _adminHash))
            {
                await host.Audit.AppendAsync("admin", target, new Dictionary<string, object?> { ["action"] = action }, CancellationToken.None);
                return null;
            }
            if (await Authenticate(ctx) != null) return Error(403, "admin_only", "This endpoint needs the admin key; API users can only query.");
            return Unauthorized(ctx);
        }

        public async Task<IResult> Ledger(HttpContext ctx, string user)
        {
            if (await RequireAdmin(ctx, "read_ledger", user) is { } denied) return denied;
            var e = await host.Ledger.GetAsync(user, ctx.RequestAborted);
            return e == null ? Error(404, "unknown_user", $"No queries recorded for '{user}'.") : Results.Json(Entry(e));
        }

        public async Task<IResult> Reinstate(HttpContext ctx, string user)
        {
            if (await RequireAdmin(ctx, "reinstate", user) is { } denied) return denied;
            return await host.Ledger.ReinstateAsync(user, ctx.RequestAborted)
                ? Results.Json(new { reinstated = user })
                : Error(409, "not_terminated", $"'{user}' is not terminated.");
        }

        public async Task<IResult> Terminated(HttpContext ctx)
        {
            if (await RequireAdmin(ctx, "list_terminated", null) is { } denied) return denied;
            return Results.Json((await host.Ledger.ListTerminatedAsync(ctx.RequestAborted)).Select(Entry));
        }

        public async Task<IResult> AuditTail(HttpContext ctx, int? tail)
        {
            if (await RequireAdmin(ctx, "read_audit", null) is { } denied) return denied;
            int n = Math.Clamp(tail ?? 100, 1, 10_000);
            var lines = await host.Audit.ReadTailAsync(n, ctx.RequestAborted);
            return Results.Text("[" + string.Join(",", lines) + "]", "application/json");
        }

        public async Task<IResult> Ready(HttpContext ctx)
        {
            try
            {
                await host.Ledger.CheckReachableAsync(ctx.RequestAborted);
                return Results.Json(new { status = "ready" });
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return Error(503, "not_ready", $"The ledger is not reachable: {e.Message}");
            }
        }

        private static object Entry(LedgerEntry e) => new
        {
            user = e.User, total = e.Total, flagged = e.Flagged, terminated = e.IsTerminated,
            terminated_at = e.TerminatedAt?.UtcDateTime.ToString("O"), reason = e.TerminationReason,
        };
    }
}

/// <summary>A declared Content-Type the API does not take (HTTP 415).</summary>
public sealed class UnsupportedMediaTypeException(string message) : Exception(message);

/// <summary>A JSON float tensor query: <c>{"shape": [3, H, W], "data": [values in 0…1, row-major]}</c>.</summary>
public static class TensorRequest
{
    public static PlanarImage Parse(ReadOnlySpan<byte> json, int maxSide)
    {
        using var doc = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 4 });
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("shape", out var shape) || !root.TryGetProperty("data", out var data)
            || shape.ValueKind != JsonValueKind.Array || data.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException("A JSON query is {\"shape\": [3, H, W], \"data\": [H·W·3 values in 0…1]}.");
        var dims = shape.EnumerateArray().Select(d => d.TryGetInt32(out int v) ? v : -1).ToArray();
        if (dims.Length != 3 || dims[0] != 3) throw new InvalidDataException($"shape must be [3, H, W] (RGB, planar), got [{string.Join(", ", dims)}].");
        int h = dims[1], w = dims[2];
        if (h < 1 || w < 1) throw new InvalidDataException($"shape [3, {h}, {w}] has no pixels.");
        if (h > maxSide || w > maxSide) throw new InvalidDataException($"Image is {w}×{h}; the largest side accepted is {maxSide}.");
        int count = 3 * h * w;
        if (data.GetArrayLength() != count) throw new InvalidDataException($"shape [3, {h}, {w}] needs {count} values, data has {data.GetArrayLength()}.");
        var values = new float[count];
        int i = 0;
        foreach (var v in data.EnumerateArray())
        {
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetSingle(out float f) || !(f >= 0f && f <= 1f))
                throw new InvalidDataException($"data[{i}] must be a number in 0…1.");
            values[i++] = f * 255f;
        }
        return new PlanarImage(w, h, values);
    }
}
