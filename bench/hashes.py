#!/usr/bin/env python3
"""Hash commands on small and threshold-sized (listpack) hashes: server CPU
per request, tenantkv vs redis-server, optionally tenantkv from a second
source tree (--before SRC, e.g. a worktree of an older commit) in the same run.

Each server gets 10,000 hashes of 5 fields (s:%012d, the names
redis-benchmark's __rand_int__ makes with -r 10000; fields f0..f4) and 1,000
of 128 fields (p:%012d, fields f0..f127): both listpacks in Redis and in
tenantkv. Then, per round and per server in alternation,

    redis-benchmark -c 50 -P PIPE -r KEYS -n N <command>

for HSET (an existing field: the hash keeps its size), HGET, HMGET (3
fields), HGETALL, HINCRBY (a counter field, added by the first call) and
HDEL (a missing field: the lookup, nothing removed) on each kind of hash;
the field asked for is the last but one (f3, f126): a whole scan in a
listpack. The figure is the server's CPU time (utime + stime,
/proc/PID/stat) per request, the median of the rounds, and tenantkv/redis.
With --dict, one more tenantkv runs with hash-max-listpack-entries 0: every
hash a dict, the big form, to compare the compact form with.

    python bench/hashes.py [--before /work/wt-before-14/src] [--dict] [--rounds 3] [--pipeline 16]

The harness (servers, loading, measuring) is bench/keybench.py.
"""

import subprocess
import sys
from pathlib import Path

import keybench  # bench/ is the script directory
from compare import ROOT, BenchError, Server, dbsize

SMALL_KEYS, SMALL_FIELDS = 10_000, 5
BIG_KEYS, BIG_FIELDS = 1_000, 128


def _tests(prefix: str, fields: int, keys: int) -> dict:
    key = prefix + ":__rand_int__"
    probe = "f%d" % (fields - 2)
    tail = "" if prefix == "s" else "_128"
    return {
        "HSET" + tail: (keys, ["HSET", key, probe, "new-value"]),
        "HGET" + tail: (keys, ["HGET", key, probe]),
        "HMGET" + tail: (keys, ["HMGET", key, "f0", probe, "nofield"]),
        "HGETALL" + tail: (keys, ["HGETALL", key]),
        "HINCRBY" + tail: (keys, ["HINCRBY", key, "counter", "1"]),
        "HDEL" + tail: (keys, ["HDEL", key, "nofield"]),
    }


TESTS = {**_tests("s", SMALL_FIELDS, SMALL_KEYS), **_tests("p", BIG_FIELDS, BIG_KEYS)}


def hset(key: bytes, i: int, fields: int) -> list:
    args = [b"HSET", key]
    for j in range(fields):
        args += [b"f%d" % j, b"value:%d" % (i + j)]
    return args


def encoding(server: Server, key: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(server.port), "OBJECT", "ENCODING", key],
                          check=True, capture_output=True, text=True).stdout.strip()


def prepare(server: Server) -> None:
    keybench.load(server, hset, "s", SMALL_KEYS, SMALL_FIELDS)
    keybench.load(server, hset, "p", BIG_KEYS, BIG_FIELDS)
    if dbsize(server) != SMALL_KEYS + BIG_KEYS:
        raise BenchError("%s holds %d keys" % (server.name, dbsize(server)))
    expected = "hashtable" if server.name == "dict" else "listpack"
    for key in ("s:%012d" % 0, "p:%012d" % 0):
        if encoding(server, key) != expected:
            raise BenchError("%s: %s is %s" % (server.name, key, encoding(server, key)))


def main() -> int:
    parser = keybench.parser(__doc__)
    parser.add_argument("--dict", action="store_true",
                        help="also tenantkv with every hash a dict (hash-max-listpack-entries 0)")
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--tests", help="comma-separated names (default: all): "
                        + ",".join(TESTS))
    args = parser.parse_args()
    tests = args.tests.upper().split(",") if args.tests else list(TESTS)
    unknown = [t for t in tests if t not in TESTS]
    if unknown:
        parser.error("unknown tests: %s" % ", ".join(unknown))

    def body(workdir: Path) -> int:
        starters = keybench.starters(workdir, args.before)
        if args.dict:
            starters["dict"] = keybench.retry_port(
                lambda: keybench.start_tenantkv(workdir, ROOT / "src", "dict",
                                                "--hash-max-listpack-entries", "0"))
        names = list(starters)
        print("server CPU us/request, pipeline %d, %d requests, median of %d rounds"
              % (args.pipeline, args.requests, args.rounds))
        print("  %-12s" % "command" + "".join("%10s" % n for n in names) + "%10s" % "ratio",
              flush=True)
        for test, by in keybench.cpu(starters, prepare, {t: TESTS[t] for t in tests},
                                     args.requests, args.rounds, args.pipeline).items():
            print("  %-12s" % test + "".join("%10.2f" % by[n] for n in names)
                  + "%9.2fx" % (by["tenantkv"] / by["redis"]))
        return 0

    return keybench.run(body)


if __name__ == "__main__":
    sys.exit(main())
