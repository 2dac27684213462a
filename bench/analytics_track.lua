-- wrk script for bench/bench_analytics.sh: realistic POST /track beacons, with exact status counts.
--
--     wrk -s bench/analytics_track.lua [wrk options] URL -- MODE DEADLINE [SEED] [HOST]
--
-- MODE track: until the unix second DEADLINE every request is a POST /track with a JSON body picked at
--   random from a pool of 512 (3 sites, ~60 paths, 10 referrers or none, a few event types, 0-2 tags,
--   sometimes a `q` object, 40 user agents so the visitor hashes differ). From DEADLINE on, a
--   connection whose answer arrives sends GET /health instead (no event), and once every /track
--   request of a wrk thread is answered the thread stops (wrk.thread:stop()), so the rest of the run
--   is idle. Run wrk a second or two longer than DEADLINE: every /track request wrk sent has then been
--   answered and counted (a plain -d run ends with up to one request per connection unanswered, which
--   the server may well have recorded). The /track rate is n204 / (DEADLINE - the time wrk started),
--   measured by the caller; wrk's own Requests/sec does not apply.
-- MODE static: every request is GET / with `Host: HOST` (default root.localhost), for the same
--   client-side cost (a Lua request() and response() per request) as the track mode; DEADLINE unused.
--
-- done() prints key=value lines after wrk's summary, all prefixed "lua.":
--   lua.n204 (204 answers: /track acknowledged), lua.n200, lua.other (other statuses, "status:count,..."
--   or none), lua.track_sent (POST /track requests handed to wrk, see finish_if_answered),
--   lua.tail_sent (GET /health ones).
-- Each wrk thread seeds math.random with SEED * 1000 + its thread number.

local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("thread_no", #threads)
end

local sites = { "blog.example.com", "shop.example.net", "docs.example.org" }
local sections = { "posts", "docs", "products", "tags", "p" }
local referrers = {
    "https://news.example.org/item?id=%d", "https://www.google.com/", "https://duckduckgo.com/",
    "https://twitter.com/someone/status/%d", "https://www.reddit.com/r/rust/comments/%d/",
    "https://lobste.rs/s/%d", "https://github.com/owner/repo/issues/%d", "https://mail.example.com/",
    "https://blog.friend.example/links", "https://t.co/%d",
}
local types = { "pageview", "pageview", "pageview", "pageview", "pageview", "pageview", "click", "signup",
    "download", "scroll" }
local tags = { "launch", "beta", "campaign-a", "campaign-b", "v2", "mobile", "newsletter", "docs" }
local sources = { "newsletter", "twitter", "hn", "rss", "partner" }

local function pick(list)
    return list[math.random(#list)]
end

local function track_body()
    local parts = {}
    parts[#parts + 1] = string.format('"h":"%s"', pick(sites))
    -- A few popular pages, a long tail of others.
    local page = math.min(math.random(60), math.random(60))
    parts[#parts + 1] = string.format('"p":"/%s/page-%d-some-title"', sections[page % #sections + 1], page)
    parts[#parts + 1] = string.format('"e":"%s"', pick(types))
    local ntags = math.random(0, 4) - 2 -- 0 tags 3/5 of the time, else 1 or 2
    if ntags > 0 then
        local t = {}
        for i = 1, ntags do t[i] = '"' .. pick(tags) .. '"' end
        parts[#parts + 1] = '"t":[' .. table.concat(t, ",") .. "]"
    end
    if math.random(10) <= 6 then
        parts[#parts + 1] = string.format('"ref":"%s"', string.format(pick(referrers), math.random(99999)))
    end
    if math.random(5) == 1 then
        parts[#parts + 1] = string.format('"q":{"utm_source":"%s","n":%d}', pick(sources), math.random(9))
    end
    return "{" .. table.concat(parts, ",") .. "}"
end

function init(args)
    mode = args[1] or "track"
    deadline = tonumber(args[2]) or 0
    local seed = tonumber(args[3]) or 1
    local host = args[4] or "root.localhost"
    math.randomseed(seed * 1000 + (thread_no or 0))
    n204, n200, n_other, track_sent, tail_sent = 0, 0, 0, 0, 0
    other = {}
    pool = {}
    if mode == "track" then
        if deadline <= 0 then
            error("analytics_track.lua: pass the deadline (unix seconds) after the mode, e.g. -- track 1700000000")
        end
        for i = 1, 512 do
            local headers = {
                ["Content-Type"] = "application/json",
                ["User-Agent"] = string.format(
                    "Mozilla/5.0 (X11; Linux x86_64; rv:%d.0) Gecko/20100101 Firefox/%d.0", 100 + i % 40, 100 + i % 40),
            }
            pool[i] = wrk.format("POST", "/track", headers, track_body())
        end
        tail = wrk.format("GET", "/health")
    elseif mode == "static" then
        pool[1] = wrk.format("GET", "/", { ["Host"] = host })
    else
        error("analytics_track.lua: unknown mode '" .. tostring(mode) .. "' (track or static)")
    end
end

function request()
    if mode == "track" then
        if os.time() >= deadline then
            finish_if_answered()
            tail_sent = tail_sent + 1
            return tail
        end
        track_sent = track_sent + 1
        return pool[math.random(#pool)]
    end
    return pool[1]
end

-- After the deadline: stop this thread once each /track it sent has its answer (/track answers 204
-- or an error status; only the GET /health tail answers 200). wrk now and then calls request() twice
-- for one request it sends (a write that had to be retried before any byte went out), so a thread
-- may never see "all answered"; it also stops after 5000 tail answers (every connection has had
-- time to get its last /track answer: that is over 100 ms of requests) or a second after DEADLINE.
-- What is still unanswered then is reported: track_sent - n204 - other, an upper bound.
function finish_if_answered()
    if track_sent == n204 + n_other or n200 >= 5000 or os.time() >= deadline + 1 then
        wrk.thread:stop()
    end
end

function response(status, headers, body)
    if status == 204 then
        n204 = n204 + 1
    elseif status == 200 then
        n200 = n200 + 1
    else
        n_other = n_other + 1
        other[status] = (other[status] or 0) + 1
    end
    if mode == "track" and os.time() >= deadline then
        finish_if_answered()
    end
end

function done(summary, latency, requests)
    local t = { n204 = 0, n200 = 0, track_sent = 0, tail_sent = 0 }
    local o = {}
    for _, thread in ipairs(threads) do
        for k, _ in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
        for status, n in pairs(thread:get("other") or {}) do o[status] = (o[status] or 0) + n end
    end
    for _, k in ipairs({ "n204", "n200", "track_sent", "tail_sent" }) do
        io.write(string.format("lua.%s=%d\n", k, t[k]))
    end
    local keys = {}
    for status, _ in pairs(o) do keys[#keys + 1] = status end
    table.sort(keys)
    local out = {}
    for _, status in ipairs(keys) do out[#out + 1] = string.format("%d:%d", status, o[status]) end
    io.write("lua.other=" .. (#out > 0 and table.concat(out, ",") or "none") .. "\n")
end
