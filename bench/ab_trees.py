#!/usr/bin/env python3
"""A/B: server CPU per request of two tenantkv source trees under the same load.

compare.py measures tenantkv against redis-server; on a shared, loaded
machine its figures move by 10% from run to run, too much to see what one
change costs on the hot path. This script starts both trees' servers side by
side (default settings, password-less, temporary dirs) and, for each round,
test (SET, GET) and pipeline depth (1, 16), runs the same

    redis-benchmark -p PORT -t TEST -c 50 -P PIPE -r 100000 -n N -q

against each, alternating which goes first, reading each server's CPU time
(utime + stime, /proc/PID/stat) around its run. It prints the median CPU
microseconds per request of each tree, their difference, and every round's
figure. Run it against the same tree twice (A/A) to see the noise.

    python bench/ab_trees.py --base /tmp/main/src --new src [--requests N] [--rounds R]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

TESTS = ("set", "get")
PIPELINES = (1, 16)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(tree: str) -> tuple:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree), "TENANTKV_AUTH__DEFAULT_USER": "nopass"}
    proc = subprocess.Popen([sys.executable, "-m", "tenantkv", "--port", str(port),
                             "--dir", tempfile.mkdtemp(prefix="tenantkv-ab-")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the server of %s did not start" % tree)
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the src directory of the reference tree")
    parser.add_argument("--new", required=True, help="the src directory of the changed tree")
    parser.add_argument("--requests", type=int, default=400000, help="requests per run at pipeline 16")
    parser.add_argument("--rounds", type=int, default=6)
    opts = parser.parse_args()
    servers = {"base": start(opts.base), "new": start(opts.new)}
    results = {(name, test, pipe): [] for name in servers for test in TESTS for pipe in PIPELINES}
    try:
        for round_ in range(opts.rounds):
            order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
            for test in TESTS:
                for pipe in PIPELINES:
                    count = opts.requests if pipe > 1 else opts.requests // 4
                    for name in order:
                        proc, port = servers[name]
                        before = cpu_seconds(proc.pid)
                        subprocess.run(["redis-benchmark", "-p", str(port), "-t", test, "-c", "50",
                                        "-P", str(pipe), "-r", "100000", "-n", str(count), "-q"],
                                       stdout=subprocess.DEVNULL, check=True)
                        results[(name, test, pipe)].append(
                            (cpu_seconds(proc.pid) - before) * 1e6 / count)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
    print("test P    base us/req  new us/req  difference   rounds (base | new)")
    for test in TESTS:
        for pipe in PIPELINES:
            base = sorted(results[("base", test, pipe)])
            new = sorted(results[("new", test, pipe)])
            b, n = base[len(base) // 2], new[len(new) // 2]
            print("%-4s %-3d %11.2f %11.2f %+10.1f%%   %s | %s" % (
                test.upper(), pipe, b, n, (n / b - 1) * 100,
                " ".join("%.2f" % x for x in base), " ".join("%.2f" % x for x in new)))


if __name__ == "__main__":
    main()
