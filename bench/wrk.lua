-- wrk script for `python -m bench`: POST a fixed request, check every answer, stop after a
-- bounded number of responses, and print one machine-readable line `BENCH {json}`.
-- Arguments (after `--`):
--   1 request file   the body, sent as it is
--   2 expect file    bytes every 200 answer must contain ("" for any 200)
--   3 content type   e.g. application/json
--   4 header name    the token's header ("" for none), e.g. Authorization or X-API-Key
--   5 header value   the token
--   6 limit          responses per thread; the thread stops there

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *tp);
]]
local timespec = ffi.new("bench_timespec")

local function now_us()
    ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
    return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

local function slurp(path)
    if path == nil or path == "" then
        return ""
    end
    local file = assert(io.open(path, "rb"))
    local text = file:read("*a")
    file:close()
    return text
end

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    wrk.method = "POST"
    wrk.body = slurp(args[1])
    expected = slurp(args[2])
    wrk.headers["Content-Type"] = args[3] or "application/octet-stream"
    if args[4] ~= nil and args[4] ~= "" then
        wrk.headers[args[4]] = args[5] or ""
    end
    limit = tonumber(args[6] or "1000000")
    responses, mismatched, started, stopped_after = 0, 0, now_us(), 0
end

function response(status, headers, body)
    responses = responses + 1
    -- A plain find: the expected bytes are data, not a Lua pattern.
    if status == 200 and expected ~= "" and not string.find(body, expected, 1, true) then
        mismatched = mismatched + 1
    end
    if responses >= limit then
        -- wrk's own run time is always the full -d, so time a count-bounded run here.
        stopped_after = now_us() - started
        wrk.thread:stop()
    end
end

function done(summary, latency, requests)
    local bad, bounded_us = 0, 0
    for _, thread in ipairs(threads) do
        bad = bad + thread:get("mismatched")
        local after = thread:get("stopped_after")
        if after == 0 then
            bounded_us = -1 -- at least one thread ran for the whole duration
        elseif bounded_us >= 0 and after > bounded_us then
            bounded_us = after
        end
    end
    local e = summary.errors
    io.write(string.format(
        'BENCH {"requests": %d, "duration_us": %d, "bounded_us": %d, "p50_us": %d, '
        .. '"p99_us": %d, "mean_us": %.1f, "max_us": %d, "connect": %d, "read": %d, '
        .. '"write": %d, "status": %d, "timeout": %d, "mismatched": %d}\n',
        summary.requests, summary.duration, bounded_us, latency:percentile(50),
        latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write,
        e.status, e.timeout, bad))
end
