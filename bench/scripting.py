#!/usr/bin/env python3
"""EVALSHA of a small script (GET + INCR): tenantkv vs redis-server.

Starts a tenantkv and a redis-server as bench/compare.py does, SCRIPT LOADs

    local v = redis.call('get', KEYS[1]) return redis.call('incr', KEYS[2])

in both, then runs R rounds, alternating which server goes first, of

    redis-benchmark -p PORT -c 10 -P P -n N -q EVALSHA <sha> 2 bench:get bench:n

for pipelines 1 and 16, reading the server's CPU time (utime + stime of all
its threads, /proc/PID/stat) around each run. It prints the medians of
calls/s and server CPU microseconds per call, and the ratio tenantkv/redis.
Options: --quick (N/4, one round), --rounds R, --calls N.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (BenchError, alternate, bench_parser, benchmark_command,  # noqa: E402
                     command, print_markdown_header, print_markdown_row, quick_or_full,
                     run_on_pair)

SCRIPT = "local v = redis.call('get', KEYS[1]) return redis.call('incr', KEYS[2])"


def load(port: int) -> str:
    reply = command(port, "SCRIPT", "LOAD", SCRIPT)
    sha = reply.split(b"\r\n")[1].decode()
    if len(sha) != 40:
        raise BenchError("SCRIPT LOAD failed: %r" % reply[:200])
    return sha


def main() -> int:
    opts = bench_parser(__doc__, "calls", 100_000).parse_args()
    n, rounds = quick_or_full(opts, opts.calls)

    def body(servers):
        shas = {name: load(s.port) for name, s in servers.items()}
        print_markdown_header(["pipeline"], "calls/s", "call")
        for pipeline in (1, 16):
            med = alternate(servers, rounds, lambda name: benchmark_command(
                servers[name], ["EVALSHA", shas[name], "2", "bench:get", "bench:n"],
                n, pipeline))
            print_markdown_row([pipeline], med)

    return run_on_pair("bench-scripting-", body)


if __name__ == "__main__":
    sys.exit(main())
