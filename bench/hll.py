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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (BenchError, alternate, bench_parser, benchmark_command,  # noqa: E402
                     command, print_markdown_header, print_markdown_row, quick_or_full,
                     run_on_pair)

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


def main() -> int:
    opts = bench_parser(__doc__, "requests", 100_000).parse_args()
    n, rounds = quick_or_full(opts, opts.requests)

    def body(servers):
        for server in servers.values():
            fill(server.port)
        print_markdown_header(["command", "pipeline"], "req/s", "req")
        for label, keyspace, args, scale in CASES:
            requests = max(1000, int(n * scale))
            for pipeline in (1, 16):
                med = alternate(servers, rounds, lambda name: benchmark_command(
                    servers[name], args, requests, pipeline, keyspace=keyspace))
                print_markdown_row([label, pipeline], med)

    return run_on_pair("bench-hll-", body)


if __name__ == "__main__":
    sys.exit(main())
