-- The edge's read cache (issue 16 item 7): which requests nginx's proxy cache
-- may answer, and under which key.
--
-- In the rewrite phase of a cached location, a GET with no Authorization, no
-- Cookie and no Upgrade header reads the publication generation from Redis
-- (one key, conf.cache_generation_key) and sets
--
--   $herald_edge_generation  the generation: the first part of proxy_cache_key
--   $herald_edge_nocache     "0": proxy_cache_bypass / proxy_no_cache let the
--                            cache answer and store
--
-- Every other request keeps $herald_edge_nocache = "1": nginx neither answers
-- it from the cache nor stores its response ($upstream_cache_status BYPASS).
--
-- The app sets a new generation whenever the public view of a card may have
-- changed, before its own in-process cache moves on (queries/feeds.py), so a
-- reader never gets an entry older than the app's own cache would answer.
-- Whether an answer may be stored at all, and for how long before it is
-- revalidated with its ETag, is the app's Cache-Control (public, max-age).
--
-- When Redis fails or is in back-off the request goes to the app uncached
-- (fail open, counted): without the generation an entry's freshness is unknown.
--
-- In the log phase every GET of a cached location is counted by the cache's
-- answer (herald_edge_cache_requests_total{status=HIT|MISS|EXPIRED|...}, the
-- X-Cache value): the dashboard's hit ratio.

local metrics = require "herald_edge.metrics"
local store = require "herald_edge.store"

local _M = {}

local conf

function _M.init(c)
    conf = c
end

local function fail_open(reason, err)
    metrics.inc('herald_edge_cache_fail_opens_total{reason="' .. reason .. '"}')
    ngx.log(ngx.INFO, "herald edge: cache bypassed (", reason, "): ", err)
end

local function decide()
    if ngx.req.get_method() ~= "GET" then
        return
    end
    local headers = ngx.req.get_headers(100)
    if headers["authorization"] ~= nil or headers["cookie"] ~= nil
        or headers["upgrade"] ~= nil then
        return
    end
    -- a value never used before, should the generation be missing from Redis
    local fresh = "edge-" .. ngx.var.request_id
    local generation, err, reason = store.call("generation", conf.cache_generation_key, fresh)
    if type(generation) ~= "string" then
        return fail_open(reason == "backoff" and "redis_backoff" or "redis_error",
            err or "generation is not a string")
    end
    ngx.var.herald_edge_generation = generation
    ngx.var.herald_edge_nocache = "0"
end

-- rewrite_by_lua entry point of a cached location
function _M.rewrite()
    local ok, err = pcall(decide)
    if not ok then
        fail_open("edge_error", err)
        ngx.log(ngx.ERR, "herald edge: cache decision failed, bypassing: ", err)
    end
end

-- log_by_lua entry point of a cached location
function _M.log()
    if ngx.req.get_method() ~= "GET" then
        return
    end
    local status = ngx.var.herald_edge_cache_status
    if status == nil or status == "" then
        status = "BYPASS"
    end
    metrics.inc('herald_edge_cache_requests_total{status="' .. status .. '"}')
end

return _M
