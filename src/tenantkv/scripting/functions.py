"""FUNCTION libraries of a tenant (`tenant.functions`), as Redis 7.0.

A library is the code FUNCTION LOAD got (`#!lua name=<lib>` then Lua); its
code runs once in the tenant's Lua state (scripting/engine.py, the state
EVAL uses, so FCALL takes EVAL's path: the worker thread, busy and kill,
the log's effects) with only the library API (functions.lua) and registers
functions, which FCALL runs (`Scripts.run_function`).

The Python side keeps what FUNCTION LIST/DUMP and persistence need (the
code, the names, flags, descriptions); the Lua side keeps the callbacks. A
SCRIPT FLUSH makes a new Lua state: the libraries are loaded into it again
on the next FCALL (`bind`).

Bounds (a hostile tenant): MAX_LIBRARIES libraries, MAX_FUNCTIONS functions,
MAX_CODE bytes of library code in all; loading a library's code may take
LOAD_TIMEOUT seconds (Redis allows 500 ms; the load runs on the loop
thread, so every tenant would wait that long) and the state's memory
bound; a RESTORE's libraries share one LOAD_TIMEOUT.

FUNCTION DUMP's payload (tenantkv's own format): b"TKVF", a version byte
(1), then per library its code as a 4-byte big-endian length and the
bytes, then the CRC-32 of all before it (4 bytes, big-endian). RESTORE
checks all of it, then loads each library's code as FUNCTION LOAD does.
"""

import os
import struct
import zlib
from time import monotonic

from lupa import lua51

from tenantkv import errors
from tenantkv.errors import CommandError
from tenantkv.scripting import engine

MAX_LIBRARIES = 256
MAX_FUNCTIONS = 4096
MAX_CODE = 4 << 20
LOAD_TIMEOUT = 0.1
FLAG_ORDER = (b"no-writes", b"allow-oom", b"allow-stale", b"no-cluster",
              b"allow-cross-slot-keys")
DUMP_MAGIC = b"TKVF\x01"
_SOURCE = open(os.path.join(os.path.dirname(__file__), "functions.lua"), "rb").read()
_NAME_OK = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_BAD_NAME = ("ERR Library names can only contain letters, numbers, or underscores(_) and "
             "must be at least one character long")


class Library:
    __slots__ = ("name", "code", "functions")

    def __init__(self, name: bytes, code: bytes, functions: dict) -> None:
        self.name = name
        self.code = code
        self.functions = functions   # name -> (flags tuple in Redis's order, description or None)


def of(tenant):
    libs = tenant.functions
    if libs is None:
        libs = tenant.functions = Libraries()
    return libs


def valid_name(name: bytes) -> bool:
    return bool(name) and all(c in _NAME_OK for c in name)


def metadata(code: bytes):
    """(library name, Lua code) of FUNCTION LOAD's payload; Redis's errors."""
    if not code.startswith(b"#!"):
        raise CommandError("ERR Missing library metadata")
    end = code.find(b"\n")
    if end < 0:
        raise CommandError("ERR Invalid library metadata")
    parts = _split_args(code[:end])
    if not parts:
        raise CommandError("ERR Invalid library metadata")
    eng = parts[0][2:]
    name = None
    for part in parts[1:]:
        if part[:5].lower() == b"name=":
            if name is not None:
                raise CommandError("ERR Invalid metadata value, name argument was given "
                                   "multiple times")
            name = part[5:]
            continue
        raise CommandError("ERR Invalid metadata value given: %s" % part.decode("latin-1"))
    if name is None:
        raise CommandError("ERR Library name was not given")
    if not valid_name(name):
        raise CommandError(_BAD_NAME)
    if eng.upper() != b"LUA":
        raise CommandError("ERR Engine '%s' not found" % eng.decode("latin-1"))
    return name, code[end:]   # from the newline: the line numbers stay


def _split_args(line: bytes):
    """Redis's sdssplitargs, enough for a shebang: words, "double" or 'single'
    quoted (name="foo"); None if a quote is not closed."""
    parts, i, n = [], 0, len(line)
    while True:
        while i < n and line[i:i + 1].isspace():
            i += 1
        if i >= n:
            return parts
        word = bytearray()
        while i < n and not line[i:i + 1].isspace():
            c = line[i:i + 1]
            if c in (b'"', b"'"):
                close = line.find(c, i + 1)
                if close < 0:
                    return None
                word += line[i + 1:close]
                i = close + 1
                if i < n and not line[i:i + 1].isspace():
                    return None   # a closing quote must end the word
            else:
                word += c
                i += 1
        parts.append(bytes(word))


class _Loading:
    """Stands in the state's running slot while a library's code runs: the
    count hook (prelude.lua) stops the code past LOAD_TIMEOUT."""
    __slots__ = ("deadline", "timed_out")
    busy = wrote = False   # read as a Run's (script_busy) should anything look
    runner = requests = None   # runs whole on the loop thread (engine._pycheck)
    moving = False
    sha = b""

    def __init__(self, deadline) -> None:
        self.deadline = deadline
        self.timed_out = False

    @property
    def killed(self) -> bool:
        if monotonic() > self.deadline:
            self.timed_out = True
        return self.timed_out


class Libraries:
    __slots__ = ("libs", "owner", "code_size", "state", "_load", "_commit", "_discard",
                 "_unregister", "caller")

    def __init__(self) -> None:
        self.libs: dict = {}     # library name -> Library
        # lower-case function name -> (Library, its name): FCALL and the
        # collisions between libraries ignore case, as Redis's functions dict
        self.owner: dict = {}
        self.code_size = 0
        self.state = None        # the Lua state the libraries are loaded in
        self.caller = None       # the FCALL arguments running (FUNCTION STATS)

    # -- the Lua state ---------------------------------------------------------

    def bind(self, scripts) -> None:
        """Make sure scripts' current Lua state has the libraries."""
        lua = scripts.lua
        if self.state is lua:
            return
        internals = lua.globals()[b"__tenantkv_functions"]()
        # Named as the prelude: its error handler skips these frames (a
        # missing global is the script's line, not functions.lua's).
        setup = lua.globals().loadstring(_SOURCE, b"@redis_prelude")
        self._load, self._commit, self._discard, self._unregister = setup(*internals)
        self.state = lua
        for lib in list(self.libs.values()):   # a new state (SCRIPT FLUSH): again
            _, lua_code = metadata(lib.code)
            self._compile(scripts, lua_code, None)
            self._commit(lib.name)

    def _compile(self, scripts, lua_code: bytes, deadline) -> dict:
        """Run a library's code: its functions (staged in Lua until _commit)."""
        if scripts.running is not None:
            raise CommandError(errors.SCRIPT_IN_SCRIPT)
        loading = _Loading(float("inf") if deadline is None else deadline)
        lua = scripts.lua
        scripts.running = loading
        lua.set_max_memory(engine.MAX_MEMORY)
        try:
            err, info = self._load(lua_code)
        except lua51.LuaMemoryError:
            err, info = b"Error registering functions: " + errors.SCRIPT_OOM.encode(), None
        finally:
            lua.set_max_memory(0)
            scripts.running = None
        if loading.timed_out:
            self._discard()
            raise CommandError("ERR Error registering functions: ERR FUNCTION LOAD timeout")
        if err:
            self._discard()
            raise CommandError("ERR " + err.decode("utf-8", "replace"))
        functions = {}
        for name, entry in info.items():
            got, desc = set(entry[1].values()), entry[2]
            functions[name] = (tuple(f for f in FLAG_ORDER if f in got),
                               desc if type(desc) is bytes else None)
        return functions

    # -- FUNCTION LOAD / DELETE / FLUSH ----------------------------------------

    def load(self, scripts, code: bytes, replace: bool, timeout: bool = True,
             deadline=None) -> bytes:
        """FUNCTION LOAD: the library's name. `timeout` False: no time limit
        (the log's replay); `deadline`: a monotonic() time shared by several."""
        name, lua_code = metadata(code)
        old = self.libs.get(name)
        if old is not None and not replace:
            raise CommandError("ERR Library '%s' already exists" % name.decode())
        size = self.code_size - (len(old.code) if old else 0) + len(code)
        if size > MAX_CODE:
            raise CommandError(errors.FUNCTIONS_CODE_LIMIT % MAX_CODE)
        if old is None and len(self.libs) >= MAX_LIBRARIES:
            raise CommandError(errors.FUNCTIONS_COUNT_LIMIT % MAX_LIBRARIES)
        self.bind(scripts)
        if timeout and deadline is None:
            deadline = monotonic() + LOAD_TIMEOUT
        functions = self._compile(scripts, lua_code, deadline if timeout else None)
        for fname in sorted(functions):
            lib = self.owner.get(fname.lower(), (None,))[0]
            if lib is not None and lib is not old:
                self._discard()
                raise CommandError("ERR Function %s already exists" % fname.decode())
        if len(self.owner) - (len(old.functions) if old else 0) + len(functions) > MAX_FUNCTIONS:
            self._discard()
            raise CommandError(errors.FUNCTIONS_MANY % MAX_FUNCTIONS)
        self._commit(name)
        if old is not None:
            for fname in old.functions:
                del self.owner[fname.lower()]
        lib = Library(name, code, functions)
        self.libs[name] = lib
        for fname in functions:
            self.owner[fname.lower()] = (lib, fname)
        self.code_size = size
        return name

    def delete(self, scripts, name: bytes) -> None:
        lib = self.libs.get(name)
        if lib is None:
            raise CommandError("ERR Library not found")
        if scripts is not None and scripts.running is not None:
            raise CommandError(errors.SCRIPT_IN_SCRIPT)
        if self.state is not None and scripts is not None and self.state is scripts.lua:
            self._unregister(name)
        del self.libs[name]
        for fname in lib.functions:
            del self.owner[fname.lower()]
        self.code_size -= len(lib.code)

    def flush(self, scripts) -> None:
        if scripts is not None and scripts.running is not None:
            raise CommandError(errors.SCRIPT_IN_SCRIPT)
        if self.state is not None and scripts is not None and self.state is scripts.lua:
            for name in self.libs:
                self._unregister(name)
        self.libs.clear()
        self.owner.clear()
        self.code_size = 0

    # -- FUNCTION DUMP / RESTORE -----------------------------------------------

    def dump(self) -> bytes:
        parts = [DUMP_MAGIC]
        for name in sorted(self.libs):
            code = self.libs[name].code
            parts.append(struct.pack(">I", len(code)))
            parts.append(code)
        body = b"".join(parts)
        return body + struct.pack(">I", zlib.crc32(body))

    def restore(self, scripts, payload: bytes, policy: bytes, timeout: bool = True) -> None:
        codes = parse_dump(payload)
        deadline = monotonic() + LOAD_TIMEOUT
        before = [lib.code for lib in self.libs.values()]
        try:
            if policy == b"flush":
                self.flush(scripts)
            elif policy == b"append":
                for code in codes:
                    name, _ = metadata(code)
                    if name in self.libs:
                        raise CommandError("ERR Library %s already exists" % name.decode())
            for code in codes:
                self.load(scripts, code, policy == b"replace", timeout, deadline)
        except CommandError:
            # all or nothing, as Redis: back to the libraries before
            self.flush(scripts)
            for code in before:
                self.load(scripts, code, False, False)
            raise


def parse_dump(payload: bytes) -> list:
    """The library codes of a FUNCTION DUMP payload; Redis's error if it is
    not one (wrong header, checksum or lengths)."""
    bad = CommandError("ERR DUMP payload version or checksum are wrong")
    if len(payload) < len(DUMP_MAGIC) + 4 or not payload.startswith(DUMP_MAGIC):
        raise bad
    body, crc = payload[:-4], payload[-4:]
    if struct.pack(">I", zlib.crc32(body)) != crc:
        raise bad
    codes = []
    pos = len(DUMP_MAGIC)
    while pos < len(body):
        if pos + 4 > len(body):
            raise bad
        (n,) = struct.unpack_from(">I", body, pos)
        pos += 4
        if pos + n > len(body) or n > MAX_CODE:
            raise bad
        codes.append(body[pos:pos + n])
        pos += n
    if len(codes) > MAX_LIBRARIES:
        raise CommandError(errors.FUNCTIONS_COUNT_LIMIT % MAX_LIBRARIES)
    return codes
