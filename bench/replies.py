#!/usr/bin/env python3
"""Server CPU per request of array replies and sorted-set writes (issue 14).

Starts redis-server and one tenantkv per source tree given with --src (e.g. the
tree before a change and after it; default: this checkout's src), loads the
same data in each, then runs redis-benchmark (-c 50, -P PIPE, -n N) for each
test, alternating the servers inside each round, and prints the median server
CPU us/request (utime + stime from /proc/PID/stat) and the ratio to redis:

  lrange_100, lrange_300   LRANGE of 100 / 300 elements (a 600-element list)
  hgetall                  HGETALL of a 50-field hash
  smembers                 SMEMBERS of a 100-member set
  mget                     MGET of 10 keys
  zadd                     ZADD myzset <random score> element:<random> (-r 100000)
  zpopmin                  ZPOPMIN myzset (refilled with N members before each run)
  zrange                   ZRANGE zs 0 9 WITHSCORES of a 10,000-member zset

Usage: bench/replies.py [--src DIR ...] [--tests a,b] [--rounds R] [--requests N] [--pipeline P]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")

LOADS = {
    "lrange_100": [["RPUSH", "mylist", *[f"element:{i}" for i in range(600)]]],
    "lrange_300": [["RPUSH", "mylist", *[f"element:{i}" for i in range(600)]]],
    "hgetall": [["HSET", "h", *[x for i in range(50) for x in (f"field:{i}", f"value:{i}")]]],
    "smembers": [["SADD", "s", *[f"member:{i}" for i in range(100)]]],
    "mget": [["MSET", *[x for i in range(10) for x in (f"key:{i}", "x" * 20)]]],
    "zrange": [["ZADD", "zs", *[x for i in range(j, j + 1000)
                                for x in (str(random.Random(i).random()), f"m:{i}")]]
               for j in range(0, 10_000, 1000)],
}
COMMANDS = {
    "lrange_100": ["LRANGE", "mylist", "0", "99"],
    "lrange_300": ["LRANGE", "mylist", "0", "299"],
    "hgetall": ["HGETALL", "h"],
    "smembers": ["SMEMBERS", "s"],
    "mget": ["MGET", *[f"key:{i}" for i in range(10)]],
    "zadd": ["ZADD", "myzset", "__rand_int__", "element:__rand_int__"],
    "zpopmin": ["ZPOPMIN", "myzset"],
    "zrange": ["ZRANGE", "zs", "0", "9", "WITHSCORES"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name: str, argv_for_port, env=None):
    port = free_port()
    proc = subprocess.Popen(argv_for_port(port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return name, port, proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{name} did not start")


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cli(port: int, *args: str) -> None:
    subprocess.run(["redis-cli", "-p", str(port), *args], check=True, stdout=subprocess.DEVNULL)


def fill_zpopmin(port: int, n: int) -> None:
    """myzset with n members (scores with many ties), through redis-cli --pipe."""
    out = [b"*2\r\n$3\r\nDEL\r\n$6\r\nmyzset\r\n"]
    for j in range(0, n, 1000):
        args = [b"ZADD", b"myzset"] + [x for i in range(j, min(n, j + 1000))
                                       for x in (b"%d" % (i % 977), b"e:%d" % i)]
        out.append(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in args))
    subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=b"".join(out), check=True,
                   stdout=subprocess.DEVNULL)


def run(port: int, pid: int, test: str, n: int, pipeline: int) -> float:
    before = cpu_ticks(pid)
    subprocess.run(["redis-benchmark", "-p", str(port), "-c", "50", "-P", str(pipeline),
                    "-r", "100000", "-n", str(n), "-q", *COMMANDS[test]],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (cpu_ticks(pid) - before) * TICK_US / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", action="append", help="a tenantkv source tree (src/ directory)")
    p.add_argument("--tests", default=",".join(COMMANDS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--pipeline", type=int, default=16)
    a = p.parse_args()
    tests = a.tests.split(",")
    srcs = a.src or [str(ROOT / "src")]
    tmp = tempfile.mkdtemp()
    servers = []
    try:
        servers.append(start("redis", lambda port: [
            "redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp]))
        for i, src in enumerate(srcs):
            d = os.path.join(tmp, str(i))
            os.mkdir(d)
            env = dict(os.environ, PYTHONPATH=src, TENANTKV_AUTH__DEFAULT_USER="nopass")
            print(f"tkv{i + 1}: {src}")
            servers.append(start(f"tkv{i + 1}", lambda port, d=d: [
                sys.executable, "-m", "tenantkv", "--port", str(port), "--dir", d,
                "--loglevel", "warning"], env=env))
        for _, port, _ in servers:
            for test in tests:
                for cmd in LOADS.get(test, []):
                    cli(port, *cmd)
        results = {}
        for test in tests:
            for r in range(a.rounds):
                for name, port, proc in servers:
                    if test == "zpopmin":   # as many members as pops, in every run
                        fill_zpopmin(port, a.requests)
                    us = run(port, proc.pid, test, a.requests, a.pipeline)
                    results.setdefault((test, name), []).append(us)
        print(f"server CPU us/request, median of {a.rounds}, -P {a.pipeline}, -n {a.requests}")
        for test in tests:
            base = statistics.median(results[test, "redis"])
            row = [f"{test:<11}", f"redis {base:6.2f}"]
            for name, _, _ in servers[1:]:
                us = statistics.median(results[test, name])
                row.append(f"{name} {us:6.2f} ({us / base:.2f}x)")
            print("  ".join(row))
    finally:
        for _, _, proc in servers:
            proc.terminate()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
