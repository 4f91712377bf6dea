using System.Globalization;
using System.Text;

namespace ModelGuardian.Tools.Serve;

/// <summary>Counters and a latency histogram, exposed in the Prometheus text format.</summary>
public sealed class ServerMetrics
{
    private static readonly double[] Buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    private readonly long[] _bucketCounts = new long[Buckets.Length];
    private long _count, _sumMicros;
    private long _answered, _flagged, _refused, _terminated, _rejected;

    public void Answered(bool flagged, bool terminatedNow)
    {
        Interlocked.Increment(ref _answered);
        if (flagged) Interlocked.Increment(ref _flagged);
        if (terminatedNow) Interlocked.Increment(ref _terminated);
    }

    public void Refused() => Interlocked.Increment(ref _refused);

    /// <summary>Requests turned away before screening (auth, limits, bad input, overload).</summary>
    public void Rejected() => Interlocked.Increment(ref _rejected);

    public void Observe(TimeSpan latency)
    {
        double s = latency.TotalSeconds;
        for (int i = 0; i < Buckets.Length; i++) if (s <= Buckets[i]) Interlocked.Increment(ref _bucketCounts[i]);
        Interlocked.Increment(ref _count);
        Interlocked.Add(ref _sumMicros, (long)(s * 1e6));
    }

    public string Render()
    {
        var sb = new StringBuilder();
        void Counter(string name, string labels, long value) => sb.Append(CultureInfo.InvariantCulture, $"{name}{labels} {value}\n");
        sb.Append("# HELP mg_queries_total Predict requests by outcome.\n# TYPE mg_queries_total counter\n");
        Counter("mg_queries_total", "{outcome=\"answered\"}", Interlocked.Read(ref _answered));
        Counter("mg_queries_total", "{outcome=\"refused\"}", Interlocked.Read(ref _refused));
        Counter("mg_queries_total", "{outcome=\"rejected\"}", Interlocked.Read(ref _rejected));
        sb.Append("# HELP mg_flagged_total Answered queries the detector flagged (answered with DPreds).\n# TYPE mg_flagged_total counter\n");
        Counter("mg_flagged_total", "", Interlocked.Read(ref _flagged));
        sb.Append("# HELP mg_terminated_total Users terminated by this process.\n# TYPE mg_terminated_total counter\n");
        Counter("mg_terminated_total", "", Interlocked.Read(ref _terminated));
        sb.Append("# HELP mg_request_duration_seconds Predict latency.\n# TYPE mg_request_duration_seconds histogram\n");
        for (int i = 0; i < Buckets.Length; i++)
            sb.Append(CultureInfo.InvariantCulture, $"mg_request_duration_seconds_bucket{{le=\"{Buckets[i]}\"}} {Interlocked.Read(ref _bucketCounts[i])}\n");
        long count = Interlocked.Read(ref _count);
        sb.Append(CultureInfo.InvariantCulture, $"mg_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n");
        sb.Append(CultureInfo.InvariantCulture, $"mg_request_duration_seconds_sum {Interlocked.Read(ref _sumMicros) / 1e6}\n");
        sb.Append(CultureInfo.InvariantCulture, $"mg_request_duration_seconds_count {count}\n");
        return sb.ToString();
    }
}
