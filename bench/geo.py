#!/usr/bin/env python3
"""GEOADD and GEOSEARCH: tenantkv vs redis-server.

Starts a tenantkv and a redis-server as bench/compare.py does, loads the
same 10,000 points (a fixed random draw over the 1 x 1 degree square
13..14 E, 38..39 N: about one point per km2) under bench:geosearch in both,
then runs R rounds, alternating which server goes first, of

    redis-benchmark -p PORT -c 10 -P P -n N -r 100000 -q \\
        GEOADD bench:geoadd 13.__rand_int__ 38.__rand_int__ m:__rand_int__
    redis-benchmark -p PORT -c 10 -P P -n N -q \\
        GEOSEARCH bench:geosearch FROMLONLAT 13.5 38.5 BYRADIUS 5.6 km ASC

for pipelines 1 and 16: GEOADD of random points near Palermo (as one would
write it with redis-benchmark's placeholders), and the search a
"what is near me" user runs: a radius holding ~100 of the points, sorted by
distance. The search's boxes (Redis's step for 5.6 km is 11: boxes of
~15 x 9 km; six of the nine are read) hold ~870 candidates, which Redis
decodes and measures; tenantkv reads ~330 of them (it leaves out the
quarters of the boxes that no point of can be in the circle) and skips the
haversine of those whose latitude alone puts them out.
The server's CPU time (utime + stime, /proc/PID/stat) is read around each
run. It prints the medians of calls/s and server CPU microseconds per call,
and the ratio tenantkv/redis. Options: --quick (N/4, one round), --rounds R.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (BenchError, alternate, bench_parser, benchmark_command,  # noqa: E402
                     command, pipe_commands, print_markdown_header, print_markdown_row,
                     run_on_pair)

POINTS = 10_000
SEARCH = ["GEOSEARCH", "bench:geosearch", "FROMLONLAT", "13.5", "38.5", "BYRADIUS", "5.6", "km",
          "ASC"]
TESTS = {
    # name: (redis-benchmark arguments, requests per run)
    "GEOADD": (["-r", "100000", "GEOADD", "bench:geoadd", "13.__rand_int__", "38.__rand_int__",
                "m:__rand_int__"], 100_000),
    "GEOSEARCH (106 results)": (SEARCH, 10_000),
}


def _resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def load(server) -> int:
    rng = random.Random(18)
    commands = []
    for start in range(0, POINTS, 100):
        args = [b"GEOADD", b"bench:geosearch"]
        for i in range(start, start + 100):
            args += [b"%.6f" % rng.uniform(13, 14), b"%.6f" % rng.uniform(38, 39), b"p%d" % i]
        commands.append(_resp(*args))
    pipe_commands(server, commands, len(commands))
    reply = command(server.port, *SEARCH)
    return int(reply.split(b"\r\n")[0][1:])


def main() -> int:
    opts = bench_parser(__doc__).parse_args()
    divisor, rounds = (4, 1) if opts.quick else (1, opts.rounds)   # each test has its own N

    def body(servers):
        found = {name: load(s) for name, s in servers.items()}
        if found["redis"] != found["tenantkv"]:
            raise BenchError("the search finds %r" % found)
        print("search results: %d of %d points" % (found["redis"], POINTS))
        print_markdown_header(["test", "pipeline"], "calls/s", "call")
        for test, (argv_tail, n) in TESTS.items():
            n //= divisor
            for pipeline in (1, 16):
                med = alternate(servers, rounds, lambda name: benchmark_command(
                    servers[name], argv_tail, n, pipeline))
                print_markdown_row([test, pipeline], med)

    return run_on_pair("bench-geo-", body)


if __name__ == "__main__":
    sys.exit(main())
