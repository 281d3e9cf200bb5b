-- wrk `done` hook: prints one machine-readable line that bench/sidecar/bench.py
-- parses. wrk's own --latency table stops at p99; p99.9 comes from here.
-- Latencies are in microseconds, duration too (wrk's units).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_REPORT requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
