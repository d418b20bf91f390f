-- wrk: optional per-request delay (WRK_DELAY_MS, uniform 0.5x..1.5x) and exact percentiles (µs).
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
function delay()
  if delay_ms <= 0 then return 0 end
  return math.floor(delay_ms * (0.5 + math.random()))
end
function done(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p95_us\": %d, \"p99_us\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
