"""Snapshot speed: SAVE, BGSAVE and start-up loading of 1,000,000 keys,
tenantkv (.kdb) against redis-server (RDB), same data, printed as a table.

    .venv/bin/python bench/persistence.py [--keys N] [--dataset strings|mixed|both]

For each server and dataset: fill it through pipelined MSET/HSET/RPUSH/SADD/ZADD,
then time (wall clock, seen from the client)
  SAVE        the foreground save command,
  BGSAVE      from the command to rdb_bgsave_in_progress:0 (polled every 10 ms),
              with the p99 / max latency of a PING loop running meanwhile,
then stop the server without saving, restart it on the same directory and read
  load        the server's own figure from its log (redis: "DB loaded from disk:
              X seconds"; tenantkv: "Done loading the snapshot ... in X seconds"),
  start       from spawning the process to serving commands (INFO says loading:0).
Checks that DEBUG DIGEST after the restart equals the one before (both servers
run with enable-debug-command). Standard library + redis-py. Not a test.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import redis

from compare import free_port, wait_port  # bench/ is the script directory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Server:
    def __init__(self, kind: str, directory: str, port: int) -> None:
        self.kind, self.dir, self.port = kind, directory, port
        self.log_path = os.path.join(directory, "server.log")
        self.log = open(self.log_path, "ab")
        if kind == "redis":
            cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", directory, "--enable-debug-command", "yes",
                   "--logfile", ""]
            env = None
        else:
            cmd = [sys.executable, "-m", "tenantkv", "--port", str(port), "--dir", directory,
                   "--save", ""]
            env = {**os.environ, "TENANTKV_AUTH__DEFAULT_USER": "nopass",
                   "PYTHONPATH": os.path.join(ROOT, "src")}
        started = time.perf_counter()
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_port(port, self.process, timeout=120)   # it may load 1M keys first
        self.client = redis.Redis(port=port, socket_timeout=600)
        # redis-server listens while it loads (replying -LOADING); tenantkv loads first
        while True:
            try:
                if not self.client.info("persistence")["loading"]:
                    break
            except redis.BusyLoadingError:
                pass
            time.sleep(0.005)
        self.start_time = time.perf_counter() - started

    def stop_nosave(self) -> None:
        try:
            self.client.shutdown(nosave=True)
        except redis.RedisError:
            pass
        self.process.wait(60)
        self.log.close()

    def log_text(self) -> str:
        with open(self.log_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def load_seconds(self) -> float:
        text = self.log_text()
        if self.kind == "redis":
            found = re.findall(r"DB loaded from disk: ([0-9.]+) seconds", text)
        else:
            found = re.findall(r"Done loading the snapshot .* in ([0-9.]+) seconds", text)
        return float(found[-1]) if found else float("nan")


def fill(client, keys: int, dataset: str) -> None:
    """`keys` keys: all strings, or a mix of every type (60% strings, 10% each
    of hashes, lists, sets, sorted sets of 5 elements)."""
    pipe = client.pipeline(transaction=False)
    batch = 1000
    for start in range(0, keys, batch):
        end = min(keys, start + batch)
        if dataset == "strings":
            pipe.mset({b"key:%d" % i: b"value:%d" % i for i in range(start, end)})
        else:
            strings = {}
            for i in range(start, end):
                slot = i % 10
                key = b"key:%d" % i
                if slot < 6:
                    strings[key] = b"value:%d" % i
                elif slot == 6:
                    pipe.hset(key, mapping={b"f%d" % j: b"v%d" % (i + j) for j in range(5)})
                elif slot == 7:
                    pipe.rpush(key, *[b"e%d" % (i + j) for j in range(5)])
                elif slot == 8:
                    pipe.sadd(key, *[b"m%d" % (i + j) for j in range(5)])
                else:
                    pipe.zadd(key, {b"z%d" % j: (i + j) / 3 for j in range(5)})
            if strings:
                pipe.mset(strings)
        if start % 50000 == 0:
            pipe.execute()
    pipe.execute()
    assert client.dbsize() == keys, client.dbsize()


def bgsave_with_pings(server: Server) -> tuple:
    latencies = []
    stop = threading.Event()

    def pinger():
        c = redis.Redis(port=server.port)
        while not stop.is_set():
            t = time.perf_counter()
            c.ping()
            latencies.append(time.perf_counter() - t)
            time.sleep(0.001)

    thread = threading.Thread(target=pinger)
    thread.start()
    time.sleep(0.2)
    first = len(latencies)
    started = time.perf_counter()
    server.client.bgsave()
    while server.client.info("persistence")["rdb_bgsave_in_progress"]:
        time.sleep(0.01)
    took = time.perf_counter() - started
    stop.set()
    thread.join()
    status = server.client.info("persistence")["rdb_last_bgsave_status"]
    assert status == "ok", status
    during = sorted(latencies[first:]) or [float("nan")]
    p99 = during[max(0, int(len(during) * 0.99) - 1)]
    return took, p99, during[-1]


def run(kind: str, keys: int, dataset: str) -> dict:
    directory = tempfile.mkdtemp(prefix="bench-persist-%s-" % kind)
    try:
        server = Server(kind, directory, free_port())
        fill(server.client, keys, dataset)
        digest = server.client.execute_command("DEBUG", "DIGEST")
        started = time.perf_counter()
        server.client.save()
        save = time.perf_counter() - started
        bgsave, p99, worst = bgsave_with_pings(server)
        name = "dump.rdb" if kind == "redis" else "dump.kdb"
        size = os.path.getsize(os.path.join(directory, name))
        server.stop_nosave()
        server = Server(kind, directory, server.port)
        load = server.load_seconds()
        start = server.start_time
        same = server.client.execute_command("DEBUG", "DIGEST") == digest
        count = server.client.dbsize()
        server.stop_nosave()
        return {"save": save, "bgsave": bgsave, "p99": p99, "max": worst, "size": size,
                "load": load, "start": start, "same": same and count == keys}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--dataset", choices=["strings", "mixed", "both"], default="both")
    args = parser.parse_args()
    datasets = ["strings", "mixed"] if args.dataset == "both" else [args.dataset]
    if shutil.which("redis-server") is None:
        print("redis-server is not installed", file=sys.stderr)
        return 1
    print("%d keys; %s; %d CPUs; python %s" % (args.keys, os.uname().machine, os.cpu_count(),
                                              sys.version.split()[0]))
    header = ("dataset", "server", "SAVE s", "BGSAVE s", "PING p99 ms", "PING max ms",
              "file MB", "load s", "start s", "digest")
    rows = []
    for dataset in datasets:
        for kind in ("redis", "tenantkv"):
            r = run(kind, args.keys, dataset)
            rows.append((dataset, "redis-server" if kind == "redis" else "tenantkv",
                         "%.2f" % r["save"], "%.2f" % r["bgsave"], "%.1f" % (r["p99"] * 1000),
                         "%.1f" % (r["max"] * 1000), "%.1f" % (r["size"] / 1e6),
                         "%.2f" % r["load"], "%.2f" % r["start"],
                         "same" if r["same"] else "DIFFERENT"))
            print("  done: %s %s" % (dataset, kind), file=sys.stderr)
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(cell).rjust(w) for cell, w in zip(row, widths)))
    return 0 if all(row[-1] == "same" for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
