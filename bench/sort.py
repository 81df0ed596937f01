#!/usr/bin/env python3
"""SORT of a 100-element list: tenantkv vs redis-server.

Starts a tenantkv and a redis-server as bench/compare.py does, fills both
with a list of 100 numbers (bench:list), a weight (bench:w_<n>) and a value
(bench:o_<n>) per element, then runs R rounds, alternating which server goes
first, of

    redis-benchmark -p PORT -c 10 -P P -n N -q <command>

for each command below and pipelines 1 and 16, reading the server's CPU
time (utime + stime of all its threads, /proc/PID/stat) around each run. It
prints the medians of calls/s and server CPU microseconds per call, and the
ratio tenantkv/redis:

    SORT bench:list                               numeric, by the elements
    SORT bench:list BY bench:w_* GET bench:o_*    100 weights, 100 values read
    LRANGE bench:list 0 99                        the same reply, no sorting

Options: --quick (N/4, one round), --rounds R, --calls N.
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
ELEMENTS = 100
COMMANDS = {
    "SORT (numeric)": ["SORT", "bench:list"],
    "SORT BY GET": ["SORT", "bench:list", "BY", "bench:w_*", "GET", "bench:o_*"],
    # the same 100 elements without sorting: what the reply alone costs
    "LRANGE 0 99 (reference)": ["LRANGE", "bench:list", "0", "99"],
}


def fill(port: int) -> None:
    numbers = [str((i * 37) % 1009) for i in range(ELEMENTS)]
    command(port, "DEL", "bench:list")
    command(port, "RPUSH", "bench:list", *numbers)
    pairs = []
    for i, n in enumerate(numbers):
        pairs += ["bench:w_" + n, str((i * 13) % 97), "bench:o_" + n, "value-" + n]
    command(port, "MSET", *pairs)
    reply = command(port, "SORT", "bench:list", "BY", "bench:w_*", "GET", "bench:o_*")
    if not reply.startswith(b"*%d\r\n" % ELEMENTS):
        raise BenchError("SORT failed: %r" % reply[:200])


def run_round(server, args: list, n: int, pipeline: int) -> tuple[float, float]:
    argv = ["redis-benchmark", "-p", str(server.port), "-c", str(CLIENTS), "-P", str(pipeline),
            "-n", str(n), "-q", *args]
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
    parser.add_argument("--calls", type=int, default=40_000)
    opts = parser.parse_args()
    n, rounds = (opts.calls // 4, 1) if opts.quick else (opts.calls, opts.rounds)
    if shutil.which("redis-benchmark") is None:
        print("redis-benchmark is not installed (make redis-tools)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-sort-"))
    servers = {}
    try:
        servers = {"redis": start_redis(workdir), "tenantkv": start_tenantkv(workdir)}
        for s in servers.values():
            fill(s.port)
        print("| command | pipeline | redis calls/s | tenantkv calls/s | redis us/call"
              " | tenantkv us/call | CPU ratio |")
        print("|---|---|---|---|---|---|---|")
        for label, args in COMMANDS.items():
            for pipeline in (1, 16):
                runs = {name: [] for name in servers}
                names = list(servers)
                for r in range(rounds):
                    for name in (names if r % 2 == 0 else names[::-1]):
                        runs[name].append(run_round(servers[name], args, n, pipeline))
                med = {name: (statistics.median(x[0] for x in v),
                              statistics.median(x[1] for x in v))
                       for name, v in runs.items()}
                print("| %s | %d | %s | %s | %.2f | %.2f | %.2fx |" % (
                    label, pipeline, f"{med['redis'][0]:,.0f}", f"{med['tenantkv'][0]:,.0f}",
                    med["redis"][1], med["tenantkv"][1], med["tenantkv"][1] / med["redis"][1]))
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
