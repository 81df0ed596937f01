#!/usr/bin/env python3
"""Small sorted sets (keyspace/zset.py's PackedZSet, Redis's listpack):
memory per key and zset-command CPU, tenantkv vs redis-server, optionally
tenantkv from a second source tree (--before SRC: e.g. /work/wt-before-14/src,
the dict + SortedList form) in the same run.

Memory: a fresh server each; VmRSS before and after loading KEYS zsets of
M members each (ZADD k 1 member0 2 member1 ... through redis-cli --pipe);
the growth per key.

CPU: each server gets 10,000 zsets of 5 members (s:%012d, the names
redis-benchmark's __rand_int__ makes with -r 10000) and 10,000 of 100
(p:%012d); then, per round and per server in alternation,

    redis-benchmark -c 50 -P 16 -r 10000 -n N <command>

for ZADD s:__rand_int__ of one pair (a new member, then a moved one),
ZADD of 3 pairs, ZSCORE, ZRANK, ZRANGE 0 -1 WITHSCORES, ZRANGEBYSCORE
on the 5-member sets, ZSCORE and ZADD on the 100-member ones, ZPOPMIN
p:__rand_int__; the server's CPU time (utime + stime, /proc/PID/stat)
per request, the median of rounds.

    python bench/zset_small.py [--before /work/wt-before-14/src] [--keys 100000] [--rounds 3]
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
                     status_kb, tenantkv_python)

TESTS = {
    "ZADD_1": ["ZADD", "s:__rand_int__", "7", "member9"],
    "ZADD_3": ["ZADD", "s:__rand_int__", "2", "member1", "8", "x", "0.5", "y"],
    "ZSCORE": ["ZSCORE", "s:__rand_int__", "member3"],
    "ZRANK": ["ZRANK", "s:__rand_int__", "member3"],
    "ZRANGE": ["ZRANGE", "s:__rand_int__", "0", "-1", "WITHSCORES"],
    "ZRANGEBYSC": ["ZRANGEBYSCORE", "s:__rand_int__", "2", "(4"],
    "ZSCORE_100": ["ZSCORE", "p:__rand_int__", "member50"],
    "ZADD_100": ["ZADD", "p:__rand_int__", "__rand_int__", "member70"],
    "ZPOPMIN": ["ZPOPMIN", "p:__rand_int__"],
}
SPACE = 10_000


def start_tenantkv(workdir: Path, src: Path, name: str) -> Server:
    return Server(
        name,
        lambda port, d: [tenantkv_python(), "-m", "tenantkv", "--port", str(port),
                         "--dir", str(d), "--loglevel", "warning", "--save", ""],
        workdir,
        env=dict(os.environ, TENANTKV_AUTH__DEFAULT_USER="nopass", PYTHONPATH=str(src)),
    )


def load_zsets(server: Server, prefix: str, keys: int, members: int) -> None:
    proc = subprocess.Popen(["redis-cli", "-p", str(server.port), "--pipe"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    chunk = []
    for i in range(keys):
        key = b"%s%012d" % (prefix.encode(), i)
        args = [b"ZADD", key] + [x for j in range(members)
                                 for x in (b"%d" % (j + 1), b"member%d" % j)]
        chunk.append(b"*%d\r\n" % len(args)
                     + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        if len(chunk) == 5000:
            proc.stdin.write(b"".join(chunk))
            chunk = []
    proc.stdin.write(b"".join(chunk))
    proc.stdin.close()
    out = proc.stdout.read().decode(errors="replace")
    proc.wait()
    if "errors: 0" not in out:
        raise BenchError("loading %s failed: %s" % (server.name, out[-300:]))


def memory(starters, keys: int, members: int) -> dict:
    per_key = {}
    for name, start in starters.items():
        server = start()
        try:
            before = status_kb(server.pid, "VmRSS")
            load_zsets(server, "m:", keys, members)
            if dbsize(server) != keys:
                raise BenchError("%s holds %d keys" % (name, dbsize(server)))
            after = status_kb(server.pid, "VmRSS")
            per_key[name] = (after - before) * 1024 / keys
        finally:
            server.stop()
    return per_key


def cpu(starters, requests: int, rounds: int) -> dict:
    servers = {name: start() for name, start in starters.items()}
    results = {test: {name: [] for name in servers} for test in TESTS}
    try:
        for server in servers.values():
            load_zsets(server, "s:", SPACE, 5)
            load_zsets(server, "p:", SPACE, 100)
        for r in range(rounds):
            order = list(servers.items())
            if r % 2:
                order.reverse()
            for test, argv in TESTS.items():
                for name, server in order:
                    before = cpu_seconds(server.pid)
                    subprocess.run(["redis-benchmark", "-p", str(server.port), "-c", "50",
                                    "-P", "16", "-r", str(SPACE), "-n", str(requests), "-q",
                                    *argv], check=True, capture_output=True)
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
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-cpu", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-zset-small-"))
    starters = {"redis": lambda: start_redis(workdir),
                "tenantkv": lambda: start_tenantkv(workdir, ROOT / "src", "tenantkv")}
    if args.before:
        starters["before"] = lambda: start_tenantkv(workdir, args.before, "before")
    names = list(starters)
    if not args.no_memory:
        print("RSS growth per key, %d zsets of M members" % args.keys)
        print("  %-10s" % "M" + "".join("%12s" % n for n in names))
        for members in (5, 100):
            per_key = memory(starters, args.keys, members)
            print("  %-10d" % members + "".join("%10.0f B" % per_key[n] for n in names))
    if not args.no_cpu:
        print("server CPU us/request, pipeline 16, %d requests, median of %d rounds"
              % (args.requests, args.rounds))
        print("  %-10s" % "command" + "".join("%12s" % n for n in names))
        for test, by in cpu(starters, args.requests, args.rounds).items():
            print("  %-10s" % test + "".join("%12.2f" % by[n] for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
