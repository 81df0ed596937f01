#!/usr/bin/env python3
"""Bytes per key, tenantkv against redis-server: the memory table of issue 14.

For each row a fresh tenantkv and a fresh redis-server (``--save ''
--appendonly no``) are started; the script reads each one's RSS
(/proc/PID/status VmRSS), loads the row's keys through ``redis-cli --pipe``,
waits half a second and reads RSS again. bytes/key = RSS growth / keys.
Rows:

    string, 20 bytes            100,000 x SET k <20 bytes>
    hash, 5 short fields        100,000 x HSET k f0 v0 .. f4 v4
    set, 5 short members        100,000 x SADD k m0 .. m4 (not integers)
    sorted set, 5 members       100,000 x ZADD k 1 m0 .. 5 m4
    list, 5 short elements      100,000 x RPUSH k e0 .. e4
    hash / set / zset / list of 1,000 elements, 300 keys each
    string, 100 bytes           1,000,000 keys (--no-million skips it: slow)
    tenant, one key             10,000 tenants holding one 20-byte string each
    tenant, by login            1,000 users log in, each SETs one key, and leave

The tenant row. tenantkv: 10,000 users are made offline in this process with
the user store (`UserStore.add`, what `tenantkv user add` runs), all with the
same password, so their argon2id hash is computed once and reused (for the
duration, `hashing.hash_password` returns that hash: 10,000 hashes would take
minutes). A snapshot (dump.kdb, written with the kdb module) gives each
user's tenant one key. Two servers start on copies of that users.db, one
without the snapshot (the baseline: the users, no tenants) and one with it;
RSS per tenant = (RSS with - RSS without) / 10,000, so it counts the Tenant,
its database and its key, not the user. One user then logs in and reads its
key, to check the tenants are the users'. redis-server: 10,000 keys
``tenant:<32 hex>:k`` (one keyspace; it has no tenants), for scale.

The login row takes the path a real tenant takes: 1,000 users (made as
above) each log in (AUTH: one real argon2id check), SET one key and QUIT, one
after the other (~1 minute); RSS is read before them, after 40 other users
have logged in so the hash threads' memory is already there, and after.

RSS growth counts allocator slack as well as live objects, as a user pays
it; it is noisy by a few hundred KB, which is why the rows load many keys.

    PYTHONPATH=src .venv/bin/python bench/memory.py [--no-million] [--rows a,b]

tenantkv is run as ``python -m tenantkv`` with this tree's ``src`` first on
PYTHONPATH, so the code measured is the working tree's.
"""

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))   # this tree's tenantkv
import compare  # noqa: E402  (the server helpers: start, RSS, redis-cli --pipe)
from compare import BenchError, Server, status_kb, tenantkv_python  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SMALL = 100_000
BIG_KEYS = 300
BIG_SIZE = 1_000
MILLION = 1_000_000
TENANTS = 10_000
LOGINS = 1_000          # the login row: each login costs one argon2 check
WARM_LOGINS = 40        # before its baseline: the hash threads' memory
TENANT_TARGET = 2048   # bytes per tenant holding one key (issue 14)


def resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def small(cmd: bytes, pairs: bool = False, scored: bool = False, prefix: bytes = b"m"):
    """A generator of commands `cmd key <5 elements>` for SMALL keys."""
    if pairs:
        tail = [x for i in range(5) for x in (b"field%d" % i, b"value%d" % i)]
    elif scored:
        tail = [x for i in range(5) for x in (b"%d" % (i + 1), b"member%d" % i)]
    else:
        tail = [prefix + b"%d" % i for i in range(5)]
    return lambda n: (resp(cmd, b"key:%09d" % k, *tail) for k in range(n))


def big(cmd: bytes, kind: str):
    def gen(n):
        for k in range(n):
            key = b"big:%06d" % k
            if kind == "hash":
                tail = [x for i in range(BIG_SIZE) for x in (b"field:%d" % i, b"value:%d" % i)]
            elif kind == "zset":
                tail = [x for i in range(BIG_SIZE) for x in (b"%d" % i, b"member:%d" % i)]
            else:
                tail = [b"element:%d" % i for i in range(BIG_SIZE)]
            yield resp(cmd, key, *tail)
    return gen


def strings(size: int):
    value = b"v" * size
    return lambda n: (resp(b"SET", b"key:%09d" % k, value) for k in range(n))


ROWS = {   # name -> (label, keys, command generator)
    "string": ("string, 20 bytes", SMALL, strings(20)),
    "hash": ("hash, 5 short fields", SMALL, small(b"HSET", pairs=True)),
    "set": ("set, 5 short members", SMALL, small(b"SADD", prefix=b"member")),
    "zset": ("sorted set, 5 members", SMALL, small(b"ZADD", scored=True)),
    "list": ("list, 5 short elements", SMALL, small(b"RPUSH", prefix=b"elem")),
    "hash1000": ("hash, 1,000 fields", BIG_KEYS, big(b"HSET", "hash")),
    "set1000": ("set, 1,000 members", BIG_KEYS, big(b"SADD", "set")),
    "zset1000": ("sorted set, 1,000 members", BIG_KEYS, big(b"ZADD", "zset")),
    "list1000": ("list, 1,000 elements", BIG_KEYS, big(b"RPUSH", "list")),
    "million": ("string, 100 bytes (1M keys)", MILLION, strings(100)),
    "tenant": ("tenant with one key (10,000)", TENANTS, None),
    "login": ("tenant with one key, by login (1,000)", LOGINS, None),
}


def tenantkv_env(**extra) -> dict:
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + (os.pathsep + path if path else ""))
    env.update(extra)
    return env


def start_tenantkv(workdir: Path, data_dir: Path | None = None, **env) -> Server:
    """A tenantkv server; with `data_dir`, its files are copied in first."""
    def argv(port, d):
        if data_dir is not None:
            for item in data_dir.iterdir():
                shutil.copy(item, d / item.name)
        return [tenantkv_python(), "-m", "tenantkv", "--port", str(port), "--dir", str(d),
                "--loglevel", "warning"]
    return Server("tenantkv", argv, workdir,
                  env=tenantkv_env(**{"TENANTKV_AUTH__DEFAULT_USER": "nopass", **env}))


def rss(server: Server) -> int:
    time.sleep(0.5)
    return status_kb(server.pid, "VmRSS") * 1024


def growth(server: Server, commands, count: int) -> int:
    """RSS growth of `server` while it takes `count` commands."""
    before = rss(server)
    compare.pipe_commands(server, commands, count, batch=1000)
    size = compare.dbsize(server)
    if size != count:
        raise BenchError(f"{server.name}: DBSIZE {size:,} after {count:,} keys")
    return rss(server) - before


def measure_row(name: str, workdir: Path) -> tuple:
    label, count, gen = ROWS[name]
    result = {}
    for start in (compare.start_redis, start_tenantkv):
        server = start(workdir)
        try:
            result[server.name] = growth(server, gen(count), count) / count
        finally:
            server.stop()
    return result["redis"], result["tenantkv"]


def make_tenants(data_dir: Path, count: int) -> list:
    """`count` users made offline in `data_dir`'s users.db (one shared argon2
    hash, see the docstring); returns their tenant keys."""
    from tenantkv.tenancy import UserStore, hashing
    stored = hashing.hash_password(b"bench-password")
    real = hashing.hash_password
    hashing.hash_password = lambda password: stored
    try:
        store = UserStore(str(data_dir / "users.db"))
        users = [store.add("user%05d" % i, b"bench-password") for i in range(count)]
        store.close()
    finally:
        hashing.hash_password = real
    return [user.own_tenant for user in users]


def auth_get(port: int, user: str, password: str, key: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(resp(b"AUTH", user.encode(), password.encode()) + resp(b"GET", key))
        data = b""
        while data.count(b"\r\n") < 3:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def auth_set(port: int, user: str, password: str, value: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(resp(b"AUTH", user.encode(), password.encode()) + resp(b"SET", b"k", value)
                  + resp(b"QUIT"))
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.removesuffix(b"+OK\r\n")   # QUIT's


def measure_tenants(workdir: Path) -> tuple:
    from tenantkv.persistence.kdb import format as kdb
    data_dir = Path(tempfile.mkdtemp(prefix="tenants-", dir=workdir))
    t0 = time.monotonic()
    tenants = make_tenants(data_dir, TENANTS)
    made_s = time.monotonic() - t0
    value = b"v" * 20
    with_data = Path(tempfile.mkdtemp(prefix="tenants-data-", dir=workdir))
    shutil.copy(data_dir / "users.db", with_data / "users.db")
    (with_data / "dump.kdb").write_bytes(
        kdb.dumps({name: [({b"k": value}, {})] for name in tenants}))
    print(f"  ({TENANTS:,} users made offline in {made_s:.1f}s, one argon2 hash)", flush=True)

    sizes = {}
    for label, source in (("without", data_dir), ("with", with_data)):
        server = start_tenantkv(workdir, source)
        try:
            sizes[label] = rss(server)
            if label == "with":
                reply = auth_get(server.port, "user00042", "bench-password", b"k")
                if reply != b"+OK\r\n$20\r\n" + value + b"\r\n":
                    raise BenchError(f"user00042 could not read its key: {reply!r}")
        finally:
            server.stop()
    tenantkv = (sizes["with"] - sizes["without"]) / TENANTS

    server = compare.start_redis(workdir)
    try:
        keys = (resp(b"SET", b"%s:k" % name.encode(), value) for name in tenants)
        redis = growth(server, keys, TENANTS) / TENANTS
    finally:
        server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(with_data, ignore_errors=True)
    return redis, tenantkv


def measure_logins(workdir: Path) -> tuple:
    """The path a real tenant takes: its user logs in (AUTH: one argon2id
    check each, in the server's hash threads), writes one key, leaves.
    Baseline after WARM_LOGINS logins of other users, so that the hash
    threads' memory is in it."""
    data_dir = Path(tempfile.mkdtemp(prefix="logins-", dir=workdir))
    make_tenants(data_dir, LOGINS + WARM_LOGINS)
    value = b"v" * 20
    server = start_tenantkv(workdir, data_dir)
    try:
        def login(i):
            reply = auth_set(server.port, "user%05d" % i, "bench-password", value)
            if reply != b"+OK\r\n+OK\r\n":
                raise BenchError(f"user{i:05d}: AUTH/SET answered {reply!r}")
        for i in range(LOGINS, LOGINS + WARM_LOGINS):
            login(i)
        before = rss(server)
        t0 = time.monotonic()
        for i in range(LOGINS):
            login(i)
        print(f"  ({LOGINS:,} logins in {time.monotonic() - t0:.1f}s)", flush=True)
        tenantkv = (rss(server) - before) / LOGINS
    finally:
        server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)
    server = compare.start_redis(workdir)
    try:
        keys = (resp(b"SET", b"tenant:%032x:k" % i, value) for i in range(LOGINS))
        redis = growth(server, keys, LOGINS) / LOGINS
    finally:
        server.stop()
    return redis, tenantkv


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-million", action="store_true",
                        help="skip the 1,000,000 x 100-byte strings row (the slowest)")
    parser.add_argument("--rows", help="comma-separated subset of " + ",".join(ROWS))
    args = parser.parse_args(argv)
    rows = args.rows.split(",") if args.rows else list(ROWS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error("unknown rows: " + ", ".join(unknown))
    if args.no_million and "million" in rows:
        rows.remove("million")
    workdir = Path(tempfile.mkdtemp(prefix="tenantkv-memory-"))
    results = {}
    try:
        for name in rows:
            print(f"{ROWS[name][0]} ...", flush=True)
            measure = {"tenant": measure_tenants, "login": measure_logins}.get(name)
            results[name] = measure(workdir) if measure else measure_row(name, workdir)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print("\nRSS growth per key, bytes (fresh servers per row; ratio = tenantkv / redis):\n")
    print("| value | redis | tenantkv | ratio |")
    print("|---|---|---|---|")
    for name, (redis, tenantkv) in results.items():
        label = ROWS[name][0]
        if name in ("tenant", "login"):
            label += f" (redis: {ROWS[name][1]:,} prefixed keys)"
        print(f"| {label} | {redis:,.0f} B | {tenantkv:,.0f} B | {tenantkv / redis:.2f}x |")
    for name in ("tenant", "login"):
        if name in results:
            per = results[name][1]
            print(f"\ntenantkv per tenant with one key ({ROWS[name][0]}): {per:,.0f} B "
                  f"(target <= {TENANT_TARGET:,} B: {'PASS' if per <= TENANT_TARGET else 'MISS'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
