-- LuaBitOp 1.0 (Redis 7.0 deps/lua/src/lua_bit.c) in pure Lua 5.1.
-- Every value is a 32-bit pattern; results are returned signed, as LuaBitOp's
-- BRET does. Numbers are reduced as the C barg(): add 2^52+2^51 and keep the
-- low 32 bits of the double's bit pattern (so 1.5 -> 2, 2.5 -> 2, -1 -> -1).
local floor, frexp, tonumber, tostring, type, select, error =
  math.floor, math.frexp, tonumber, tostring, type, select, error
local sub = string.sub
local concat = table.concat

local TWO32 = 4294967296
local MAGIC = 6755399441055744.0   -- 2^52 + 2^51

-- unsigned 32-bit pattern of v; `name`/`i` only for the error text
local function barg(v, i, name, present, lvl)
  lvl = lvl or 3   -- the caller of the library function, seen from here
  local n = v
  if type(v) ~= "number" then
    n = nil
    if type(v) == "string" then n = tonumber(v) end
  end
  if n == nil then
    -- C: lua_tonumber gives 0, 0 + MAGIC has low bits 0, and 0 from a
    -- non-number is an error.
    if present == false then
      error(argmsg(string_format("bad argument #%d to '%s' (number expected, got no value)", i, name), lvl - 1), lvl)
    end
    error(argmsg(string_format("bad argument #%d to '%s' (number expected, got %s)", i, name, type(v)), lvl - 1), lvl)
  end
  local y = n + MAGIC
  if y >= 4503599627370496 and y < 9007199254740992 then
    return y % TWO32   -- the common case: the mantissa is y - 2^52
  end
  if y ~= y or y == 1/0 or y == -1/0 or y == 0 then return 0 end
  if y < 0 then y = -y end
  local m, e = frexp(y)         -- y = m * 2^e, 0.5 <= m < 1: mantissa m*2^53
  return (m * 9007199254740992) % TWO32
end

local function sret(b)
  if b >= 2147483648 then return b - TWO32 end
  return b
end

-- 8-bit tables for and/or/xor: op[a*256+b]
local AND, OR, XOR = {}, {}, {}
do
  for a = 0, 255 do
    for b = 0, 255 do
      local r_and, r_or, r_xor, bitv = 0, 0, 0, 1
      local x, y = a, b
      for _ = 1, 8 do
        local xa, yb = x % 2, y % 2
        if xa == 1 and yb == 1 then r_and = r_and + bitv end
        if xa == 1 or yb == 1 then r_or = r_or + bitv end
        if xa ~= yb then r_xor = r_xor + bitv end
        x, y, bitv = (x - xa) / 2, (y - yb) / 2, bitv * 2
      end
      local k = a * 256 + b
      AND[k], OR[k], XOR[k] = r_and, r_or, r_xor
    end
  end
end

local function op2(t, a, b)
  local r, m = 0, 1
  for _ = 1, 4 do
    local la, lb = a % 256, b % 256
    r = r + t[la * 256 + lb] * m
    a, b, m = (a - la) / 256, (b - lb) / 256, m * 256
  end
  return r
end

local function fold(t, name, ...)
  local nargs = select("#", ...)
  local x = ...
  local b = barg(x, 1, name, nargs >= 1, 4)
  for i = nargs, 2, -1 do   -- the C loop runs from the last argument down
    b = op2(t, b, barg((select(i, ...)), i, name, true, 4))
  end
  return sret(b)
end

local bit = {}

function bit.tobit(...) return sret(barg((...), 1, "tobit", select("#", ...) >= 1)) end
function bit.bnot(...) return sret(TWO32 - 1 - barg((...), 1, "bnot", select("#", ...) >= 1)) end
function bit.band(...) local r = fold(AND, "band", ...) return r end   -- no tail call: error levels
function bit.bor(...) local r = fold(OR, "bor", ...) return r end   -- no tail call: error levels
function bit.bxor(...) local r = fold(XOR, "bxor", ...) return r end   -- no tail call: error levels

local function shiftargs(name, ...)
  local nargs = select("#", ...)
  local x, n = ...
  local b = barg(x, 1, name, nargs >= 1, 4)
  return b, barg(n, 2, name, nargs >= 2, 4) % 32
end

function bit.lshift(...)
  local b, n = shiftargs("lshift", ...)
  return sret((b * 2 ^ n) % TWO32)
end
function bit.rshift(...)
  local b, n = shiftargs("rshift", ...)
  return sret(floor(b / 2 ^ n))
end
function bit.arshift(...)
  local b, n = shiftargs("arshift", ...)
  return floor(sret(b) / 2 ^ n)
end
function bit.rol(...)
  local b, n = shiftargs("rol", ...)
  return sret((b * 2 ^ n) % TWO32 + floor(b / 2 ^ (32 - n)) % TWO32)
end
function bit.ror(...)
  local b, n = shiftargs("ror", ...)
  return sret((b * 2 ^ (32 - n)) % TWO32 + floor(b / 2 ^ n))
end
function bit.bswap(...)
  local b = barg((...), 1, "bswap", select("#", ...) >= 1)
  local b0 = b % 256; b = (b - b0) / 256
  local b1 = b % 256; b = (b - b1) / 256
  local b2 = b % 256
  local b3 = (b - b2) / 256
  return sret(((b0 * 256 + b1) * 256 + b2) * 256 + b3)
end

local LOWER, UPPER = "0123456789abcdef", "0123456789ABCDEF"
function bit.tohex(...)
  local nargs = select("#", ...)
  local x, w = ...
  local b = barg(x, 1, "tohex", nargs >= 1)
  local n = 8
  if nargs >= 2 then n = sret(barg(w, 2, "tohex")) end
  local digits = LOWER
  if n == -2147483648 then n = -2147483647 end
  if n < 0 then n = -n; digits = UPPER end
  if n > 8 then n = 8 end
  local out = {}
  for i = n, 1, -1 do
    local d = b % 16
    out[i] = sub(digits, d + 1, d + 1)
    b = (b - d) / 16
  end
  return concat(out, "", 1, n)
end

return bit
