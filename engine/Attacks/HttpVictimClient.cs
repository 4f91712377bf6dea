using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace ModelGuardian.Engine.Attacks;

/// <summary>
/// An attacker's account on a running `mg serve`: each query is POSTed to /v1/predict as the JSON float
/// tensor (values in 0…1, written with round-trip precision) under the account's API key. A 403
/// user_terminated is a refusal; any other error stops the attack with the server's message.
/// </summary>
public sealed class HttpVictimClient(HttpClient http, Uri server, string apiKey, int classes) : IVictimClient
{
    public int Classes => classes;

    public async Task<VictimAnswer[]> QueryAsync(QueryBatch batch, CancellationToken cancellationToken = default)
    {
        var answers = new VictimAnswer[batch.Count];
        for (int i = 0; i < batch.Count; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server, "/v1/predict"))
            {
                Content = new StringContent(Json(batch.Image(i), batch.Side), Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
            using var response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
            string body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
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
