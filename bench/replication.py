#!/usr/bin/env python3
"""Replication: primary throughput with 0, 1 and 2 replicas, lag, full sync (issue 20).

What it does
------------
Two clusters on loopback, each node on a free port with its own data dir in
one temporary directory (removed at the end, also on an error or Ctrl-C):
a redis-server primary with redis-server replicas, and a tenantkv primary
with tenantkv replicas (`--replicaof "127.0.0.1 PORT" --masteruser root
--masterauth PW`; the load runs as the password-less default user, as
bench/compare.py does, and the bench's own probes log in as root). No
snapshots, no append-only log on any node.

1. Throughput. Both primaries get redis-benchmark's keyspace (100,000 keys
   `key:%012d`, so that GET finds them). Then with 0, then 1, then 2
   replicas attached (each new replica does its full sync and shows
   `state=online` on the primary before anything is measured), for SET and
   GET at pipeline 1 and 16, R rounds of

       redis-benchmark -p PRIMARY -t TEST -c 50 -P P -r 100000 -n N -q

   alternating which cluster goes first. Around each run the primary's and
   the replicas' CPU time (utime + stime, /proc/PID/stat) are read, giving

       req/s              redis-benchmark's figure
       primary us/req     the primary's CPU microseconds per request
       replica us/req     each replica's CPU per request (their mean)

   and, right after each run with replicas, the lag: the primary's
   master_repl_offset minus the furthest-behind replica's slave_repl_offset
   (bytes), and the time until every replica's offset reached that primary
   offset (INFO replication polled every 5 ms). A GET writes nothing, so
   its lag is 0 and is not shown. Medians over the rounds.

2. Full sync. A fresh primary of each kind gets 1,000,000 keys (`key:%07d`,
   100-byte values, redis-cli --pipe); a fresh empty node then gets
   `REPLICAOF 127.0.0.1 PORT` and the time is taken until its
   master_link_status is up and its DBSIZE (the default user's tenant on
   tenantkv) is 1,000,000, polled every 50 ms; with the CPU time the
   primary (and its forked child, once reaped) and the replica spent on it
   (utime + stime + cutime + cstime). redis-server runs with
   `repl-diskless-sync-delay 0` (its default waits 5 s for more replicas
   to share the transfer) and the default disk-based load on the replica.

The machine has 2 cores shared by the client, the primary and the replicas:
the replicas take CPU from the primary and the client, so req/s falls with
each replica for reasons that are not the primary's cost; CPU per request of
the primary is the figure to compare.

Options: --quick (N/4, one round), --rounds R, --requests N (pipeline 1;
pipeline 16 runs 5x as many), --keys K (full sync, default 1,000,000),
--only redis|tenantkv, --no-sync, --no-throughput. A node that fails to
start or dies, a replica that does not come online, or an error from
redis-benchmark makes the script exit with status 1 and say what failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (CLIENTS, CLK_TCK, KEYSPACE, BenchError, Server, cpu_seconds, dbsize,  # noqa: E402
                     machine_facts, missing_tools, on_sigterm, pipe_load, run_benchmark,
                     tenantkv_python)

KINDS = ("redis", "tenantkv")
TESTS = ("set", "get")
PIPELINES = (1, 16)
REPLICA_COUNTS = (0, 1, 2)
DEFAULT_REQUESTS = 100_000  # pipeline 1; pipeline 16 runs 5x as many
DEFAULT_ROUNDS = 3
SYNC_KEYS = 1_000_000
SYNC_VALUE = b"v" * 100
ROOT_PASSWORD = "bench-replication-root"
ONLINE_TIMEOUT = 300.0  # a full sync of the throughput keyspace, on a busy machine
SYNC_TIMEOUT = 600.0


# --------------------------------------------------------------------------
# Nodes


def start_node(kind: str, workdir: Path, primary: Server | None = None) -> Server:
    """A redis-server or tenantkv node, a replica of `primary` if given."""
    if kind == "redis":
        def argv(port, d):
            cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                   "--dir", str(d), "--repl-diskless-sync-delay", "0"]
            if primary is not None:
                cmd += ["--replicaof", "127.0.0.1", str(primary.port)]
            return cmd
        node = Server("redis-replica" if primary else "redis", argv, workdir)
    else:
        def argv(port, d):
            # masteruser/masterauth on every node: the full-sync node gets
            # its REPLICAOF at run time.
            cmd = [tenantkv_python(), "-m", "tenantkv", "--port", str(port), "--dir", str(d),
                   "--loglevel", "warning", "--save", "", "--masteruser", "root",
                   "--masterauth", ROOT_PASSWORD]
            if primary is not None:
                cmd += ["--replicaof", f"127.0.0.1 {primary.port}"]
            return cmd
        # The load connects as the password-less default user (as in
        # bench/compare.py); root exists with a known password for the
        # replicas' link and the bench's INFO/REPLICAOF.
        env = dict(os.environ, TENANTKV_AUTH__DEFAULT_USER="nopass",
                   TENANTKV_ROOT_PASSWORD=ROOT_PASSWORD)
        node = Server("tenantkv-replica" if primary else "tenantkv", argv, workdir, env=env)
    node.kind = kind
    return node


def cpu_with_children(pid: int) -> float:
    """utime + stime + cutime + cstime: the process and its reaped children
    (a full sync's forked snapshot writer), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read().decode()
    fields = stat[stat.rindex(")") + 2:].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def admin(node: Server) -> redis.Redis:
    """A client for INFO / REPLICAOF: root on tenantkv, the default user on redis."""
    if node.kind == "tenantkv":
        return redis.Redis(port=node.port, username="root", password=ROOT_PASSWORD,
                           socket_timeout=30)
    return redis.Redis(port=node.port, socket_timeout=30)


def replication_info(client: redis.Redis) -> dict:
    return client.info("replication")


class Cluster:
    """A primary and its replicas of one kind."""

    def __init__(self, kind: str, workdir: Path):
        self.kind = kind
        self.workdir = workdir
        self.replicas: list[Server] = []
        self.clients: dict[int, redis.Redis] = {}
        self.primary = start_node(kind, workdir)

    def client(self, node: Server) -> redis.Redis:
        if node.pid not in self.clients:
            self.clients[node.pid] = admin(node)
        return self.clients[node.pid]

    def add_replica(self) -> None:
        replica = start_node(self.kind, self.workdir, self.primary)
        self.replicas.append(replica)
        wait_online(self, timeout=ONLINE_TIMEOUT)

    def offsets(self) -> tuple[int, list[int]]:
        """(the primary's master_repl_offset, each replica's slave_repl_offset)."""
        primary = int(replication_info(self.client(self.primary))["master_repl_offset"])
        return primary, [int(replication_info(self.client(r)).get("slave_repl_offset", -1))
                         for r in self.replicas]

    def check_alive(self) -> None:
        for node in (self.primary, *self.replicas):
            node.check_alive()

    def stop(self) -> None:
        for c in self.clients.values():
            c.close()
        for node in (*self.replicas, self.primary):
            node.stop()


def wait_online(cluster: Cluster, timeout: float) -> float:
    """Until the primary lists every replica with state=online and each replica
    says master_link_status:up; returns the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    want = len(cluster.replicas)
    while True:
        cluster.check_alive()
        info = replication_info(cluster.client(cluster.primary))
        online = sum(1 for k, v in info.items()
                     if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online")
        up = all(replication_info(cluster.client(r)).get("master_link_status") == "up"
                 for r in cluster.replicas)
        if online == want and up:
            return time.monotonic() - start
        if time.monotonic() > deadline:
            raise BenchError(f"{cluster.kind}: {want} replica(s) not online after {timeout:.0f}s"
                             f" (primary sees {online} online)\n{cluster.replicas[-1].log_tail()}")
        time.sleep(0.05)


def catch_up(cluster: Cluster, timeout: float = 120.0) -> tuple[int, float]:
    """Right after a load: (bytes the furthest replica is behind, seconds until
    every replica's offset reached the primary's offset of that moment)."""
    start = time.monotonic()
    target, offsets = cluster.offsets()
    behind = max(target - o for o in offsets)
    while min(offsets) < target:
        if time.monotonic() - start > timeout:
            raise BenchError(f"{cluster.kind}: replicas still {target - min(offsets)} bytes"
                             f" behind after {timeout:.0f}s")
        time.sleep(0.005)
        offsets = cluster.offsets()[1]
    return behind, time.monotonic() - start


# --------------------------------------------------------------------------
# 1. Throughput


def throughput(clusters: dict[str, Cluster], requests: dict[int, int], rounds: int) -> dict:
    """{(replicas, test, P): {kind: {"rps", "us", "replica_us", "lag", "catchup"}}}, medians."""
    for cluster in clusters.values():
        keys = (b"key:%012d" % i for i in range(KEYSPACE))
        pipe_load(cluster.primary, keys, KEYSPACE, b"xxx")
    results = {}
    for count in REPLICA_COUNTS:
        for cluster in clusters.values():
            while len(cluster.replicas) < count:
                cluster.add_replica()
        print(f"-- {count} replica(s) attached", flush=True)
        for test in TESTS:
            for pipeline in PIPELINES:
                n = requests[pipeline]
                runs = {kind: [] for kind in clusters}
                names = list(clusters)
                for r in range(rounds):
                    for kind in (names if r % 2 == 0 else names[::-1]):
                        row = one_run(clusters[kind], test, pipeline, n)
                        runs[kind].append(row)
                        extra = ""
                        if count and test == "set":
                            extra = f", lag {row['lag']:,} B, caught up in {row['catchup'] * 1000:.0f} ms"
                        print(f"  {count}r {test:>3} P{pipeline:<2} round {r + 1}/{rounds} {kind:<8}"
                              f" {row['rps']:>10,.0f} req/s {row['us']:>6.2f} us/req"
                              f" (replicas {row['replica_us']:.2f}){extra}", flush=True)
                results[count, test, pipeline] = {
                    kind: {key: statistics.median(run[key] for run in v) for key in v[0]}
                    for kind, v in runs.items()}
    return results


def one_run(cluster: Cluster, test: str, pipeline: int, n: int) -> dict:
    before = [cpu_seconds(r.pid) for r in cluster.replicas]
    rps, us = run_benchmark(cluster.primary, test, pipeline, n)
    lag, catchup = catch_up(cluster) if cluster.replicas else (0, 0.0)
    # The replicas' CPU includes applying the whole stream (read after catch-up).
    after = [cpu_seconds(r.pid) for r in cluster.replicas]
    cluster.check_alive()
    replica_us = (statistics.mean(a - b for a, b in zip(after, before)) * 1e6 / n
                  if cluster.replicas else 0.0)
    return dict(rps=rps, us=us, replica_us=replica_us, lag=lag, catchup=catchup)


def print_throughput(results: dict, kinds) -> None:
    print("| replicas | test | P | " + " | ".join(
        f"{k} req/s | {k} primary us/req | {k} replica us/req" for k in kinds)
        + (" | CPU ratio |" if len(kinds) == 2 else " |"))
    print("|" + "---|" * (3 + 3 * len(kinds) + (len(kinds) == 2)))
    for (count, test, pipeline), row in results.items():
        cells = [str(count), test.upper(), str(pipeline)]
        for k in kinds:
            cells += [f"{row[k]['rps']:,.0f}", f"{row[k]['us']:.2f}",
                      f"{row[k]['replica_us']:.2f}" if count else "-"]
        if len(kinds) == 2:
            a, b = row[kinds[0]]["us"], row[kinds[1]]["us"]
            cells.append(f"{b / a:.2f}x" if a else "n/a")
        print("| " + " | ".join(cells) + " |")
    lag_rows = [(key, row) for key, row in results.items() if key[0] and key[1] == "set"]
    if lag_rows:
        print("\nLag right after each SET run (furthest replica; median over rounds):\n")
        print("| replicas | P | " + " | ".join(
            f"{k} lag bytes | {k} caught up in" for k in kinds) + " |")
        print("|" + "---|" * (2 + 2 * len(kinds)))
        for (count, _, pipeline), row in lag_rows:
            cells = [str(count), str(pipeline)]
            for k in kinds:
                cells += [f"{row[k]['lag']:,.0f}", f"{row[k]['catchup'] * 1000:.0f} ms"]
            print("| " + " | ".join(cells) + " |")


# --------------------------------------------------------------------------
# 2. Full sync


def full_sync(kind: str, workdir: Path, keys: int) -> dict:
    primary = start_node(kind, workdir)
    replica = None
    try:
        t0 = time.monotonic()
        pipe_load(primary, (b"key:%07d" % i for i in range(keys)), keys, SYNC_VALUE)
        fill_s = time.monotonic() - t0
        if dbsize(primary) != keys:
            raise BenchError(f"{kind}: primary DBSIZE is {dbsize(primary):,}, not {keys:,}")
        replica = start_node(kind, workdir)
        client = admin(replica)
        cpu0 = cpu_with_children(primary.pid)
        replica_cpu0 = cpu_with_children(replica.pid)
        start = time.monotonic()
        client.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
        up_at = None
        while True:
            replica.check_alive()
            primary.check_alive()
            # Times taken when a reply arrives: a replica loading a snapshot
            # may hold a probe until it is done.
            if up_at is None and replication_info(client).get("master_link_status") == "up":
                up_at = time.monotonic()
            now = time.monotonic()
            if up_at is not None and dbsize(replica) == keys:
                done = time.monotonic()
                break
            if now - start > SYNC_TIMEOUT:
                raise BenchError(f"{kind}: full sync of {keys:,} keys not done after"
                                 f" {SYNC_TIMEOUT:.0f}s\n{replica.log_tail()}")
            time.sleep(0.05)
        client.close()
        spot_check(replica, keys)
        return dict(fill=fill_s, up=up_at - start, done=done - start,
                    primary_cpu=cpu_with_children(primary.pid) - cpu0,
                    replica_cpu=cpu_with_children(replica.pid) - replica_cpu0)
    finally:
        if replica is not None:
            replica.stop()
        primary.stop()


def spot_check(replica: Server, keys: int, count: int = 1000) -> None:
    """A sync that is fast but wrong measures nothing: `count` keys spread
    over the range must read back the primary's value on the replica (as the
    load's user: the default user's tenant on tenantkv)."""
    picks = [b"key:%07d" % (i * keys // count) for i in range(count)]
    with redis.Redis(port=replica.port, socket_timeout=30) as client:
        values = client.mget(picks)
    wrong = sum(1 for v in values if v != SYNC_VALUE)
    if wrong:
        raise BenchError(f"{replica.name}: {wrong} of {count} keys read back wrong after the sync")


def print_sync(rows: dict, keys: int) -> None:
    print(f"| server | keys | fill (redis-cli --pipe) | link up after REPLICAOF |"
          f" all {keys:,} keys on the replica | primary CPU (with its fork) | replica CPU |")
    print("|---|---|---|---|---|---|---|")
    for kind, r in rows.items():
        print(f"| {kind} | {keys:,} | {r['fill']:.1f} s | {r['up']:.2f} s | {r['done']:.2f} s"
              f" | {r['primary_cpu']:.2f} s | {r['replica_cpu']:.2f} s |")


# --------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a quarter of the requests, one round")
    p.add_argument("--rounds", type=int)
    p.add_argument("--requests", type=int, help=f"pipeline 1 (default {DEFAULT_REQUESTS:,});"
                   " pipeline 16 runs 5x as many")
    p.add_argument("--keys", type=int, default=SYNC_KEYS, help="keys of the full sync")
    p.add_argument("--only", choices=KINDS, help="one server kind instead of both")
    p.add_argument("--no-sync", action="store_true", help="skip the full-sync timing")
    p.add_argument("--no-throughput", action="store_true", help="skip the throughput runs")
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else DEFAULT_ROUNDS
    base = args.requests or (DEFAULT_REQUESTS // 4 if args.quick else DEFAULT_REQUESTS)
    args.n = {1: base, 16: 5 * base}
    args.kinds = [args.only] if args.only else list(KINDS)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if missing_tools("redis-server", "redis-benchmark", "redis-cli"):
        return 1
    signal.signal(signal.SIGTERM, on_sigterm)
    print(machine_facts(args.n, args.rounds), flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="tenantkv-bench-replication-"))
    clusters: dict[str, Cluster] = {}
    try:
        if not args.no_throughput:
            print(f"\n== Primary throughput with {', '.join(map(str, REPLICA_COUNTS))} replicas"
                  f" (redis-benchmark -c {CLIENTS} -r {KEYSPACE}) ==", flush=True)
            for kind in args.kinds:
                clusters[kind] = Cluster(kind, workdir)
            results = throughput(clusters, args.n, args.rounds)
            while clusters:
                clusters.popitem()[1].stop()
            print()
            print_throughput(results, args.kinds)
            print("\n(us/req: CPU microseconds per request of the primary; replica us/req: of each"
                  " replica, their mean; the client and every node share the machine's CPUs)")
        if not args.no_sync:
            print(f"\n== Full sync of {args.keys:,} keys ({len(SYNC_VALUE)}-byte values) ==",
                  flush=True)
            rows = {}
            for kind in args.kinds:
                rows[kind] = full_sync(kind, workdir, args.keys)
                print(f"  {kind}: up after {rows[kind]['up']:.2f}s, all keys after"
                      f" {rows[kind]['done']:.2f}s", flush=True)
            print()
            print_sync(rows, args.keys)
        return 0
    except BenchError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        for cluster in clusters.values():
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
