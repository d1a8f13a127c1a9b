-- wrk script for bench/echo.py: POST a fixed body with a token, check the echo, stop after a
-- bounded number of responses, and print one machine-readable line `BENCH {json}`.
-- Arguments (after `--`): token ("" for none), body size in bytes, responses per thread.

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

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    local token = args[1] or ""
    limit = tonumber(args[3] or "1000000")
    wrk.method = "POST"
    wrk.body = string.rep("x", tonumber(args[2] or "100"))
    wrk.headers["Content-Type"] = "application/octet-stream"
    if token ~= "" then
        wrk.headers["Authorization"] = token
    end
    responses, mismatched, started, stopped_after = 0, 0, now_us(), 0
end

function response(status, headers, body)
    responses = responses + 1
    if status == 200 and body ~= wrk.body then
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
