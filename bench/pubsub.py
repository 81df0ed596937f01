#!/usr/bin/env python3
"""PUBLISH throughput with 1, 10 and 100 subscribers: tenantkv vs redis-server.

What it does
------------
Starts a tenantkv and a redis-server as bench/compare.py does (same helpers:
free ports, temporary dirs, no persistence, no password) and sets both to
``client-output-buffer-limit pubsub 0 0 0``, so that a subscriber which falls
behind for a moment is not closed (which would change the work measured).

For each number of subscribers S (1, 10, 100) it opens S subscriber
connections (SUBSCRIBE bench), drained by one thread of this script that
only counts bytes (no parsing: the client's cost is kept low), then runs R
rounds; each round runs, against each server, alternating which goes first:

    redis-benchmark -p PORT -c 10 -P 16 -n N -q PUBLISH bench <16-byte message>

and waits until every subscriber received all of its N messages (the bytes
expected). Around that (the PUBLISHes and the deliveries) it reads the
server's CPU time, utime + stime from /proc/PID/stat, and computes

    PUBLISH/s         N / wall time until the last delivery arrived
    CPU us/message    server CPU seconds * 1e6 / N (one PUBLISH and its S deliveries)
    CPU us/delivery   the same divided by S

The table shows the medians over the rounds and the ratio tenantkv/redis of
CPU per message. The client shares the machine, so PUBLISH/s depends on how
much CPU it leaves the server; CPU per message does not.

Options: --quick (N/4, one round), --rounds R, --messages N, --subscribers
1,10,100. A server that fails or dies, a redis-benchmark error, or
deliveries that do not all arrive within a minute end the script with
status 1 and a message.
"""

from __future__ import annotations

import argparse
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (BenchError, Server, command, cpu_seconds, finish,  # noqa: E402
                     machine_facts, missing_tools, start_redis, start_tenantkv)

CHANNEL = b"bench"
MESSAGE = b"m" * 16
PUBLISHERS = 10
PIPELINE = 16
SUBSCRIBERS = (1, 10, 100)
DEFAULT_MESSAGES = 200_000
DEFAULT_ROUNDS = 3
# What one delivery is on the wire (RESP2 "message" array).
DELIVERY = b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
    len(CHANNEL), CHANNEL, len(MESSAGE), MESSAGE)


class Subscribers:
    """S connections subscribed to CHANNEL, drained by one thread counting bytes."""

    def __init__(self, port: int, count: int) -> None:
        self.socks = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(CHANNEL), CHANNEL))
            confirm = b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(CHANNEL), CHANNEL)
            got = b""
            while len(got) < len(confirm):
                got += sock.recv(4096)
            if got != confirm:
                raise BenchError("unexpected SUBSCRIBE reply: %r" % got[:200])
            sock.setblocking(False)
            self.socks.append(sock)
        self.received = 0
        self.closed = False
        self.stop = False
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        selector = selectors.DefaultSelector()
        for sock in self.socks:
            selector.register(sock, selectors.EVENT_READ)
        while not self.stop:
            for key, _ in selector.select(0.05):
                try:
                    data = key.fileobj.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not data:
                    self.closed = True
                    selector.unregister(key.fileobj)
                    continue
                self.received += len(data)

    def wait_for(self, total: int, timeout: float = 60.0) -> float:
        """Monotonic time when `total` bytes had arrived (BenchError if not)."""
        deadline = time.monotonic() + timeout
        while self.received < total:
            if self.closed:
                raise BenchError("a subscriber was disconnected by the server")
            if time.monotonic() > deadline:
                raise BenchError("deliveries missing: %d of %d bytes after %.0f s"
                                 % (self.received, total, timeout))
            time.sleep(0.001)
        return time.monotonic()

    def close(self) -> None:
        self.stop = True
        self.thread.join(5)
        for sock in self.socks:
            sock.close()


def run_round(server: Server, subs: Subscribers, n: int) -> tuple[float, float]:
    """One redis-benchmark run of N PUBLISHes; (PUBLISH/s, server CPU us/message)."""
    argv = ["redis-benchmark", "-p", str(server.port), "-c", str(PUBLISHERS), "-P", str(PIPELINE),
            "-n", str(n), "-q", "PUBLISH", CHANNEL.decode(), MESSAGE.decode()]
    expected = subs.received + n * len(subs.socks) * len(DELIVERY)
    cpu_before = cpu_seconds(server.pid)
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, timeout=120 + n / 1000)
    end = subs.wait_for(expected)
    cpu_after = cpu_seconds(server.pid)
    server.check_alive()
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    if proc.returncode != 0 or "ERR" in out or "rror" in out:
        raise BenchError(f"redis-benchmark against {server.name} failed (status {proc.returncode})"
                         f"\n  command: {' '.join(argv)}\n  | {out.strip()[-500:]}")
    return n / (end - start), (cpu_after - cpu_before) * 1e6 / n


def measure(servers: dict, subscriber_counts, n: int, rounds: int) -> dict:
    results = {}
    names = list(servers)
    for count in subscriber_counts:
        subs = {name: Subscribers(servers[name].port, count) for name in names}
        try:
            runs = {name: [] for name in names}
            for r in range(rounds):
                for name in (names if r % 2 == 0 else names[::-1]):
                    rate, us = run_round(servers[name], subs[name], n)
                    runs[name].append((rate, us))
                    print(f"  {count:>3} subscribers round {r + 1}/{rounds} {name:<8}"
                          f" {rate:>10,.0f} PUBLISH/s {us:>7.2f} us/message", flush=True)
            results[count] = {name: (statistics.median(x[0] for x in runs[name]),
                                     statistics.median(x[1] for x in runs[name]))
                              for name in names}
        finally:
            for s in subs.values():
                s.close()
    return results


def print_table(results: dict) -> None:
    head = (f"{'subscribers':>11} {'redis PUBLISH/s':>16} {'tenantkv PUBLISH/s':>19}"
            f" {'redis us/msg':>13} {'tenantkv us/msg':>16} {'tenantkv us/delivery':>21}"
            f" {'CPU ratio':>10}")
    print(head)
    print("-" * len(head))
    for count, row in results.items():
        redis_rate, redis_us = row["redis"]
        tkv_rate, tkv_us = row["tenantkv"]
        print(f"{count:>11} {redis_rate:>16,.0f} {tkv_rate:>19,.0f} {redis_us:>13.2f}"
              f" {tkv_us:>16.2f} {tkv_us / count:>21.2f} {tkv_us / redis_us:>9.2f}x")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a quarter of the messages, one round")
    p.add_argument("--rounds", type=int, help=f"rounds (default {DEFAULT_ROUNDS})")
    p.add_argument("--messages", type=int, help=f"PUBLISHes per run (default {DEFAULT_MESSAGES:,})")
    p.add_argument("--subscribers", default=",".join(map(str, SUBSCRIBERS)),
                   help="comma-separated subscriber counts (default 1,10,100)")
    args = p.parse_args(argv)
    args.counts = [int(x) for x in args.subscribers.split(",") if x.strip()]
    if not args.counts or min(args.counts) < 1:
        p.error("--subscribers: positive counts")
    args.rounds = args.rounds or (1 if args.quick else DEFAULT_ROUNDS)
    args.n = args.messages or (DEFAULT_MESSAGES // 4 if args.quick else DEFAULT_MESSAGES)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if missing_tools("redis-server", "redis-benchmark"):
        return 1
    print(machine_facts({1: args.n, 16: args.n}, args.rounds).rsplit("\n", 1)[0])
    print(f"load:      redis-benchmark -c {PUBLISHERS} -P {PIPELINE} -n {args.n:,} PUBLISH"
          f" ({len(MESSAGE)}-byte message), {args.rounds} round(s), medians;"
          f" CPU from /proc/PID/stat, until the last delivery", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="tenantkv-bench-pubsub-"))
    servers: list[Server] = []
    try:
        servers.append(start_redis(workdir))
        servers.append(start_tenantkv(workdir))
        for server in servers:
            command(server.port, "CONFIG", "SET", "client-output-buffer-limit", "pubsub 0 0 0")
        results = measure({s.name: s for s in servers}, args.counts, args.n, args.rounds)
        print()
        print_table(results)
        return 0
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        while servers:
            finish(servers.pop(), None)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
