-- wrk script for bench/bench_vfs.sh: every request asks for a path picked uniformly at random.
--
--     wrk -s bench/vfs_random.lua [wrk options] URL -- COUNT [SEED] [FORMAT]
--
-- Paths are string.format(FORMAT, i) for i in 0..COUNT-1 (FORMAT defaults to "/%05d.bin"), matching
-- the names written by vfs_gen.py. Each wrk thread seeds math.random with SEED * 1000 + its thread
-- number, so a run is reproducible and the threads do not walk the same sequence. Requests are
-- pre-formatted once per thread (headers given with -H, e.g. Host, are included).

local threads = 0

function setup(thread)
    threads = threads + 1
    thread:set("thread_no", threads)
end

function init(args)
    count = tonumber(args[1])
    if not count or count < 1 then
        error("vfs_random.lua: pass the number of files after --, e.g. -- 5000 1")
    end
    local seed = tonumber(args[2]) or 1
    local fmt = args[3] or "/%05d.bin"
    math.randomseed(seed * 1000 + (thread_no or 0))
    requests = {}
    for i = 1, count do
        requests[i] = wrk.format(nil, string.format(fmt, i - 1))
    end
end

function request()
    return requests[math.random(count)]
end
