"""Redis 7.0's Lua libraries (cjson, cmsgpack, struct, bit) in pure Lua 5.1.

Each source is a chunk that returns its module table; the scripting engine
runs it in a tenant's Lua state and sets the global of that name. Pure Lua:
a hostile script reaches no C code of ours, and a count hook can stop it
inside a library call too (`cmsgpack.pack` of a table shared 4 ways on 16
levels runs "forever" in Redis as well).

For the engine: run the chunks before the sandbox removes anything. They
keep, from load time, every global they use, plus `debug.getinfo` (for C's
argument-error texts; without it the texts name the field, 'encode') and
`newproxy` (cjson.null is a userdata made by it, which the reply conversion
must turn into a nil reply as Redis does for its NULL light userdata;
without newproxy it is an empty table with a __tostring). Results and errors
match redis-server 7.0 byte for byte: tests/test_lua_libs.py; the few known
differences are in README.md (Compatibility).
"""

from importlib import resources

NAMES = ("cjson", "cmsgpack", "struct", "bit")

def _source(name: str) -> str:
    return resources.files(__name__).joinpath(name + ".lua").read_text(encoding="utf-8")


# Each library's chunk starts with _support.lua (argument errors, error
# positions, many return values: what the C libraries share in lauxlib).
_SUPPORT = _source("_support")
LIBRARIES: dict[str, str] = {name: _SUPPORT + "\n" + _source(name) for name in NAMES}
