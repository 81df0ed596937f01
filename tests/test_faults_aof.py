"""A full disk under the append-only log and under snapshots (issue 11, points
1 and 5): a write that cannot be persisted is refused (-MISCONF), never
acknowledged and then lost; the server stays up and recovers by itself once
space is freed; the files load afterwards.

The disk is a small tmpfs (tests/faults.py, root only) mounted where the
server keeps the log (<dir>/appendonlydir) or, for snapshots, as the data
directory itself (the server's log then goes elsewhere, --logfile). Loopback
only; every wait is bounded.
"""

import glob
import os
import re
import shutil
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import ServerProcess
from faults import small_fs  # noqa: F401  (the fixture)

AOF_MISCONF = "MISCONF Errors writing to the AOF file: No space left on device"
RDB_MISCONF = ("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to "
               "persist to disk. Commands that may modify the data set are disabled, because this "
               "instance is configured to report errors during writes if RDB snapshotting fails "
               "(stop-writes-on-bgsave-error option). Please check the Redis logs for details "
               "about the RDB error.")
VALUE = "v" * 200
RECOVERY = 5.0   # seconds the server has to notice freed space by itself (it retries every second)


def connect(port: int, timeout: float) -> redis.Redis:
    """A client that waits `timeout` for each reply and never retries: a
    retried command would blur what was acknowledged, and what was not."""
    return redis.Redis(port=port, socket_timeout=timeout, retry=Retry(NoBackoff(), 0))


def info(client, field: str) -> str:
    return str(client.info("persistence")[field])


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("not within %.1f s: %s" % (timeout, what))


def refused(client, *args) -> str:
    """The error a command gets (it must get one)."""
    with pytest.raises(redis.ResponseError) as caught:
        client.execute_command(*args)
    return str(caught.value)


def wait_for_refusal(server: ServerProcess, acked: dict, refusals: list) -> None:
    """SET fresh keys, each on a new connection, until one is refused with
    the log's MISCONF; the keys that were acknowledged meanwhile join `acked`.
    (With appendfsync always a SET in the failing turn waits for the log: a
    short timeout, and that key's outcome stays unknown.)"""
    deadline = time.monotonic() + 10
    n = 0
    while time.monotonic() < deadline:
        key = "probe:%d" % n
        n += 1
        client = connect(server.port, 1)
        try:
            client.set(key, "x")
            acked[key] = b"x"
        except redis.ResponseError as exc:
            if str(exc) == AOF_MISCONF:
                refusals.append((key, str(exc)))
                return
            raise
        except redis.TimeoutError:
            pass
        finally:
            client.close()
        time.sleep(0.05)
    raise AssertionError("writes were never refused on the full disk")


class Writers:
    """Threads that SET unique keys until stopped, each on its own connection,
    remembering what was acknowledged (OK), refused (MISCONF) or left unknown
    (the connection failed: the write may or may not have happened)."""

    def __init__(self, port: int, count: int = 3) -> None:
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked: dict = {}
        self.refused: list = []
        self.unknown: list = []
        self.errors: list = []      # anything else: a bug
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(count)]

    def start(self) -> "Writers":
        for thread in self.threads:
            thread.start()
        return self

    def _run(self, n: int) -> None:
        # Replies held by appendfsync always come late: a generous timeout.
        client = connect(self.port, 30)
        i = 0
        while not self.stop.is_set():
            key = "w%d:%06d" % (n, i)
            value = "%s:%s" % (key, VALUE)
            i += 1
            try:
                client.set(key, value)
            except redis.ResponseError as exc:
                with self.lock:
                    (self.refused if str(exc) == AOF_MISCONF else self.errors).append((key, str(exc)))
                time.sleep(0.01)
                continue
            except (redis.ConnectionError, redis.TimeoutError):
                with self.lock:
                    self.unknown.append(key)
                return
            with self.lock:
                self.acked[key] = value.encode()

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(35)
            assert not thread.is_alive()
        assert not self.errors, self.errors[:5]


def check_present(client, acked: dict, refused: list) -> None:
    """Every acknowledged write is there with its value; no refused one is."""
    keys = list(acked)
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        assert client.mget(chunk) == [acked[k] for k in chunk], "acknowledged writes lost"
    names = [key for key, _ in refused]
    for i in range(0, len(names), 500):
        assert client.exists(*names[i:i + 500]) == 0, "refused writes applied"


def aof_server(data_dir, fsync: str) -> ServerProcess:
    return ServerProcess(data_dir, "--appendonly", "yes", "--appendfsync", fsync, "--save", "")


def aof_disk(small_fs, tmp_path):  # noqa: F811
    """The data directory on the normal disk, its appendonlydir a small tmpfs."""
    data = tmp_path / "data"
    disk = small_fs(4, name="data/appendonlydir")
    return data, disk


def torn_tail_warnings(server: ServerProcess) -> list:
    with open(server.log_path, errors="replace") as f:
        return re.findall(r"Warning: the append only file .* ends with", f.read())


# -- the append-only log on a full disk ----------------------------------------------------

@pytest.mark.parametrize("fsync", ["always", "everysec", "no"])
def test_full_disk_refuses_writes_and_recovers_by_itself(small_fs, tmp_path, fsync):  # noqa: F811
    data, disk = aof_disk(small_fs, tmp_path)
    with aof_server(data, fsync) as server:
        probe = connect(server.port, 10)
        probe.set("before", "1")
        writers = Writers(server.port).start()
        wait_until(lambda: writers.count() >= 200, 10, "writes before the disk fills")
        disk.fill()

        # Writes are refused with Redis's text, PING too; the server is up.
        probes: dict = {}
        probe_refusals: list = []
        wait_for_refusal(server, probes, probe_refusals)
        assert refused(probe, "SET", "probe", "x") == AOF_MISCONF
        assert refused(probe, "PING") == AOF_MISCONF
        probe.execute_command("MULTI")
        assert refused(probe, "SET", "in-multi", "1") == AOF_MISCONF
        assert refused(probe, "EXEC").endswith("Transaction discarded because of previous errors.")
        time.sleep(0.2)   # (the writers' threads take in the last OKs of the failed turn)
        acked_while_full = writers.count()
        if fsync == "always":
            # No reply that could show an un-logged write leaves: a read waits.
            reader = connect(server.port, 0.5)
            with pytest.raises(redis.TimeoutError):
                reader.get("before")
        else:
            assert probe.get("before") == b"1"
            assert info(probe, "aof_last_write_status") == "err"
            # The unwritten records stay in memory, but nothing is added to them.
            size = int(info(probe, "aof_buffer_length"))
            time.sleep(0.3)
            assert int(info(probe, "aof_buffer_length")) == size
            assert writers.refused, "the writers were never refused"
        time.sleep(0.3)
        assert writers.count() == acked_while_full, "writes acknowledged on a full disk"
        assert server.alive()

        # Space freed: the server notices by itself (no new traffic needed).
        disk.free()
        started = time.monotonic()
        wait_until(lambda: info(probe, "aof_last_write_status") == "ok", RECOVERY,
                   "aof_last_write_status:ok after space was freed")
        assert probe.set("after", "1") is True
        assert time.monotonic() - started < RECOVERY
        assert probe.ping() is True
        wait_until(lambda: writers.count() > acked_while_full + 50, 10, "writers going on")
        writers.finish()
        acked = {**writers.acked, **probes, "before": b"1", "after": b"1"}
        refusals = writers.refused + probe_refusals + [("probe", ""), ("in-multi", "")]
        assert len(acked) > 250
        server.kill()

    # After a SIGKILL, then after a clean stop: every acknowledged write is
    # there, no refused one, and the log loads whole (no torn tail to cut).
    with aof_server(data, fsync) as server:
        check_present(server.client(), acked, refusals)
        assert not torn_tail_warnings(server)
    with aof_server(data, fsync) as server:
        check_present(server.client(), acked, refusals)
        assert not torn_tail_warnings(server)


def test_always_never_acknowledges_what_a_kill_on_a_full_disk_loses(small_fs, tmp_path):  # noqa: F811
    """appendfsync always: replies wait for the log, so a SIGKILL while the
    disk is full loses nothing that any client was told (or shown)."""
    data, disk = aof_disk(small_fs, tmp_path)
    with aof_server(data, "always") as server:
        writers = Writers(server.port).start()
        wait_until(lambda: writers.count() >= 200, 10, "writes before the disk fills")
        disk.fill()
        probes: dict = {}
        probe_refusals: list = []
        wait_for_refusal(server, probes, probe_refusals)
        time.sleep(0.3)
        server.kill()
        writers.finish()
        assert writers.unknown, "the writers were not waiting for held replies"
        acked = {**writers.acked, **probes}
        refusals = writers.refused + probe_refusals
    disk.free()
    with aof_server(data, "always") as server:
        check_present(server.client(), acked, refusals)


# -- snapshots on a full disk ------------------------------------------------------------------

def wait_bgsave(client) -> None:
    wait_until(lambda: info(client, "rdb_bgsave_in_progress") == "0", 20, "BGSAVE to end")


def test_failed_bgsave_refuses_writes_until_a_save_succeeds(small_fs, tmp_path):  # noqa: F811
    disk = small_fs(8, name="data")
    logfile = str(tmp_path / "tenantkv.log")
    dump = os.path.join(disk.path, "dump.kdb")
    # A save rule that never fires during the test: rules must exist for MISCONF.
    with ServerProcess(disk.path, "--save", "3600 1", "--logfile", logfile) as server:
        client = server.client()
        saved = {"a%d" % i: "%d:%s" % (i, VALUE) for i in range(200)}
        client.mset(saved)
        assert client.save() is True
        good = open(dump, "rb").read()
        later = {"b%d" % i: "%d:%s" % (i, VALUE) for i in range(200)}
        client.mset(later)

        disk.fill()
        # A failed SAVE answers Redis's bare -ERR; as Redis 7.0, only a failed
        # background save turns the status to err.
        assert refused(client, "SAVE") == ""
        assert info(client, "rdb_last_bgsave_status") == "ok"
        assert client.bgsave() is True
        wait_bgsave(client)
        assert info(client, "rdb_last_bgsave_status") == "err"

        # Writes and PING refused with Redis's text; reads, INFO, CONFIG go on.
        assert refused(client, "SET", "c", "1") == RDB_MISCONF
        assert refused(client, "INCR", "counter") == RDB_MISCONF
        assert refused(client, "PING") == RDB_MISCONF
        assert client.get("a1") == saved["a1"].encode()
        assert client.dbsize() == 400
        pipe = client.pipeline(transaction=True)
        pipe.get("a1")
        assert pipe.execute() == [saved["a1"].encode()]
        pipe = client.pipeline(transaction=True)
        pipe.get("a1")
        pipe.set("c", "1")
        with pytest.raises(redis.ResponseError, match=re.escape(RDB_MISCONF)):
            pipe.execute()   # the SET refused when queued, EXEC then aborts
        assert client.exists("c") == 0

        # stop-writes-on-bgsave-error no lifts the refusal; yes brings it back.
        assert client.config_get("stop-writes-on-bgsave-error") == {
            "stop-writes-on-bgsave-error": "yes"}
        client.config_set("stop-writes-on-bgsave-error", "no")
        assert client.set("c", "1") is True
        client.config_set("stop-writes-on-bgsave-error", "yes")
        assert refused(client, "SET", "d", "1") == RDB_MISCONF
        # No save rules: no refusal either (Redis's saveparamslen > 0).
        client.config_set("save", "")
        assert client.set("d", "1") is True
        client.config_set("save", "3600 1")
        assert refused(client, "SET", "e", "1") == RDB_MISCONF

        # The old snapshot is untouched, no temp file is left.
        assert open(dump, "rb").read() == good
        assert not glob.glob(os.path.join(disk.path, "temp-*.kdb"))

        # Space freed: refused until a save succeeds, then accepted.
        disk.free()
        assert refused(client, "SET", "e", "1") == RDB_MISCONF
        shutil.copy(dump, os.path.join(disk.path, "old.kdb"))
        assert client.bgsave() is True
        wait_bgsave(client)
        assert info(client, "rdb_last_bgsave_status") == "ok"
        assert client.set("e", "1") is True
        assert client.ping() is True
        assert client.save() is True
        server.kill()

    # The new snapshot loads; so does the old one.
    with ServerProcess(disk.path, "--save", "3600 1", "--logfile", logfile) as server:
        client = server.client()
        assert client.dbsize() == 403
        assert client.mget(list(later)) == [v.encode() for v in later.values()]
        assert client.mget(["c", "d", "e"]) == [b"1", b"1", b"1"]
        assert client.execute_command("KDB", "LOAD", "old.kdb") == 200
        assert client.mget(list(saved)) == [v.encode() for v in saved.values()]


def error_of(client, *args) -> str:
    """The error a command gets, or "" if it succeeds."""
    try:
        client.execute_command(*args)
    except redis.ResponseError as exc:
        return str(exc)
    return ""


def test_the_save_schedule_recovers_by_itself_once_space_is_freed(small_fs, tmp_path):  # noqa: F811
    """Snapshots only, a save rule that fires: the scheduled BGSAVE fails on
    the full disk, writes get MISCONF; once space is freed the schedule's own
    retry (every 5 s after a failure, as Redis's CONFIG_BGSAVE_RETRY_DELAY)
    saves and writes are accepted again, with no command from anyone."""
    disk = small_fs(8, name="data")
    with ServerProcess(disk.path, "--save", "1 1") as server:
        client = server.client()
        client.mset({"k%d" % i: VALUE for i in range(100)})
        wait_until(lambda: info(client, "rdb_changes_since_last_save") == "0", 10,
                   "the first scheduled save")
        disk.fill()
        acked = {}
        for i in range(50):
            try:
                if client.set("late%d" % i, VALUE):
                    acked["late%d" % i] = VALUE
            except redis.ResponseError:
                break
            time.sleep(0.05)
        wait_until(lambda: error_of(client, "SET", "x", "1") == RDB_MISCONF, 10,
                   "MISCONF after the scheduled save failed")
        assert info(client, "rdb_last_bgsave_status") == "err"
        disk.free()
        wait_until(lambda: error_of(client, "SET", "x", "1") == "", 12,
                   "writes accepted again after the schedule's retry")
        assert info(client, "rdb_last_bgsave_status") == "ok"
        server.kill()
    with ServerProcess(disk.path, "--save", "") as server:
        client = server.client()
        for key, value in acked.items():
            assert client.get(key) == value.encode()
