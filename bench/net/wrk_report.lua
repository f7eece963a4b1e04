-- wrk script for bench/net/run: no request() or response() hook, so wrk keeps its static
-- request (GET /, keep-alive, no pipelining). At the end prints one CSV line:
-- requests,duration_us,p50_us,p99_us,p999_us,errors   (errors: connect+read+write+timeout
-- plus responses whose status was not 2xx or 3xx)
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("%d,%d,%.1f,%.1f,%.1f,%d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.status + e.timeout))
end
