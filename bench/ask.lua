-- wrk script for POST /ask: questions from the evaluation set, each made unique by a suffix
-- (so no request is a cache hit) unless BENCH_REPEAT is set. Counts responses by status.
-- Settings come from the environment: BENCH_QUESTIONS (a file, one question a line),
-- BENCH_MODE (fast | accurate), BENCH_REPEAT (1: always the first question).
local questions = {}
for line in io.lines(os.getenv("BENCH_QUESTIONS")) do questions[#questions + 1] = line end
local mode = os.getenv("BENCH_MODE") or "fast"
local repeat_one = os.getenv("BENCH_REPEAT") == "1"
local threads = {}
local counter = 0
local id = 0

local function escape(s)
  return (s:gsub('\\', '\\\\'):gsub('"', '\\"'))
end

function setup(thread)
  id = id + 1
  thread:set("tid", id)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local q = questions[(counter % #questions) + 1]
  if repeat_one then
    q = questions[1]
  else
    q = q .. " [" .. tid .. "-" .. counter .. "]"
  end
  return wrk.format(nil, "/ask", nil, '{"question": "' .. escape(q) .. '", "mode": "' .. mode .. '"}')
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for code, n in pairs(s) do counts[code] = (counts[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(counts) do parts[#parts + 1] = '"' .. code .. '": ' .. n end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_s": %.3f, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "socket_errors": %d, ' ..
    '"timeouts": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout, table.concat(parts, ", ")))
end
