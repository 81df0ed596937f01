"""Time the pure-Lua cjson/cmsgpack/bit/struct (src/tenantkv/scripting/lib)
in lupa's Lua 5.1 against Redis 7.0's C libraries (EVAL on redis-server).

    PYTHONPATH=src .venv/bin/python bench/lua_libs.py

Each case is "prepare" then "operation"; the time of the operation is the
best of 3 runs of (prepare + operation) minus the best of 3 of prepare alone.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

import redis
from lupa import lua51

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from tenantkv.scripting.lib import LIBRARIES  # noqa: E402

RECORDS = ("local t = {} for i = 1, 20000 do t[i] = {id = i, name = 'user/' .. i, "
           "score = i * 0.25, tags = {'a', 'b'}, ok = true} end ")
CASES = {
    "cjson.encode 1.3 MB": (RECORDS, "local s = cjson.encode(t)"),
    "cjson.decode 1.3 MB": (RECORDS + "local s = cjson.encode(t)", "local d = cjson.decode(s)"),
    "cjson.encode 1 MB string": ("local s = string.rep('ab/\"\\n', 200000)", "local r = cjson.encode(s)"),
    "cmsgpack.pack 20k records": (RECORDS, "local s = cmsgpack.pack(t)"),
    "cmsgpack.unpack 20k records": (RECORDS + "local s = cmsgpack.pack(t)", "local d = cmsgpack.unpack(s)"),
    "bit.band+bxor x 100k": ("", "local x = 0 for i = 1, 100000 do x = bit.bxor(x, bit.band(i, 0xffff)) end"),
    "struct.pack x 10k": ("", "local x for i = 1, 10000 do x = struct.pack('>I4d', i, i / 3) end"),
}


def best(fn, runs=3):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not on the PATH", file=sys.stderr)
        return 1
    workdir = tempfile.mkdtemp(prefix="lua-libs-bench-")
    sock = os.path.join(workdir, "redis.sock")
    server = subprocess.Popen([binary, "--port", "0", "--unixsocket", sock, "--save", "",
                               "--appendonly", "no", "--dir", workdir],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        ref = redis.Redis(unix_socket_path=sock)
        lua = lua51.LuaRuntime(encoding=None)
        for name, source in LIBRARIES.items():
            lua.globals()[name.encode()] = lua.execute(source)
        print("%-28s %10s %10s %7s" % ("case", "ours (s)", "redis (s)", "ratio"))
        for name, (prepare, operation) in CASES.items():
            base = prepare + " return 1"
            full = prepare + " " + operation + " return 1"
            ours = best(lambda: lua.execute(full)) - best(lambda: lua.execute(base))
            theirs = best(lambda: ref.eval(full, 0)) - best(lambda: ref.eval(base, 0))
            print("%-28s %10.3f %10.3f %6.1fx" % (name, ours, theirs, ours / max(theirs, 1e-4)))
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
