"""The pure-Lua cjson, cmsgpack, struct and bit (tenantkv.scripting.lib)
against Redis 7.0's C libraries: every case is the same Lua expression, run in
a bare lupa Lua 5.1 state with our sources loaded and by the real
redis-server with EVAL; the two dumps (values, or the error text) must be
byte-identical. Generated cases use fixed seeds."""

import json
import random
import re
import time

import pytest
import redis

from lupa import lua51   # a runtime dependency: no skip when missing

from tenantkv.scripting.lib import LIBRARIES

# dump(...): every returned value in one canonical string. Table keys are
# sorted (decoded tables have no order to compare); numbers "%.17g".
PRELUDE = r"""
local dump
local function key(v) return type(v) .. ":" .. dump(v) end
dump = function(v, depth)
  depth = depth or 0
  if depth > 40 then return "<deep>" end
  local t = type(v)
  if t == "string" then return string.format("%q", v)
  elseif t == "number" then
    if v ~= v then return "nan" end
    return string.format("%.17g", v)
  elseif t == "boolean" or t == "nil" then return tostring(v)
  elseif v == cjson.null then return "NULL"
  elseif t == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return key(a) < key(b) end)
    local out = {}
    for i, k in ipairs(keys) do out[i] = "[" .. dump(k, depth + 1) .. "]=" .. dump(v[k], depth + 1) end
    return "{" .. table.concat(out, ",") .. "}"
  end
  return t
end
local function N(...) return {n = select("#", ...), ...} end
local function run(f)
  local ok, r = pcall(f)
  if not ok then return "ERR " .. tostring(r) end
  local out = {}
  for i = 1, r.n do out[i] = dump(r[i]) end
  return "OK " .. table.concat(out, " ")
end
"""


def lua_str(data: bytes | str) -> str:
    """A Lua string literal for any bytes."""
    if isinstance(data, str):
        data = data.encode()
    out = []
    for b in data:
        c = chr(b)
        if (c.isascii() and c.isalnum()) or c in " _-+.,:;!?()[]{}<>=*&^%$#@~|/":
            out.append(c)
        else:
            out.append("\\%03d" % b)
    return '"' + "".join(out) + '"'


def batch_script(exprs: list[str]) -> str:
    # N(...) keeps every result and keeps the call from being a tail call
    # (a Lua 5.1 tail call drops the caller's line from error texts)
    body = ",\n".join("function() return N(%s) end" % e for e in exprs)
    return PRELUDE + "local cases = {\n" + body + "\n}\nlocal res = {}\n" \
        "for i, f in ipairs(cases) do res[i] = run(f) end\nreturn res\n"


def new_lua():
    runtime = lua51.LuaRuntime(encoding=None)
    g = runtime.globals()
    for name, source in LIBRARIES.items():
        g[name.encode()] = runtime.execute(source)
    return runtime


@pytest.fixture(scope="module")
def lua():
    return new_lua()


@pytest.fixture(scope="module")
def ref(redis_server):
    client = redis.Redis(port=redis_server.port)
    yield client
    client.close()


def ours(lua, exprs):
    # Redis names a script's chunk "@user_script": errors carry its lines
    loadstring = lua.globals()[b"loadstring"]
    chunk = loadstring(batch_script(exprs).encode(), b"@user_script")
    assert not isinstance(chunk, tuple), chunk
    table = chunk()
    return [table[i + 1] for i in range(len(exprs))]


def theirs(ref, exprs):
    ref.script_flush()
    return ref.eval(batch_script(exprs), 0)


def compare(lua, ref, exprs, chunk=200):
    """Every expression gives the same dump in both; returns them."""
    results = []
    for start in range(0, len(exprs), chunk):
        part = exprs[start:start + chunk]
        mine, real = ours(lua, part), theirs(ref, part)
        assert len(mine) == len(real) == len(part)
        for expr, a, b in zip(part, mine, real):
            assert a == b, "differs for %s\n ours:  %r\n redis: %r" % (expr[:300], a[:300], b[:300])
        results.extend(real)
    return results


# ---- value generators -------------------------------------------------------

NUMBERS = ["0", "-0", "1", "-1", "0.1", "-0.5", "1.5", "2.5", "1e300", "-1e-300", "1e15", "1e16",
           "123456789012345", "1234567890123456789", "2^31", "2^31-1", "-2^31", "2^32", "2^32+5",
           "2^53", "2^53+1", "2^63", "-2^63", "2^64", "3.14159265358979", "1/3", "5e-324",
           "1.17549435e-38", "3.4028234663852886e38", "3.4028236e38", "16777217", "0.25",
           "127", "128", "255", "256", "-32", "-33", "-128", "-129", "65535", "65536",
           "-32768", "-32769", "4294967295", "-2147483649", "1e10", "-1e10", "0.1+0.2"]


def rand_string(rng: random.Random, key: bool = False) -> str:
    """key: under 32 bytes. Redis hashes every byte of a string (7f88923b4),
    PUC Lua 5.1 samples longer ones: table order differs for long keys (README)."""
    kind = rng.random()
    if key and kind >= 0.5:
        kind = 0.7
    if kind < 0.3:
        n = rng.choice([0, 1, 5, 31] if key else [0, 1, 5, 31, 32, 33])
        return lua_str(bytes(rng.randrange(256) for _ in range(n)))
    if kind < 0.5:
        return lua_str(rng.choice(["a/b", "quote\"", "back\\slash", "\x7f", "tab\tnl\n", "é",
                                   "\u2028", "\x00", "ctl\x01\x1f", ""]))
    if kind < 0.6:
        return "string.rep(%s, %d)" % (lua_str(rng.choice("ab/\"")), rng.choice([255, 256, 65535, 65536, 70000]))
    return lua_str("".join(rng.choice("abcdefgh") for _ in range(rng.randrange(1, 8))))


def rand_number(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        return "(%s)" % rng.choice(NUMBERS)
    if r < 0.6:
        return repr(rng.randint(-2 ** 40, 2 ** 40))
    if r < 0.8:
        return repr(rng.uniform(-1e6, 1e6))
    return "(%r)" % (rng.choice([-1, 1]) * 10 ** rng.uniform(-40, 40))


def rand_value(rng: random.Random, depth: int = 0, allow_sparse: bool = False) -> str:
    r = rng.random()
    if depth < 4 and r < 0.35:
        kind = rng.random()
        n = rng.randrange(0, 6)
        if kind < 0.4:      # array
            return "{" + ",".join(rand_value(rng, depth + 1, allow_sparse) for _ in range(n)) + "}"
        if kind < 0.8:      # map with string keys
            return "{" + ",".join("[%s]=%s" % (rand_string(rng, key=True), rand_value(rng, depth + 1, allow_sparse))
                                  for _ in range(n)) + "}"
        # mixed / numeric keys
        keys = [rng.choice(["1", "2", "3", "0", "-1", "1.5", "100", "11", "12", '"x"'])
                for _ in range(n)]
        if not allow_sparse:
            keys = [k for k in keys if k not in ("100", "11", "12")]
        return "{" + ",".join("[%s]=%s" % (k, rand_value(rng, depth + 1, allow_sparse)) for k in keys) + "}"
    if r < 0.6:
        return rand_number(rng)
    if r < 0.85:
        return rand_string(rng)
    return rng.choice(["true", "false", "cjson.null"])


# ---- cjson -----------------------------------------------------------------

CJSON_ENCODE = [
    "cjson.encode({})", "cjson.encode({1,2,3})", "cjson.encode({a=1})", "cjson.encode('a/b\"c\\\\')",
    "cjson.encode(cjson.null)", "cjson.encode(nil)", "cjson.encode(true)",
    "cjson.encode({[1]=1,[2]=2,[4]=4})", "cjson.encode({[1]=1,[20]=2})", "cjson.encode({[11]=1})",
    "cjson.encode({[10]=1})", "cjson.encode({[0]=1})", "cjson.encode({[-1]=1})", "cjson.encode({[1.5]=1})",
    "cjson.encode({[true]=1})", "cjson.encode({[{}]=1})", "cjson.encode(tostring)",
    "cjson.encode(0/0)", "cjson.encode(1/0)", "cjson.encode(-1/0)", "cjson.encode({[1/0]=1})",
    "cjson.encode()", "cjson.encode(1, 2)", "cjson.encode({1, nil, 3})", "cjson.encode({nil, nil, 3})",
    "cjson.encode({f=tostring})", "cjson.encode(coroutine.create(tostring))",
    "cjson.encode(string.rep('\\1\\127\\128\\255', 3))",
    "(function() local t = {} t[1] = t local r = cjson.encode(t) return r end)()",
    "(function() local t = {} local c = t for i = 1, 999 do c[1] = {} c = c[1] end local r = cjson.encode(t) return r end)()",
    "(function() local t = {} local c = t for i = 1, 1000 do c[1] = {} c = c[1] end local r = cjson.encode(t) return r end)()",
    "(function() local t = {} local c = t for i = 1, 1000 do c.k = {} c = c.k end local r = cjson.encode(t) return r end)()",
    "cjson.encode({[1]=1, a=2})", "cjson.encode({['1']=1})",
    "cjson._NAME", "cjson._VERSION", "type(cjson.null)", "cjson.decode('null') == cjson.null",
    "cjson.encode_keep_buffer()", "cjson.encode_max_depth()", "cjson.decode_max_depth()",
    "cjson.encode_number_precision()", "cjson.encode_sparse_array()",
    "cjson.encode_invalid_numbers()", "cjson.decode_invalid_numbers()",
] + ["cjson.encode(%s)" % n for n in NUMBERS] + \
    ["cjson.encode({[%s]=true})" % n for n in NUMBERS]

JSON_TEXTS = [
    "", " ", "1", "-1", "1.5e3", "1E-2", "-0", "0.0", "01", "-01", "+1", "0x10", "-0x1F", "0x", "0x1p4",
    "inf", "-inf", "Infinity", "-Infinity", "nan", "NaN", "-nan", "nan(123)", "infinity", "infx",
    ".5", "-.5", "1.", "1e", "1e+", "-", "--1", "1.2.3", "1e400", "-1e400", "4.9e-324", "123456789012345678901",
    "true", "false", "null", "tru", "nul", "nullx", "True", "[]", "{}", "[1,2,3]", "[1,2,]", "[,]",
    "[1 2]", "{\"a\":1}", "{\"a\" 1}", "{\"a\":}", "{a:1}", "{\"a\":1,}", "{1:2}", "[\"a\\/b\"]",
    "\"\\u00e9\\u20ac\\ud83d\\ude00\"", "\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83d\\u0041\"", "\"\\u12\"",
    "\"\\uZZZZ\"", "\"\\x\"", "\"abc", "\"a\\", "\"\\b\\f\\n\\r\\t\\\"\\\\\"", "\"tab\there\"",
    "[1]x", "[1] ", " [1] ", "\t\r\n[1]\n", "[1]\x00garbage", "\"a\x00b\"", "\x00[1]", "[\x00]",
    "{\"a\":{\"b\":{\"c\":[null,true,false]}}}", "{\"a\":1,\"a\":2}", "[[[[[]]]]]", "{\"\":\"\"}",
    "[1e5, -2.5E-3, 0.000001, 100000000000000000000]", "\"\x7f\x80\xff\"", "'a'", "[-]", "[-x]",
    "\"\\u0000\"", "[1,{\"a\":[2,{\"b\":3}]}]", "123 456", "ü",
    "[" * 1000 + "]" * 1000, "[" * 1001 + "]" * 1001, "{\"a\":" * 1001 + "1" + "}" * 1001,
    "[" * 5000, "[1" + ",1" * 5000 + "]",
]


def test_cjson_encode_fixed_cases(lua, ref):
    compare(lua, ref, CJSON_ENCODE)


def test_cjson_encode_random_tables(lua, ref):
    rng = random.Random(1717)
    exprs = ["cjson.encode(%s)" % rand_value(rng, allow_sparse=True) for _ in range(600)]
    results = compare(lua, ref, exprs)
    # the generator must reach both outcomes, or it tests little
    assert sum(r.startswith(b"OK") for r in results) > 300
    assert any(b"excessively sparse" in r for r in results)


def test_cjson_decode_cases(lua, ref):
    exprs = ["cjson.decode(%s)" % lua_str(t) for t in JSON_TEXTS]
    exprs += ["cjson.encode(cjson.decode(%s))" % lua_str(t) for t in JSON_TEXTS]
    exprs += ["cjson.decode()", "cjson.decode(1, 2)", "cjson.decode(nil)", "cjson.decode(12)",
              "cjson.decode({})"]
    compare(lua, ref, exprs)


def test_cjson_configuration(ref):
    """The settings functions: replies, errors, and their effect (in order,
    in a fresh state on both sides: SCRIPT FLUSH makes a new Lua state)."""
    exprs = [
        "cjson.encode_number_precision(3)", "cjson.encode(math.pi)", "cjson.encode({[1.23456]=1})",
        "cjson.encode_number_precision(0)", "cjson.encode_number_precision(15)",
        "cjson.encode_number_precision('x')", "cjson.encode_number_precision('5')",
        "cjson.encode_number_precision(7.9)", "cjson.encode(1/3)", "cjson.encode_number_precision(1, 2)",
        "cjson.encode_number_precision(nil)", "cjson.encode_number_precision(14)",
        "cjson.encode_sparse_array()", "cjson.encode_sparse_array(true)", "cjson.encode({[1]=1,[20]=2})",
        "cjson.encode_sparse_array('off', 3, 4)", "cjson.encode({[1]=1,[5]=2})", "cjson.encode({[1]=1,[4]=2})",
        "cjson.encode_sparse_array('bad')", "cjson.encode_sparse_array({})", "cjson.encode_sparse_array(nil, -1)",
        "cjson.encode_sparse_array(1, 2, 3, 4)", "cjson.encode_sparse_array(false, 0, 0)",
        "cjson.encode({[1]=1,[1000]=2})",
        "cjson.encode_max_depth(2)", "cjson.encode({{1}})", "cjson.encode({{{1}}})", "cjson.encode_max_depth(0)",
        "cjson.decode_max_depth(2)", "cjson.decode('[[1]]')", "cjson.decode('[[[1]]]')", "cjson.decode('{\"a\":{\"b\":{}}}')",
        "cjson.encode_invalid_numbers()", "cjson.encode_invalid_numbers('null')", "cjson.encode({1/0, 0/0})",
        "cjson.encode_invalid_numbers(true)", "cjson.encode({1/0, -1/0, 0/0})", "cjson.encode_invalid_numbers('on')",
        "cjson.encode_invalid_numbers('x')", "cjson.encode_invalid_numbers(false)", "cjson.encode(0/0)",
        "cjson.decode_invalid_numbers()", "cjson.decode_invalid_numbers(false)", "cjson.decode('0x10')",
        "cjson.decode('+1')", "cjson.decode('inf')", "cjson.decode('-Infinity')", "cjson.decode('01')",
        "cjson.decode('-01')", "cjson.decode('1')", "cjson.decode('-0.5e1')", "cjson.decode('nan')",
        "cjson.decode_invalid_numbers('on')", "cjson.decode('0x10')",
        "cjson.encode_keep_buffer()", "cjson.encode_keep_buffer(false)", "cjson.encode({1})",
        "cjson.encode_keep_buffer('on')", "cjson.encode_keep_buffer(1)",
        "(function() local c = cjson.new() local p = c.encode_number_precision(2) "
        "local r = {p, c.encode(math.pi), cjson.encode(math.pi)} return r end)()",
    ]
    mine = ours(new_lua(), exprs)
    real = theirs(ref, exprs)
    assert len(mine) == len(real) == len(exprs)
    for expr, a, b in zip(exprs, mine, real):
        assert a == b, "differs for %s\n ours:  %r\n redis: %r" % (expr, a, b)


def py_value(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth < 4 and r < 0.3:
        if rng.random() < 0.5:
            return [py_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
        return {"".join(rng.choice("ab\u00e9\u20ac\U0001f600/\"\\\n\x01") for _ in range(rng.randrange(0, 5))):
                py_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}
    if r < 0.45:
        return rng.choice([0, -1, 10 ** 20, -(2 ** 63), 2 ** 53 + 1, rng.randint(-10 ** 9, 10 ** 9)])
    if r < 0.6:
        return rng.choice([0.1, -0.0, 1e-7, 1.5e300, 5e-324, rng.uniform(-1e6, 1e6), float("nan"), float("inf")])
    if r < 0.8:
        return "".join(rng.choice("xyz \u00e9\u0800\U0001f600\ud800\t\x00\x7f/") for _ in range(rng.randrange(0, 8)))
    return rng.choice([True, False, None])


def test_cjson_decode_foreign_json(lua, ref):
    """JSON written by Python's json (ASCII escapes with surrogate pairs,
    raw UTF-8, indentation, NaN/Infinity): the same tables, or the same error."""
    rng = random.Random(2024)
    exprs = []
    for _ in range(300):
        text = json.dumps(py_value(rng), ensure_ascii=rng.random() < 0.5,
                          indent=rng.choice([None, 0, 2, "\t"]),
                          separators=rng.choice([None, (",", ":"), (" , ", " : ")]))
        exprs.append("cjson.decode(%s)" % lua_str(text.encode("utf-8", "surrogatepass")))
    results = compare(lua, ref, exprs)
    assert sum(r.startswith(b"OK") for r in results) > 200


def test_cjson_roundtrip_random(lua, ref):
    rng = random.Random(4242)
    exprs = ["cjson.decode(cjson.encode(%s))" % rand_value(rng) for _ in range(300)]
    compare(lua, ref, exprs)


def test_cjson_big_inputs_are_fast(lua, ref):
    """1 MB each way stays well under Redis's 5 s script limit (and ours)."""
    exprs = ["#cjson.encode((function() local t = {} for i = 1, 50000 do "
             "t[i] = {id = i, name = 'n/' .. i, v = i * 0.5} end return t end)())",
             "#cjson.encode(string.rep('a\"/\\1', 300000))",
             "#cjson.decode(cjson.encode(string.rep('x\\n', 500000)))",
             "(function() local t = cjson.decode('[' .. string.rep('1.5,', 200000) .. '1]') return #t end)()"]
    start = time.monotonic()
    compare(lua, ref, exprs)
    assert time.monotonic() - start < 30


# ---- cmsgpack ----------------------------------------------------------------

MSGPACK_FIXED = [
    "cmsgpack.pack()", "cmsgpack.pack(nil)", "cmsgpack.pack(true, false)", "cmsgpack.pack({})",
    "cmsgpack.pack({1,2,3})", "cmsgpack.pack({a=1})", "cmsgpack.pack({[1]=1,[3]=3})",
    "cmsgpack.pack(tostring)", "cmsgpack.pack(cjson.null)", "cmsgpack.pack(0/0)", "cmsgpack.pack(1/0)",
    "cmsgpack.pack(-1/0)", "cmsgpack.pack({[2^31]=1})", "cmsgpack.pack({[1.5]=1})", "cmsgpack.pack({1,nil,3})",
    "(function() local t = {} t[1] = t return cmsgpack.pack(t) end)()",
    "(function() local t = {} local c = t for i = 1, 20 do c.x = {} c = c.x end return cmsgpack.pack(t) end)()",
    "cmsgpack.pack(string.rep('x', 31), string.rep('x', 32), string.rep('x', 255), string.rep('x', 256))",
    "#cmsgpack.pack(string.rep('x', 65535)) .. #cmsgpack.pack(string.rep('x', 65536))",
    "cmsgpack.pack((function() local t = {} for i = 1, 16 do t[i] = i end return t end)())",
    "#cmsgpack.pack((function() local t = {} for i = 1, 70000 do t[i] = i end return t end)())",
    "cmsgpack.pack((function() local t = {} for i = 1, 16 do t['k' .. i] = i end return t end)())",
    "#cmsgpack.pack((function() local t = {} for i = 1, 70000 do t['k' .. i] = i end return t end)())",
    "cmsgpack.unpack('')", "cmsgpack.unpack()", "cmsgpack.unpack(nil)", "cmsgpack.unpack(12)",
    "cmsgpack.unpack('\\192\\192\\192')", "cmsgpack.unpack('\\193')", "cmsgpack.unpack('\\196\\1a')",
    "cmsgpack.unpack('\\205\\1')", "cmsgpack.unpack('\\146\\1')", "cmsgpack.unpack('\\130\\1\\2')",
    "cmsgpack.unpack('\\129\\192\\1')", "cmsgpack.unpack('\\129\\203\\255\\248\\0\\0\\0\\0\\0\\0\\1')",
    "cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255')",
    "cmsgpack.unpack('\\207\\128\\0\\0\\0\\0\\0\\0\\0')", "cmsgpack.unpack('\\207\\0\\32\\0\\0\\0\\0\\0\\1')",
    "cmsgpack.unpack('\\211\\255\\255\\255\\255\\255\\255\\255\\254')",
    "cmsgpack.unpack('\\202\\127\\128\\0\\0', '\\202\\0\\0\\0\\1', '\\202\\128\\0\\0\\0')",
    "cmsgpack.unpack('\\203\\0\\0\\0\\0\\0\\0\\0\\1')", "cmsgpack.unpack('\\219\\0\\0\\0\\2ab')",
    "cmsgpack.unpack('\\219\\255\\255\\255\\255ab')", "cmsgpack.unpack('\\221\\255\\255\\255\\255')",
    "cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3))", "cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 1)",
    "cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 2)", "cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 3)",
    "cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 4)", "cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), -1)",
    "cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 'x')", "cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), '1')",
    "cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 1.7)", "cmsgpack.unpack_one()",
    "cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)", "cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2, 2)",
    "cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0)", "cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0, 1)",
    "cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0, 3)", "cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), -1)",
    "cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3))", "cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 9, 1)",
    "cmsgpack.unpack_limit('\\1\\193', 5)", "cmsgpack.unpack_one('\\205')",
    "#{cmsgpack.unpack(string.rep('\\1', 7000))}", "cmsgpack.unpack(string.rep('\\1', 9000))",
    "cmsgpack._NAME", "cmsgpack._VERSION", "cmsgpack._COPYRIGHT", "cmsgpack._DESCRIPTION",
] + ["cmsgpack.pack(%s)" % n for n in NUMBERS] + \
    ["cmsgpack.unpack(cmsgpack.pack(%s))" % n for n in NUMBERS]


def test_cmsgpack_fixed_cases(lua, ref):
    compare(lua, ref, MSGPACK_FIXED)


def test_cmsgpack_pack_random(lua, ref):
    rng = random.Random(99)
    exprs = []
    for _ in range(500):
        args = ", ".join(rand_value(rng, allow_sparse=True) for _ in range(rng.randrange(1, 4)))
        exprs.append("cmsgpack.pack(%s)" % args)
        exprs.append("cmsgpack.unpack(cmsgpack.pack(%s))" % args)
    compare(lua, ref, exprs)


def test_cmsgpack_unpack_fuzz(lua, ref):
    """Random and truncated inputs: the same values, or the same error."""
    rng = random.Random(7)
    exprs = []
    for _ in range(400):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
        exprs.append("cmsgpack.unpack(%s)" % lua_str(data))
    for _ in range(150):
        packed = "cmsgpack.pack(%s)" % rand_value(rng)
        exprs.append("(function() local s = %s local r = N(cmsgpack.unpack(s:sub(1, #s - %d))) "
                     "return unpack(r, 1, r.n) end)()"
                     % (packed, rng.randrange(1, 4)))
    results = compare(lua, ref, exprs)
    assert any(b"Missing bytes" in r for r in results)
    assert any(b"Bad data format" in r for r in results)


def test_cmsgpack_hostile_nesting_errors(lua, ref):
    """Deep arrays error (stack) instead of crashing either side."""
    exprs = ["pcall(cmsgpack.unpack, string.rep('\\145', 100000))",
             "(pcall(cmsgpack.unpack, string.rep('\\145', 100000) .. '\\1'))"]
    for expr in exprs:
        assert ours(lua, [expr])[0].startswith(b"OK false")
        assert theirs(ref, [expr])[0].startswith(b"OK false")


# ---- bit -----------------------------------------------------------------

BIT_VALUES = ["0", "1", "-1", "0.5", "1.5", "2.5", "-0.5", "-1.5", "0x7fffffff", "0x80000000", "0xffffffff",
              "2^32", "2^32+1", "-2^31", "2^40+3", "2^51", "2^52", "2^53", "2^60+2^40", "-2^60", "1e300",
              "-1e300", "1/0", "-1/0", "0/0", "12345.678", "'12'", "' 0x10 '", "1437217655", "2^51+0.5",
              "-(2^51)-1", "6755399441055744", "-6755399441055744"]


def test_bit_operations(lua, ref):
    rng = random.Random(5)
    exprs = []
    for v in BIT_VALUES:
        for f in ("tobit", "bnot", "bswap", "tohex"):
            exprs.append("bit.%s(%s)" % (f, v))
    for v in BIT_VALUES:
        for w in ("0", "1", "4", "8", "9", "-1", "-4", "-8", "-9", "-2^31", "2^32+2", "31", "32", "33", "-3"):
            exprs.append("bit.tohex(%s, %s)" % (v, w))
            for f in ("lshift", "rshift", "arshift", "rol", "ror"):
                exprs.append("bit.%s(%s, %s)" % (f, v, w))
    for _ in range(400):
        args = ", ".join(rng.choice(BIT_VALUES + [repr(rng.randint(-2 ** 33, 2 ** 33))])
                         for _ in range(rng.randrange(1, 5)))
        for f in ("band", "bor", "bxor"):
            exprs.append("bit.%s(%s)" % (f, args))
    exprs += ["bit.tobit()", "bit.tobit(nil)", "bit.tobit('x')", "bit.band(1, 'x')", "bit.band(1, {})",
              "bit.tohex(1, nil)", "bit.lshift(1)", "bit.bor()", "bit.tohex('0x1f')"]
    compare(lua, ref, exprs)


# ---- struct ----------------------------------------------------------------

STRUCT_CASES = [
    ("b", ["0", "-1", "127", "-128", "255", "300", "1.9", "-1.9"]),
    ("B", ["0", "255", "256", "-1"]), ("h", ["-2", "32767", "65535"]), ("H", ["65535", "-1"]),
    ("i", ["-2", "2^31", "2^32+7"]), ("I", ["2^32-1", "-1"]), ("l", ["-2", "2^53", "-2^63", "2^63"]),
    ("L", ["2^64-2^11", "-1", "2^63"]), ("T", ["12345"]), ("i3", ["-2", "2^23"]), ("I7", ["2^55+1", "-1"]),
    ("i16", ["-1", "5"]), ("I9", ["2^60"]), ("i1", ["-1"]), ("f", ["1.5", "0.1", "-0", "1e40", "1e-40", "1e-50",
                                                                        "3.4028235e38", "3.4028236e38", "1/0", "16777217"]),
    ("d", ["0.1", "-0", "1/0", "-1/0", "5e-324", "1e300"]),
    (">i", ["1", "-2"]), ("<i", ["1"]), (">l", ["-3"]), (">d", ["1.5"]), (">f", ["-2.5"]), (">H", ["258"]),
    ("c5", ["'hello world'", "'hi'"]), ("c0", ["'abc'"]), ("s", ["'abc'", "'a\\0b'"]), ("c", ["'xyz'"]),
    ("!4 b i", ["1, 2"]), ("!8 b d", ["1, 2.5"]), ("! b h b l", ["1, 2, 3, 4"]), ("!2 b i", ["1, 2"]),
    ("b x i", ["1, 2"]), ("!4 i3 b i3", ["1, 2, 3"]), ("!3 i", ["1"]), ("z", ["1"]), ("?", ["1"]),
    ("i33", ["1"]), ("i99999999999", ["1"]), ("b", ["'x'"]), ("b", ["'12'"]), ("b", [""]), ("bb", ["1"]),
    ("= i", ["1"]), ("i\0i", ["1, 2"]), ("c20", ["'short'"]),
]


def test_struct_pack_unpack_size(lua, ref):
    exprs = []
    for fmt, values in STRUCT_CASES:
        f = lua_str(fmt)
        for v in values:
            args = (", " + v) if v else ""
            exprs.append("struct.pack(%s%s)" % (f, args))
            exprs.append("struct.unpack(%s, struct.pack(%s%s))" % (f, f, args))
        exprs.append("struct.size(%s)" % f)
    exprs += [
        "struct.unpack('i', 'abc')", "struct.unpack('i', 'abcd', 2)", "struct.unpack('b', 'abcd', 4)",
        "struct.unpack('b', 'abcd', 5)", "struct.unpack('b', 'abcd', 0)", "struct.unpack('b', 'abcd', -1)",
        "struct.unpack('', 'abcd', -1)", "struct.unpack('', 'abcd', 3)", "struct.unpack('s', 'abc')",
        "struct.unpack('s s', 'ab\\0cd\\0e')", "struct.unpack('b c0', '\\3abcdef')",
        "struct.unpack('c0', 'abc')", "struct.unpack('c1 c0', '3abcdef')", "struct.unpack('b c0', '\\9abc')",
        "struct.unpack('x x b', 'abc')", "struct.unpack('>i <i', '\\0\\0\\0\\1\\1\\0\\0\\0')",
        "struct.unpack('i16', string.rep('\\255', 16))", "struct.unpack('I16', string.rep('\\1', 16))",
        "struct.unpack('>i12', '\\128' .. string.rep('\\0', 10) .. '\\1')",
        "struct.unpack('i9', '\\0\\0\\0\\0\\0\\0\\0\\128\\1')",
        "struct.unpack('f d', struct.pack('f d', 0/0, 0/0))", "struct.pack()", "struct.unpack('i')",
        "struct.pack('<L', 0/0)", "struct.pack('<l', -(0/0))", "struct.pack('<f d', -(0/0), -(0/0))",
        "struct.pack('<L', 2^64)", "struct.pack('<L', 1/0)", "struct.pack('<l', -1/0)", "struct.pack('<L', 2^70)",
        "struct.pack('<i', 2^63)", "struct.pack('<l', -2^70)", "struct.pack('>L', 2^63 + 2^12)",
        "struct.size('s')", "struct.size('c0')", "struct.size('!4 b i d')", "struct.size('zq')",
        "struct.size('?')", "struct.size('i40')", "struct.pack(12, 1)", "struct.unpack(12, '123456789012')",
    ]
    rng = random.Random(3)
    for _ in range(200):
        opts = [rng.choice(["b", "B", "h", "H", "i", "I", "l", "L", "i3", "I5", "d", "f", "x", ">", "<",
                            "!", "!2", "!4"]) for _ in range(rng.randrange(1, 6))]
        args = []
        for o in opts:
            if o[0] in "bBhHiIlLdf":
                args.append(rand_number(rng))
        fmt = lua_str(" ".join(opts))
        a = (", " + ", ".join(args)) if args else ""
        exprs.append("struct.pack(%s%s)" % (fmt, a))
        exprs.append("struct.unpack(%s, struct.pack(%s%s))" % (fmt, fmt, a))
        exprs.append("struct.size(%s)" % fmt)
    compare(lua, ref, exprs)


def pcalled(body: str) -> str:
    """`body` run inside pcall, not as a tail call; the error text itself."""
    return "(function() local ok, r = pcall(function() local x = %s return x end) return r end)()" % body


def test_error_texts_and_stack_limits(lua, ref):
    """C names the function as it was called ('e', '?', method calls), puts
    the caller's line in front, and fails at LUAI_MAXCSTACK (8000 slots)."""
    exprs = [
        "pcall(cjson.encode)", "pcall(bit.band, 1, {})", "pcall(struct.pack)", "pcall(cmsgpack.unpack_one)",
        "(function() local e = cjson.encode return pcall(e, 1, 2) end)()",
        "(function() local e = cjson.encode local ok, r = pcall(function() local x = e(1, 2) return x end) return r end)()",
        "(function() local b = bit.band local ok, r = pcall(function() local x = b(1, {}) return x end) return r end)()",
        "(function() local t = {f = cmsgpack.unpack_one} local ok, r = pcall(function() local x = t:f() return x end) return r end)()",
        "(function() local t = {f = struct.unpack} local ok, r = pcall(function() local x = t:f() return x end) return r end)()",
        "(function() local t = {f = bit.tohex} local ok, r = pcall(function() local x = t:f() return x end) return r end)()",
        pcalled("bit.tobit()"), pcalled("bit.lshift(1)"), pcalled("bit.bxor(1, 2, nil)"), pcalled("struct.pack('b')"),
        pcalled("cjson.decode('[')"), pcalled("cjson.encode({[{}] = 1})"), pcalled("cmsgpack.unpack('\\193')"),
        pcalled("struct.size('?')"), pcalled("cmsgpack.unpack('\\129\\192\\1')"),
    ]
    for n in (7998, 7999, 8000):
        exprs.append("select('#', cmsgpack.unpack(string.rep('\\1', %d)))" % n)
        exprs.append("select('#', cmsgpack.unpack(string.rep('\\1', %d), 'extra'))" % n)
        exprs.append("select('#', cmsgpack.unpack_limit(string.rep('\\1', 9000), %d))" % (n - 1))
        exprs.append("select('#', struct.unpack(string.rep('b', %d), string.rep('a', 9000)))" % (n - 2))
        exprs.append("select('#', struct.unpack(string.rep('b', %d), string.rep('a', 9000), 1))" % (n - 2))
    for depth in (3998, 3999, 4000):
        exprs.append("#{cmsgpack.unpack(string.rep('\\145', %d) .. '\\1')}" % depth)
        exprs.append("#{cmsgpack.unpack(string.rep('\\129\\1', %d) .. '\\1')}" % depth)
        exprs.append("#{cmsgpack.unpack(string.rep('\\129', %d) .. '\\1\\1')}" % (2 * depth))
    compare(lua, ref, exprs)


CALLS = [
    "cjson.encode({1, {a = 'x/y', b = {true, false, cjson.null}}, 1.5, 1/3})",
    "cjson.decode('[1, \"\\\\u00e9\", {\"a\": -1e5}, 0x10]')", "cjson.decode('[1,')", "cjson.encode({[true] = 1})",
    "cjson.new().encode_number_precision(3)", "cjson.encode(1, 2)",
    "cmsgpack.pack({1, 2, {a = 1.5}}, 0.1, -5, 2^40, 'x', true)", "cmsgpack.unpack('\\146\\1\\2\\3')",
    "cmsgpack.unpack_limit('\\1\\2\\3', 2)", "cmsgpack.unpack('\\193')", "cmsgpack.unpack(12)",
    "bit.band(1, 3, 7)", "bit.tohex(255, -4)", "bit.rol(1, 3)", "bit.band({})",
    "struct.pack('>!4 b i d s', 1, 2, 1.5, 'zz')", "struct.unpack('b c0', '\\3abc')", "struct.pack('z')",
]


SABOTAGED = ["string.format", "string.match", "string.find", "string.sub", "string.byte", "string.char",
             "string.rep", "string.gsub", "string.reverse", "string.lower", "table.concat", "math.floor",
             "math.frexp", "math.ldexp", "pairs", "ipairs", "next", "type", "tostring", "tonumber", "unpack",
             "rawset", "rawget", "setmetatable", "getmetatable", "debug", "newproxy", "error"]


def test_libraries_survive_a_changed_environment():
    """A script that replaces string functions and globals after loading
    (in its own state) does not change what the libraries do: they keep
    what they use from load time."""
    clean = ours(new_lua(), CALLS)
    save = "".join("local saved%d = %s\n" % (i, name) for i, name in enumerate(SABOTAGED))
    wipe = "".join("%s = nil\n" % name for name in SABOTAGED)
    restore = "".join("%s = saved%d\n" % (name, i) for i, name in enumerate(SABOTAGED))
    body = ",\n".join("function() return N(%s) end" % e for e in CALLS)
    script = (PRELUDE + "local cases = {\n" + body + "\n}\n" + save + wipe +
              "local raw = {}\nfor i = 1, #cases do raw[#raw + 1] = {pcall(cases[i])} end\n" + restore +
              "local res = {}\nfor i, r in ipairs(raw) do\n"
              "  res[i] = run(function() if not r[1] then error(r[2], 0) end return r[2] end)\nend\n"
              "return res\n")
    lua = new_lua()
    chunk = lua.globals()[b"loadstring"](script.encode(), b"@user_script")
    assert not isinstance(chunk, tuple), chunk
    table = chunk()
    sabotaged = [table[i + 1] for i in range(len(CALLS))]
    assert sabotaged == clean
    assert any(r.startswith(b"ERR") for r in clean) and any(r.startswith(b"OK") for r in clean)


def test_loaded_without_debug_and_newproxy():
    """A state that lacks them at load time still gets a working cjson.null
    and C's texts with the field names."""
    runtime = lua51.LuaRuntime(encoding=None)
    runtime.execute(b"debug = nil newproxy = nil")
    g = runtime.globals()
    for name, source in LIBRARIES.items():
        g[name.encode()] = runtime.execute(source)
    got = ours(runtime, ["cjson.encode({1, cjson.null})", "cjson.decode('[null]')[1] == cjson.null",
                         "tostring(cjson.null)", pcalled("cjson.encode()"), pcalled("bit.band({})")])
    assert got[:3] == [b'OK "[1,null]"', b"OK true", b'OK "userdata: (nil)"']
    assert re.fullmatch(rb"OK \"user_script:\d+: bad argument #1 to 'encode' \(expected 1 argument\)\"", got[3])
    assert re.fullmatch(rb"OK \"user_script:\d+: bad argument #1 to 'band' \(number expected, got table\)\"", got[4])


def test_libraries_are_package_data():
    """Each source is shipped and returns a table when run alone."""
    assert set(LIBRARIES) == {"cjson", "cmsgpack", "struct", "bit"}
    for name, source in LIBRARIES.items():
        runtime = lua51.LuaRuntime(encoding=None)
        module = runtime.execute(source)
        assert lua51.lua_type(module) == "table", name

