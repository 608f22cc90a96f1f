-- Herald's edge idempotency filter (DESIGN.md invariant 3, CONTRACT.md "HTTP").
--
-- For a request on an idempotent path (a configured method, POST by default)
-- that carries an Idempotency-Key header, in the access phase:
--
--   * an invalid key (not 1-255 visible ASCII characters, or the header
--     given twice) gets 400 application/problem+json;
--   * the key is scoped by the caller (a hash of the Authorization header, or
--     "anonymous") and claimed in Redis with SET NX PX: the lock record holds
--     the request fingerprint (method, path, caller, canonical JSON body);
--   * the winner is proxied to the app through an internal subrequest; the
--     complete response is stored under the key (TTL key_ttl_ms) BEFORE it is
--     sent to the client, so a client that saw the response always gets the
--     replay on a retry. 5xx, 408/409/425/429, oversized or broken responses
--     release the lock instead, so a retry can run;
--   * a loser gets the stored response again with "Idempotent-Replayed: true"
--     and the original status, or 409 problem+json while the first is still in
--     flight (202 on paths configured as queued), or 422 problem+json when the
--     fingerprint differs;
--   * when Redis is unreachable, slow (tight timeouts) or in its back-off
--     window, the request goes to the app as if the edge were not there (fail
--     open) and is counted: the app's own idempotency check decides.
--
-- Requests without the header are passed to the app untouched: the edge
-- does not parse GraphQL, the app knows which operations need a key.

local ffi = require "ffi"
local cache = require "herald_edge.cache"
local canonical_json = require "herald_edge.canonical_json"
local crc16 = require "herald_edge.crc16"
local metrics = require "herald_edge.metrics"
local store = require "herald_edge.store"

local byte, find, format, sub, lower, gsub = string.byte, string.find, string.format,
    string.sub, string.lower, string.gsub
local concat = table.concat
local tonumber, tostring, type, pairs, ipairs = tonumber, tostring, type, pairs, ipairs

local _M = {}

local conf

-------------------------------------------------------------- hashing --

pcall(ffi.cdef, [[
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
]])

local digest_buf = ffi.new("unsigned char[32]")
local HEX = {}
for i = 0, 255 do
    HEX[i] = format("%02x", i)
end

local function sha256_hex(s)
    ffi.C.SHA256(s, #s, digest_buf)
    local out = {}
    for i = 0, 31 do
        out[i + 1] = HEX[digest_buf[i]]
    end
    return concat(out)
end

_M.sha256_hex = sha256_hex

---------------------------------------------------------- configuration --

local HTTP_METHODS = {
    POST = ngx.HTTP_POST, PUT = ngx.HTTP_PUT, PATCH = ngx.HTTP_PATCH,
    DELETE = ngx.HTTP_DELETE,
}

-- Never stored for replay (hop-by-hop, per-response or per-session headers).
local DROP_HEADERS = {
    ["connection"] = true, ["keep-alive"] = true, ["transfer-encoding"] = true,
    ["content-length"] = true, ["te"] = true, ["trailer"] = true, ["upgrade"] = true,
    ["proxy-authenticate"] = true, ["proxy-connection"] = true, ["date"] = true,
    ["server"] = true, ["set-cookie"] = true, ["idempotent-replayed"] = true,
}

-- Never sent back from a subrequest response (nginx sets its own).
local HOP_HEADERS = {
    ["connection"] = true, ["keep-alive"] = true, ["transfer-encoding"] = true,
    ["content-length"] = true, ["te"] = true, ["trailer"] = true, ["upgrade"] = true,
    ["proxy-connection"] = true, ["date"] = true, ["server"] = true,
}

-- Statuses that say "try again": releasing the claim lets the retry run.
local TRANSIENT = { [408] = true, [409] = true, [425] = true, [429] = true }

function _M.configure(c)
    assert(type(c) == "table", "herald edge: configuration table expected")
    assert(c.key_ttl_ms and c.key_ttl_ms >= 86400000, "herald edge: key_ttl_ms must be >= 24 h")
    assert(c.lock_ttl_ms and c.lock_ttl_ms > 0, "herald edge: lock_ttl_ms required")
    assert(c.redis and c.redis.nodes and #c.redis.nodes > 0, "herald edge: redis.nodes required")
    assert(pcall(function() return ffi.C.SHA256 end),
        "herald edge: SHA256 not found in the nginx process (libcrypto)")
    c.method_set = {}
    for _, m in ipairs(c.methods or { "POST" }) do
        c.method_set[m] = HTTP_METHODS[m] or error("herald edge: unsupported method " .. m)
    end
    c.problem_base = c.problem_base or "https://herald.example/problems/"
    c.edge_name = c.edge_name or "edge"
    c.internal_prefix = c.internal_prefix or "/_herald_edge_upstream"
    conf = c
    store.init(c.redis)
    cache.init(c)
    metrics.init()
end

-------------------------------------------------------------- responses --

local function json_string(s)
    return '"' .. gsub(s, '[%z\1-\31"\\]', function(ch)
        if ch == '"' then return '\\"' end
        if ch == "\\" then return "\\\\" end
        return format("\\u%04x", byte(ch))
    end) .. '"'
end

local function send(status, headers, body)
    ngx.status = status
    for name, value in pairs(headers) do
        ngx.header[name] = value
    end
    ngx.header["Content-Length"] = #body
    if body ~= "" then
        ngx.print(body)
    end
    return ngx.exit(ngx.HTTP_OK)
end

local function problem(status, slug, title, detail, code, extra_headers)
    local body = format('{"type":%s,"title":%s,"status":%d,"detail":%s,"code":%s}',
        json_string(conf.problem_base .. slug), json_string(title), status,
        json_string(detail), json_string(code))
    local headers = { ["Content-Type"] = "application/problem+json", ["Cache-Control"] = "no-store" }
    for k, v in pairs(extra_headers or {}) do
        headers[k] = v
    end
    return send(status, headers, body)
end

----------------------------------------------------------------- records --
-- lock:   "L\n" .. fingerprint(64 hex) .. "\n" .. nonce
-- record: "R\n" .. fingerprint .. "\n" .. status .. "\n" .. #headers .. "\n"
--         .. headers ("name: value\n" each) .. body

local function encode_headers(header_table)
    local lines, n = {}, 0
    for name, value in pairs(header_table) do
        if not DROP_HEADERS[lower(name)] then
            if type(value) == "table" then
                for _, v in ipairs(value) do
                    n = n + 1
                    lines[n] = name .. ": " .. tostring(v) .. "\n"
                end
            else
                n = n + 1
                lines[n] = name .. ": " .. tostring(value) .. "\n"
            end
        end
    end
    return concat(lines, "", 1, n)
end

local function decode_record(value)
    -- returns status, headers (name -> value or list), body; nil when malformed
    local p1 = find(value, "\n", 68, true)
    if not p1 then
        return nil
    end
    local status = tonumber(sub(value, 68, p1 - 1))
    local p2 = find(value, "\n", p1 + 1, true)
    if not status or not p2 then
        return nil
    end
    local hlen = tonumber(sub(value, p1 + 1, p2 - 1))
    if not hlen then
        return nil
    end
    local block = sub(value, p2 + 1, p2 + hlen)
    local body = sub(value, p2 + hlen + 1)
    local headers = {}
    for name, v in block:gmatch("([^:\n]+): ([^\n]*)\n") do
        local prev = headers[name]
        if prev == nil then
            headers[name] = v
        elseif type(prev) == "table" then
            prev[#prev + 1] = v
        else
            headers[name] = { prev, v }
        end
    end
    return status, headers, body
end

------------------------------------------------------------------ access --

local function read_body()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if body then
        return body
    end
    local path = ngx.req.get_body_file()
    if not path then
        return ""
    end
    local f, err = io.open(path, "rb")
    if not f then
        error("cannot read the buffered request body: " .. tostring(err))
    end
    body = f:read("*a")
    f:close()
    return body
end

local function caller_scope()
    local auth = ngx.var.http_authorization
    if auth == nil or auth == "" then
        return "anonymous"
    end
    return sub(sha256_hex(auth), 1, 32)
end

local function fingerprint(method, scope, body)
    local canon = canonical_json.canonical(body)
    local form = canon and ("json\n" .. canon) or ("raw\n" .. body)
    return sha256_hex(method .. "\n" .. ngx.var.uri .. "\n" .. scope .. "\n" .. form)
end

local function fail_open(reason, err)
    metrics.inc('herald_edge_fail_opens_total{reason="' .. reason .. '"}')
    if reason ~= "redis_backoff" then
        ngx.log(ngx.WARN, "herald edge: fail open (", reason, "): ", err)
    end
    -- returning from the access phase: proxy_pass sends the request to the app
end

local function finish_winner(rkey, lock, fp, method)
    local res = ngx.location.capture(conf.internal_prefix .. ngx.var.uri, {
        method = conf.method_set[method],
        body = ngx.ctx.herald_body,
        args = ngx.var.args,
    })
    local status = res.status
    local body = res.body or ""
    local keep
    if res.truncated then
        keep = false
    elseif status >= 500 or status < 200 or TRANSIENT[status] then
        keep = false
    elseif #body > conf.max_stored_bytes then
        keep = false
    else
        keep = true
    end

    if keep then
        local headers = encode_headers(res.header)
        local record = "R\n" .. fp .. "\n" .. status .. "\n" .. #headers .. "\n" .. headers .. body
        local ok, err = store.call("store", rkey, lock, record, conf.key_ttl_ms)
        if ok == 1 then
            metrics.inc("herald_edge_stored_total")
        else
            metrics.inc("herald_edge_store_errors_total")
            ngx.log(ngx.WARN, "herald edge: response not stored: ", err or "lock lost (expired?)")
        end
    else
        local ok, err = store.call("release", rkey, lock)
        if ok then
            metrics.inc("herald_edge_released_total")
        else
            metrics.inc("herald_edge_store_errors_total")
            ngx.log(ngx.WARN, "herald edge: claim not released: ", err)
        end
    end

    if res.truncated then
        return problem(502, "upstream-response-incomplete", "Upstream response incomplete",
            "The application's response was cut off; the request may be retried with the same key.",
            "UPSTREAM_INCOMPLETE")
    end
    local headers = {}
    for name, value in pairs(res.header) do
        if not HOP_HEADERS[lower(name)] then
            headers[name] = value
        end
    end
    return send(status, headers, body)
end

local function decide(queued)
    local method = ngx.req.get_method()
    if not conf.method_set[method] then
        return
    end
    local key = ngx.req.get_headers(200)["idempotency-key"]
    if key == nil then
        metrics.inc("herald_edge_passthrough_total")
        return
    end
    if type(key) == "table" then
        metrics.inc("herald_edge_invalid_keys_total")
        return problem(400, "idempotency-key-invalid", "Invalid Idempotency-Key",
            "Send exactly one Idempotency-Key header.", "IDEMPOTENCY_KEY_INVALID")
    end
    if #key < 1 or #key > 255 or find(key, "[^\33-\126]") then
        metrics.inc("herald_edge_invalid_keys_total")
        return problem(400, "idempotency-key-invalid", "Invalid Idempotency-Key",
            "The Idempotency-Key must be 1 to 255 visible ASCII characters.",
            "IDEMPOTENCY_KEY_INVALID")
    end

    local body = read_body()
    local scope = caller_scope()
    local fp = fingerprint(method, scope, body)
    local rkey = conf.key_prefix .. scope .. ":" .. sha256_hex(key)
    local lock = "L\n" .. fp .. "\n" .. conf.edge_name .. ":" .. ngx.var.request_id

    local existing, err, reason = store.call("claim", rkey, lock, conf.lock_ttl_ms)
    if existing == nil then
        return fail_open(reason == "backoff" and "redis_backoff" or "redis_error", err)
    end

    if existing == ngx.null then
        metrics.inc("herald_edge_claims_total")
        ngx.ctx.herald_body = body
        return finish_winner(rkey, lock, fp, method)
    end

    if type(existing) ~= "string" or #existing < 68 then
        return fail_open("redis_error", "unexpected value under " .. rkey)
    end
    if sub(existing, 3, 66) ~= fp then
        metrics.inc("herald_edge_mismatches_total")
        return problem(422, "idempotency-key-reused", "Idempotency-Key reused",
            "This Idempotency-Key was already used with a different request.",
            "IDEMPOTENCY_KEY_REUSED")
    end
    local kind = sub(existing, 1, 1)
    if kind == "L" then
        metrics.inc("herald_edge_conflicts_total")
        if queued then
            return send(202, {
                ["Content-Type"] = "application/json",
                ["Cache-Control"] = "no-store",
                ["Retry-After"] = "1",
            }, '{"status":"queued","code":"REQUEST_QUEUED","detail":'
                .. json_string("The first request with this Idempotency-Key is still being "
                .. "processed; repeat it later to get its response.") .. "}")
        end
        return problem(409, "request-in-progress", "Request in progress",
            "A request with this Idempotency-Key is still being processed; retry later.",
            "REQUEST_IN_PROGRESS", { ["Retry-After"] = "1" })
    end
    local status, headers, stored_body = decode_record(existing)
    if kind ~= "R" or not status then
        return fail_open("redis_error", "malformed record under " .. rkey)
    end
    metrics.inc("herald_edge_replays_total")
    headers["Idempotent-Replayed"] = "true"
    return send(status, headers, stored_body)
end

-- access_by_lua entry point of an idempotent location
function _M.access(queued)
    local ok, err = pcall(decide, queued)
    if not ok then
        metrics.inc('herald_edge_fail_opens_total{reason="edge_error"}')
        ngx.log(ngx.ERR, "herald edge: internal error, failing open: ", err)
    end
end

------------------------------------------------------------ status server --

-- POST one key per line, get "slot\n" per key (tests compare with CLUSTER KEYSLOT)
function _M.keyslot_endpoint()
    ngx.req.read_body()
    local body = ngx.req.get_body_data() or ""
    local out = {}
    for line in body:gmatch("([^\n]*)\n") do
        out[#out + 1] = crc16.keyslot(line)
    end
    ngx.header["Content-Type"] = "text/plain"
    ngx.print(concat(out, "\n"), "\n")
end

function _M.slots_endpoint()
    if conf.redis.mode == "cluster" and store.slot_map_text() == "" then
        store.refresh_slots()
    end
    ngx.header["Content-Type"] = "text/plain"
    ngx.print(store.slot_map_text())
end

return _M
