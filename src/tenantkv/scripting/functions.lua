-- FUNCTION libraries in a tenant's Lua state (scripting/functions.py): run
-- once per state with what prelude.lua hands out (the scripts' globals
-- `env`, the setter of its table of runnable chunks, the raw `redis` API,
-- setfenv and `rearm`, which puts the count hook back).
-- As Redis 7.0 (function_lua.c): a library's code runs with globals that
-- hold only the library API (redis.register_function, redis.log, the
-- versions); the functions it registers run later with the full API, and
-- see no KEYS/ARGV (their keys and args are their arguments).
local env, setfn, api, setfenv_, rearm = ...
local type, error, pairs, rawget, tostring, loadstring, pcall, lower, setmetatable =
      type, error, pairs, rawget, tostring, loadstring, pcall, string.lower, setmetatable

local function missing(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end
local function readonly() error('Attempt to modify a readonly table', 2) end

local FLAGS = {['no-writes'] = 'no-writes', ['allow-oom'] = 'allow-oom',
               ['allow-stale'] = 'allow-stale', ['no-cluster'] = 'no-cluster',
               ['allow-cross-slot-keys'] = 'allow-cross-slot-keys'}

local pending = nil   -- the library being loaded: name -> {f, desc, flags}
local count = 0

local function fail(msg) error({err = 'ERR ' .. msg}) end

local function valid_name(name)
  return #name > 0 and not name:find('[^%w_]')
end

local function register(...)
  if pending == nil then
    fail('redis.register_function can only be called on FUNCTION LOAD command')
  end
  local n = select('#', ...)
  if n < 1 or n > 2 then fail('wrong number of arguments to redis.register_function') end
  local name, f, desc, flags
  if n == 1 then
    local t = ...
    if type(t) ~= 'table' then
      fail('calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).')
    end
    flags = {}
    for k, v in pairs(t) do
      if type(k) ~= 'string' and type(k) ~= 'number' then
        fail('named argument key given to redis.register_function is not a string')
      end
      local key = lower(tostring(k))
      if key == 'function_name' then
        if type(v) ~= 'string' and type(v) ~= 'number' then
          fail('function_name argument given to redis.register_function must be a string')
        end
        name = tostring(v)
      elseif key == 'description' then
        if type(v) ~= 'string' and type(v) ~= 'number' then
          fail('description argument given to redis.register_function must be a string')
        end
        desc = tostring(v)
      elseif key == 'callback' then
        if type(v) ~= 'function' then
          fail('callback argument given to redis.register_function must be a function')
        end
        f = v
      elseif key == 'flags' then
        if type(v) ~= 'table' then
          fail('flags argument to redis.register_function must be a table representing function flags')
        end
        local i = 1
        while true do
          local flag = v[i]
          if flag == nil then break end
          if type(flag) ~= 'string' and type(flag) ~= 'number' then fail('unknown flag given') end
          local canonical = FLAGS[lower(tostring(flag))]
          if canonical == nil then fail('unknown flag given') end
          flags[canonical] = true
          i = i + 1
        end
      else
        fail('unknown argument given to redis.register_function')
      end
    end
    if name == nil then fail('redis.register_function must get a function name argument') end
    if f == nil then fail('redis.register_function must get a callback argument') end
  else
    local a, b = ...
    if type(a) ~= 'string' and type(a) ~= 'number' then
      fail('first argument to redis.register_function must be a string')
    end
    if type(b) ~= 'function' then
      fail('second argument to redis.register_function must be a function')
    end
    name, f, flags = tostring(a), b, {}
  end
  if not valid_name(name) then
    fail('Library names can only contain letters, numbers, or underscores(_) and must be at least one character long')
  end
  if pending[name] then fail('Function already exists in the library') end
  pending[name] = {f = f, desc = desc, flags = flags}
  count = count + 1
end

-- The library API: what a library's code sees while it loads.
local libredis = {register_function = register, log = api.log,
                  LOG_DEBUG = api.LOG_DEBUG, LOG_VERBOSE = api.LOG_VERBOSE,
                  LOG_NOTICE = api.LOG_NOTICE, LOG_WARNING = api.LOG_WARNING,
                  REDIS_VERSION = api.REDIS_VERSION, REDIS_VERSION_NUM = api.REDIS_VERSION_NUM}
setmetatable(libredis, {__index = missing, __newindex = readonly, __metatable = false})
local libapi = {redis = libredis}

-- The globals of every library's code: the library API while it loads,
-- the scripts' globals (without KEYS/ARGV) once loaded.
local loading = false
local fenv = setmetatable({}, {
  __index = function(_, k)
    local v
    if loading then v = libapi[k]
    elseif k ~= 'KEYS' and k ~= 'ARGV' then v = rawget(env, k) end
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = readonly,
  __metatable = false,
})

local FN = '\0'
local libs = {}   -- library name -> {function name -> entry}

-- Compile and run a library's code: nil and its functions (name -> flags
-- list, description), or an error text. Nothing is registered yet (commit).
local function load(code)
  local chunk, err = loadstring(code, '@user_function')
  if not chunk then return 'Error compiling function: ' .. tostring(err), false end
  setfenv_(chunk, fenv)
  pending, count, loading = {}, 0, true
  -- A script killed before left the line hook: with it, a library's loop
  -- would call the time check on every line and time out.
  rearm()
  local ok, e = pcall(chunk)
  loading = false
  local got = pending
  pending = nil
  if not ok then
    if type(e) == 'table' then e = rawget(e, 'err') end
    if type(e) ~= 'string' then e = 'ERR ' .. tostring(e)
    elseif e:sub(1, 4) ~= 'ERR ' and not e:find('^%u+ ') then e = 'ERR ' .. e end
    return 'Error registering functions: ' .. e, false
  end
  if count == 0 then return 'No functions registered', false end
  local info = {}
  for name, entry in pairs(got) do
    local flags = {}
    for flag in pairs(entry.flags) do flags[#flags + 1] = flag end
    info[name] = {flags, entry.desc or false}
  end
  libs[FN] = got   -- staged until commit
  return false, info
end

local function unregister(lib)
  local fns = libs[lib]
  if fns then
    for name in pairs(fns) do setfn(FN .. name, nil) end
    libs[lib] = nil
  end
end

local function commit(lib)
  unregister(lib)
  local got = libs[FN]
  libs[FN] = nil
  libs[lib] = got
  for name, entry in pairs(got) do
    local f = entry.f
    setfn(FN .. name, function() return f(rawget(env, 'KEYS'), rawget(env, 'ARGV')) end)
  end
end

local function discard() libs[FN] = nil end

return load, commit, discard, unregister
