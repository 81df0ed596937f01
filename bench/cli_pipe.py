#!/usr/bin/env python3
"""tenantkv-cli --pipe against redis-cli --pipe: the same mass insert, timed.

    python bench/cli_pipe.py [--keys 1000000] [--value-size 10] [--rounds 3]
                             [--target redis|tenantkv|both] [--inline]

For each target server (a redis-server and a tenantkv server, each started on
a free port in a temporary directory, stopped at the end) and each client
(`redis-cli --pipe` and `tenantkv-cli --pipe`, the latter run as
`python -m tenantkv.cli.client` from this working tree), it FLUSHALLs, then
feeds one file of N `SET key:%07d <value>` commands (RESP, or inline text
with --inline) on stdin and measures the wall time until the client exits.
It checks the client's summary ("errors: 0, replies: N") and DBSIZE == N,
and prints the median of the rounds, keys/s and the ratio tenantkv-cli /
redis-cli. The clients alternate which one runs first from round to round.

With a redis-server target the figure is about the client (redis-server
swallows ~1M SETs/s, so the client is the bottleneck); with the tenantkv
target both clients wait for the server, so the times are close.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from compare import free_port, wait_port  # bench/ is the script directory

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")


def generate(path: str, keys: int, value_size: int, inline: bool) -> int:
    value = b"v" * value_size
    with open(path, "wb") as f:
        batch = []
        for i in range(keys):
            key = b"key:%07d" % i
            if inline:
                batch.append(b"SET %s %s\r\n" % (key, value))
            else:
                batch.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                             % (len(key), key, len(value), value))
            if len(batch) >= 100000:
                f.write(b"".join(batch))
                batch = []
        f.write(b"".join(batch))
    return os.path.getsize(path)


def start_redis(directory: str):
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", directory,
                             "--daemonize", "no", "--logfile", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_port(port, proc)
    return port, proc


def start_tenantkv(directory: str):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "TENANTKV_AUTH__DEFAULT_USER": "nopass"}
    proc = subprocess.Popen([sys.executable, "-m", "tenantkv", "--port", str(port), "--dir", directory,
                             "--loglevel", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
    wait_port(port, proc)
    return port, proc


def redis_call(port: int, *args: str) -> bytes:
    out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, check=True)
    return out.stdout.strip()


def run_client(client: str, port: int, path: str, keys: int) -> float:
    if client == "redis-cli":
        cmd = ["redis-cli", "-p", str(port), "--pipe"]
        env = None
    else:
        cmd = [sys.executable, "-m", "tenantkv.cli.client", "-p", str(port), "--pipe"]
        env = {**os.environ, "PYTHONPATH": SRC}
    redis_call(port, "FLUSHALL")
    with open(path, "rb") as stdin:
        start = time.perf_counter()
        out = subprocess.run(cmd, stdin=stdin, capture_output=True, env=env)
        elapsed = time.perf_counter() - start
    summary = out.stdout.decode().strip().splitlines()[-1] if out.stdout else ""
    expected = "errors: 0, replies: %d" % keys
    if out.returncode != 0 or summary != expected:
        raise RuntimeError("%s: exit %s, %r (expected %r); stderr %s"
                           % (client, out.returncode, summary, expected, out.stderr[-500:]))
    size = int(redis_call(port, "DBSIZE"))
    if size != keys:
        raise RuntimeError("%s: DBSIZE %d, expected %d" % (client, size, keys))
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--value-size", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", choices=("redis", "tenantkv", "both"), default="both")
    parser.add_argument("--inline", action="store_true", help="inline commands instead of RESP")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="tenantkv-cli-pipe-")
    path = os.path.join(work, "input.txt" if args.inline else "input.resp")
    size = generate(path, args.keys, args.value_size, args.inline)
    print("input: %d SET commands, %.1f MB (%s)" % (args.keys, size / 1e6,
                                                      "inline" if args.inline else "RESP"))
    targets = ["redis", "tenantkv"] if args.target == "both" else [args.target]
    for target in targets:
        directory = tempfile.mkdtemp(dir=work)
        port, proc = (start_redis if target == "redis" else start_tenantkv)(directory)
        try:
            times = {"redis-cli": [], "tenantkv-cli": []}
            for r in range(args.rounds):
                order = ["redis-cli", "tenantkv-cli"] if r % 2 == 0 else ["tenantkv-cli", "redis-cli"]
                for client in order:
                    times[client].append(run_client(client, port, path, args.keys))
            print("\nserver: %s (port %d), %d rounds, median:" % (target, port, args.rounds))
            med = {}
            for client, values in times.items():
                med[client] = statistics.median(values)
                print("  %-13s %7.2f s  %10.0f keys/s   (rounds: %s)" % (
                    client, med[client], args.keys / med[client],
                    ", ".join("%.2f" % v for v in values)))
            print("  tenantkv-cli / redis-cli: %.2fx the time" % (med["tenantkv-cli"] / med["redis-cli"]))
        finally:
            proc.terminate()
            proc.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
