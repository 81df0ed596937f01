"""A replica under a write load (issue 20's done-when): redis-benchmark with 50
clients writing to the primary for a few seconds, the replica within 1 s of
lag; and a replica restarted (or its link cut) mid-stream continues with a
partial resync from the backlog, not a full sync.

Each test runs against tenantkv and, with TENANTKV_REPLICATION_REFERENCE=1,
also against a redis-server primary + replica: the reference that shows the
test itself measures the right thing (left out of `make test`'s time).
"""

import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
import redis

from compat import harness
from conftest import ServerProcess, free_port, wait_for_port

pytestmark = pytest.mark.slow

ROOT_PASSWORD = "replication-load-root-pw"
LOAD_SECONDS = 4.0
SAMPLE_EVERY = 0.1
MAX_LAG = 1.0
# Big enough for every write of a restart's downtime (Redis at ~150k SET/s of
# ~70 bytes is ~10 MB/s; a tenantkv start takes ~1-2 s), so that the resync
# is partial by the backlog's size, not by luck.
BACKLOG = "256mb"
PARTIAL = "MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization"
FULL = "Full resync from master"


class RedisNode:
    """redis-server, restartable on the same port and data dir (its RDB keeps
    a replica's replication id and offset across a restart, as in production)."""

    def __init__(self, data_dir, *flags: str, port: int | None = None):
        self.port = port or free_port()
        self.data_dir = str(data_dir)
        self.flags = flags
        self.starts = 0
        self._start()

    def _start(self):
        self.starts += 1
        self.log_path = os.path.join(self.data_dir, "redis-%d.log" % self.starts)
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [harness.redis_server_path(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.data_dir, "--appendonly", "no", "--daemonize", "no",
             "--logfile", "", "--enable-debug-command", "local", *self.flags],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def restart(self):
        self.stop()
        self._start()

    def admin(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=30)


class TenantkvNode:
    """tenantkv with a known root password (the replica's masterauth, and the
    probes' login); the load uses the password-less default user."""

    def __init__(self, data_dir, *flags: str, port: int | None = None):
        self.data_dir = str(data_dir)
        self.flags = flags
        self.proc = ServerProcess(self.data_dir, *flags, port=port,
                                  env={"TENANTKV_ROOT_PASSWORD": ROOT_PASSWORD})
        self.port = self.proc.port

    @property
    def log_path(self):
        return self.proc.log_path   # rewritten by each start: this start's lines only

    def stop(self):
        self.proc.stop()

    def restart(self):
        self.proc.stop()
        self.proc = ServerProcess(self.data_dir, *self.flags, port=self.port,
                                  env={"TENANTKV_ROOT_PASSWORD": ROOT_PASSWORD})

    def admin(self) -> redis.Redis:
        return redis.Redis(port=self.port, username="root", password=ROOT_PASSWORD,
                           socket_timeout=30)


def _kinds():
    return (["redis"] if os.environ.get("TENANTKV_REPLICATION_REFERENCE") else []) + ["tenantkv"]


@pytest.fixture(params=_kinds())
def pair(request, tmp_path):
    """(primary, replica) of one kind, the replica online; both stopped at the end."""
    kind = request.param
    if shutil.which("redis-benchmark") is None or harness.redis_server_path() is None:
        pytest.skip("redis-server / redis-benchmark not installed (`make redis-tools`)")
    (tmp_path / "primary").mkdir()
    (tmp_path / "replica").mkdir()
    nodes = []
    try:
        if kind == "redis":
            primary = RedisNode(tmp_path / "primary", "--save", "",
                                "--repl-backlog-size", BACKLOG, "--repl-diskless-sync-delay", "0")
            nodes.append(primary)
            # A save point, so that a shutdown writes the RDB that carries the
            # replica's replication id and offset to its next start.
            replica = RedisNode(tmp_path / "replica", "--save", "3600 1",
                                "--replicaof", "127.0.0.1", str(primary.port))
        else:
            primary = TenantkvNode(tmp_path / "primary", "--save", "",
                                   "--repl-backlog-size", BACKLOG,
                                   "--repl-diskless-sync-delay", "0")
            nodes.append(primary)
            replica = TenantkvNode(tmp_path / "replica",
                                   "--replicaof", "127.0.0.1 %d" % primary.port,
                                   "--masteruser", "root", "--masterauth", ROOT_PASSWORD)
        nodes.append(replica)
        wait_link_up(replica, primary)
        yield primary, replica
    finally:
        for node in reversed(nodes):
            node.stop()


def wait_link_up(replica, primary, timeout: float = 60.0) -> None:
    """Until the replica's link is up and the primary lists it online."""
    deadline = time.monotonic() + timeout
    with replica.admin() as r, primary.admin() as p:
        while True:
            info = r.info("replication")
            slaves = [v for k, v in p.info("replication").items()
                      if k.startswith("slave") and isinstance(v, dict)]
            if info.get("master_link_status") == "up" and any(
                    s.get("state") == "online" for s in slaves):
                return
            assert time.monotonic() < deadline, (
                "replica not online after %.0f s: %r" % (timeout, info))
            time.sleep(0.05)


def wait_caught_up(replica, primary, timeout: float = 60.0) -> None:
    with replica.admin() as r, primary.admin() as p:
        target = p.info("replication")["master_repl_offset"]
        deadline = time.monotonic() + timeout
        while r.info("replication").get("slave_repl_offset", -1) < target:
            assert time.monotonic() < deadline, "replica did not reach offset %d" % target
            time.sleep(0.02)


class Load:
    """redis-benchmark -t set -c 50 against a port in a loop (-l), until stop():
    a load of fixed duration whatever the server's speed."""

    def __init__(self, port: int):
        self.process = subprocess.Popen(
            ["redis-benchmark", "-p", str(port), "-t", "set", "-c", "50", "-r", "100000",
             "-l", "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def stop(self) -> None:
        assert self.process.poll() is None, (
            "redis-benchmark stopped early: %s" % self.process.stderr.read())
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stderr.close()


class Sampler(threading.Thread):
    """INFO replication of the primary, then of the replica, every 100 ms.
    A sample's times err on the side of more lag: the primary's offset counts
    from the moment its request was sent (it had that offset no earlier), the
    replica's from the moment its reply came back (it had it no later). A
    replica too busy or stalled to answer INFO thus shows the stall as lag,
    which it is; on a quiet loopback a round trip is ~1 ms."""

    def __init__(self, primary, replica):
        super().__init__(daemon=True)
        self.p, self.r = primary.admin(), replica.admin()
        self.primary = []   # (sent time, master_repl_offset)
        self.replica = []   # (reply time, slave_repl_offset)
        self.halt = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.halt.is_set():
                sent = time.monotonic()
                offset = self.p.info("replication")["master_repl_offset"]
                self.primary.append((sent, offset))
                offset = self.r.info("replication").get("slave_repl_offset", -1)
                self.replica.append((time.monotonic(), offset))
                self.halt.wait(SAMPLE_EVERY)
        except Exception as exc:   # reported by the test, not lost in a thread
            self.error = exc
        finally:
            self.p.close()
            self.r.close()

    def stop(self):
        self.halt.set()
        self.join(30)
        assert self.error is None, "sampling failed: %r" % self.error


def worst_lag(primary_samples, replica_samples) -> tuple[float, int]:
    """(the longest lag seen in seconds, the primary offset it concerns): for
    each offset the primary had, how long after it the replica was last seen
    still below it."""
    worst, at = 0.0, 0
    for t_p, offset in primary_samples:
        behind = [t_r for t_r, r_off in replica_samples if t_r > t_p and r_off < offset]
        if behind and behind[-1] - t_p > worst:
            worst, at = behind[-1] - t_p, offset
    return worst, at


def test_replica_within_one_second_under_load(pair):
    """50 clients of SETs on the primary for a few seconds: every offset the
    primary reached is on the replica less than 1 s later."""
    primary, replica = pair
    sampler = Sampler(primary, replica)
    sampler.start()
    time.sleep(0.3)
    load = Load(primary.port)
    time.sleep(LOAD_SECONDS)
    load.stop()
    time.sleep(MAX_LAG + 0.5)   # the last offsets of the load get their second
    sampler.stop()

    start_offset = sampler.primary[0][1]
    end_offset = sampler.primary[-1][1]
    # A real load went through (~70 bytes of stream per SET): at least
    # 10,000 SETs, and samples all along (the verdict needs them).
    assert end_offset - start_offset > 700_000, (start_offset, end_offset)
    assert len(sampler.replica) >= (LOAD_SECONDS / SAMPLE_EVERY) / 4, len(sampler.replica)
    lag, offset = worst_lag(sampler.primary, sampler.replica)
    assert lag < MAX_LAG, (
        "the replica was still below offset %d %.2f s after the primary had it"
        " (%d bytes streamed in %.1f s)" % (offset, lag, end_offset - start_offset, LOAD_SECONDS))
    # ... and it ends with exactly what the primary has.
    wait_caught_up(replica, primary)
    assert digest(replica) == digest(primary)


def digest(node) -> bytes:
    """DEBUG DIGEST of the load's keyspace (the default user's, on tenantkv)."""
    with redis.Redis(port=node.port, socket_timeout=30) as client:
        return client.execute_command("DEBUG", "DIGEST")


@pytest.mark.parametrize("how", ["restart", "reconnect"])
def test_replica_resyncs_partially_mid_stream(pair, how):
    """Under the same load, the replica restarted (SIGTERM, start again on its
    data dir) or its link cut on the primary (CLIENT KILL TYPE replica) comes
    back with PSYNC continuing from its offset: the log shows a partial
    resync and no full one, and it ends with the primary's data."""
    primary, replica = pair
    load = Load(primary.port)
    try:
        time.sleep(1.5)
        log_before = read(replica.log_path)
        if how == "restart":
            replica.restart()   # a new log: the new start's lines only
        else:
            with primary.admin() as p:
                assert p.client_kill_filter(_type="replica") == 1
        wait_link_up(replica, primary)
        time.sleep(1.0)   # more of the stream after the resync
    finally:
        load.stop()
    wait_caught_up(replica, primary)
    log = read(replica.log_path)
    if how == "reconnect":
        log = log[len(log_before):]
    assert PARTIAL in log, "no partial resync in the replica's log:\n" + log[-3000:]
    assert FULL not in log, "the replica did a full sync:\n" + log[-3000:]
    assert digest(replica) == digest(primary)


def read(path) -> str:
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")
