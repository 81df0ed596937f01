"""A full disk under snapshots (issue 11, point 5): after a failed background
save, writes are refused (-MISCONF) until a save succeeds; the server stays
up; the files load afterwards.

The disk is a small tmpfs (tests/faults.py, root only) mounted as the data
directory (the server's log then goes elsewhere, --logfile). Loopback only;
every wait is bounded.
"""

import glob
import os
import re
import shutil
import signal
import time

import pytest
import redis

from conftest import ServerProcess
from faults import small_fs  # noqa: F401  (the fixture)

RDB_MISCONF = ("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to "
               "persist to disk. Commands that may modify the data set are disabled, because this "
               "instance is configured to report errors during writes if RDB snapshotting fails "
               "(stop-writes-on-bgsave-error option). Please check the Redis logs for details "
               "about the RDB error.")
VALUE = "v" * 200


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


def kill(server: ServerProcess) -> None:
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    server.log.close()


# -- snapshots on a full disk ------------------------------------------------------------------

def wait_bgsave(client) -> None:
    wait_until(lambda: info(client, "rdb_bgsave_in_progress") == "0", 20, "BGSAVE to end")


def test_failed_bgsave_refuses_writes_until_a_save_succeeds(small_fs, tmp_path):  # noqa: F811
    disk = small_fs(8, name="data")
    logfile = str(tmp_path / "tenantkv.log")
    dump = os.path.join(disk.path, "dump.kdb")
    # A save rule that never fires during the test: rules must exist for MISCONF.
    server = ServerProcess(disk.path, "--save", "3600 1", "--logfile", logfile)
    try:
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
        kill(server)

        # The new snapshot loads; so does the old one.
        server = ServerProcess(disk.path, "--save", "3600 1", "--logfile", logfile)
        client = server.client()
        assert client.dbsize() == 403
        assert client.mget(list(later)) == [v.encode() for v in later.values()]
        assert client.mget(["c", "d", "e"]) == [b"1", b"1", b"1"]
        assert client.execute_command("KDB", "LOAD", "old.kdb") == 200
        assert client.mget(list(saved)) == [v.encode() for v in saved.values()]
    finally:
        server.stop()
