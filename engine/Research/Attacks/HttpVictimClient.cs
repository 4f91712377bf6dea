using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace ModelGuardian.Engine.Attacks;

/// <summary>
/// An attacker's account on a running `mg serve`: each query is POSTed to /v1/predict as the JSON float
/// tensor (values in 0…1, written with round-trip precision) under the account's API key. A 403
/// user_terminated is a refusal; 429 and 503 are retried after their Retry-After (the server never
/// counts them); any other error stops the attack with the server's message.
/// </summary>
public sealed class HttpVictimClient(HttpClient http, Uri server, string apiKey, int classes) : IVictimClient
{
    /// <summary>Tries per query when the server answers 429 or 503 (each after its Retry-After).</summary>
    public const int MaxAttempts = 10;

    public int Classes => classes;

    public async Task<VictimAnswer[]> QueryAsync(QueryBatch batch, CancellationToken cancellationToken = default)
    {
        var answers = new VictimAnswer[batch.Count];
        for (int i = 0; i < batch.Count; i++)
        {
            string json = Json(batch.Image(i), batch.Side);
            HttpResponseMessage response;
            string body;
            for (int attempt = 1; ; attempt++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server, "/v1/predict"))
                {
                    Content = new StringContent(json, Encoding.UTF8, "application/json"),
                };
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
                response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
                body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                // 429 (rate limited) and 503 (overloaded, timeout) are never counted by the server: wait as told and send again.
                if (response.StatusCode is not (HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable) || attempt == MaxAttempts) break;
                var wait = response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1);
                response.Dispose();
                await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
            }
            using var _ = response;
            if (response.StatusCode == HttpStatusCode.Forbidden && body.Contains("\"user_terminated\"", StringComparison.Ordinal))
            {
                answers[i] = VictimAnswer.Refusal;
                continue;
            }
            if (!response.IsSuccessStatusCode) throw new HttpRequestException($"The server answered {(int)response.StatusCode}: {body}", null, response.StatusCode);
            using var doc = JsonDocument.Parse(body);
            var p = doc.RootElement.GetProperty("probabilities").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            answers[i] = new VictimAnswer(false, p);
        }
        return answers;
    }

    private static string Json(ReadOnlySpan<float> values, int side)
    {
        var sb = new StringBuilder(values.Length * 12);
        sb.Append("{\"shape\":[3,").Append(side).Append(',').Append(side).Append("],\"data\":[");
        for (int i = 0; i < values.Length; i++)
        {
            if (i > 0) sb.Append(',');
            sb.Append(values[i].ToString("R", CultureInfo.InvariantCulture)); // shortest text that parses back to the same float
        }
        return sb.Append("]}").ToString();
    }
}
