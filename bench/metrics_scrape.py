#!/usr/bin/env python3
"""The Prometheus endpoint with many tenants (issue 19): how long a scrape
takes, how big it is, and what it does to another client's PING latency.

    PYTHONPATH=src .venv/bin/python bench/metrics_scrape.py               # 10,000 tenants
    PYTHONPATH=src .venv/bin/python bench/metrics_scrape.py --tenants 100000 --active 300

What it does
------------
1. Makes --tenants users offline in a fresh users.db (one argon2 hash shared
   by all the rows, as hashing 10,000 passwords would take minutes; each row
   still has its own tenant key) and a dump.kdb holding one key in each
   user's tenant, so the server starts with --tenants tenants.
2. Starts tenantkv (this checkout's src/) with the metrics
   endpoint on; --active of the users log in and run 17 commands each
   (SET, GET, INCR, HSET, a WRONGTYPE error): tenants with per-command
   counters, errors and keys, as a busy server's top tenants.
3. A separate process PINGs the server on one connection, one at a time,
   for --seconds with no scrape, then for --seconds while this process
   scrapes the endpoint back to back (or every --interval s). Reported: each phase's PING p50/p99/max,
   the scrape time (p50/max, client side) and the scrape's size and series.
"""

import argparse
import json
import multiprocessing
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

PASSWORD = b"bench-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_data(data_dir: str, tenants: int) -> list:
    """users.db with root and user0..user<tenants-1>, and a dump.kdb with one
    key per user tenant. Returns the users' tenant keys."""
    from tenantkv.keyspace import Tenant
    from tenantkv.persistence.kdb import format as kdb
    from tenantkv.server.stats import Stats
    from tenantkv.tenancy import hashing
    from tenantkv.tenancy.store import UserStore, new_tenant_key

    path = os.path.join(data_dir, "users.db")
    store = UserStore(path)
    store.add("root", PASSWORD, root=True)
    store.close()
    stored = hashing.hash_password(PASSWORD)
    now = int(time.time())
    keys = [new_tenant_key() for _ in range(tenants)]
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO users (username, password, created_at, updated_at, root_user, enabled,"
            " namespace, tenant) VALUES (?, ?, ?, ?, 0, 1, NULL, ?)",
            (("user%d" % i, stored, now, now, key) for i, key in enumerate(keys)))
    db.close()
    stats = Stats()
    world = {}
    for i, key in enumerate(keys):
        tenant = Tenant(key, stats)
        tenant.dbs[0].data[b"key"] = b"value %d" % i
        world[key] = tenant
    kdb.write_snapshot(world, os.path.join(data_dir, "dump.kdb"))
    return keys


def pinger(port: int, seconds: float, queue) -> None:
    """PING one at a time for `seconds`; the latencies (s) go to `queue`."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"AUTH root %s\r\n" % PASSWORD)
    assert sock.recv(100) == b"+OK\r\n"
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        sock.sendall(b"PING\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            reply += sock.recv(100)
        latencies.append(time.perf_counter() - start)
        time.sleep(0.001)
    sock.close()
    queue.put(latencies)


def percentiles(values: list) -> dict:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))] * 1000
    return {"count": len(values), "p50_ms": round(pick(0.5), 3), "p99_ms": round(pick(0.99), 3),
            "max_ms": round(values[-1] * 1000, 3)}


def ping_phase(port: int, seconds: float, during=None) -> dict:
    queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=pinger, args=(port, seconds, queue))
    process.start()
    extra = during() if during is not None else None
    latencies = queue.get(timeout=seconds + 60)
    process.join()
    return percentiles(latencies), extra


def login_and_work(port: int, names: list) -> None:
    import redis
    for name in names:
        client = redis.Redis(port=port, username=name, password=PASSWORD,
                             single_connection_client=True)
        pipe = client.pipeline(transaction=False)
        for i in range(4):
            pipe.set("k%d" % i, "v")
            pipe.get("k%d" % i)
            pipe.incr("counter")
            pipe.hset("h", "f%d" % i, "v")
        pipe.lpush("k0", "x")   # WRONGTYPE: an error by command and prefix
        pipe.execute(raise_on_error=False)
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=1000, help="tenants with traffic")
    parser.add_argument("--max-tenants", type=int, default=100, help="metrics-max-tenants")
    parser.add_argument("--seconds", type=float, default=10.0, help="each PING phase")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds between scrapes (0: back to back, the worst case)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tenantkv-metrics-") as data_dir:
        started = time.perf_counter()
        make_data(data_dir, args.tenants)
        setup = time.perf_counter() - started
        port, metrics_port = free_port(), free_port()
        env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "TENANTKV_AUTH__DEFAULT_USER": "off"}
        log = open(os.path.join(data_dir, "server.log"), "wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "tenantkv", "--port", str(port), "--dir", data_dir,
             "--metrics-port", str(metrics_port), "--metrics-max-tenants", str(args.max_tenants),
             "--save", ""], stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    socket.create_connection(("127.0.0.1", metrics_port), timeout=1).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("the server did not start: see its log")
                    time.sleep(0.2)
            login_and_work(port, ["user%d" % i for i in range(min(args.active, args.tenants))])
            url = "http://127.0.0.1:%d/metrics" % metrics_port
            sizes = []

            def scrape_once() -> float:
                start = time.perf_counter()
                with urllib.request.urlopen(url, timeout=60) as response:
                    body = response.read()
                sizes.append(body)
                return time.perf_counter() - start

            scrape_once()   # warm: the user names are read once

            def scrapes() -> list:
                times = []
                end = time.perf_counter() + args.seconds
                while time.perf_counter() < end:
                    times.append(scrape_once())
                    time.sleep(args.interval)
                return times

            quiet, _ = ping_phase(port, args.seconds)
            busy, times = ping_phase(port, args.seconds, scrapes)
            body = sizes[-1].decode()
            series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
            result = {
                "tenants": args.tenants, "active": args.active, "max_tenants": args.max_tenants,
                "setup_s": round(setup, 1),
                "scrape": {"count": len(times), "p50_ms": round(statistics.median(times) * 1000, 1),
                           "max_ms": round(max(times) * 1000, 1), "bytes": len(sizes[-1]),
                           "series": series},
                "ping_without_scrapes": quiet, "ping_during_scrapes": busy,
            }
        finally:
            server.terminate()
            server.wait(30)
            log.close()
    if args.json:
        print(json.dumps(result))
    else:
        s = result["scrape"]
        print("%d tenants (%d active), metrics-max-tenants %d, scrapes %s" % (
            args.tenants, args.active, args.max_tenants,
            "every %g s" % args.interval if args.interval else "back to back"))
        print("scrape: %d in %.0f s, p50 %.1f ms, max %.1f ms, %d bytes, %d series" % (
            s["count"], args.seconds, s["p50_ms"], s["max_ms"], s["bytes"], s["series"]))
        for name in ("ping_without_scrapes", "ping_during_scrapes"):
            p = result[name]
            print("%-22s PINGs %6d  p50 %.3f ms  p99 %.3f ms  max %.3f ms" % (
                name.replace("_", " "), p["count"], p["p50_ms"], p["p99_ms"], p["max_ms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
