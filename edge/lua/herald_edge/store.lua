-- The edge's Redis access: one key per operation, run as a Lua script on the
-- node that owns the key. Standalone mode talks to one server; cluster mode
-- routes each key by its hash slot (crc16.keyslot) to the master that
-- CLUSTER SLOTS names, caches the slot map in a lua_shared_dict (all workers)
-- and in each worker, follows MOVED (and refreshes the map) and ASK.
--
-- Every failure (refused, timeout, closed, unexpected reply) comes back as
-- nil, err so the caller can fail open. A node that refused a connection, or
-- timed out backoff_after_timeouts connects or replies within a second, is
-- skipped for backoff_ms (counted as a fail-open by the caller): a dead,
-- black-holed or hung Redis costs a few timeouts per back-off window, not
-- one per request, while one slow reply on a busy machine costs one request.

local redis = require "nginx.redis"
local crc16 = require "herald_edge.crc16"
local metrics = require "herald_edge.metrics"

local find, sub, format, gmatch = string.find, string.sub, string.format, string.gmatch
local concat = table.concat
local tonumber, tostring, type = tonumber, tostring, type

local _M = {}

local SLOTS_DICT = "herald_edge_state"

local conf
local script_sha = {}

-- Scripts: each touches exactly one key (KEYS[1]), so it is cluster-safe.
local SCRIPTS = {
    -- claim: SET NX PX the lock; nil when claimed, else the value already there.
    claim = [[
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
]],
    -- store: replace our own lock (ARGV[1]) by the response record.
    store = [[
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
]],
    -- generation: the publication generation of the edge cache; a missing one
    -- (a fresh or flushed Redis) is set to ARGV[1], a value never used before,
    -- so no entry cached under an earlier generation can match again.
    generation = [[
local g = redis.call('GET', KEYS[1])
if g then return g end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
]],
    -- release: delete our own lock so a retry can run.
    release = [[
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
]],
}

local function to_hex(bin)
    return (bin:gsub(".", function(c) return format("%02x", c:byte()) end))
end

function _M.init(c)
    conf = c
    for name, src in pairs(SCRIPTS) do
        script_sha[name] = to_hex(ngx.sha1_bin(src))
    end
end

local function state()
    return ngx.shared[SLOTS_DICT]
end

local function split_addr(addr)
    local host, port = addr:match("^(.*):(%d+)$")
    return host, tonumber(port)
end

local function node_is_down(host, port)
    return state():get("down:" .. host .. ":" .. port) ~= nil
end

local function mark_down(host, port)
    if conf.backoff_ms > 0 then
        state():set("down:" .. host .. ":" .. port, true, conf.backoff_ms / 1000)
    end
end

local function note_timeout(host, port)
    if conf.backoff_ms <= 0 then
        return
    end
    local st = state()
    local key = "timeouts:" .. host .. ":" .. port
    local n = st:incr(key, 1, 0, 1)
    if n and n >= conf.backoff_after_timeouts then
        st:delete(key)
        mark_down(host, port)
    end
end

local function connect(host, port)
    local red = redis:new()
    red:set_timeout(conf.connect_timeout_ms)
    local ok, err = red:connect(host, port, { pool_size = conf.pool_size })
    if not ok then
        return nil, err
    end
    red:set_timeout(conf.read_timeout_ms)
    if conf.password and (red:get_reused_times() or 0) == 0 then
        local res, aerr = red:auth(conf.password)
        if not res then
            red:close()
            return nil, "AUTH failed: " .. tostring(aerr)
        end
    end
    return red
end

local function keepalive(red)
    local ok, err = red:set_keepalive(conf.idle_timeout_ms, conf.pool_size)
    if not ok then
        ngx.log(ngx.INFO, "herald edge: redis keepalive: ", err)
    end
end

---------------------------------------------------------------- slot map --

-- worker-local copy of the shared slot map
local map_version = nil
local map_ranges = nil -- sorted array of { first, last, host, port }

local function parse_map(text)
    local ranges = {}
    for first, last, host, port in gmatch(text, "(%d+) (%d+) ([^ ]+) (%d+)\n") do
        ranges[#ranges + 1] = { tonumber(first), tonumber(last), host, tonumber(port) }
    end
    return ranges
end

local function current_ranges()
    local st = state()
    local version = st:get("slots_version")
    if version == nil then
        return nil
    end
    if version ~= map_version then
        local text = st:get("slots_map")
        if not text then
            return nil
        end
        map_ranges = parse_map(text)
        map_version = version
    end
    return map_ranges
end

local function owner_of(slot)
    local ranges = current_ranges()
    if not ranges then
        return nil
    end
    local lo, hi = 1, #ranges
    while lo <= hi do
        local mid = math.floor((lo + hi) / 2)
        local r = ranges[mid]
        if slot < r[1] then
            hi = mid - 1
        elseif slot > r[2] then
            lo = mid + 1
        else
            return r[3], r[4]
        end
    end
    return nil
end

local function fetch_slots(host, port)
    local red, err = connect(host, port)
    if not red then
        return nil, err
    end
    local res
    res, err = red:cluster("slots")
    if not res then
        if res == nil then
            red:close()
        else
            keepalive(red)
        end
        return nil, err
    end
    keepalive(red)
    local ranges = {}
    for _, entry in ipairs(res) do
        local master = entry[3]
        if type(entry[1]) == "number" and type(master) == "table" then
            local mhost = master[1]
            if mhost == nil or mhost == "" or mhost == "?" or mhost == ngx.null then
                mhost = host -- the node's own address is "the one you asked"
            end
            ranges[#ranges + 1] = { entry[1], entry[2], mhost, tonumber(master[2]) }
        end
    end
    if #ranges == 0 then
        return nil, "CLUSTER SLOTS returned no slot ranges"
    end
    table.sort(ranges, function(a, b) return a[1] < b[1] end)
    return ranges
end

-- Fetch CLUSTER SLOTS from a known node (seeds first, then the map's own
-- nodes) and publish it to every worker. One worker refreshes at a time; after
-- a failed refresh, none tries again for a second.
function _M.refresh_slots()
    local st = state()
    local locked = st:add("slots_refresh_lock", true, 1)
    if not locked then
        return current_ranges() ~= nil
    end
    local candidates, seen = {}, {}
    for _, addr in ipairs(conf.nodes) do
        if not seen[addr] then
            seen[addr] = true
            candidates[#candidates + 1] = addr
        end
    end
    for _, r in ipairs(current_ranges() or {}) do
        local addr = r[3] .. ":" .. r[4]
        if not seen[addr] then
            seen[addr] = true
            candidates[#candidates + 1] = addr
        end
    end
    local last_err = "no cluster node configured"
    for _, addr in ipairs(candidates) do
        local host, port = split_addr(addr)
        if host and not node_is_down(host, port) then
            local ranges, err = fetch_slots(host, port)
            if ranges then
                local lines = {}
                for i, r in ipairs(ranges) do
                    lines[i] = format("%d %d %s %d\n", r[1], r[2], r[3], r[4])
                end
                st:set("slots_map", concat(lines))
                st:incr("slots_version", 1, 0)
                st:delete("slots_refresh_lock")
                metrics.inc("herald_edge_cluster_slot_refreshes_total")
                return true
            end
            last_err = err
            ngx.log(ngx.WARN, "herald edge: CLUSTER SLOTS from ", addr, " failed: ", err)
        end
    end
    -- the lock stays until it expires (1 s): an unreachable cluster is not
    -- asked again by every request
    return nil, last_err
end

function _M.slot_map_text()
    return state():get("slots_map") or ""
end

------------------------------------------------------------- commands --

local function run_script(red, name, key, ...)
    local res, err = red:evalsha(script_sha[name], 1, key, ...)
    if res == false and find(err, "^NOSCRIPT") then
        res, err = red:eval(SCRIPTS[name], 1, key, ...)
    end
    return res, err
end

-- Run script `name` on the node owning `key`. Returns the reply (ngx.null for
-- a nil reply) or nil, err, reason where reason is "backoff" when the node is
-- in its back-off window and "error" otherwise.
function _M.call(name, key, ...)
    local host, port
    if conf.mode == "cluster" then
        local slot = crc16.keyslot(key)
        host, port = owner_of(slot)
        if not host then
            _M.refresh_slots()
            host, port = owner_of(slot)
        end
        if not host then
            -- no map yet: any seed answers with MOVED if it is not the owner
            host, port = split_addr(conf.nodes[1])
        end
    else
        host, port = split_addr(conf.nodes[1])
    end

    local asking = false
    for _ = 1, 4 do
        if node_is_down(host, port) then
            return nil, "redis " .. host .. ":" .. port .. " in back-off", "backoff"
        end
        local red, err = connect(host, port)
        if not red then
            if err == "timeout" then
                note_timeout(host, port)
            else
                mark_down(host, port) -- refused, unreachable: it is down
            end
            if conf.mode == "cluster" then
                _M.refresh_slots() -- a failover may have moved the slot
            end
            return nil, "connect " .. host .. ":" .. port .. ": " .. tostring(err), "error"
        end
        if asking then
            local ok, aerr = red:asking()
            if not ok then
                red:close()
                return nil, "ASKING: " .. tostring(aerr), "error"
            end
        end
        local res
        res, err = run_script(red, name, key, ...)
        if res == nil then
            red:close()
            if err == "timeout" then
                note_timeout(host, port)
            end
            return nil, host .. ":" .. port .. ": " .. tostring(err), "error"
        end
        keepalive(red)
        if res ~= false then
            return res
        end
        -- an error reply: follow a cluster redirection, give up on anything else
        local kind, target = err:match("^(%u+) %d+ (%S+)$")
        if kind == "MOVED" or kind == "ASK" then
            host, port = split_addr(target)
            if not host then
                return nil, "bad redirection: " .. err, "error"
            end
            asking = kind == "ASK"
            metrics.inc(kind == "MOVED" and 'herald_edge_cluster_redirects_total{kind="moved"}'
                                         or 'herald_edge_cluster_redirects_total{kind="ask"}')
            if kind == "MOVED" then
                _M.refresh_slots()
            end
        else
            return nil, "redis error: " .. tostring(err), "error"
        end
    end
    return nil, "too many cluster redirections", "error"
end

return _M
