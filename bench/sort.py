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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (BenchError, alternate, bench_parser, benchmark_command,  # noqa: E402
                     command, print_markdown_header, print_markdown_row, quick_or_full,
                     run_on_pair)

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


def main() -> int:
    opts = bench_parser(__doc__, "calls", 40_000).parse_args()
    n, rounds = quick_or_full(opts, opts.calls)

    def body(servers):
        for s in servers.values():
            fill(s.port)
        print_markdown_header(["command", "pipeline"], "calls/s", "call")
        for label, args in COMMANDS.items():
            for pipeline in (1, 16):
                med = alternate(servers, rounds, lambda name: benchmark_command(
                    servers[name], args, n, pipeline))
                print_markdown_row([label, pipeline], med)

    return run_on_pair("bench-sort-", body)


if __name__ == "__main__":
    sys.exit(main())
