"""Redis 7.0's Lua libraries (cjson, cmsgpack, struct, bit) in pure Lua 5.1.

Each source is a chunk that returns its module table; the scripting engine
runs it in a tenant's Lua state and sets the global. Pure Lua, so a hostile
script can only reach what any Lua code can (no C code of ours to crash).
"""

from importlib import resources

NAMES = ("cjson", "cmsgpack", "struct", "bit")

LIBRARIES: dict[str, str] = {
    name: resources.files(__name__).joinpath(name + ".lua").read_text(encoding="utf-8")
    for name in NAMES
}
