-- Edge counters in a lua_shared_dict (shared by all workers of one nginx),
-- rendered in the Prometheus text exposition format (version 0.0.4).

local concat, sort = table.concat, table.sort
local find, sub, format = string.find, string.sub, string.format

local _M = {}

local DICT_NAME = "herald_edge_metrics"

-- family -> help text; every family is rendered, with 0 when never counted.
local FAMILIES = {
    { "herald_edge_passthrough_total",
      "Requests on idempotent paths without an Idempotency-Key, left to the app." },
    { "herald_edge_claims_total",
      "Idempotency keys claimed in Redis (SET NX won); the request went to the app." },
    { "herald_edge_replays_total",
      "Duplicates answered from the stored response (Idempotent-Replayed: true)." },
    { "herald_edge_conflicts_total",
      "Duplicates refused while the first request was in flight (409, or 202 on queued paths)." },
    { "herald_edge_mismatches_total",
      "Keys reused with a different request fingerprint (422)." },
    { "herald_edge_invalid_keys_total",
      "Requests with an invalid Idempotency-Key header (400)." },
    { "herald_edge_fail_opens_total",
      "Requests let through without an edge decision because Redis failed or was slow." },
    { "herald_edge_stored_total",
      "Responses stored in Redis for replay." },
    { "herald_edge_released_total",
      "Claims released without storing (5xx, transient status, oversized or broken response)." },
    { "herald_edge_store_errors_total",
      "Responses that could not be stored or released because Redis failed." },
    { "herald_edge_cluster_redirects_total",
      "MOVED/ASK redirections followed in Redis Cluster mode." },
    { "herald_edge_cluster_slot_refreshes_total",
      "CLUSTER SLOTS refreshes of the slot map." },
    { "herald_edge_cache_fail_opens_total",
      "Anonymous GETs sent to the app past the cache: the publication generation could not be read." },
    { "herald_edge_cache_requests_total",
      "GETs of a cached location by the read cache's answer (X-Cache: HIT, MISS, EXPIRED, REVALIDATED, UPDATING, STALE, BYPASS)." },
}

-- Series that exist from the start, so a scrape shows zeros, not gaps.
local INITIAL = {
    'herald_edge_fail_opens_total{reason="redis_error"}',
    'herald_edge_fail_opens_total{reason="redis_backoff"}',
    'herald_edge_fail_opens_total{reason="edge_error"}',
    'herald_edge_cluster_redirects_total{kind="moved"}',
    'herald_edge_cluster_redirects_total{kind="ask"}',
    'herald_edge_cache_fail_opens_total{reason="redis_error"}',
    'herald_edge_cache_fail_opens_total{reason="redis_backoff"}',
    'herald_edge_cache_fail_opens_total{reason="edge_error"}',
    'herald_edge_cache_requests_total{status="HIT"}',
    'herald_edge_cache_requests_total{status="MISS"}',
    'herald_edge_cache_requests_total{status="BYPASS"}',
}

local function dict()
    return ngx.shared[DICT_NAME]
end

function _M.init()
    local d = dict()
    for _, fam in ipairs(FAMILIES) do
        if fam[1] ~= "herald_edge_fail_opens_total"
            and fam[1] ~= "herald_edge_cluster_redirects_total"
            and fam[1] ~= "herald_edge_cache_fail_opens_total"
            and fam[1] ~= "herald_edge_cache_requests_total" then
            d:add(fam[1], 0)
        end
    end
    for _, series in ipairs(INITIAL) do
        d:add(series, 0)
    end
end

-- name: a series name, with its labels already formatted: foo_total{a="b"}
function _M.inc(name, n)
    local newval, err = dict():incr(name, n or 1, 0)
    if not newval then
        ngx.log(ngx.WARN, "herald edge: metric ", name, " not counted: ", err)
    end
end

function _M.render()
    local d = dict()
    local by_family = {}
    for _, key in ipairs(d:get_keys(0)) do
        local brace = find(key, "{", 1, true)
        local family = brace and sub(key, 1, brace - 1) or key
        local list = by_family[family]
        if not list then
            list = {}
            by_family[family] = list
        end
        list[#list + 1] = key
    end
    local out = {}
    for _, fam in ipairs(FAMILIES) do
        local name = fam[1]
        out[#out + 1] = "# HELP " .. name .. " " .. fam[2]
        out[#out + 1] = "# TYPE " .. name .. " counter"
        local series = by_family[name]
        if series then
            sort(series)
            for _, key in ipairs(series) do
                out[#out + 1] = format("%s %d", key, d:get(key) or 0)
            end
        else
            out[#out + 1] = name .. " 0"
        end
    end
    ngx.header["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    ngx.print(concat(out, "\n"), "\n")
end

return _M
