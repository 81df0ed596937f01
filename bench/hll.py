#!/usr/bin/env python3
"""HyperLogLog: PFADD and PFCOUNT, tenantkv vs redis-server.

Starts a tenantkv and a redis-server as bench/compare.py does, fills two
dense HLLs (bench:hll, bench:hll2: 100,000 elements each) in both, then runs
R rounds, alternating which server goes first, of

    redis-benchmark -p PORT -c 10 -P P -n N -r 1000000 -q <command>

for pipelines 1 and 16, reading the server's CPU time (utime + stime,
/proc/PID/stat) around each run. The commands:

    GET (reference)  GET bench:str                       (a 3-byte string: each server's
                                                          floor per request)
    PFADD dense      PFADD bench:hll e:__rand_int__      (a 12 KB dense HLL; ~1 in 60
                                                          elements raises a register)
    PFADD sparse     PFADD sp:__rand_int__ e:__rand_int__ (-r 1000: 1,000 small sparse HLLs)
    PFCOUNT          PFCOUNT bench:hll                   (the cached cardinality)
    PFCOUNT 2 keys   PFCOUNT bench:hll bench:hll2        (a union: never cached, every
                                                          register of both merged and counted)

It prints the medians of requests/s and server CPU microseconds per request,
and the ratio tenantkv/redis. Options: --quick (N/4, one round), --rounds R,
--requests N.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (BenchError, command, cpu_seconds, finish,  # noqa: E402
                     start_redis, start_tenantkv)

CLIENTS = 10
CASES = [
    # name, key space (-r), command, requests scale
    ("GET (reference)", 1_000_000, ["GET", "bench:str"], 1),
    ("PFADD dense", 1_000_000, ["PFADD", "bench:hll", "e:__rand_int__"], 1),
    ("PFADD sparse", 1000, ["PFADD", "sp:__rand_int__", "e:__rand_int__"], 1),
    ("PFCOUNT", 1_000_000, ["PFCOUNT", "bench:hll"], 1),
    ("PFCOUNT 2 keys", 1_000_000, ["PFCOUNT", "bench:hll", "bench:hll2"], 0.05),
]


def fill(port: int) -> None:
    command(port, "SET", "bench:str", "abc")
    for key in ("bench:hll", "bench:hll2"):
        for start in range(0, 100_000, 10_000):
            command(port, "PFADD", key, *("%s:%d" % (key, i) for i in range(start, start + 10_000)))
    encoding = command(port, "PFDEBUG", "ENCODING", "bench:hll")
    if b"dense" not in encoding:
        raise BenchError("bench:hll is not dense: %r" % encoding)


def run_round(server, case, n: int, pipeline: int) -> tuple[float, float]:
    _, keyspace, args, _ = case
    argv = ["redis-benchmark", "-p", str(server.port), "-c", str(CLIENTS), "-P", str(pipeline),
            "-n", str(n), "-r", str(keyspace), "-q", *args]
    before = cpu_seconds(server.pid)
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, timeout=600)
    wall = time.monotonic() - start
    after = cpu_seconds(server.pid)
    server.check_alive()
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    if proc.returncode != 0 or "ERR" in out or "rror" in out:
        raise BenchError(f"redis-benchmark against {server.name} failed:\n  | {out.strip()[-500:]}")
    return n / wall, (after - before) * 1e6 / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100_000)
    opts = parser.parse_args()
    n, rounds = (opts.requests // 4, 1) if opts.quick else (opts.requests, opts.rounds)
    if shutil.which("redis-benchmark") is None:
        print("redis-benchmark is not installed (make redis-tools)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-hll-"))
    servers = {}
    try:
        servers = {"redis": start_redis(workdir), "tenantkv": start_tenantkv(workdir)}
        for server in servers.values():
            fill(server.port)
        print("| command | pipeline | redis req/s | tenantkv req/s | redis us/req | tenantkv us/req"
              " | CPU ratio |")
        print("|---|---|---|---|---|---|---|")
        for case in CASES:
            requests = max(1000, int(n * case[3]))
            for pipeline in (1, 16):
                runs = {name: [] for name in servers}
                names = list(servers)
                for r in range(rounds):
                    for name in (names if r % 2 == 0 else names[::-1]):
                        runs[name].append(run_round(servers[name], case, requests, pipeline))
                med = {name: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
                       for name, v in runs.items()}
                ratio = ("%.2fx" % (med["tenantkv"][1] / med["redis"][1])
                         if med["redis"][1] else "n/a (too few requests to measure)")
                print("| %s | %d | %s | %s | %.2f | %.2f | %s |" % (
                    case[0], pipeline, f"{med['redis'][0]:,.0f}", f"{med['tenantkv'][0]:,.0f}",
                    med["redis"][1], med["tenantkv"][1], ratio), flush=True)
    except BenchError as exc:
        print("bench failed: %s" % exc, file=sys.stderr)
        return 1
    finally:
        for server in servers.values():
            finish(server, None)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
