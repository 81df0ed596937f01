"""The automatic AOF rewrite: how big the log gets and how long a restart
takes after many overwrites, tenantkv against redis-server.

    .venv/bin/python bench/aof_rewrite.py [--requests 2000000] [--keys 1000] [--off]

For each server: appendonly yes (appendfsync everysec, no snapshots, the
auto-aof-rewrite-* defaults: 100% / 64mb), then
`redis-benchmark -t set -r KEYS -n REQUESTS -P 16` (every SET overwrites one of
KEYS keys, so the data stays small and only the log grows). Printed:
  rewrites    aof_rewrites after the run,
  peak MB     the largest size of the log's directory seen (sampled every 0.1 s),
  final MB    its size at the end,
  req/s       redis-benchmark's figure,
  load s      after SIGKILL and a restart, the server's own figure from its log
              ("DB loaded from append only file: X seconds"),
  start s     from spawning the restarted process to serving commands.
DEBUG DIGEST after the restart must equal the one before. --off adds a
tenantkv run with auto-aof-rewrite-percentage 0 (the log is never rewritten).
Standard library + redis-py; needs redis-server and redis-benchmark. Not a test.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import redis

from compare import free_port, wait_port  # bench/ is the script directory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch(kind: str, directory: str, port: int, extra: list):
    log = open(os.path.join(directory, "server.log"), "ab")
    if kind == "redis":
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "yes", "--appendfsync", "everysec", "--dir", directory,
               "--enable-debug-command", "yes", "--logfile", "", *extra]
        env = None
    else:
        cmd = [sys.executable, "-m", "tenantkv", "--port", str(port), "--dir", directory,
               "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
               "--loglevel", "verbose", *extra]   # verbose: its "DB loaded" line
        env = {**os.environ, "TENANTKV_AUTH__DEFAULT_USER": "nopass",
               "PYTHONPATH": os.path.join(ROOT, "src")}
    started = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_port(port, process, timeout=300)
    client = redis.Redis(port=port, socket_timeout=600)
    while True:   # redis-server listens while it loads (-LOADING); tenantkv loads first
        try:
            if not client.info("persistence")["loading"]:
                break
        except redis.BusyLoadingError:
            pass
        time.sleep(0.005)
    return process, client, time.perf_counter() - started, log


def dir_size(path: str) -> int:
    total = 0
    for name in os.listdir(path) if os.path.isdir(path) else ():
        try:
            total += os.path.getsize(os.path.join(path, name))
        except OSError:
            pass   # removed meanwhile (a rewrite finished)
    return total


def run(kind: str, extra: list, requests: int, keys: int) -> dict:
    directory = tempfile.mkdtemp(prefix="aof-rewrite-bench-")
    log_dir = os.path.join(directory, "appendonlydir")
    port = free_port()
    try:
        process, client, _, log = launch(kind, directory, port, extra)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.1):
                peak = max(peak, dir_size(log_dir))
        sampler = threading.Thread(target=sample)
        sampler.start()
        text = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-r", str(keys),
                               "-n", str(requests), "-P", "16", "-q"],
                              capture_output=True, text=True, check=True).stdout
        rps = float(text.replace("\r", "\n").strip().splitlines()[-1].split()[1])
        while client.info("persistence")["aof_rewrite_in_progress"]:
            time.sleep(0.05)
        time.sleep(1.2)   # everysec: the last second on disk
        done.set()
        sampler.join()
        final = dir_size(log_dir)
        peak = max(peak, final)
        rewrites = client.info("persistence")["aof_rewrites"]
        digest = client.execute_command("DEBUG", "DIGEST")
        process.send_signal(signal.SIGKILL)
        process.wait()
        log.close()
        process, client, start, log = launch(kind, directory, port, extra)
        try:
            assert client.execute_command("DEBUG", "DIGEST") == digest, "data differs after restart"
        finally:
            client.shutdown(nosave=True) if kind == "redis" else process.terminate()
            process.wait(60)
            log.close()
        with open(os.path.join(directory, "server.log"), "rb") as f:
            found = re.findall(rb"DB loaded from append only file: ([0-9.]+) seconds", f.read())
        return {"rewrites": rewrites, "peak": peak, "final": final, "rps": rps,
                "load": float(found[-1]) if found else float("nan"), "start": start}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2_000_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--off", action="store_true",
                        help="also tenantkv with auto-aof-rewrite-percentage 0")
    args = parser.parse_args()
    runs = [("redis-server", "redis", []), ("tenantkv", "tenantkv", [])]
    if args.off:
        runs.append(("tenantkv (auto rewrite off)", "tenantkv",
                     ["--auto-aof-rewrite-percentage", "0"]))
    print("redis-benchmark -t set -r %d -n %d -P 16, appendonly yes, appendfsync everysec"
          % (args.keys, args.requests))
    print("| server | rewrites | peak MB | final MB | req/s | load s | start s |")
    print("|---|---|---|---|---|---|---|")
    for label, kind, extra in runs:
        r = run(kind, extra, args.requests, args.keys)
        print("| %s | %d | %.1f | %.1f | %.0f | %.2f | %.2f |" % (
            label, r["rewrites"], r["peak"] / 1e6, r["final"] / 1e6, r["rps"], r["load"],
            r["start"]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
