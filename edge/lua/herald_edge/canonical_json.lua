-- A canonical form of a JSON document, for request fingerprints: object
-- members sorted by key (byte order of UTF-8 = code point order, as Python's
-- json.dumps(sort_keys=True)), no insignificant whitespace, strings decoded and
-- re-escaped one way (only '"', '\' and control characters escaped), the last
-- of duplicate keys kept (as json.loads does). Numbers keep their text. So two
-- bodies that differ only in key order, whitespace or escaping get the same
-- fingerprint. Returns nil, err when the text is not JSON (the caller then
-- fingerprints the raw bytes).

local byte, char, find, sub, gsub = string.byte, string.char, string.find, string.sub, string.gsub
local format = string.format
local concat, sort = table.concat, table.sort
local tonumber = tonumber
local floor = math.floor

local _M = {}

local MAX_DEPTH = 128

local ESCAPES = { [34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f",
                  [110] = "\n", [114] = "\r", [116] = "\t" }

local function utf8_encode(cp)
    if cp < 0x80 then
        return char(cp)
    elseif cp < 0x800 then
        return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40)
    elseif cp < 0x10000 then
        return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
    end
    return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
                0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local function escape_char(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return format("\\u%04x", byte(c))
end

local function encode_string(s)
    return '"' .. gsub(s, '[%z\1-\31"\\]', escape_char) .. '"'
end

function _M.canonical(s)
    local pos = 1
    local len = #s

    local function skip_ws()
        pos = find(s, "[^ \t\r\n]", pos) or len + 1
    end

    local function parse_string()
        -- pos is at the opening quote; returns the decoded bytes
        local buf, n = {}, 0
        pos = pos + 1
        while true do
            local a = find(s, '[%z\1-\31"\\]', pos)
            if not a then
                return nil, "unterminated string"
            end
            if a > pos then
                n = n + 1
                buf[n] = sub(s, pos, a - 1)
            end
            local c = byte(s, a)
            if c == 34 then
                pos = a + 1
                return concat(buf, "", 1, n)
            elseif c == 92 then
                local e = byte(s, a + 1)
                if e == 117 then -- \uXXXX
                    local hex = sub(s, a + 2, a + 5)
                    if not find(hex, "^%x%x%x%x$") then
                        return nil, "bad \\u escape"
                    end
                    local cp = tonumber(hex, 16)
                    pos = a + 6
                    if cp >= 0xD800 and cp <= 0xDBFF and sub(s, pos, pos + 1) == "\\u" then
                        local hex2 = sub(s, pos + 2, pos + 5)
                        local lo = find(hex2, "^%x%x%x%x$") and tonumber(hex2, 16)
                        if lo and lo >= 0xDC00 and lo <= 0xDFFF then
                            cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
                            pos = pos + 6
                        end
                    end
                    n = n + 1
                    buf[n] = utf8_encode(cp)
                else
                    local rep = e and ESCAPES[e]
                    if not rep then
                        return nil, "bad escape"
                    end
                    n = n + 1
                    buf[n] = rep
                    pos = a + 2
                end
            else
                return nil, "control character in string"
            end
        end
    end

    local parse_value

    local function parse_object(depth)
        pos = pos + 1
        local members, keys, nkeys = {}, {}, 0
        skip_ws()
        if byte(s, pos) == 125 then
            pos = pos + 1
            return "{}"
        end
        while true do
            skip_ws()
            if byte(s, pos) ~= 34 then
                return nil, "object key expected"
            end
            local key, err = parse_string()
            if not key then
                return nil, err
            end
            skip_ws()
            if byte(s, pos) ~= 58 then
                return nil, "':' expected"
            end
            pos = pos + 1
            local value
            value, err = parse_value(depth + 1)
            if not value then
                return nil, err
            end
            if members[key] == nil then
                nkeys = nkeys + 1
                keys[nkeys] = key
            end
            members[key] = value
            skip_ws()
            local c = byte(s, pos)
            pos = pos + 1
            if c == 125 then
                break
            elseif c ~= 44 then
                return nil, "',' or '}' expected"
            end
        end
        sort(keys)
        local out = {}
        for i = 1, nkeys do
            out[i] = encode_string(keys[i]) .. ":" .. members[keys[i]]
        end
        return "{" .. concat(out, ",") .. "}"
    end

    local function parse_array(depth)
        pos = pos + 1
        local out, n = {}, 0
        skip_ws()
        if byte(s, pos) == 93 then
            pos = pos + 1
            return "[]"
        end
        while true do
            local value, err = parse_value(depth + 1)
            if not value then
                return nil, err
            end
            n = n + 1
            out[n] = value
            skip_ws()
            local c = byte(s, pos)
            pos = pos + 1
            if c == 93 then
                break
            elseif c ~= 44 then
                return nil, "',' or ']' expected"
            end
        end
        return "[" .. concat(out, ",") .. "]"
    end

    parse_value = function(depth)
        if depth > MAX_DEPTH then
            return nil, "too deep"
        end
        skip_ws()
        local c = byte(s, pos)
        if c == 123 then
            return parse_object(depth)
        elseif c == 91 then
            return parse_array(depth)
        elseif c == 34 then
            local str, err = parse_string()
            if not str then
                return nil, err
            end
            return encode_string(str)
        elseif c == 116 and sub(s, pos, pos + 3) == "true" then
            pos = pos + 4
            return "true"
        elseif c == 102 and sub(s, pos, pos + 4) == "false" then
            pos = pos + 5
            return "false"
        elseif c == 110 and sub(s, pos, pos + 3) == "null" then
            pos = pos + 4
            return "null"
        end
        local a, b = find(s, "^-?%d+", pos)
        if not a then
            return nil, "value expected"
        end
        local _, f = find(s, "^%.%d+", b + 1)
        if f then
            b = f
        end
        local _, x = find(s, "^[eE][-+]?%d+", b + 1)
        if x then
            b = x
        end
        pos = b + 1
        return sub(s, a, b)
    end

    local out, err = parse_value(0)
    if not out then
        return nil, err
    end
    skip_ws()
    if pos <= len then
        return nil, "trailing data"
    end
    return out
end

return _M
