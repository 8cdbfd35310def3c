-- wrk script of the API section (tests/bench/wrk.py): GETs of the paths in a file, one per line,
-- each picked at random, with the Authorization header from WRK_AUTHORIZATION; at the end one
-- JSON line with what wrk counted (latencies in microseconds).
local paths = {}
local authorization = os.getenv("WRK_AUTHORIZATION")

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  math.randomseed(tonumber(args[2]))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)], { ["Authorization"] = authorization })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,'
      .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
