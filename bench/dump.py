#!/usr/bin/env python3
"""DUMP and RESTORE: tenantkv vs redis-server, server CPU per request.

Starts a tenantkv and a redis-server as bench/compare.py does, makes the
same small values in both (a 10-byte string, a 5-field hash, a 10-element
list, a 200-member sorted set), then for each test and pipeline depth (1
and 16) runs R rounds, alternating which server goes first, of N requests
sent by CLIENTS connections of this script (threads, each a raw socket
writing P requests at once and reading P replies with hiredis). RESTORE
payloads hold NUL bytes, so redis-benchmark cannot send them: the load is
made here for every test alike. Around each run it reads the server's CPU
time (utime + stime of all its threads, /proc/PID/stat).

It prints the medians of requests/s and server CPU microseconds per
request, and the ratio tenantkv / redis (N requests a run at pipeline 1,
4N at 16: the CPU clock ticks every 10 ms). The client runs on the same
machine, so requests/s depends on what it leaves the server; CPU per
request does not. Options: --quick (N/4, one round), --rounds R,
--requests N.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import hiredis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (BenchError, alternate, bench_parser, cpu_seconds,  # noqa: E402
                     machine_facts, print_markdown_header, print_markdown_row, quick_or_full,
                     run_on_pair)

CLIENTS = 4


def encode(*args) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        arg = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def call(port: int, *args):
    """One request, its parsed reply (bytes payloads too)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(encode(*args))
        reader = hiredis.Reader()
        while True:
            reply = reader.gets()
            if reply is not False:
                return reply
            data = sock.recv(1 << 16)
            if not data:
                raise BenchError("connection closed")
            reader.feed(data)


def setup(port: int) -> dict:
    """The values; returns the payloads RESTORE sends (this server's DUMP)."""
    call(port, "FLUSHALL")
    call(port, "SET", "str", "0123456789")
    call(port, "HSET", "hash", "f1", "v1", "f2", "v2", "f3", "v3", "f4", "v4", "f5", "v5")
    call(port, "RPUSH", "list", *["element-%d" % i for i in range(10)])
    args = []
    for i in range(200):
        args += [str(i * 1.5), "member-%d" % i]
    call(port, "ZADD", "zset", *args)
    return {key: call(port, "DUMP", key) for key in ("str", "hash", "list", "zset")}


TESTS = [
    ("DUMP string", lambda p: ("DUMP", "str")),
    ("DUMP hash (5 fields)", lambda p: ("DUMP", "hash")),
    ("DUMP list (10)", lambda p: ("DUMP", "list")),
    ("DUMP zset (200)", lambda p: ("DUMP", "zset")),
    ("RESTORE string", lambda p: ("RESTORE", "r:str", "0", p["str"], "REPLACE")),
    ("RESTORE hash (5 fields)", lambda p: ("RESTORE", "r:hash", "0", p["hash"], "REPLACE")),
    ("RESTORE list (10)", lambda p: ("RESTORE", "r:list", "0", p["list"], "REPLACE")),
    ("RESTORE zset (200)", lambda p: ("RESTORE", "r:zset", "0", p["zset"], "REPLACE")),
]


def client_loop(port: int, request: bytes, pipeline: int, batches: int, errors: list) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            reader = hiredis.Reader()
            burst = request * pipeline
            for _ in range(batches):
                sock.sendall(burst)
                got = 0
                while got < pipeline:
                    reply = reader.gets()
                    if reply is False:
                        data = sock.recv(1 << 20)
                        if not data:
                            raise BenchError("connection closed")
                        reader.feed(data)
                        continue
                    if isinstance(reply, hiredis.ReplyError):
                        raise BenchError("error reply: %s" % reply)
                    got += 1
    except Exception as exc:   # reported by the caller
        errors.append(exc)


def run_round(server, request: bytes, n: int, pipeline: int) -> tuple[float, float]:
    batches = max(1, n // (CLIENTS * pipeline))
    total = batches * CLIENTS * pipeline
    errors: list = []
    threads = [threading.Thread(target=client_loop,
                                args=(server.port, request, pipeline, batches, errors))
               for _ in range(CLIENTS)]
    before = cpu_seconds(server.pid)
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - start
    after = cpu_seconds(server.pid)
    server.check_alive()
    if errors:
        raise BenchError("%s: %s" % (server.name, errors[0]))
    return total / wall, (after - before) * 1e6 / total


def main() -> int:
    opts = bench_parser(__doc__, "requests", 40_000).parse_args()
    n, rounds = quick_or_full(opts, opts.requests)

    def body(servers):
        payloads = {name: setup(s.port) for name, s in servers.items()}
        if payloads["redis"] != payloads["tenantkv"]:
            print("note: the DUMP payloads differ between the servers (hash order)",
                  file=sys.stderr)
        facts = machine_facts({1: n, 16: n}, rounds).splitlines()[:3]
        print("\n".join(facts + ["load:      %d connections of this script, %d requests a run,"
                                  " %d round(s), medians; CPU from /proc/PID/stat"
                                  % (CLIENTS, n, rounds)]))
        print_markdown_header(["test", "pipeline"], "req/s", "req")
        for pipeline in (1, 16):
            count = n if pipeline == 1 else 4 * n   # enough CPU ticks at P16
            for name, make in TESTS:
                # each server RESTOREs its own DUMP (the same value)
                med = alternate(servers, rounds, lambda server: run_round(
                    servers[server], encode(*make(payloads[server])), count, pipeline))
                print_markdown_row([name, pipeline], med)

    # redis-benchmark is not used (RESTORE's payloads hold NUL bytes), but
    # make redis-tools installs it with redis-cli and redis-server
    return run_on_pair("bench-dump-", body)


if __name__ == "__main__":
    sys.exit(main())

