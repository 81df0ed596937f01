"""The append-only log's cost: server CPU per request and requests/s for
`redis-benchmark -t set,get,incr -n N -P 16`, with appendonly no / everysec /
always, optionally against another source tree (e.g. the commit before the log).

    .venv/bin/python bench/aof.py [--rounds 3] [--requests 200000] [--base /path/to/src]

The server CPU comes from /proc/PID/stat (utime + stime) around each run, so
it does not depend on how busy the machine is the way requests/s does. Rounds
alternate between the configurations; the median is printed. Standard library
only; needs redis-benchmark on the PATH and Linux's /proc.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from compare import cpu_seconds, free_port  # bench/ is the script directory

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
TESTS = ("set", "get", "incr")


def run(src: str, extra: list, requests: int) -> dict:
    directory = tempfile.mkdtemp(prefix="tenantkv-aof-bench-")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": src, "TENANTKV_AUTH__DEFAULT_USER": "nopass"}
    server = subprocess.Popen([sys.executable, "-m", "tenantkv", "--port", str(port), "--dir", directory,
                               "--save", "", *extra],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        out = {}
        for test in TESTS:
            before = cpu_seconds(server.pid)
            text = subprocess.run(["redis-benchmark", "-p", str(port), "-t", test, "-n", str(requests),
                                   "-P", "16", "-q"], capture_output=True, text=True, check=True).stdout
            used = cpu_seconds(server.pid) - before
            rps = float(text.replace("\r", "\n").strip().splitlines()[-1].split()[1])
            out[test] = (used / requests * 1e6, rps)
        return out
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200000)
    parser.add_argument("--base", metavar="SRC", help="another src/ tree to measure with appendonly no")
    args = parser.parse_args()
    configs = []
    if args.base:
        configs.append(("base, appendonly no", args.base, []))
    configs += [
        ("appendonly no", HERE, []),
        ("appendonly yes, everysec", HERE, ["--appendonly", "yes"]),
        ("appendonly yes, always", HERE, ["--appendonly", "yes", "--appendfsync", "always"]),
    ]
    results = {name: {t: [] for t in TESTS} for name, _, _ in configs}
    for _ in range(args.rounds):
        for name, src, extra in configs:
            for test, value in run(src, extra, args.requests).items():
                results[name][test].append(value)
    print("redis-benchmark -t %s -n %d -P 16, median of %d rounds: server CPU us/request (requests/s)"
          % (",".join(TESTS), args.requests, args.rounds))
    for name, per_test in results.items():
        print("  %-26s %s" % (name, "  ".join(
            "%s %.2f (%.0f)" % (test.upper(), statistics.median(v[0] for v in values),
                                statistics.median(v[1] for v in values))
            for test, values in per_test.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
