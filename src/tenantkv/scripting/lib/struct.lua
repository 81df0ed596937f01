-- struct (Roberto Ierusalimschy's lstrlib pack, Redis 7.0
-- deps/lua/src/lua_struct.c) in pure Lua 5.1, as compiled for x86-64
-- Linux: little endian native, short 2, int 4, long 8, size_t 8, MAXALIGN 8,
-- integers up to 32 bytes carried in 64 bits (as the C Uinttype).
local type, select, error, tonumber, tostring, pcall, unpack =
  type, select, error, tonumber, tostring, pcall, unpack
local floor, frexp, ldexp, huge = math.floor, math.frexp, math.ldexp, math.huge
local byte, char, sub, find, format, rep, reverse =
  string.byte, string.char, string.sub, string.find, string.format, string.rep, string.reverse
local concat = table.concat
local unpack = unpack

local TWO32 = 4294967296
local MAXINTSIZE = 32
local MAXALIGN = 8
local BIG, LITTLE = 0, 1
local INT_MAX = 2147483647

local function argerror(narg, fname, msg)
  error(format("bad argument #%d to '%s' (%s)", narg, fname, msg), 0)
end

local function typeerror(narg, fname, expected, v, present)
  local got = type(v)
  if not present then
    -- C pack() pushes a nil mark after its arguments: the first one missing
    -- reads as nil, later ones as no value
    got = present == false and "no value" or "nil"
  end
  argerror(narg, fname, format("%s expected, got %s", expected, got))
end

local function checkstring(v, narg, fname, present)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return tostring(v) end
  typeerror(narg, fname, "string", v, present)
end

local function checknumber(v, narg, fname, present)
  local n = (type(v) == "number" or type(v) == "string") and tonumber(v) or nil
  if n == nil then typeerror(narg, fname, "number", v, present) end
  return n
end

local function trunc(n)
  if n >= 0 then return floor(n) end
  return -floor(-n)
end

-- small non-negative integers only
local function band(a, b)
  local r, m = 0, 1
  while a > 0 and b > 0 do
    local x, y = a % 2, b % 2
    if x == 1 and y == 1 then r = r + m end
    a, b, m = (a - x) / 2, (b - y) / 2, m * 2
  end
  return r
end

-- the C getnum(): digits at fmt[i...]; returns value, next index
local function getnum(fmt, i, df)
  local _, e = find(fmt, "^%d+", i)
  if not e then return df, i end
  local a = 0
  for j = i, e do
    local d = byte(fmt, j) - 48
    if a > floor(INT_MAX / 10) or a * 10 > INT_MAX - d then
      error("integral size overflow", 0)
    end
    a = a * 10 + d
  end
  return a, e + 1
end

local SIZES = { B = 1, b = 1, H = 2, h = 2, L = 8, l = 8, T = 8, f = 4, d = 8, x = 1 }

local function optsize(opt, fmt, i)
  local s = SIZES[opt]
  if s then return s, i end
  if opt == "c" then return getnum(fmt, i, 1) end
  if opt == "i" or opt == "I" then
    local sz
    sz, i = getnum(fmt, i, 4)
    if sz > MAXINTSIZE then
      error(format("integral size %d is larger than limit of %d", sz, MAXINTSIZE), 0)
    end
    return sz, i
  end
  return 0, i
end

local function gettoalign(len, h, opt, size)
  if size == 0 or opt == "c" then return 0 end
  if size > h.align then size = h.align end
  return band((size - band(len, size - 1)) % TWO32, size - 1)
end

local function controloptions(opt, fmt, i, h, fname)
  if opt == " " then return i end
  if opt == ">" then h.endian = BIG; return i end
  if opt == "<" then h.endian = LITTLE; return i end
  if opt == "!" then
    local a
    a, i = getnum(fmt, i, MAXALIGN)
    if not (a > 0 and band(a, a - 1) == 0) then
      error(format("alignment %d is not a power of 2", a), 0)
    end
    h.align = a
    return i
  end
  argerror(1, fname, format("invalid format option '%s'", opt))
end

-- the format ends at a NUL, as a C string
local function cut(fmt)
  local z = find(fmt, "\0", 1, true)
  if z then return sub(fmt, 1, z - 1) end
  return fmt
end

local function u32le(n)
  return char(n % 256, floor(n / 256) % 256, floor(n / 65536) % 256, floor(n / 16777216) % 256)
end

local function putinteger(n, endian, size)
  -- C: (Uinttype)(Inttype)n for n < 0, else (Uinttype)n; 64 bits at most
  local t = trunc(n)
  local hi, lo
  if n ~= n then hi, lo = 2147483648, 0      -- x86-64 gcc: 0x8000000000000000
  elseif t >= 18446744073709551616 then hi, lo = 0, 0
  elseif t < 0 then
    if t < -9223372036854775808 then hi, lo = 2147483648, 0
    else
      hi = floor(t / TWO32); lo = t - hi * TWO32; hi = hi + TWO32
    end
  else
    hi = floor(t / TWO32); lo = t - hi * TWO32
  end
  local bytes = u32le(lo) .. u32le(hi)   -- value's bytes, low first
  if size <= 8 then bytes = sub(bytes, 1, size)
  else bytes = bytes .. rep("\0", size - 8) end
  if endian == BIG then bytes = reverse(bytes) end
  return bytes
end

local function round_even(x)
  local r = floor(x)
  local f = x - r
  if f > 0.5 or (f == 0.5 and r % 2 == 1) then r = r + 1 end
  return r
end

local function float_bytes(d)
  -- (float)d, round to nearest even; little endian bytes
  local sign = 0
  if d ~= d then   -- a quiet NaN of the same sign (printf shows the sign)
    if sub(format("%f", d), 1, 1) == "-" then return "\0\0\192\255" end
    return "\0\0\192\127"
  end
  if d < 0 or (d == 0 and 1 / d < 0) then sign = 2147483648; d = -d end
  local bits
  if d == huge then bits = 255 * 8388608
  elseif d == 0 then bits = 0
  else
    local m, e = frexp(d)
    local E = e + 126
    if E <= 0 then
      bits = round_even(ldexp(d, 149))          -- subnormal (or the smallest normal)
    else
      bits = E * 8388608 + round_even(ldexp(m, 24)) - 8388608
    end
    if bits >= 255 * 8388608 then bits = 255 * 8388608 end
  end
  return u32le(sign + bits)
end

local function double_bytes(d)
  local sign = 0
  if d ~= d then
    if sub(format("%f", d), 1, 1) == "-" then sign = 2147483648 end
    return u32le(0) .. u32le(sign + 2146959360)
  end
  if d < 0 or (d == 0 and 1 / d < 0) then sign = 2147483648; d = -d end
  if d == huge then return u32le(0) .. u32le(sign + 2146435072) end
  if d == 0 then return u32le(0) .. u32le(sign) end
  local m, e = frexp(d)
  local E = e + 1022
  local mant
  if E <= 0 then mant = ldexp(d, 1074); E = 0
  else mant = ldexp(m, 53) - 4503599627370496 end
  local hi = floor(mant / TWO32)
  local lo = mant - hi * TWO32
  return u32le(lo) .. u32le(sign + E * 1048576 + hi)
end

local function le_uint32(s, i)
  local a, b, c, d = byte(s, i, i + 3)
  return ((d * 256 + c) * 256 + b) * 256 + a
end

local function float_value(s, i)   -- 4 little-endian bytes at i
  local bits = le_uint32(s, i)
  local sign = 1
  if bits >= 2147483648 then sign = -1; bits = bits - 2147483648 end
  local E = floor(bits / 8388608)
  local mant = bits % 8388608
  if E == 255 then
    if mant == 0 then return sign * huge end
    return 0 / 0
  end
  if E == 0 then return sign * ldexp(mant, -149) end
  return sign * ldexp(mant + 8388608, E - 150)
end

local function double_value(s, i)  -- 8 little-endian bytes at i
  local lo, hi = le_uint32(s, i), le_uint32(s, i + 4)
  local sign = 1
  if hi >= 2147483648 then sign = -1; hi = hi - 2147483648 end
  local E = floor(hi / 1048576)
  local mant = (hi % 1048576) * TWO32 + lo
  if E == 2047 then
    if mant == 0 then return sign * huge end
    return 0 / 0
  end
  if E == 0 then return sign * ldexp(mant, -1074) end
  return sign * ldexp(mant + 4503599627370496, E - 1075)
end

local function getinteger(s, i, endian, issigned, size)
  -- C: a 64-bit accumulator keeps the last 8 bytes shifted in
  local b
  if endian == BIG then
    b = reverse(sub(s, i, i + size - 1))          -- low byte first
  else
    b = sub(s, i, i + size - 1)
  end
  if size > 8 then b = sub(b, 1, 8) end
  b = b .. rep("\0", 8 - #b)
  local lo, hi = le_uint32(b, 1), le_uint32(b, 5)
  if not issigned then return hi * TWO32 + lo end
  local p = (size * 8 - 1) % 64                   -- x86 masks the shift count
  if p >= 32 then
    local q = 2 ^ (p - 32)
    if hi >= q then return (hi % q - q) * TWO32 + lo end
  else
    local q = 2 ^ p
    if hi > 0 or lo >= q then return lo % q - q end
  end
  return hi * TWO32 + lo
end

local struct = {}

-- true: given; nil: the nil mark right after the arguments; false: none
local function packarg(arg, nargs)
  if arg <= nargs then return true end
  if arg == nargs + 1 then return nil end
  return false
end

function struct.pack(...)
  local nargs = select("#", ...)
  local fmt = cut(checkstring((...), 1, "pack", nargs >= 1))
  local h = { endian = LITTLE, align = 1 }
  local arg = 2
  local totalsize = 0
  local buf, nb = {}, 0
  local i, flen = 1, #fmt
  while i <= flen do
    local opt = sub(fmt, i, i)
    i = i + 1
    local size
    size, i = optsize(opt, fmt, i)
    local toalign = gettoalign(totalsize, h, opt, size)
    totalsize = totalsize + toalign
    if toalign > 0 then nb = nb + 1; buf[nb] = rep("\0", toalign) end
    if find("bBhHlLTiI", opt, 1, true) then
      local n = checknumber((select(arg, ...)), arg, "pack", packarg(arg, nargs))
      arg = arg + 1
      nb = nb + 1; buf[nb] = putinteger(n, h.endian, size)
    elseif opt == "x" then
      nb = nb + 1; buf[nb] = "\0"
    elseif opt == "f" then
      local n = checknumber((select(arg, ...)), arg, "pack", packarg(arg, nargs))
      arg = arg + 1
      local f = float_bytes(n)
      if h.endian == BIG then f = reverse(f) end
      nb = nb + 1; buf[nb] = f
    elseif opt == "d" then
      local n = checknumber((select(arg, ...)), arg, "pack", packarg(arg, nargs))
      arg = arg + 1
      local d = double_bytes(n)
      if h.endian == BIG then d = reverse(d) end
      nb = nb + 1; buf[nb] = d
    elseif opt == "c" or opt == "s" then
      local s = checkstring((select(arg, ...)), arg, "pack", packarg(arg, nargs))
      arg = arg + 1
      local l = #s
      if size == 0 then size = l end
      if l < size then argerror(arg, "pack", "string too short") end
      nb = nb + 1; buf[nb] = sub(s, 1, size)
      if opt == "s" then
        nb = nb + 1; buf[nb] = "\0"
        size = size + 1
      end
    else
      i = controloptions(opt, fmt, i, h, "pack")
    end
    totalsize = totalsize + size
  end
  return concat(buf, "", 1, nb)
end

local TOO_MANY = "stack overflow (too many results)"

function struct.unpack(...)
  local nargs = select("#", ...)
  local f, d, p = ...
  local fmt = cut(checkstring(f, 1, "unpack", nargs >= 1))
  local data = checkstring(d, 2, "unpack", nargs >= 2)
  local ld = #data
  local pos = 1
  if p ~= nil then pos = trunc(checknumber(p, 3, "unpack", true)) end
  if pos == 0 then argerror(3, "unpack", "offset must be 1 or greater") end
  if pos < 0 then
    -- C: a size_t near 2^64, too far for any item; an empty format gives it back
    if fmt ~= "" then argerror(2, "unpack", "data string too short") end
    return pos
  end
  pos = pos - 1
  local h = { endian = LITTLE, align = 1 }
  local out, n = {}, 0
  local i, flen = 1, #fmt
  while i <= flen do
    local opt = sub(fmt, i, i)
    i = i + 1
    local size
    size, i = optsize(opt, fmt, i)
    pos = pos + gettoalign(pos, h, opt, size)
    if not (size <= ld and pos <= ld - size) then
      argerror(2, "unpack", "data string too short")
    end
    -- C: luaL_checkstack(L, 2) above the arguments and results so far
    if nargs + n + 2 > 8000 then error(TOO_MANY, 0) end
    if find("bBhHlLTiI", opt, 1, true) then
      n = n + 1
      out[n] = getinteger(data, pos + 1, h.endian, find("bhli", opt, 1, true) ~= nil, size)
    elseif opt == "x" then
      -- nothing
    elseif opt == "f" then
      local b = sub(data, pos + 1, pos + 4)
      if h.endian == BIG then b = reverse(b) end
      n = n + 1; out[n] = float_value(b, 1)
    elseif opt == "d" then
      local b = sub(data, pos + 1, pos + 8)
      if h.endian == BIG then b = reverse(b) end
      n = n + 1; out[n] = double_value(b, 1)
    elseif opt == "c" then
      if size == 0 then
        local prev = out[n]
        if n == 0 or not (type(prev) == "number" or (type(prev) == "string" and tonumber(prev))) then
          error("format 'c0' needs a previous size", 0)
        end
        size = tonumber(prev)
        if size ~= size then size = 0 end
        size = trunc(size)
        if size < 0 then size = size + 18446744073709551616 end
        out[n] = nil; n = n - 1
        if not (size <= ld and pos <= ld - size) then
          argerror(2, "unpack", "data string too short")
        end
      end
      n = n + 1; out[n] = sub(data, pos + 1, pos + size)
    elseif opt == "s" then
      local e = find(data, "\0", pos + 1, true)
      if not e then error("unfinished string in data", 0) end
      size = e - pos
      n = n + 1; out[n] = sub(data, pos + 1, e - 1)
    else
      i = controloptions(opt, fmt, i, h, "unpack")
    end
    pos = pos + size
  end
  pos = pos + 1
  if pos >= 9223372036854775808 then pos = pos - 18446744073709551616 end
  n = n + 1; out[n] = pos
  return many(out, 1, n)
end

function struct.size(...)
  local fmt = cut(checkstring((...), 1, "size", select("#", ...) >= 1))
  local h = { endian = LITTLE, align = 1 }
  local pos = 0
  local i, flen = 1, #fmt
  while i <= flen do
    local opt = sub(fmt, i, i)
    i = i + 1
    local size
    size, i = optsize(opt, fmt, i)
    pos = pos + gettoalign(pos, h, opt, size)
    if opt == "s" then argerror(1, "size", "option 's' has no fixed size")
    elseif opt == "c" and size == 0 then argerror(1, "size", "option 'c0' has no fixed size") end
    if not find(opt, "^%w") then i = controloptions(opt, fmt, i, h, "size") end
    pos = pos + size
  end
  return pos
end

for k, v in pairs(struct) do
  if type(v) == "function" then struct[k] = api(v) end
end

return struct
