#!/usr/bin/env python3
"""Streams: tenantkv vs redis-server, server CPU per request and requests/s.

Starts a tenantkv and a redis-server as bench/compare.py does, prepares
each row's data in both, then runs R rounds, alternating which server goes
first, of

    redis-benchmark -p PORT -c 10 -P P -n N -r R -q <row's command>

for pipelines 1 and 16, reading the server's CPU time around each run, and
prints the medians and the ratio tenantkv/redis. Rows (ROWS below; add one
as a (name, setup, command) triple):

    XADD     XADD bench:s * f v                      (the stream grows)
    XRANGE10 XRANGE bench:r <random ms> + COUNT 10   (10,000 entries, ids i-0)
    XREADGROUP  XREADGROUP GROUP g c COUNT 1 STREAMS bench:q >   (one new entry
             delivered a call, into the PEL; the stream holds an entry for
             every call of the row's runs)
    XACK     XACK bench:p g <random id>   (a PEL of 10,000 entries: the first
             ack of an id removes it, later ones find nothing, as a retry)

`--structure` measures the value type alone, in this process: XADD of 1M
entries (ids and one field), XRANGE of 10 entries at 10,000 random points,
and the RSS the entries take.
Options: --quick (N/4, one round), --rounds R, --calls N, --structure.
"""

from __future__ import annotations

import random
import resource
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (BenchError, alternate, bench_parser, benchmark_command,  # noqa: E402
                     print_markdown_header, print_markdown_row, quick_or_full, run_on_pair)

RANGE_ENTRIES = 10_000


def pipe_commands(port: int, commands: list) -> None:
    """Send `commands` (lists of str) pipelined and read every reply."""
    payload = b"".join(b"*%d\r\n" % len(c) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in c) for c in commands)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(payload)
        data = b""
        while data.count(b"\r\n") < len(commands):   # one-line replies (ids, +OK)
            chunk = s.recv(1 << 16)
            if not chunk:
                raise BenchError("connection closed while preparing")
            data += chunk
        if b"-ERR" in data:
            raise BenchError("preparing failed: %r" % data[:200])


def setup_none(port: int, calls: int = 0) -> None:
    pipe_commands(port, [["DEL", "bench:s"]])


def _fill(port: int, key: str, entries: int) -> None:
    """XADD `entries` entries i-0 (i from 1) to `key`, pipelined in chunks."""
    import redis
    client = redis.Redis(port=port)
    client.delete(key)
    for start in range(1, entries + 1, 10_000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + 10_000, entries + 1)):
            pipe.execute_command("XADD", key, "%d-0" % i, "field", "value-%d" % i)
        pipe.execute()
    client.close()


def setup_readgroup(port: int, calls: int) -> None:
    import redis
    _fill(port, "bench:q", calls + 1000)
    redis.Redis(port=port).xgroup_create("bench:q", "g", id="0")


def setup_ack(port: int, calls: int = 0) -> None:
    import redis
    _fill(port, "bench:p", RANGE_ENTRIES)
    client = redis.Redis(port=port)
    client.xgroup_create("bench:p", "g", id="0")
    while client.xreadgroup("g", "c", {"bench:p": ">"}, count=1000):
        pass
    client.close()


def setup_range(port: int, calls: int = 0) -> None:
    pipe_commands(port, [["DEL", "bench:r"]] + [
        ["XADD", "bench:r", "%d-0" % i, "field", "value-%d" % i] for i in range(1, RANGE_ENTRIES + 1)])


# (name, setup(port), redis-benchmark arguments after -q); __rand_int__ is
# replaced by redis-benchmark with a number below -r (12 digits: a valid ms id)
ROWS = [
    ("XADD", setup_none, ["XADD", "bench:s", "*", "f", "v"]),
    ("XRANGE 10", setup_range, ["XRANGE", "bench:r", "__rand_int__", "+", "COUNT", "10"]),
    ("XREADGROUP", setup_readgroup,
     ["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "bench:q", ">"]),
    ("XACK", setup_ack, ["XACK", "bench:p", "g", "__rand_int__"]),
]


def compare(opts) -> int:
    n, rounds = quick_or_full(opts, opts.calls)

    def body(servers):
        print_markdown_header(["command", "pipeline"], "req/s", "req")
        for name, setup, argv in ROWS:
            for server in servers.values():
                setup(server.port, n * rounds * 2)
            for pipeline in (1, 16):
                med = alternate(servers, rounds, lambda s: benchmark_command(
                    servers[s], argv, n, pipeline, keyspace=RANGE_ENTRIES - 10))
                print_markdown_row([name, pipeline], med)

    return run_on_pair("bench-streams-", body)


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def structure(entries: int = 1_000_000) -> int:
    from tenantkv.keyspace.stream import MAX_ID, Stream
    base = rss_kb()
    s = Stream()
    fields = [b"field", b"value"]
    ms0 = 1_700_000_000_000
    start = time.perf_counter()
    for i in range(entries):
        s.add((ms0 + i) << 64, fields)
    added = time.perf_counter() - start
    grown = rss_kb() - base
    rng = random.Random(1)
    points = [(ms0 + rng.randrange(entries)) << 64 for _ in range(10_000)]
    start = time.perf_counter()
    for lo in points:
        body, n = s.range_reply(lo, MAX_ID, 10)
    ranged = time.perf_counter() - start
    points = [(ms0 + rng.randrange(entries)) << 64 for _ in range(10_000)]
    start = time.perf_counter()
    for hi in points:
        s.range_reply(0, hi, 10, True)
    reversed_ = time.perf_counter() - start
    print("entries: %d in %d blocks" % (len(s), len(s.blocks)))
    print("XADD (Stream.add): %.2f us each, %.0f/s" % (added / entries * 1e6, entries / added))
    print("XRANGE 10 at random points: %.2f us each; XREVRANGE 10: %.2f us"
          % (ranged / 1e4 * 1e6, reversed_ / 1e4 * 1e6))
    print("RSS: +%.1f MB, %.0f B an entry (MEMORY USAGE estimate %.0f B an entry)"
          % (grown / 1024, grown * 1024 / entries, s.memory() / entries))
    print("peak RSS of the process: %.1f MB" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    return 0


def main() -> int:
    parser = bench_parser(__doc__, "calls", 100_000)
    parser.add_argument("--structure", action="store_true")
    parser.add_argument("--only", help="run the rows whose name starts with this")
    opts = parser.parse_args()
    if opts.only:
        ROWS[:] = [row for row in ROWS if row[0].lower().startswith(opts.only.lower())]
    if opts.structure:
        return structure()
    return compare(opts)


if __name__ == "__main__":
    sys.exit(main())
