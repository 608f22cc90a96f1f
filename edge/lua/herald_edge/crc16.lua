-- CRC16/XMODEM (polynomial 0x1021, initial value 0) and the Redis Cluster
-- key slot: crc16(key) mod 16384, where a key holding "{...}" with at least
-- one character between the first "{" and the next "}" hashes only that part
-- (a "hash tag"). Same algorithm as Redis' cluster.c keyHashSlot().

local bit = require "bit"

local band, bxor, lshift, rshift = bit.band, bit.bxor, bit.lshift, bit.rshift
local byte, find, sub = string.byte, string.find, string.sub

local _M = {}

local TABLE = {}
for i = 0, 255 do
    local crc = lshift(i, 8)
    for _ = 1, 8 do
        if band(crc, 0x8000) ~= 0 then
            crc = bxor(lshift(crc, 1), 0x1021)
        else
            crc = lshift(crc, 1)
        end
        crc = band(crc, 0xffff)
    end
    TABLE[i] = crc
end

local function crc16(s)
    local crc = 0
    for i = 1, #s do
        crc = band(bxor(lshift(crc, 8), TABLE[bxor(rshift(crc, 8), byte(s, i))]), 0xffff)
    end
    return crc
end

_M.crc16 = crc16

function _M.hash_tag(key)
    local open = find(key, "{", 1, true)
    if open then
        local close = find(key, "}", open + 1, true)
        if close and close > open + 1 then
            return sub(key, open + 1, close - 1)
        end
    end
    return key
end

function _M.keyslot(key)
    return band(crc16(_M.hash_tag(key)), 16383)
end

return _M
