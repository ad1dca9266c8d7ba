-- Shared by the bench scripts: count statuses per thread and print one JSON line.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  n5xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
  if status >= 500 then n5xx = n5xx + 1 end
end

function done(summary, latency, requests)
  local non2xx_total, n5xx_total = 0, 0
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + thread:get("non2xx")
    n5xx_total = n5xx_total + thread:get("n5xx")
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_s": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, '
    .. '"non2xx": %d, "n5xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    non2xx_total, n5xx_total,
    errors.connect + errors.read + errors.write + errors.timeout))
end
