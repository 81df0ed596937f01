-- Lua CJSON 2.1.0 (Redis 7.0 deps/lua/src/lua_cjson.c) in pure Lua 5.1, with
-- Redis's defaults: numbers "%.14g", NaN/Inf refused on encode and accepted on
-- decode (strtod's hex, inf, nan), sparse arrays refused (ratio 2, safe 10),
-- nesting limited to 1000 both ways. The configuration functions are kept
-- and change the same settings.
local type, next, select, error, tonumber, tostring, pcall, rawset, rawget, ipairs, pairs =
  type, next, select, error, tonumber, tostring, pcall, rawset, rawget, ipairs, pairs
local floor, huge = math.floor, math.huge
local byte, char, sub, find, format, gsub, lower =
  string.byte, string.char, string.sub, string.find, string.format, string.gsub, string.lower
local concat = table.concat
local unpack = unpack

-- cjson.null: C pushes a NULL lightuserdata; pure Lua can only make a full
-- userdata (newproxy), which Redis's reply conversion treats the same (nil).
local NULL
if newproxy then
  NULL = newproxy(true)
  getmetatable(NULL).__tostring = function() return "userdata: (nil)" end
else
  NULL = setmetatable({}, { __tostring = function() return "userdata: (nil)" end })
end

-- new(): a module table with its own settings (cjson.new, as in C)
local function new()
local cfg = {
  sparse_convert = false, sparse_ratio = 2, sparse_safe = 10,
  encode_max_depth = 1000, decode_max_depth = 1000,
  encode_invalid_numbers = 0, decode_invalid_numbers = true,
  keep_buffer = true, precision = 14,
}
local numfmt = "%.14g"

local ESCAPE = {}
for i = 0, 31 do ESCAPE[char(i)] = format("\\u%04x", i) end
ESCAPE["\b"] = "\\b"; ESCAPE["\t"] = "\\t"; ESCAPE["\n"] = "\\n"
ESCAPE["\f"] = "\\f"; ESCAPE["\r"] = "\\r"
ESCAPE['"'] = '\\"'; ESCAPE["\\"] = "\\\\"; ESCAPE["/"] = "\\/"
ESCAPE["\127"] = "\\u007f"

local function enc_string(s)
  return '"' .. gsub(s, '[%c"\\/\127]', ESCAPE) .. '"'
end

local function fail(v, reason)
  error("Cannot serialise " .. type(v) .. ": " .. reason, 0)
end

local function enc_number(n)
  if n ~= n or n == huge or n == -huge then
    if cfg.encode_invalid_numbers == 0 then fail(n, "must not be NaN or Inf") end
    if cfg.encode_invalid_numbers == 2 then return "null" end
    if n ~= n then return "nan" end
  end
  return format(numfmt, n)
end

local encode_value

-- the C lua_array_length(): -1 for an object, else the largest index
local function array_length(t)
  local max, items = 0, 0
  for k in next, t do
    if type(k) == "number" and k ~= 0 and floor(k) == k and k >= 1 then
      -- C keeps max in an int: a key past INT_MAX stores INT_MIN (x86)
      if k > max then max = k <= 2147483647 and k or -2147483648 end
      items = items + 1
    else
      return -1
    end
  end
  if cfg.sparse_ratio > 0 and max > items * cfg.sparse_ratio and max > cfg.sparse_safe then
    if not cfg.sparse_convert then fail(t, "excessively sparse array") end
    return -1
  end
  return max
end

encode_value = function(v, buf, n, depth)
  local t = type(v)
  if t == "string" then
    n = n + 1; buf[n] = enc_string(v)
  elseif t == "number" then
    n = n + 1; buf[n] = enc_number(v)
  elseif t == "boolean" then
    n = n + 1; buf[n] = v and "true" or "false"
  elseif t == "table" and v ~= NULL then   -- NULL: a table without newproxy
    depth = depth + 1
    if depth > cfg.encode_max_depth then
      error(format("Cannot serialise, excessive nesting (%d)", depth), 0)
    end
    local len = array_length(v)
    if len > 0 then
      n = n + 1; buf[n] = "["
      for i = 1, len do
        if i > 1 then n = n + 1; buf[n] = "," end
        n = encode_value(rawget(v, i), buf, n, depth)
      end
      n = n + 1; buf[n] = "]"
    else
      n = n + 1; buf[n] = "{"
      local comma = false
      for k, val in next, v do
        if comma then n = n + 1; buf[n] = "," else comma = true end
        local kt = type(k)
        if kt == "number" then
          n = n + 1; buf[n] = '"' .. enc_number(k) .. '":'
        elseif kt == "string" then
          n = n + 1; buf[n] = enc_string(k) .. ":"
        else
          fail(k, "table key must be a number or string")
        end
        n = encode_value(val, buf, n, depth)
      end
      n = n + 1; buf[n] = "}"
    end
  elseif v == nil or v == NULL then
    n = n + 1; buf[n] = "null"
  else
    fail(v, "type not supported")
  end
  return n
end

local cjson = { null = NULL, _NAME = "cjson", _VERSION = "2.1.0" }

function cjson.encode(...)
  if select("#", ...) ~= 1 then
    error("bad argument #1 to 'encode' (expected 1 argument)", 0)
  end
  local buf = {}
  local n = encode_value((...), buf, 0, 0)
  return concat(buf, "", 1, n)
end

-- Decoding. The C parser stops at a NUL byte as at the end of the text.
local WS = { [32] = true, [9] = true, [10] = true, [13] = true }
local UNESCAPE = { [34] = '"', [92] = "\\", [47] = "/", [98] = "\b",
  [116] = "\t", [110] = "\n", [102] = "\f", [114] = "\r" }

local function parse_error(expected, found, index)
  error(format("Expected %s but found %s at character %d", expected, found, index), 0)
end

local function utf8(cp)
  if cp <= 0x7f then return char(cp)
  elseif cp <= 0x7ff then
    return char(floor(cp / 64) + 0xc0, cp % 64 + 0x80)
  elseif cp <= 0xffff then
    return char(floor(cp / 4096) + 0xe0, floor(cp / 64) % 64 + 0x80, cp % 64 + 0x80)
  end
  return char(floor(cp / 262144) + 0xf0, floor(cp / 4096) % 64 + 0x80,
    floor(cp / 64) % 64 + 0x80, cp % 64 + 0x80)
end

local function hex4(s, i)
  local h = sub(s, i, i + 3)
  if #h ~= 4 or find(h, "[^%x]") then return nil end
  return tonumber(h, 16)
end

-- the token after position i: returns kind, value, next position, index.
-- kinds: "{", "}", "[", "]", ",", ":", "end", "string", "number",
-- "boolean", "null", "error" (value = reason; index = the error's place)
local function strtod_end(s, i)
  -- end of the longest prefix at i that glibc's strtod() reads, or nil
  local p = i
  local c = byte(s, p)
  if c == 43 or c == 45 then p = p + 1 end
  if find(s, "^[iI][nN][fF]", p) then
    if lower(sub(s, p, p + 7)) == "infinity" then return p + 7 end
    return p + 2
  end
  if find(s, "^[nN][aA][nN]", p) then
    local _, e = find(s, "^%([%w_]*%)", p + 3)
    return e or p + 2
  end
  if find(s, "^0[xX]", p) then
    local _, e1 = find(s, "^%x*", p + 2)
    local digits = e1 - (p + 1)
    local e = e1
    if byte(s, e + 1) == 46 then
      local _, e2 = find(s, "^%x*", e + 2)
      digits = digits + e2 - (e + 1)
      if digits > 0 then e = e2 end
    end
    if digits == 0 then return p end   -- just the "0"
    local _, e3 = find(s, "^[pP][+-]?%d+", e + 1)
    return e3 or e
  end
  local _, e1 = find(s, "^%d*", p)
  local digits = e1 - p + 1
  local e = e1
  if byte(s, e + 1) == 46 then
    local _, e2 = find(s, "^%d*", e + 2)
    digits = digits + e2 - (e + 1)
    if digits > 0 then e = e2 end
  end
  if digits == 0 then return nil end
  local _, e3 = find(s, "^[eE][+-]?%d+", e + 1)
  return e3 or e
end

local function invalid_number(s, i)
  -- C json_is_invalid_number(): what strict JSON would refuse
  local c = byte(s, i)
  if c == 43 then return true end
  if c == 45 then i = i + 1; c = byte(s, i) end
  if c == 48 then
    local c2 = byte(s, i + 1)
    return c2 ~= nil and (c2 == 120 or c2 == 88 or (c2 >= 48 and c2 <= 57))
  elseif c == nil or c <= 57 then
    return false
  end
  local l3 = lower(sub(s, i, i + 2))
  return l3 == "inf" or l3 == "nan"
end

local function number_token(s, i)
  local e = strtod_end(s, i)
  if not e then return "error", "invalid number", i, i end
  return "number", tonumber(sub(s, i, e)), e + 1, i
end

local function string_token(s, i)
  -- i is at the opening quote
  local parts, n = {}, 0
  local p = i + 1
  while true do
    local q = find(s, '["\\%z]', p)
    if not q then return "error", "unexpected end of string", #s + 1, #s + 1 end
    if q > p then n = n + 1; parts[n] = sub(s, p, q - 1) end
    local c = byte(s, q)
    if c == 34 then
      return "string", concat(parts, "", 1, n), q + 1, i
    elseif c == 0 then
      return "error", "unexpected end of string", q, q
    end
    local e = byte(s, q + 1)
    if e == 117 then
      local cp = hex4(s, q + 2)
      local len = 6
      if cp and cp >= 0xd800 and cp <= 0xdfff then
        if cp >= 0xdc00 or sub(s, q + 6, q + 7) ~= "\\u" then
          cp = nil
        else
          local low = hex4(s, q + 8)
          if not low or low < 0xdc00 or low > 0xdfff then
            cp = nil
          else
            cp = (cp - 0xd800) * 1024 + (low - 0xdc00) + 0x10000
            len = 12
          end
        end
      end
      if not cp then return "error", "invalid unicode escape code", q, q end
      n = n + 1; parts[n] = utf8(cp)
      p = q + len
    else
      local r = e and UNESCAPE[e]
      if not r then return "error", "invalid escape code", q, q end
      n = n + 1; parts[n] = r
      p = q + 2
    end
  end
end

local function next_token(s, i)
  local c = byte(s, i)
  while c and WS[c] do i = i + 1; c = byte(s, i) end
  if c == nil or c == 0 then return "end", nil, i, i end
  if c == 123 then return "{", nil, i + 1, i
  elseif c == 125 then return "}", nil, i + 1, i
  elseif c == 91 then return "[", nil, i + 1, i
  elseif c == 93 then return "]", nil, i + 1, i
  elseif c == 44 then return ",", nil, i + 1, i
  elseif c == 58 then return ":", nil, i + 1, i
  elseif c == 34 then return string_token(s, i)
  elseif c == 45 or (c >= 48 and c <= 57) then
    if not cfg.decode_invalid_numbers and invalid_number(s, i) then
      return "error", "invalid number", i, i
    end
    return number_token(s, i)
  elseif c == 116 or c == 102 or c == 110 or c == 105 or c == 73 or c == 78 or c == 43 then
    if sub(s, i, i + 3) == "true" then return "boolean", true, i + 4, i
    elseif sub(s, i, i + 4) == "false" then return "boolean", false, i + 5, i
    elseif sub(s, i, i + 3) == "null" then return "null", nil, i + 4, i
    elseif cfg.decode_invalid_numbers and invalid_number(s, i) then
      return number_token(s, i)
    end
  end
  return "error", "invalid token", i, i
end

local TOKEN_NAME = {
  ["{"] = "T_OBJ_BEGIN", ["}"] = "T_OBJ_END", ["["] = "T_ARR_BEGIN",
  ["]"] = "T_ARR_END", string = "T_STRING", number = "T_NUMBER",
  boolean = "T_BOOLEAN", null = "T_NULL", [":"] = "T_COLON", [","] = "T_COMMA",
  ["end"] = "T_END",
}

local function throw(expected, kind, value, index)
  if kind == "error" then parse_error(expected, value, index) end
  parse_error(expected, TOKEN_NAME[kind], index)
end

local parse_value

local function descend(depth, i)
  depth = depth + 1
  if depth > cfg.decode_max_depth then
    error(format("Found too many nested data structures (%d) at character %d", depth, i - 1), 0)
  end
  return depth
end

local function parse_object(s, i, depth)
  depth = descend(depth, i)
  local t = {}
  local kind, value, idx
  kind, value, i, idx = next_token(s, i)
  if kind == "}" then return t, i end
  while true do
    if kind ~= "string" then throw("object key string", kind, value, idx) end
    local key = value
    kind, value, i, idx = next_token(s, i)
    if kind ~= ":" then throw("colon", kind, value, idx) end
    kind, value, i, idx = next_token(s, i)
    value, i = parse_value(s, kind, value, i, idx, depth)
    rawset(t, key, value)
    kind, value, i, idx = next_token(s, i)
    if kind == "}" then return t, i end
    if kind ~= "," then throw("comma or object end", kind, value, idx) end
    kind, value, i, idx = next_token(s, i)
  end
end

local function parse_array(s, i, depth)
  depth = descend(depth, i)
  local t = {}
  local kind, value, idx
  kind, value, i, idx = next_token(s, i)
  if kind == "]" then return t, i end
  local n = 0
  while true do
    value, i = parse_value(s, kind, value, i, idx, depth)
    n = n + 1
    rawset(t, n, value)
    kind, value, i, idx = next_token(s, i)
    if kind == "]" then return t, i end
    if kind ~= "," then throw("comma or array end", kind, value, idx) end
    kind, value, i, idx = next_token(s, i)
  end
end

parse_value = function(s, kind, value, i, idx, depth)
  if kind == "string" or kind == "number" or kind == "boolean" then return value, i
  elseif kind == "{" then return parse_object(s, i, depth)
  elseif kind == "[" then return parse_array(s, i, depth)
  elseif kind == "null" then return NULL, i
  end
  throw("value", kind, value, idx)
end

-- A fast decoder for plain JSON (the common case): strict numbers, strings
-- without trouble, no NUL. Anything else makes it give up (FAIL) and the
-- exact token parser above decodes again from the start, with C's values
-- and errors; both build the same tables for what the fast one accepts.
local FAIL = {}
local function giveup() error(FAIL, 0) end
local DELIM = { [32] = true, [9] = true, [10] = true, [13] = true, [44] = true, [93] = true, [125] = true }

local function skip(s, i)
  local c = byte(s, i)
  if c == 32 or c == 9 or c == 10 or c == 13 then
    i = find(s, "[^ \t\n\r]", i + 1) or #s + 1
    c = byte(s, i)
  end
  return c, i
end

local fast_value
fast_value = function(s, i, depth)
  local c = byte(s, i)
  if c == 34 then
    local q = find(s, '["\\%z]', i + 1)
    if q and byte(s, q) == 34 then return sub(s, i + 1, q - 1), q + 1 end
    local kind, v, nexti = string_token(s, i)
    if kind ~= "string" then giveup() end
    return v, nexti
  elseif c == 123 then
    depth = depth + 1
    if depth > cfg.decode_max_depth then giveup() end
    local t = {}
    c, i = skip(s, i + 1)
    if c == 125 then return t, i + 1 end
    while true do
      if c ~= 34 then giveup() end
      local k, v
      k, i = fast_value(s, i, depth)
      c, i = skip(s, i)
      if c ~= 58 then giveup() end
      c, i = skip(s, i + 1)
      v, i = fast_value(s, i, depth)
      rawset(t, k, v)
      c, i = skip(s, i)
      if c == 125 then return t, i + 1 end
      if c ~= 44 then giveup() end
      c, i = skip(s, i + 1)
    end
  elseif c == 91 then
    depth = depth + 1
    if depth > cfg.decode_max_depth then giveup() end
    local t, n = {}, 0
    c, i = skip(s, i + 1)
    if c == 93 then return t, i + 1 end
    while true do
      local v
      v, i = fast_value(s, i, depth)
      n = n + 1
      t[n] = v
      c, i = skip(s, i)
      if c == 93 then return t, i + 1 end
      if c ~= 44 then giveup() end
      c, i = skip(s, i + 1)
    end
  elseif c == 45 or (c and c >= 48 and c <= 57) then
    local _, e = find(s, "^-?%d+", i)
    if not e then giveup() end
    local d = c == 45 and i + 1 or i
    if e > d and byte(s, d) == 48 then giveup() end      -- leading zero
    local nc = byte(s, e + 1)
    if nc == 46 then
      _, e = find(s, "^%.%d+", e + 1)
      if not e then giveup() end
      nc = byte(s, e + 1)
    end
    if nc == 101 or nc == 69 then
      _, e = find(s, "^[eE][-+]?%d+", e + 1)
      if not e then giveup() end
      nc = byte(s, e + 1)
    end
    if nc and not DELIM[nc] then giveup() end
    return tonumber(sub(s, i, e)), e + 1
  elseif c == 116 then
    if sub(s, i, i + 3) == "true" then return true, i + 4 end
  elseif c == 102 then
    if sub(s, i, i + 4) == "false" then return false, i + 5 end
  elseif c == 110 then
    if sub(s, i, i + 3) == "null" then return NULL, i + 4 end
  end
  giveup()
end

local function fast_decode(s)
  local c, i = skip(s, 1)
  if c == nil then giveup() end
  local v
  v, i = fast_value(s, i, 0)
  c, i = skip(s, i)
  if c ~= nil then giveup() end
  return v
end

function cjson.decode(...)
  local nargs = select("#", ...)
  if nargs ~= 1 then
    error("bad argument #1 to 'decode' (expected 1 argument)", 0)
  end
  local s = ...
  local t = type(s)
  if t == "number" then s = tostring(s)
  elseif t ~= "string" then
    error("bad argument #1 to 'decode' (string expected, got " .. t .. ")", 0)
  end
  if #s >= 2 and (byte(s, 1) == 0 or byte(s, 2) == 0) then
    error("JSON parser does not support UTF-16 or UTF-32", 0)
  end
  local ok, fv = pcall(fast_decode, s)
  if ok then return fv end
  local kind, value, i, idx = next_token(s, 1)
  local v
  v, i = parse_value(s, kind, value, i, idx, 0)
  kind, value, i, idx = next_token(s, i)
  if kind ~= "end" then throw("the end", kind, value, idx) end
  return v
end

-- Configuration, as the C functions: each sets what it is given (nil keeps
-- a setting) and returns the current value(s). The keep-buffer option only
-- names a C buffer strategy; it is kept for the reply.
local function arg_init(fname, nargs, max)
  if nargs > max then
    error(format("bad argument #%d to '%s' (found too many arguments)", max + 1, fname), 0)
  end
end

local function int_option(fname, idx, v, current, min, max)
  if v == nil then return current end
  local n = (type(v) == "number" or type(v) == "string") and tonumber(v) or nil
  if n == nil then
    error(format("bad argument #%d to '%s' (number expected, got %s)", idx, fname, type(v)), 0)
  end
  if n ~= n or n >= 9223372036854775808 or n < -9223372036854775808 then n = 0
  else
    n = n >= 0 and floor(n) or -floor(-n)      -- lua_tointeger
    n = n % 4294967296                          -- then an int
    if n >= 2147483648 then n = n - 4294967296 end
  end
  if not (min <= n and n <= max) then
    -- C checks the range as argument 1, whichever argument it is
    error(format("bad argument #1 to '%s' (expected integer between %d and %d)", fname, min, max), 0)
  end
  return n
end

-- options: list of names for 0, 1, ...; returns the new setting (a number)
local function enum_option(fname, idx, v, current, options)
  if v == nil then return current end
  if type(v) == "boolean" then return v and 1 or 0 end
  if type(v) == "number" then v = tostring(v) end
  if type(v) ~= "string" then
    error(format("bad argument #%d to '%s' (string expected, got %s)", idx, fname, type(v)), 0)
  end
  for i, name in ipairs(options) do
    if name == v then return i - 1 end
  end
  error(format("bad argument #%d to '%s' (invalid option '%s')", idx, fname, v), 0)
end

local ONOFF = { "off", "on" }
local function enum_reply(setting, options)
  if setting == 0 or setting == 1 then return setting == 1 end
  return options[setting + 1]
end

function cjson.encode_sparse_array(...)
  arg_init("encode_sparse_array", select("#", ...), 3)
  local convert, ratio, safe = ...
  cfg.sparse_convert = enum_option("encode_sparse_array", 1, convert, cfg.sparse_convert and 1 or 0, ONOFF) == 1
  cfg.sparse_ratio = int_option("encode_sparse_array", 2, ratio, cfg.sparse_ratio, 0, 2147483647)
  cfg.sparse_safe = int_option("encode_sparse_array", 3, safe, cfg.sparse_safe, 0, 2147483647)
  return cfg.sparse_convert, cfg.sparse_ratio, cfg.sparse_safe
end

function cjson.encode_max_depth(...)
  arg_init("encode_max_depth", select("#", ...), 1)
  cfg.encode_max_depth = int_option("encode_max_depth", 1, (...), cfg.encode_max_depth, 1, 2147483647)
  return cfg.encode_max_depth
end

function cjson.decode_max_depth(...)
  arg_init("decode_max_depth", select("#", ...), 1)
  cfg.decode_max_depth = int_option("decode_max_depth", 1, (...), cfg.decode_max_depth, 1, 2147483647)
  return cfg.decode_max_depth
end

function cjson.encode_number_precision(...)
  arg_init("encode_number_precision", select("#", ...), 1)
  cfg.precision = int_option("encode_number_precision", 1, (...), cfg.precision, 1, 14)
  numfmt = "%." .. cfg.precision .. "g"
  return cfg.precision
end

function cjson.encode_keep_buffer(...)
  arg_init("encode_keep_buffer", select("#", ...), 1)
  cfg.keep_buffer = enum_option("encode_keep_buffer", 1, (...), cfg.keep_buffer and 1 or 0, ONOFF) == 1
  return cfg.keep_buffer
end

local INVALID = { "off", "on", "null" }
function cjson.encode_invalid_numbers(...)
  arg_init("encode_invalid_numbers", select("#", ...), 1)
  cfg.encode_invalid_numbers = enum_option("encode_invalid_numbers", 1, (...), cfg.encode_invalid_numbers, INVALID)
  return enum_reply(cfg.encode_invalid_numbers, INVALID)
end

function cjson.decode_invalid_numbers(...)
  arg_init("decode_invalid_numbers", select("#", ...), 1)
  cfg.decode_invalid_numbers = enum_option("decode_invalid_numbers", 1, (...),
    cfg.decode_invalid_numbers and 1 or 0, ONOFF) == 1
  return cfg.decode_invalid_numbers
end

cjson.new = new

for k, v in pairs(cjson) do
  if type(v) == "function" then cjson[k] = api(v) end
end

return cjson
end

return new()
