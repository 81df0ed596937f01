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
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (ROOT, BenchError, Server, cpu_seconds, dbsize, start_redis,  # noqa: E402
                     tenantkv_python)

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


def start_tenantkv(workdir: Path, src: Path, name: str, *flags: str) -> Server:
    return Server(
        name,
        lambda port, d: [tenantkv_python(), "-m", "tenantkv", "--port", str(port),
                         "--dir", str(d), "--loglevel", "warning", "--save", "", *flags],
        workdir,
        env=dict(os.environ, TENANTKV_AUTH__DEFAULT_USER="nopass", PYTHONPATH=str(src)),
    )


def load_hashes(server: Server, prefix: str, keys: int, fields: int) -> None:
    proc = subprocess.Popen(["redis-cli", "-p", str(server.port), "--pipe"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    chunk = []
    for i in range(keys):
        args = [b"HSET", b"%s:%012d" % (prefix.encode(), i)]
        for j in range(fields):
            args += [b"f%d" % j, b"value:%d" % (i + j)]
        chunk.append(b"*%d\r\n" % len(args)
                     + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        if len(chunk) == 1000:
            proc.stdin.write(b"".join(chunk))
            chunk = []
    proc.stdin.write(b"".join(chunk))
    proc.stdin.close()
    out = proc.stdout.read().decode(errors="replace")
    proc.wait()
    if "errors: 0" not in out:
        raise BenchError("loading %s failed: %s" % (server.name, out[-300:]))


def encoding(server: Server, key: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(server.port), "OBJECT", "ENCODING", key],
                          check=True, capture_output=True, text=True).stdout.strip()


def cpu(starters, requests: int, rounds: int, pipeline: int, tests: list) -> dict:
    servers = {name: start() for name, start in starters.items()}
    results = {test: {name: [] for name in servers} for test in tests}
    try:
        for server in servers.values():
            load_hashes(server, "s", SMALL_KEYS, SMALL_FIELDS)
            load_hashes(server, "p", BIG_KEYS, BIG_FIELDS)
            if dbsize(server) != SMALL_KEYS + BIG_KEYS:
                raise BenchError("%s holds %d keys" % (server.name, dbsize(server)))
            expected = "hashtable" if server.name == "dict" else "listpack"
            for key in ("s:%012d" % 0, "p:%012d" % 0):
                if encoding(server, key) != expected:
                    raise BenchError("%s: %s is %s" % (server.name, key, encoding(server, key)))
        for r in range(rounds):
            order = list(servers.items())
            if r % 2:
                order.reverse()
            for test in tests:
                keys, argv = TESTS[test]
                for name, server in order:
                    before = cpu_seconds(server.pid)
                    subprocess.run(["redis-benchmark", "-p", str(server.port), "-c", "50",
                                    "-P", str(pipeline), "-r", str(keys), "-n", str(requests),
                                    "-q", *argv], check=True, capture_output=True)
                    results[test][name].append((cpu_seconds(server.pid) - before) * 1e6
                                               / requests)
                    server.check_alive()
    finally:
        for server in servers.values():
            server.stop()
    return {test: {name: statistics.median(v) for name, v in by.items()}
            for test, by in results.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="src/ of an older tenantkv to compare")
    parser.add_argument("--dict", action="store_true",
                        help="also tenantkv with every hash a dict (hash-max-listpack-entries 0)")
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--tests", help="comma-separated names (default: all): "
                        + ",".join(TESTS))
    args = parser.parse_args()
    tests = args.tests.upper().split(",") if args.tests else list(TESTS)
    unknown = [t for t in tests if t not in TESTS]
    if unknown:
        parser.error("unknown tests: %s" % ", ".join(unknown))
    workdir = Path(tempfile.mkdtemp(prefix="bench-hashes-"))
    starters = {"redis": lambda: start_redis(workdir),
                "tenantkv": lambda: start_tenantkv(workdir, ROOT / "src", "tenantkv")}
    if args.before:
        starters["before"] = lambda: start_tenantkv(workdir, args.before, "before")
    if args.dict:
        starters["dict"] = lambda: start_tenantkv(workdir, ROOT / "src", "dict",
                                                  "--hash-max-listpack-entries", "0")
    names = list(starters)
    print("server CPU us/request, pipeline %d, %d requests, median of %d rounds"
          % (args.pipeline, args.requests, args.rounds))
    print("  %-12s" % "command" + "".join("%10s" % n for n in names) + "%10s" % "ratio")
    for test, by in cpu(starters, args.requests, args.rounds, args.pipeline, tests).items():
        print("  %-12s" % test + "".join("%10.2f" % by[n] for n in names)
              + "%9.2fx" % (by["tenantkv"] / by["redis"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
