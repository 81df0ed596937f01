-- The sandbox and the `redis` API of one tenant's Lua state (scripting/engine.py).
-- Run once per state with the Python bridges as arguments: they live only in
-- the locals (upvalues) of the closures below, never in a global or a table a
-- script can reach, and the `debug` library (the only way to read an upvalue)
-- is removed before any script runs. The bridges take and return only
-- strings, numbers, booleans, nil and plain Lua tables.
local pycall, pycheck, pylog, pysha1, pyflags = ...
local dbg = debug
local type, error, select, tostring, rawget, rawset, tonumber =
      type, error, select, tostring, rawget, rawset, tonumber
local setmetatable, getmetatable, pairs, concat = setmetatable, getmetatable, pairs, table.concat
local loadstring_
local clock = os.clock

-- Bytecode is refused (a crafted chunk escapes any sandbox), as Redis does.
local function safe_loadstring(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then
    return nil, 'binary chunks are not allowed'
  end
  return loadstring_(s, name)
end
local function safe_load(f, name)
  if type(f) ~= 'function' then return safe_loadstring(f, name) end
  local parts = {}
  while true do
    local piece = f()
    if piece == nil or piece == '' then break end
    if #parts == 0 and type(piece) == 'string' and piece:byte(1) == 27 then
      return nil, 'binary chunks are not allowed'
    end
    parts[#parts + 1] = piece
  end
  return safe_loadstring(concat(parts), name)
end

-- A script's globals are `env`, never the state's own global table (which
-- lupa itself reads, so it must stay plain): only what Redis 7.0 offers.
local env = {}
for _, name in ipairs({'assert', 'error', 'ipairs', 'next', 'pairs', 'pcall', 'rawequal',
                       'rawget', 'rawset', 'select', 'setmetatable', 'getmetatable',
                       'tonumber', 'tostring', 'type', 'unpack', 'xpcall', 'gcinfo',
                       '_VERSION'}) do
  env[name] = _G[name]
end
local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end
env.string = copy(string)
env.table = copy(table)

-- Calls that can run long inside C, where the count hook never fires: a
-- pattern that backtracks (string.find(string.rep('a', 30),
-- string.rep('a*', 12) .. 'b') runs for hours), a plain find of a long
-- needle, a sort of a big table without a comparator. A script whose code
-- names one of them runs on a worker thread (engine.py, THREADED), with
-- the originals. Any other runs its first slice on the loop thread with
-- these guards in their place (setguard), for the ways its code can still
-- reach them (string['fi' .. 'nd'], a library): before a call whose rough
-- bound of steps is large (COSTLY), it asks to move to a worker thread
-- (pyflags('guard', cost)): if it has not written yet, it ends here and
-- runs again there (the message that ends it); else the call runs where it
-- is, unless its bound is huge (engine.py, REFUSED: an error). (A guard is
-- a Lua function: an error in the original names the guard's line, not
-- the script's, hence the originals where the code names them.)
local COSTLY = 1000000
local cfind, cgsub, cbyte = string.find, string.gsub, string.byte
-- Steps of a search: the positions it tries (one if anchored) times the
-- pattern's length, times the subject's length per quantifier (how far a
-- backtracking item can go).
local function cost(s, p, plain)
  if type(s) ~= 'string' or type(p) ~= 'string' then return 0 end
  local n = #s + 1
  local steps = (#p + 1) * ((not plain and cbyte(p, 1) == 94) and 1 or n)
  if not plain and cfind(p, '[%*%+%-%?]') then
    local _, k = cgsub(p, '[%*%+%-%?]', '')
    for _ = 1, k do
      steps = steps * n
      if steps > 1e15 then break end
    end
  end
  return steps
end
local function guard(steps)
  local msg = pyflags('guard', steps)
  if msg then error({err = msg}) end
end
local originals, guards = {}, {}
do
  local find, match, gmatch, gsub, sort = string.find, string.match, string.gmatch,
                                          string.gsub, table.sort
  originals = {find = find, match = match, gmatch = gmatch, gsub = gsub, sort = sort}
  guards.find = function(s, p, init, plain, ...)
    local steps = cost(s, p, plain)
    if steps > COSTLY then guard(steps) end
    return select(1, find(s, p, init, plain, ...))
  end
  guards.match = function(s, p, ...)
    local steps = cost(s, p)
    if steps > COSTLY then guard(steps) end
    return select(1, match(s, p, ...))
  end
  guards.gmatch = function(s, p, ...)
    local steps = cost(s, p)
    if steps > COSTLY then guard(steps) end
    return select(1, gmatch(s, p, ...))
  end
  guards.gsub = function(s, p, ...)
    local steps = cost(s, p)
    if steps > COSTLY then guard(steps) end
    return select(1, gsub(s, p, ...))
  end
  guards.sort = function(t, ...)
    if type(t) == 'table' and select('#', ...) == 0 and #t > 10000 then
      guard(#t * 100)   -- a comparison of two strings: their length, say 100
    end
    return select(1, sort(t, ...))
  end
  -- A method call ("x"):find(...) reads the strings' metatable: the same.
  getmetatable('').__index = env.string
end
local rawstring, rawtable = env.string, env.table
local function setguard(on)
  local set = on and guards or originals
  local es, et = rawstring, rawtable
  es.find, es.match, es.gmatch, es.gsub, et.sort = set.find, set.match, set.gmatch, set.gsub,
                                                   set.sort
end
setguard(true)
env.math = copy(math)
env.coroutine = copy(coroutine)
env.os = {clock = clock}
env._G = env
local setfenv_ = setfenv
local genv   -- the scripts' globals: a read-only view of env (made below)
loadstring_ = function(s, name)
  local f, err = loadstring(s, name)
  if f then setfenv_(f, genv) end
  return f, err
end
env.loadstring = safe_loadstring
env.load = safe_load

-- collectgarbage limited: counting only; a script may not stop or tune the
-- collector that bounds its own memory.
local collect = collectgarbage
env.collectgarbage = function(opt, arg)
  if opt == nil or opt == 'collect' or opt == 'count' or opt == 'step' then
    return collect(opt, arg)
  end
  error('collectgarbage option not allowed in scripts', 2)
end

local function pusherr(msg)
  -- Redis's luaPushErrorBuff: "-CODE msg" keeps its code, else "ERR msg".
  if msg:sub(1, 1) == '-' then
    local sp = msg:find(' ', 1, true)
    if sp then msg = msg:sub(2, sp - 1) .. ' ' .. msg:sub(sp + 1)
    else msg = 'ERR ' .. msg:sub(2) end
  else
    msg = 'ERR ' .. msg
  end
  return {err = (msg:gsub('[\r\n]+$', ''))}
end

local function callargs(...)
  local n = select('#', ...)
  if n == 0 then
    return nil, 'Please specify at least one argument for this redis lib call'
  end
  local args = {}
  for i = 1, n do
    local a = select(i, ...)
    local t = type(a)
    if t == 'number' then
      args[i] = a
    elseif t == 'string' then
      args[i] = a
    else
      return nil, 'Lua redis lib command arguments must be strings or integers'
    end
  end
  return args
end

-- redis.call's arguments go to Python as they are (no table: lupa reads
-- a table's items one call at a time); engine.py's _pycall checks them.
-- (At most ~7,990 of them: lupa's call and the coroutine below need room
-- on Lua's C stack of 8,000 slots, which Redis's C redis.call does not.)
local redis = {}
redis.call = function(...)
  local r = pycall(...)
  if type(r) == 'table' and rawget(r, '__raise') then
    r.__raise = nil
    error(r)
  end
  return r
end
redis.pcall = function(...)
  local r = pycall(...)
  if type(r) == 'table' and rawget(r, '__raise') then r.__raise = nil end
  return r
end
redis.error_reply = function(msg)
  if type(msg) ~= 'string' then error({err = 'ERR wrong number or type of arguments'}) end
  if msg:sub(1, 1) ~= '-' then msg = '-' .. msg end
  return pusherr(msg)
end
redis.status_reply = function(msg)
  if type(msg) ~= 'string' then error({err = 'ERR wrong number or type of arguments'}) end
  return {ok = msg}
end
redis.sha1hex = function(s)
  if select('#', s) ~= 1 or (type(s) ~= 'string' and type(s) ~= 'number') then
    error({err = 'ERR wrong number of arguments'})
  end
  return pysha1(tostring(s))
end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.log = function(level, ...)
  local n = select('#', ...)
  if n == 0 then error({err = 'ERR redis.log() requires two arguments or more.'}) end
  if type(level) ~= 'number' then error({err = 'ERR First argument must be a number (log level).'}) end
  if level < 0 or level > 3 then error({err = 'ERR Invalid debug level.'}) end
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  pylog(level, concat(parts, ' '))
end
redis.setresp = function(v)
  if v ~= 2 and v ~= 3 then error({err = 'ERR RESP version must be 2 or 3.'}) end
  pyflags('resp', v)
end
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.set_repl = function(v)
  if type(v) ~= 'number' or v < 0 or v > 3 then
    error({err = 'ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.'})
  end
end
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.acl_check_cmd = function(...)
  local args, err = callargs(...)
  if not args then error(pusherr(err)) end
  local r = pyflags('acl', args)
  if type(r) == 'table' then error(r) end
  return r
end
redis.REDIS_VERSION = '7.0.15'
redis.REDIS_VERSION_NUM = 458767
-- redis.call must be a C function, as in Redis: a script's
-- `return redis.call(...)` is a tail call, which would drop the script's
-- frame (and the line its error names) if redis.call were a Lua function.
-- So it is a coroutine.wrap (a C closure) around a loop running the call;
-- an error kills that coroutine, and the next lookup of redis.call makes
-- a new one.
local cowrap, coyield = coroutine.wrap, coroutine.yield
local function cfunction(impl)
  local current
  local function make()
    local co
    local function body(...)
      current = nil   -- dead if impl raises
      local r = impl(...)
      current = co
      return body(coyield(r))   -- a tail call: the coroutine's stack stays flat
    end
    co = cowrap(body)
    current = co
    return co
  end
  return function() return current or make() end
end
local getcall = cfunction(redis.call)
-- The same for the others that raise errors, so that a `return redis.x()`
-- that fails names the script's line too.
local getters = {}
for _, name in ipairs({'acl_check_cmd', 'sha1hex', 'setresp', 'set_repl', 'log',
                       'error_reply', 'status_reply'}) do
  getters[name] = cfunction(redis[name])
end
local rawset_ = rawset
local api = redis
env.redis = setmetatable({}, {
  __index = function(_, k)
    if k == 'call' then return getcall() end
    local getter = getters[k]
    if getter then return getter() end
    return api[k]
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})

-- Redis's __redis__err__handler: the error as a table {err=, source=, line=}
-- naming the script's line (not the line of a redis.* wrapper above).
local PRELUDE = '@redis_prelude'
local function handler(err)
  local lvl = 2
  local i = dbg.getinfo(lvl, 'nSl')
  while i and (i.what == 'C' or i.source == PRELUDE) do
    lvl = lvl + 1
    i = dbg.getinfo(lvl, 'nSl')
  end
  if type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if i then
    err.source = i.source
    err.line = i.currentline
  end
  return err
end

-- The count hook (Redis: every 100,000 instructions): the time limit and SCRIPT KILL.
-- Once killed, it fires on every line, as Redis's: a script's pcall cannot
-- catch the kill for good.
local hook
hook = function()
  local msg = pycheck()
  -- Not in this file's own code: an error there (run() below, after its
  -- xpcall) would escape the script's protection.
  if msg and dbg.getinfo(2, 'S').source ~= PRELUDE then
    dbg.sethook(hook, 'l')
    error({err = msg})
  end
end
dbg.sethook(hook, '', 100000)

-- Read-only tables, as Redis 7 makes the globals and every table in them
-- (lua_enablereadonlytable, a flag of its patched Lua): here a table is
-- read-only through an empty view whose __index is the table, so that any
-- assignment, new key or not, reaches __newindex. A script's changes would
-- otherwise stay in its tenant's state for the next scripts (`redis = nil`,
-- `string.format = ...`). `readonly` is the set of those views.
-- (pairs(string) or pairs(_G) sees an empty view, unlike Redis: wrappers
-- of pairs/next that see through would be Lua functions, which a tail call
-- `return pairs(x)` drops from the stack, and their errors would no longer
-- name the script's line.)
local readonly = setmetatable({}, {__mode = 'k'})
local function refuse() error('Attempt to modify a readonly table', 2) end
local function protect(t, meta)
  local view = setmetatable({}, {__index = t, __newindex = refuse,
                                 __metatable = meta == nil and false or meta})
  readonly[view] = true
  return view
end
readonly[env.redis] = true

-- (Their argument errors are checked here so that they name the script's
-- line, as Lua's own do, not this file's.)
local READONLY = 'Attempt to modify a readonly table'
local function badtable(name, v, count)
  return ("bad argument #1 to '%s' (table expected, got %s)"):format(
    name, count == 0 and 'no value' or type(v))
end
env.rawset = function(...)
  local t, k, v = ...
  if readonly[t] then error(READONLY, 0) end
  if type(t) ~= 'table' then error(badtable('rawset', t, select('#', ...)), 2) end
  return rawset(t, k, v)
end
env.setmetatable = function(...)
  local t, mt = ...
  if readonly[t] then error(READONLY, 0) end
  if type(t) ~= 'table' then error(badtable('setmetatable', t, select('#', ...)), 2) end
  if mt ~= nil and type(mt) ~= 'table' then
    error("bad argument #2 to 'setmetatable' (nil or table expected)", 2)
  end
  local current = dbg.getmetatable(t)
  if current ~= nil and rawget(current, '__metatable') ~= nil then
    error('cannot change a protected metatable', 2)
  end
  return setmetatable(t, mt)
end

-- Global protection, as Redis 7: no new globals, a missing one is an error.
setmetatable(env, {
  __index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
  __newindex = refuse,
  __metatable = false,
})
for _, name in ipairs({'string', 'table', 'math', 'os', 'coroutine'}) do
  rawset(env, name, protect(env[name]))
end
-- getmetatable(_G) gives a table, as Redis's, read-only too; and so does
-- getmetatable('') (its __index the read-only string), so that no script
-- changes the string methods of the next ones.
genv = protect(env, protect({}))
rawset(env, '_G', genv)
getmetatable('').__metatable = protect({__index = env.string})

local fns = {}
local xpcall_ = xpcall
local function compile(sha, body)
  local f, err = loadstring_(body, '@user_script')
  if not f then return err end
  fns[sha] = f
  return nil
end
local function has(sha) return fns[sha] ~= nil end
local function flush() fns = {} end
local function run(sha, keys, argv)
  rawset(env, 'KEYS', keys)
  rawset(env, 'ARGV', argv)
  dbg.sethook(hook, '', 100000)
  local ok, value = xpcall_(fns[sha], handler)
  return ok, value
end
-- run() for a few keys and arguments, given as themselves: cheaper than
-- two tables made from Python (engine.py, VARARGS).
local function runv(sha, nkeys, ...)
  local keys = {...}
  local argv = {select(nkeys + 1, ...)}
  for i = #keys, nkeys + 1, -1 do keys[i] = nil end
  return run(sha, keys, argv)
end
-- A library (part B's scripting/lib: cjson, cmsgpack, struct, bit): its
-- source returns its module table. It runs with globals of its own (the
-- safe standard libraries), never the state's global table.
local function addlib(name, source)
  local f, err = loadstring(source, '@' .. name)
  if not f then return err end
  local libenv = {}
  for k, v in pairs(env) do libenv[k] = v end
  libenv.redis = nil
  libenv._G = libenv
  -- cjson.null is a userdata made by newproxy (the C library's NULL
  -- lightuserdata cannot be made in Lua); scripts themselves never see it.
  libenv.newproxy = newproxy
  setfenv_(f, libenv)
  local ok, module = pcall(f)
  if not ok then return tostring(module) end
  rawset(env, name, type(module) == 'table' and protect(module) or module)
  return nil
end

-- FUNCTION libraries (scripting/functions.lua) live in this state too, so
-- FCALL takes EVAL's path (run above, the hook, busy and kill). They get
-- what they need from here through the state's own global table, which no
-- script can reach; scripting/functions.py takes it out at once.
-- rearm: the count hook back in place of the line hook a killed or timed
-- out script left (run() does the same before each script).
rawset(_G, '__tenantkv_functions', function()
  return env, function(key, f) fns[key] = f end, api, setfenv_,
         function() dbg.sethook(hook, '', 100000) end
end)

return compile, has, flush, run, addlib, runv, setguard
