"""The append-only log's rewrite under faults (issue 11, points 2 and 7):
BGREWRITEAOF and CONFIG SET appendonly yes on a full disk, before the fork
(the manifest naming the new incremental file cannot be written), in the
child (the base cannot be written) and after it (the manifest naming the new
base cannot be written); the automatic rewrite and its back-off.

Each full-disk test runs a real server whose --dir is a small tmpfs
(tests/faults.py; skipped unless root), counts the writes it acknowledged,
frees the space, checks that the server goes on by itself, kills it with
SIGKILL, and checks that the restart has every acknowledged write and that
the log's directory holds exactly the files its manifest names.
"""

import os
import time

import pytest
import redis

from conftest import ServerProcess
from faults import small_fs  # noqa: F401

CANT_REWRITE = ("Can't execute an AOF background rewriting. "
                "Please check the server logs for more information.")
CANT_ENABLE = "Unable to turn on AOF. Check server logs."
PAGE = 4096   # tmpfs allocates whole pages


def start(home, data_dir, *extra) -> ServerProcess:
    """A server whose data lives in `data_dir` (the small filesystem) and
    whose own log and user database live in `home`, so that a full disk
    only touches the data. No snapshots: what comes back comes through the log."""
    return ServerProcess(home, "--dir", str(data_dir), "--save", "", "--appendfsync", "everysec",
                         *extra, env={"TENANTKV_AUTH__USERS_DB": os.path.join(str(home), "users.db")})


def kill(server: ServerProcess) -> None:
    server.kill()
    os.replace(server.log_path, server.log_path + ".killed")   # kept: the restart's log is new


def server_log(server: ServerProcess) -> str:
    with open(server.log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


def wait_until(predicate, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def persistence(c: redis.Redis) -> dict:
    return c.info("persistence")


def rewrite_idle(c: redis.Redis) -> bool:
    return persistence(c)["aof_rewrite_in_progress"] == 0


def rewrite(c: redis.Redis) -> dict:
    """BGREWRITEAOF, waited for; the INFO persistence after it."""
    assert c.bgrewriteaof()
    wait_until(lambda: rewrite_idle(c), what="the rewrite")
    return persistence(c)


class Writes:
    """SET w:<n> <value>, one by one; only the acknowledged ones are kept
    (with a full disk a write may be refused with -MISCONF: not counted)."""

    def __init__(self) -> None:
        self.n = 0
        self.acked: dict = {}
        self.refused = 0

    def run(self, c: redis.Redis, count: int, size: int = 40) -> int:
        done = 0
        for _ in range(count):
            key = "w:%06d" % self.n
            value = ("%d:" % self.n).ljust(size, "v").encode()
            self.n += 1
            try:
                c.set(key, value)
            except redis.ResponseError as exc:
                assert str(exc).startswith("MISCONF"), exc
                self.refused += 1
                continue
            self.acked[key.encode()] = value
            done += 1
        return done

    def resume(self, c: redis.Redis, count: int, timeout: float = 10.0) -> None:
        """After space was freed: writes are accepted again (within the
        failed log's retry period), then `count` more acknowledged."""
        wait_until(lambda: self.run(c, 1) == 1, timeout, "writes to be accepted again")
        assert self.run(c, count) == count

    def check(self, c: redis.Redis) -> None:
        keys = list(self.acked)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            assert c.mget(chunk) == [self.acked[k] for k in chunk]


def manifest_files(directory) -> list:
    with open(os.path.join(str(directory), "appendonly.aof.manifest")) as f:
        return [line.split()[1] for line in f if line.strip()]


def assert_tidy(directory) -> list:
    """The log's directory holds the manifest and the files it names, all
    present, and nothing else (no temp file, no unnamed incremental file)."""
    names = manifest_files(directory)
    present = sorted(os.listdir(str(directory)))
    assert present == sorted(names + ["appendonly.aof.manifest"]), (present, names)
    return names


def incr_path(directory) -> str:
    return os.path.join(str(directory), manifest_files(directory)[-1])


def set_length(key: bytes, value_size: int) -> int:
    """Bytes of `SET key value` in the log (RESP, as sent)."""
    return len(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(key), key, value_size)) + value_size + 2


def make_room_in_last_page(c: redis.Redis, path: str) -> int:
    """Pad the incremental file with one SET so that it ends 64 bytes into a
    page; returns the room left in that page. With the disk full, writes of
    that many bytes still succeed (tmpfs allocates whole pages): the writes
    after a failed rewrite are then written whole, and this test does not
    depend on how the journal handles a short write (its own tests do)."""
    size = os.path.getsize(path)
    padding = (64 - size) % PAGE
    if padding < 64:
        padding += PAGE
    value_size = next(v for v in range(padding) if set_length(b"pad", v) == padding)
    c.set("pad", b"p" * value_size)
    assert os.path.getsize(path) == size + padding
    return PAGE - 64


@pytest.fixture
def disk(small_fs):  # noqa: F811
    return small_fs(8)


# -- BGREWRITEAOF on a full disk ---------------------------------------------------------

def test_bgrewriteaof_full_disk_before_fork(tmp_path, disk):
    """The manifest naming the new incremental file cannot be written: a
    clean error, the log stays in the file the manifest names, the new file
    is gone; once space is freed everything goes on."""
    log_dir = os.path.join(disk.path, "appendonlydir")
    writes = Writes()
    with start(tmp_path, disk.path, "--appendonly", "yes") as server:
        c = server.client()
        assert writes.run(c, 300) == 300
        room = make_room_in_last_page(c, incr_path(log_dir))
        assert 40 * set_length(b"w:000000", 40) < room
        before = assert_tidy(log_dir)
        disk.fill()
        with pytest.raises(redis.ResponseError) as caught:
            c.bgrewriteaof()
        assert str(caught.value) == CANT_REWRITE
        info = persistence(c)
        assert info["aof_last_bgrewrite_status"] == "err"
        assert info["aof_rewrite_in_progress"] == 0 and info["aof_rewrites"] == 0
        assert assert_tidy(log_dir) == before   # no new file, the same manifest
        # The log goes on in the file the manifest names.
        assert writes.run(c, 40) == 40
        assert "Error trying to write the AOF manifest file" in server_log(server)
        disk.free()
        writes.resume(c, 200)
        info = rewrite(c)
        assert info["aof_last_bgrewrite_status"] == "ok"
        assert info["aof_rewrites_consecutive_failures"] == 0
        writes.run(c, 100)
        kill(server)
    assert len(assert_tidy(log_dir)) == 2   # new base + new incremental file
    with start(tmp_path, disk.path, "--appendonly", "yes") as server:
        writes.check(server.client())
        assert len(writes.acked) == 300 + 40 + 1 + 200 + 100
    assert_tidy(log_dir)


@pytest.mark.parametrize("preamble", ["yes", "no"])
def test_bgrewriteaof_full_disk_in_child(tmp_path, disk, preamble):
    """The child cannot write the base (ENOSPC): err status, no temp file,
    the manifest names the old base and every incremental file (the new one
    included), nothing it names is removed; a later rewrite succeeds."""
    log_dir = os.path.join(disk.path, "appendonlydir")
    writes = Writes()
    with start(tmp_path, disk.path, "--appendonly", "yes",
               "--aof-use-rdb-preamble", preamble) as server:
        c = server.client()
        assert writes.run(c, 1500, size=1000) == 1500   # ~1.5 MB of data, as much log
        disk.fill(leave=64 * PAGE)                       # room for the log, not for a base
        assert c.bgrewriteaof()
        wait_until(lambda: rewrite_idle(c), what="the failing rewrite")
        info = persistence(c)
        assert info["aof_last_bgrewrite_status"] == "err"
        assert info["aof_rewrites_consecutive_failures"] == 1
        names = assert_tidy(log_dir)   # no temp file left by the child
        assert len(names) == 3 and names[-1].endswith(".2.incr.aof"), names
        assert "Write error writing append only file on disk" in server_log(server)
        assert writes.run(c, 100) == 100   # logged to the new incremental file
        disk.free()
        writes.resume(c, 100)
        info = rewrite(c)
        assert info["aof_last_bgrewrite_status"] == "ok"
        assert info["aof_rewrites_consecutive_failures"] == 0
        writes.run(c, 100)
        kill(server)
    assert len(assert_tidy(log_dir)) == 2
    with start(tmp_path, disk.path, "--appendonly", "yes") as server:
        writes.check(server.client())
        assert len(writes.acked) == 1500 + 100 + 1 + 100 + 100


def test_manifest_of_a_finished_rewrite_cannot_be_written(tmp_path, disk):
    """The child wrote the base, but the manifest naming it cannot be
    written: err status, the new base removed, the old manifest and every
    file it names kept (a restart loads them)."""
    log_dir = os.path.join(disk.path, "appendonlydir")
    writes = Writes()
    with start(tmp_path, disk.path, "--appendonly", "yes") as server:
        c = server.client()
        writes.run(c, 200, size=200)
        assert rewrite(c)["aof_last_bgrewrite_status"] == "ok"
        base = os.path.join(log_dir, manifest_files(log_dir)[0])
        base_pages = -(-os.path.getsize(base) // PAGE)
        # The same data again, slowly (rdb-key-save-delay, in microseconds
        # per key): the disk fills meanwhile, leaving room for the base only.
        c.config_set("rdb-key-save-delay", 10000)
        assert c.bgrewriteaof()
        disk.fill(leave=base_pages * PAGE)
        wait_until(lambda: rewrite_idle(c), what="the rewrite")
        info = persistence(c)
        assert info["aof_last_bgrewrite_status"] == "err", server_log(server)
        assert info["aof_rewrites_consecutive_failures"] == 1
        assert "Error trying to write the AOF manifest file" in server_log(server)
        names = assert_tidy(log_dir)   # the new base is gone, the old files are there
        assert names[0] == os.path.basename(base) and len(names) == 3, names
        c.config_set("rdb-key-save-delay", 0)
        disk.free()
        writes.resume(c, 100)
        kill(server)
    with start(tmp_path, disk.path, "--appendonly", "yes") as server:
        c = server.client()
        writes.check(c)
        assert rewrite(c)["aof_last_bgrewrite_status"] == "ok"
    assert len(assert_tidy(log_dir)) == 2


# -- CONFIG SET appendonly yes on a full disk -------------------------------------------

def test_config_set_appendonly_yes_on_full_disk(tmp_path, disk):
    """As Redis: turned on, the log waits for its first rewrite, which fails
    and is retried, then held back (the limit) after three failures; nothing
    is left on disk meanwhile. BGREWRITEAOF after space is freed turns it on."""
    log_dir = os.path.join(disk.path, "appendonlydir")
    writes = Writes()
    with start(tmp_path, disk.path) as server:
        c = server.client()
        writes.run(c, 1500, size=1000)
        disk.fill(leave=16 * PAGE)
        assert c.config_set("appendonly", "yes")   # the base is written in the background
        wait_until(lambda: persistence(c)["aof_rewrites_consecutive_failures"] >= 3,
                   what="three failed attempts")
        wait_until(lambda: rewrite_idle(c), what="the last attempt to end")
        info = persistence(c)
        assert info["aof_enabled"] == 1 and info["aof_last_bgrewrite_status"] == "err"
        assert info["aof_rewrite_scheduled"] == 1
        wait_until(lambda: "triggered the limit, will retry in 1 minutes" in server_log(server),
                   what="the limit")
        assert os.listdir(log_dir) == []   # no temp file, no incremental file
        attempts = info["aof_rewrites"]
        assert attempts == 3
        writes.run(c, 100)
        time.sleep(0.5)
        assert persistence(c)["aof_rewrites"] == attempts   # held back, not retried
        disk.free()
        info = rewrite(c)   # asked for: not held back
        assert info["aof_last_bgrewrite_status"] == "ok" and info["aof_enabled"] == 1
        assert info["aof_rewrite_scheduled"] == 0
        assert info["aof_rewrites_consecutive_failures"] == 0
        writes.resume(c, 100)
        kill(server)
    assert len(assert_tidy(log_dir)) == 2
    with start(tmp_path, disk.path, "--appendonly", "yes") as server:
        writes.check(server.client())


def test_config_set_appendonly_refused_cleanly(tmp_path):
    """When even the log's directory cannot be made, CONFIG SET answers
    Redis's error and appendonly stays no."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "appendonlydir").write_text("a file where the directory should be")
    with start(tmp_path, data) as server:
        c = server.client()
        c.set("k", "v")
        with pytest.raises(redis.ResponseError) as caught:
            c.config_set("appendonly", "yes")
        assert str(caught.value) == ("CONFIG SET failed (possibly related to argument "
                                     "'appendonly') - " + CANT_ENABLE)
        assert c.config_get("appendonly") == {"appendonly": "no"}
        info = persistence(c)
        assert info["aof_enabled"] == 0 and info["aof_last_bgrewrite_status"] == "ok"
        assert c.set("k2", "v")


# -- the automatic rewrite -----------------------------------------------------------------

def test_auto_rewrite(tmp_path):
    """auto-aof-rewrite-percentage / -min-size: the log is rewritten by
    itself once over min-size and grown by the percentage since the last
    rewrite, never while another child runs; the restart loads the same data."""
    with start(tmp_path, tmp_path / "data", "--appendonly", "yes",
               "--auto-aof-rewrite-percentage", "0") as server:
        c = server.client()
        assert c.config_get("auto-aof-rewrite-*") == {
            "auto-aof-rewrite-percentage": "0", "auto-aof-rewrite-min-size": "67108864"}
        c.config_set("auto-aof-rewrite-min-size", "1mb")

        def overwrite(rounds: int) -> None:   # SETs over 1,000 keys: the log grows, not the data
            pipe = c.pipeline(transaction=False)
            for n in range(rounds):
                pipe.set("key:%d" % (n % 1000), "%d:%s" % (n, "x" * 40))
                if n % 2000 == 1999:
                    pipe.execute()
            pipe.execute()

        overwrite(20000)   # ~1.3 MB of log
        time.sleep(0.3)
        info = persistence(c)
        assert info["aof_rewrites"] == 0   # percentage 0: off
        assert info["aof_current_size"] > 1024 * 1024
        # Not while another child runs: a slow BGSAVE first.
        c.config_set("rdb-key-save-delay", 1000)   # 1,000 keys: ~1 s
        assert c.bgsave()
        c.config_set("auto-aof-rewrite-percentage", "100")
        time.sleep(0.3)
        info = persistence(c)
        assert info["rdb_bgsave_in_progress"] == 1 and info["aof_rewrites"] == 0
        c.config_set("rdb-key-save-delay", 0)
        wait_until(lambda: persistence(c)["aof_rewrites"] >= 1, what="the automatic rewrite")
        wait_until(lambda: rewrite_idle(c), what="the automatic rewrite to end")
        info = persistence(c)
        assert info["aof_last_bgrewrite_status"] == "ok"
        assert "Starting automatic rewriting of AOF on" in server_log(server)
        log_dir = tmp_path / "data" / "appendonlydir"
        names = assert_tidy(log_dir)
        on_disk = sum(os.path.getsize(log_dir / name) for name in names)
        assert info["aof_current_size"] == on_disk
        assert info["aof_base_size"] <= on_disk < 512 * 1024
        overwrite(60000)   # ~4 MB more: rewritten again, more than once
        wait_until(lambda: persistence(c)["aof_rewrites"] >= 3, what="more automatic rewrites")
        # The log ends bounded: the cron starts the rewrite that the last
        # writes call for a moment after them (on a loaded machine the size
        # was read at 2.1 MB just before it started).
        wait_until(lambda: rewrite_idle(c) and persistence(c)["aof_current_size"] < 2 * 1024 * 1024,
                   what="the rewrites to bound the log")
        info = persistence(c)
        assert info["aof_last_bgrewrite_status"] == "ok"
        digest = c.execute_command("DEBUG", "DIGEST")
        assert c.dbsize() == 1000
        kill(server)
    assert_tidy(log_dir)
    with start(tmp_path, tmp_path / "data", "--appendonly", "yes") as server:
        c = server.client()
        assert c.execute_command("DEBUG", "DIGEST") == digest
        info = persistence(c)
        assert info["aof_current_size"] == sum(os.path.getsize(log_dir / name)
                                               for name in manifest_files(log_dir))
