-- What the four libraries share (lib/__init__.py runs it at the top of each
-- library's chunk, so these are locals of every library): the C libraries'
-- argument-error texts and error positions, and their return of many values.
local type, select, error, tonumber, tostring, pcall, unpack =
  type, select, error, tonumber, tostring, pcall, unpack

-- unpack() (a C function) returns at most ~7997 values; the C libraries
-- return up to 8000. Values past the first batch go out 100 at a time.
local function many(t, i, j)
  if j - i < 7000 then return unpack(t, i, j) end
  return
    t[i + 0], t[i + 1], t[i + 2], t[i + 3], t[i + 4], t[i + 5], t[i + 6], t[i + 7], t[i + 8], t[i + 9],
    t[i + 10], t[i + 11], t[i + 12], t[i + 13], t[i + 14], t[i + 15], t[i + 16], t[i + 17], t[i + 18], t[i + 19],
    t[i + 20], t[i + 21], t[i + 22], t[i + 23], t[i + 24], t[i + 25], t[i + 26], t[i + 27], t[i + 28], t[i + 29],
    t[i + 30], t[i + 31], t[i + 32], t[i + 33], t[i + 34], t[i + 35], t[i + 36], t[i + 37], t[i + 38], t[i + 39],
    t[i + 40], t[i + 41], t[i + 42], t[i + 43], t[i + 44], t[i + 45], t[i + 46], t[i + 47], t[i + 48], t[i + 49],
    t[i + 50], t[i + 51], t[i + 52], t[i + 53], t[i + 54], t[i + 55], t[i + 56], t[i + 57], t[i + 58], t[i + 59],
    t[i + 60], t[i + 61], t[i + 62], t[i + 63], t[i + 64], t[i + 65], t[i + 66], t[i + 67], t[i + 68], t[i + 69],
    t[i + 70], t[i + 71], t[i + 72], t[i + 73], t[i + 74], t[i + 75], t[i + 76], t[i + 77], t[i + 78], t[i + 79],
    t[i + 80], t[i + 81], t[i + 82], t[i + 83], t[i + 84], t[i + 85], t[i + 86], t[i + 87], t[i + 88], t[i + 89],
    t[i + 90], t[i + 91], t[i + 92], t[i + 93], t[i + 94], t[i + 95], t[i + 96], t[i + 97], t[i + 98], t[i + 99],
    many(t, i + 100, j)
end

-- captured at load: a script that changes `string` cannot change these
local string_match, string_format = string.match, string.format

-- C's luaL_argerror names the function as its caller called it ('enc' for
-- `local enc = cjson.encode`, '?' from pcall); debug.getinfo, kept from
-- load time, finds the same name. `level`: the library function, counted
-- from the caller of argmsg.
local getinfo = debug and debug.getinfo
local function argmsg(msg, level)
  if not getinfo or type(msg) ~= "string" then return msg end
  local narg, fname, extra = string_match(msg, "^bad argument #(%d+) to '([^']*)' %((.*)%)$")
  if not narg then return msg end
  narg = tonumber(narg)
  local ar = getinfo(level + 1, "n")
  local name = ar and ar.name
  if ar and ar.namewhat == "method" then
    narg = narg - 1
    if narg == 0 then
      return string_format("calling '%s' on bad self (%s)", tostring(name), extra)
    end
  end
  if name == nil then
    -- a tail call hides the name from Lua, not from C (which reads the
    -- calling instruction): keep the field name then; from C code, '?'
    local up = getinfo(level + 2, "S")
    name = (up and up.what == "tail") and fname or "?"
  end
  return string_format("bad argument #%d to '%s' (%s)", narg, name, extra)
end

-- C errors (luaL_error) carry the position of the Lua code that called the
-- library function; internal errors are raised bare (level 0) and given
-- that position here, once, at the API boundary.
local function collect(...) return select("#", ...), { ... } end
local function api(f)
  return function(...)
    local n, r = collect(pcall(f, ...))
    if not r[1] then
      local e = r[2]
      if type(e) == "table" then error(e[1], 0) end   -- raised without a position in C too
      error(argmsg(e, 1), 2)
    end
    return many(r, 2, n)
  end
end
