-- wrk script for POST /ask. Every request asks a question no earlier request of the run has
-- asked (so none is a cache hit), unless BENCH_REPEAT is set. Counts responses by status.
--
-- Settings come from the environment:
--   BENCH_QUESTIONS  a file, one question a line
--   BENCH_MODE       fast | accurate
--   BENCH_REPEAT     1: always the first question (all cache hits)
--   BENCH_THREADS    wrk's -t (default 2); request number g of the run is
--                    (counter - 1) * BENCH_THREADS + (thread - 1), so threads never overlap
--   BENCH_OFFSET     where g starts: the first pass over the file asks its questions as they
--                    are, later passes the same questions with a prefix (and the pass number
--                    once the prefixes are used up). Give the previous run's next_offset to
--                    the next run against the same server. Unset: a time-based offset, so
--                    that separate runs never repeat each other (all questions prefixed).
local questions = {}
for line in io.lines(os.getenv("BENCH_QUESTIONS")) do
  if line ~= "" then questions[#questions + 1] = line end
end
local mode = os.getenv("BENCH_MODE") or "fast"
local repeat_one = os.getenv("BENCH_REPEAT") == "1"
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
local offset = tonumber(os.getenv("BENCH_OFFSET") or "") or os.time() * 100000
local prefixes = {
  "Please answer:", "Quick question:", "I would like to know:", "Tell me:",
  "One more question:", "Can you say:", "According to the text:", "Briefly:",
}
local threads = {}
local id = 0
counter = 0

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

local function question(g)
  local n = #questions
  local q = questions[(g % n) + 1]
  local pass = math.floor(g / n)
  if pass == 0 then return q end
  q = prefixes[((pass - 1) % #prefixes) + 1] .. " " .. q
  if pass > #prefixes then q = q .. string.format(" (%.0f)", pass) end
  return q
end

function request()
  counter = counter + 1
  local q = questions[1]
  if not repeat_one then q = question(offset + (counter - 1) * nthreads + (tid - 1)) end
  return wrk.format(nil, "/ask", nil, '{"question": "' .. escape(q) .. '", "mode": "' .. mode .. '"}')
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  local most = 0
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for code, n in pairs(s) do counts[code] = (counts[code] or 0) + n end
    most = math.max(most, t:get("counter"))
  end
  local parts = {}
  for code, n in pairs(counts) do parts[#parts + 1] = '"' .. code .. '": ' .. n end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_s": %.3f, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "socket_errors": %d, ' ..
    '"timeouts": %d, "next_offset": %.0f, "statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout, offset + most * nthreads, table.concat(parts, ", ")))
end
