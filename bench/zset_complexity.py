#!/usr/bin/env python3
"""Sorted-set complexity check: per-call cost at 10k and 1M members.

Issue 4 asks that ZADD/ZRANK/ZRANGE on a 1,000,000-member sorted set stay
O(log n): time per call at 10k and 1M members within 3x of each other.

What it does
------------
For each server (tenantkv, then redis-server for reference numbers unless
``--no-redis``), started on a free port with a temporary ``--dir`` and stopped
in ``finally``, and for each size S (``--sizes``, default 10000,1000000):

1. Loads key ``zbench:S`` with S members ``m:0`` .. ``m:S-1`` with random
   scores in [0, S), through redis-py pipelines of 10,000 members (100 ZADD
   commands of 100 members each), and checks ZCARD. (Pipelines of 10,000
   single-member ZADDs once made tenantkv answer "unknown command '4'": the
   fast reader lost a '*' at the end of a read; fixed in c3fd14b.)

2. For each operation, pre-draws N (``--calls``, default 2,000) random
   arguments, runs 100 unrecorded warm-up calls, then N single, non-pipelined
   calls over one connection, timing each with perf_counter_ns (so the
   figures include the client's and the loopback's constant cost), and reads
   the server's utime + stime from /proc/PID/stat around the N calls:

     zadd-new     ZADD key <random score> new:<i>      (a member not present)
     zadd-update  ZADD key <random score> m:<random>   (an existing member)
     zrank        ZRANK key m:<random>
     zrange       ZRANGE key s s+10                    (random s in [0, S-11])
     zrangebyscore ZRANGEBYSCORE key <random> +inf LIMIT 0 10
     zscore       ZSCORE key m:<random>
     zrem+zadd    ZREM key m:<random>, then ZADD it back with its score
                  (one sample = the pair of calls)

3. Prints, per server, a table: op, median and p99 latency in us at the
   smallest and the largest size, the ratio of the medians (largest/smallest)
   and PASS/FAIL against 3x; then the server CPU us per call at each size and
   its ratio. CPU comes in clock ticks (10 ms at SC_CLK_TCK=100): when the N
   calls of an op took fewer than 5 ticks at either size the CPU ratio is
   marked "coarse" instead of PASS/FAIL (typical for redis-server).

Missing the 3x target does not change the exit status; a server that fails to
start or dies, or a command error, gives status 1. Needs redis-py (in the
venv) and, without --no-redis, redis-server on the PATH.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

# The server handling and /proc reading of the main comparison (same directory).
from compare import CLK_TCK, BenchError, Server, cpu_seconds, start_redis, start_tenantkv

TARGET = 3.0
LOAD_BATCH = 10_000  # members per pipeline
LOAD_MEMBERS = 100  # members per ZADD command
WARMUP = 100
MIN_TICKS = 5
OPS = ("zadd-new", "zadd-update", "zrank", "zrange", "zrangebyscore", "zscore", "zrem+zadd")


def start_with_client(start, workdir: Path):
    """A server from bench/compare.py (same start-up and checks), plus one
    redis-py connection for the measured calls."""
    server = start(workdir)
    server.client = redis.Redis(port=server.port, socket_timeout=600)
    return server


def stop(server) -> None:
    server.client.close()
    server.stop()


# --------------------------------------------------------------------------


def load(server: Server, key: str, size: int, rng: random.Random) -> dict[int, float]:
    c = server.client
    c.delete(key)
    scores = {}
    for start in range(0, size, LOAD_BATCH):
        pipe = c.pipeline(transaction=False)
        end = min(size, start + LOAD_BATCH)
        for first in range(start, end, LOAD_MEMBERS):
            args = []
            for i in range(first, min(end, first + LOAD_MEMBERS)):
                s = rng.uniform(0, size)
                scores[i] = s
                args += (repr(s), f"m:{i}")
            pipe.execute_command("ZADD", key, *args)
        try:
            pipe.execute()
        except redis.RedisError as e:
            server.check_alive()
            raise BenchError(f"loading {key} into {server.name} failed at member {start:,}+:"
                             f" {str(e)[:300]}")
    server.check_alive()
    n = c.zcard(key)
    if n != size:
        raise BenchError(f"ZCARD {key} on {server.name} is {n}, expected {size}")
    return scores


def make_calls(op: str, key: str, size: int, n: int, rng: random.Random,
               scores: dict[int, float], tag: str):
    """n argument lists (each a list of commands for one sample)."""
    out = []
    for j in range(n):
        i = rng.randrange(size)
        if op == "zadd-new":
            out.append([("ZADD", key, repr(rng.uniform(0, size)), f"new:{tag}:{j}")])
        elif op == "zadd-update":
            s = rng.uniform(0, size)
            scores[i] = s
            out.append([("ZADD", key, repr(s), f"m:{i}")])
        elif op == "zrank":
            out.append([("ZRANK", key, f"m:{i}")])
        elif op == "zrange":
            s = rng.randrange(max(1, size - 11))
            out.append([("ZRANGE", key, str(s), str(s + 10))])
        elif op == "zrangebyscore":
            out.append([("ZRANGEBYSCORE", key, repr(rng.uniform(0, size)), "+inf",
                         "LIMIT", "0", "10")])
        elif op == "zscore":
            out.append([("ZSCORE", key, f"m:{i}")])
        elif op == "zrem+zadd":
            out.append([("ZREM", key, f"m:{i}"), ("ZADD", key, repr(scores[i]), f"m:{i}")])
    return out


def run_op(server: Server, op: str, key: str, size: int, n: int, rng: random.Random,
           scores: dict[int, float]) -> dict:
    c = server.client
    ex = c.execute_command
    warm = make_calls(op, key, size, WARMUP, rng, scores, "w")
    calls = make_calls(op, key, size, n, rng, scores, "x")
    try:
        for cmds in warm:
            for cmd in cmds:
                ex(*cmd)
        lat = []
        clock = time.perf_counter_ns
        cpu0 = cpu_seconds(server.pid)
        for cmds in calls:
            t0 = clock()
            for cmd in cmds:
                ex(*cmd)
            lat.append(clock() - t0)
        cpu1 = cpu_seconds(server.pid)
    except redis.RedisError as e:
        server.check_alive()
        raise BenchError(f"{op} on {server.name} ({size:,} members) failed: {e!r}")
    lat.sort()
    return {
        "median": statistics.median(lat) / 1000,
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000,
        "cpu": (cpu1 - cpu0) * 1e6 / n,
        "ticks": round((cpu1 - cpu0) * CLK_TCK),
    }


def measure(server: Server, sizes: list[int], n: int, seed: int) -> dict:
    results: dict[int, dict[str, dict]] = {}
    for size in sizes:
        rng = random.Random(seed + size)
        key = f"zbench:{size}"
        t0 = time.monotonic()
        scores = load(server, key, size, rng)
        print(f"  {server.name}: loaded {size:,} members in {time.monotonic() - t0:.1f}s",
              flush=True)
        results[size] = {}
        for op in OPS:
            results[size][op] = run_op(server, op, key, size, n, rng, scores)
        server.client.delete(key)
        server.check_alive()
    return results


def verdict(ratio: float) -> str:
    return "PASS" if ratio <= TARGET else "FAIL"


def print_tables(name: str, results: dict, sizes: list[int], n: int) -> None:
    lo, hi = min(sizes), max(sizes)
    L, H = f"{lo:,}", f"{hi:,}"
    print(f"\n{name}: latency per call, us (client-side, {n:,} calls, one connection)")
    hdr = (f"{'op':<14} {L + ' med':>11} {L + ' p99':>11} {H + ' med':>12} {H + ' p99':>12}"
           f" {'ratio':>6}  vs {TARGET:g}x")
    print(hdr)
    print("-" * len(hdr))
    for op in OPS:
        a, b = results[lo][op], results[hi][op]
        r = b["median"] / a["median"]
        print(f"{op:<14} {a['median']:>11.1f} {a['p99']:>11.1f} {b['median']:>12.1f}"
              f" {b['p99']:>12.1f} {r:>6.2f}  {verdict(r)}")
    print(f"\n{name}: server CPU per call, us (utime+stime from /proc, tick = "
          f"{1e6 / CLK_TCK:,.0f} us; ticks in brackets)")
    cols = "".join(f" {f'{s:,}':>16}" for s in sizes)
    hdr = f"{'op':<14}{cols} {'ratio':>6}  vs {TARGET:g}x"
    print(hdr)
    print("-" * len(hdr))
    for op in OPS:
        cells = "".join(f" {results[s][op]['cpu']:>9.1f} ({results[s][op]['ticks']:>4})"
                        for s in sizes)
        a, b = results[lo][op], results[hi][op]
        if min(a["ticks"], b["ticks"]) < MIN_TICKS or a["cpu"] <= 0:
            r, v = "-", "coarse"
        else:
            r, v = f"{b['cpu'] / a['cpu']:.2f}", verdict(b["cpu"] / a["cpu"])
        print(f"{op:<14}{cells} {r:>6}  {v}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,1000000",
                   help="comma-separated zset sizes (ratio = largest/smallest)")
    p.add_argument("--calls", type=int, default=2000, help="timed calls per op and size")
    p.add_argument("--no-redis", action="store_true", help="skip redis-server")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if len(sizes) < 2 or args.calls < 1:
        p.error("need at least two sizes and --calls >= 1")
    if not args.no_redis and not shutil.which("redis-server"):
        print("error: redis-server not found (or use --no-redis)", file=sys.stderr)
        return 1

    print(f"zset complexity: sizes {', '.join(f'{s:,}' for s in sizes)}; {args.calls:,} calls"
          f" per op; target ratio <= {TARGET:g}x")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, Python {platform.python_version()}",
          flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="tenantkv-zbench-"))
    servers: list[Server] = []
    all_results = []
    try:
        starters = [("tenantkv", start_tenantkv)]
        if not args.no_redis:
            starters.append(("redis-server", start_redis))
        for label, start in starters:
            server = start_with_client(start, workdir)
            servers.append(server)
            all_results.append((label, measure(server, sizes, args.calls, args.seed)))
            stop(server)
            servers.remove(server)
        for label, results in all_results:
            print_tables(label, results, sizes, args.calls)
        return 0
    except BenchError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        for s in servers:
            stop(s)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
