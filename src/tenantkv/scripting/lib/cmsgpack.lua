-- lua-cmsgpack 0.4.0 (Redis 7.0 deps/lua/src/lua_cmsgpack.c) in pure Lua 5.1.
-- Same type choices as the C code: integral numbers that fit an int64 are
-- packed as the smallest int, other numbers as float32 when exact, else
-- float64; strings as fixraw/str8/raw16/raw32; a table whose keys are exactly
-- 1..n is an array, anything else a map; tables nested 16 deep become nil.
local type, next, select, error, tonumber, tostring, pcall, unpack =
  type, next, select, error, tonumber, tostring, pcall, unpack
local floor, frexp, ldexp, huge = math.floor, math.frexp, math.ldexp, math.huge
local char, byte, sub, format = string.char, string.byte, string.sub, string.format
local concat = table.concat
local unpack = unpack

local MAX_NESTING = 16
local TWO32 = 4294967296

local function u16(n) return char(floor(n / 256) % 256, n % 256) end
local function u32(n)
  return char(floor(n / 16777216) % 256, floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
end

-- is d exactly a float32 (C: d == (double)(float)d)?
local function float_bits(d)
  if d ~= d then return nil end
  local sign = 0
  if d < 0 or (d == 0 and 1 / d < 0) then sign = 128; d = -d end
  if d == huge then return char(sign + 127, 128, 0, 0) end
  if d == 0 then return char(sign, 0, 0, 0) end
  local m, e = frexp(d)            -- d = m * 2^e, 0.5 <= m < 1
  local E = e + 126                -- biased exponent of 1.f * 2^(e-1)
  local mant
  if E >= 255 then return nil end
  if E <= 0 then                   -- float subnormal: multiple of 2^-149
    mant = ldexp(d, 149)
    if mant ~= floor(mant) then return nil end
    E = 0
  else
    mant = ldexp(m, 24)
    if mant ~= floor(mant) then return nil end
    mant = mant - 8388608
  end
  local hi = sign + floor(E / 2)
  local b2 = (E % 2) * 128 + floor(mant / 65536)
  return char(hi, b2, floor(mant / 256) % 256, mant % 256)
end

local function double_bits(d)
  local sign = 0
  if d ~= d then
    -- the sign of a NaN shows only in printf's "-nan"
    if sub(format("%f", d), 1, 1) == "-" then sign = 128 end
    return char(sign + 127, 248, 0, 0, 0, 0, 0, 0)
  end
  if d < 0 or (d == 0 and 1 / d < 0) then sign = 128; d = -d end
  if d == huge then return char(sign + 127, 240, 0, 0, 0, 0, 0, 0) end
  if d == 0 then return char(sign, 0, 0, 0, 0, 0, 0, 0) end
  local m, e = frexp(d)
  local E = e + 1022
  local mant
  if E <= 0 then
    mant = ldexp(d, 1074); E = 0
  else
    mant = ldexp(m, 53) - 4503599627370496
  end
  local hi = floor(mant / TWO32)
  local lo = mant - hi * TWO32
  return char(sign + floor(E / 16), (E % 16) * 16 + floor(hi / 65536)) ..
    char(floor(hi / 256) % 256, hi % 256) .. u32(lo)
end

local function int64_bytes(n)
  local hi = floor(n / TWO32)
  local lo = n - hi * TWO32
  if hi < 0 then hi = hi + TWO32 end
  return u32(hi) .. u32(lo)
end

local function encode_int(n)
  if n >= 0 then
    if n <= 127 then return char(n)
    elseif n <= 255 then return char(0xcc, n)
    elseif n <= 65535 then return "\205" .. u16(n)
    elseif n <= 4294967295 then return "\206" .. u32(n)
    else return "\207" .. int64_bytes(n) end
  else
    if n >= -32 then return char(n + 256)
    elseif n >= -128 then return char(0xd0, n + 256)
    elseif n >= -32768 then return "\209" .. u16(n + 65536)
    elseif n >= -2147483648 then return "\210" .. u32(n + TWO32)
    else return "\211" .. int64_bytes(n) end
  end
end

local function encode_number(n)
  -- C: IS_INT64_EQUIVALENT: not inf and (int64_t)n == n
  if n == floor(n) and n >= -9223372036854775808 and n < 9223372036854775808 then
    return encode_int(n)
  end
  local f = float_bits(n)
  if f then return "\202" .. f end
  return "\203" .. double_bits(n)
end

local encode

local function is_array(t)
  local count, max = 0, 0
  for k in next, t do
    -- C: a number key > 0 that survives a cast to int
    if type(k) ~= "number" or k <= 0 or k ~= floor(k) or k > 2147483647 then
      return false
    end
    if k > max then max = k end
    count = count + 1
  end
  return max == count
end

-- one-byte strings, made once
local CHR = {}
for b = 0, 255 do CHR[b] = char(b) end

encode = function(v, buf, n, level)
  local t = type(v)
  if t == "table" and level == MAX_NESTING then t = "nil" end
  if t == "string" then
    local len = #v
    if len < 32 then buf[n + 1] = CHR[0xa0 + len]
    elseif len <= 255 then buf[n + 1] = "\217" .. CHR[len]
    elseif len <= 65535 then buf[n + 1] = "\218" .. u16(len)
    else buf[n + 1] = "\219" .. u32(len) end
    buf[n + 2] = v
    n = n + 2
  elseif t == "boolean" then
    n = n + 1; buf[n] = v and "\195" or "\194"
  elseif t == "number" then
    n = n + 1
    if v >= 0 and v <= 127 and v == floor(v) then buf[n] = CHR[v]
    else buf[n] = encode_number(v) end
  elseif t == "table" then
    if is_array(v) then
      local len = #v
      n = n + 1
      if len <= 15 then buf[n] = CHR[0x90 + len]
      elseif len <= 65535 then buf[n] = "\220" .. u16(len)
      else buf[n] = "\221" .. u32(len) end
      level = level + 1
      for j = 1, len do n = encode(v[j], buf, n, level) end
    else
      local len = 0
      for _ in next, v do len = len + 1 end
      n = n + 1
      if len <= 15 then buf[n] = CHR[0x80 + len]
      elseif len <= 65535 then buf[n] = "\222" .. u16(len)
      else buf[n] = "\223" .. u32(len) end
      level = level + 1
      for k, val in next, v do
        n = encode(k, buf, n, level)
        n = encode(val, buf, n, level)
      end
    end
  else
    n = n + 1; buf[n] = "\192"
  end
  return n
end

local cmsgpack = {
  _NAME = "cmsgpack",
  _VERSION = "lua-cmsgpack 0.4.0",
  _COPYRIGHT = "Copyright (C) 2012, Salvatore Sanfilippo",
  _DESCRIPTION = "MessagePack C implementation for Lua",
}

function cmsgpack.pack(...)
  local nargs = select("#", ...)
  if nargs == 0 then
    error("bad argument #0 to 'pack' (MessagePack pack needs input.)", 0)
  end
  local buf, n = {}, 0
  for i = 1, nargs do
    n = encode((select(i, ...)), buf, n, 0)
  end
  return concat(buf, "", 1, n)
end

-- Decoding. A failure is raised as the constant EOF or BADFMT (tables, so
-- no Lua error text can be confused with them) and turned into the C text.
local EOF, BADFMT = {}, {}

local function be_uint(s, i, len)
  local v = 0
  for j = i, i + len - 1 do v = v * 256 + byte(s, j) end
  return v
end

local function decode_float(b1, b2, b3, b4)
  local sign = b1 >= 128 and -1 or 1
  local E = (b1 % 128) * 2 + floor(b2 / 128)
  local mant = ((b2 % 128) * 256 + b3) * 256 + b4
  if E == 255 then
    if mant == 0 then return sign * huge end
    return 0 / 0
  end
  if E == 0 then return sign * ldexp(mant, -149) end
  return sign * ldexp(mant + 8388608, E - 150)
end

local function decode_double(s, i)
  local b1, b2 = byte(s, i, i + 1)
  local sign = b1 >= 128 and -1 or 1
  local E = (b1 % 128) * 16 + floor(b2 / 16)
  local mant = ((b2 % 16) * 65536 + be_uint(s, i + 2, 2)) * TWO32 + be_uint(s, i + 4, 4)
  if E == 2047 then
    if mant == 0 then return sign * huge end
    return 0 / 0
  end
  if E == 0 then return sign * ldexp(mant, -1074) end
  return sign * ldexp(mant + 4503599627370496, E - 1075)
end

local decode

-- The C decoder keeps every value on the Lua stack of unpack() and checks
-- it against LUAI_MAXCSTACK (8000 slots): `used` counts those slots as C
-- does, so deep nesting or too many values fail where, and as, Redis fails.
local MAXCSTACK = 8000
local STACK_TYPE = "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"
local STACK_ARRAY = "stack overflow (in function mp_decode_to_lua_array)"
local STACK_FULL = "stack overflow (in function mp_unpack_full)"

-- returns value, next position; s has length `last`
local function decode_array(s, i, last, len, used)
  local t = {}
  used = used + 1                      -- the table
  if used + 1 > MAXCSTACK then error(STACK_ARRAY, 0) end
  for j = 1, len do
    t[j], i = decode(s, i, last, used + 1)   -- above the index
  end
  return t, i
end

local function decode_map(s, i, last, len, used)
  local t = {}
  used = used + 1
  for _ = 1, len do
    local k, v
    k, i = decode(s, i, last, used)
    v, i = decode(s, i, last, used + 1)
    -- lua_settable's own errors: no position (raised inside C)
    if k == nil then error({ "table index is nil" }, 0) end
    if k ~= k then error({ "table index is NaN" }, 0) end
    t[k] = v
  end
  return t, i
end

local function need(i, n, last)
  if last - i + 1 < n then error(EOF, 0) end
end

local function signed(v, bits)
  if v >= bits / 2 then return v - bits end
  return v
end

decode = function(s, i, last, used)
  need(i, 1, last)
  if used + 1 > MAXCSTACK then error(STACK_TYPE, 0) end
  local c = byte(s, i)
  if c < 128 then return c, i + 1
  elseif c >= 0xe0 then return c - 256, i + 1
  elseif c < 0x90 then return decode_map(s, i + 1, last, c - 0x80, used)
  elseif c < 0xa0 then return decode_array(s, i + 1, last, c - 0x90, used)
  elseif c < 0xc0 then
    local l = c - 0xa0
    need(i, 1 + l, last)
    return sub(s, i + 1, i + l), i + 1 + l
  elseif c == 0xc0 then return nil, i + 1
  elseif c == 0xc2 then return false, i + 1
  elseif c == 0xc3 then return true, i + 1
  elseif c == 0xcc then need(i, 2, last); return byte(s, i + 1), i + 2
  elseif c == 0xd0 then need(i, 2, last); return signed(byte(s, i + 1), 256), i + 2
  elseif c == 0xcd then need(i, 3, last); return be_uint(s, i + 1, 2), i + 3
  elseif c == 0xd1 then need(i, 3, last); return signed(be_uint(s, i + 1, 2), 65536), i + 3
  elseif c == 0xce then need(i, 5, last); return be_uint(s, i + 1, 4), i + 5
  elseif c == 0xd2 then need(i, 5, last); return signed(be_uint(s, i + 1, 4), TWO32), i + 5
  elseif c == 0xcf or c == 0xd3 then
    -- both become a signed int64 (C: uint64 through lua_pushinteger), then
    -- a double: one rounding of the exact value
    need(i, 9, last)
    local hi, lo = be_uint(s, i + 1, 4), be_uint(s, i + 5, 4)
    return signed(hi, TWO32) * TWO32 + lo, i + 9
  elseif c == 0xca then
    need(i, 5, last)
    return decode_float(byte(s, i + 1, i + 4)), i + 5
  elseif c == 0xcb then
    need(i, 9, last)
    return decode_double(s, i + 1), i + 9
  elseif c == 0xd9 then
    need(i, 2, last)
    local l = byte(s, i + 1)
    need(i, 2 + l, last)
    return sub(s, i + 2, i + 1 + l), i + 2 + l
  elseif c == 0xda then
    need(i, 3, last)
    local l = be_uint(s, i + 1, 2)
    need(i, 3 + l, last)
    return sub(s, i + 3, i + 2 + l), i + 3 + l
  elseif c == 0xdb then
    need(i, 5, last)
    local l = be_uint(s, i + 1, 4)
    need(i + 5, l, last)
    return sub(s, i + 5, i + 4 + l), i + 5 + l
  elseif c == 0xdc then
    need(i, 3, last)
    return decode_array(s, i + 3, last, be_uint(s, i + 1, 2), used)
  elseif c == 0xdd then
    need(i, 5, last)
    return decode_array(s, i + 5, last, be_uint(s, i + 1, 4), used)
  elseif c == 0xde then
    need(i, 3, last)
    return decode_map(s, i + 3, last, be_uint(s, i + 1, 2), used)
  elseif c == 0xdf then
    need(i, 5, last)
    return decode_map(s, i + 5, last, be_uint(s, i + 1, 4), used)
  end
  error(BADFMT, 0)
end

-- lua_tointeger: truncation toward zero; 0 for a non-number
local function tointeger(v)
  v = tonumber(v)
  if v == nil or v ~= v then return 0 end
  if v >= 0 then return floor(v) end
  return -floor(-v)
end

local function checkinteger(v, argn, name, present)
  local t = type(v)
  if (t ~= "number" and t ~= "string") or tonumber(v) == nil then
    error(string_format("bad argument #%d to '%s' (number expected, got %s)",
      argn, name, present and t or "no value"), 0)
  end
  return tointeger(v)
end

local function checkstring(v, name, present)
  local t = type(v)
  if t == "number" then return tostring(v) end
  if t ~= "string" then
    error(string_format("bad argument #1 to '%s' (string expected, got %s)",
      name, present and t or "no value"), 0)
  end
  return v
end

-- base: the stack slots unpack's own arguments hold
local function unpack_full(s, limit, offset, base)
  local len = #s
  if offset < 0 or limit < 0 then
    error(format("Invalid request to unpack with offset of %d and limit of %d.", offset, len), 0)
  elseif offset > len then
    error(format("Start offset %d greater than input length %d.", offset, len), 0)
  end
  local decode_all = limit == 0 and offset == 0
  if decode_all then limit = 2147483647 end
  local out, cnt = {}, 0
  local i = offset + 1
  while i <= len and cnt < limit do
    -- the string argument, then the values so far
    local ok, v, nexti = pcall(decode, s, i, len, base + cnt)
    if not ok then
      if v == EOF then error("Missing bytes in input.", 0) end
      if v == BADFMT then error("Bad data format in input.", 0) end
      error(v, 0)   -- a stack overflow text, or a table from decode_map
    end
    cnt = cnt + 1
    out[cnt] = v
    i = nexti
  end
  if not decode_all then
    if 1 + cnt + 1 > MAXCSTACK then error(STACK_FULL, 0) end
    return i > len and -1 or i - 1, many(out, 1, cnt)
  end
  return many(out, 1, cnt)
end

function cmsgpack.unpack(...)
  local s = checkstring((...), "unpack", select("#", ...) >= 1)
  -- C unpack() leaves every argument on the stack
  return unpack_full(s, 0, 0, select("#", ...))
end

function cmsgpack.unpack_one(...)
  local nargs = select("#", ...)
  local s, off = ...
  local offset = 0
  if off ~= nil then offset = checkinteger(off, 2, "unpack_one", true) end
  s = checkstring(s, "unpack_one", nargs >= 1)
  return unpack_full(s, 1, offset, 1)
end

function cmsgpack.unpack_limit(...)
  local nargs = select("#", ...)
  local s, lim, off = ...
  local limit = checkinteger(lim, 2, "unpack_limit", nargs >= 2)
  local offset = 0
  if off ~= nil then offset = checkinteger(off, 3, "unpack_limit", true) end
  s = checkstring(s, "unpack_limit", nargs >= 1)
  return unpack_full(s, limit, offset, 1)
end

for k, v in pairs(cmsgpack) do
  if type(v) == "function" then cmsgpack[k] = api(v) end
end

return cmsgpack
