"""Snapshots (issue 5, the .kdb half): restart round trips, damaged files, the old
file surviving failed saves, BGSAVE under load, KDB commands, shutdown rules.

Real server processes on real data directories; restarts reuse the directory.
"""

import glob
import os
import resource
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis

from conftest import NO_RETRY, ServerProcess, add_user, dump_tenant, login, same_data

ROOT = "persist-root-secret"
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
LOCKED = {"TENANTKV_AUTH__DEFAULT_USER": "off"}


def make_users(data_dir) -> None:
    add_user(data_dir, "root", ROOT, "--root")
    for name, password in USERS.items():
        add_user(data_dir, name, password)


def fill(client, tag: str, db: int) -> None:
    """Every type, with and without TTLs, binary names and values."""
    p = client.pipeline(transaction=False)
    p.set("str:%s" % tag, "value-%s-%d" % (tag, db))
    p.set(b"bin\x00\xff" + tag.encode(), b"\x00\x01\xfe\xff" * 10)
    p.set("empty", "")
    p.set("int", 12345)
    p.set("big", "x" * 100000)
    p.set("ttl-str", "soon", px=300000)
    p.rpush("list", *[b"e%d" % i for i in range(300)], b"", b"\xff")
    p.sadd("set", *[b"m%d" % i for i in range(50)])
    p.sadd("intset", 1, 2, 3, -7)
    p.hset("hash", mapping={b"f%d" % i: b"v%d" % i for i in range(40)})
    p.hset("hash-empty-value", "f", "")
    p.zadd("zset", {b"a": 1.5, b"b": -2, b"c": float("inf"), b"d": float("-inf"),
                    b"e": 0.1 + 0.2, b"f": 1e300})
    p.zadd("bigzset", {b"z%d" % i: i / 7 for i in range(200)})
    p.expire("list", 500000)
    p.pexpire("zset", 700000)
    p.hset("ttl-hash", "f", "v")
    p.expire("ttl-hash", 100000)
    p.execute()


def auth_server(data_dir) -> ServerProcess:
    """A server with auth required on a data directory make_users() filled."""
    return ServerProcess(data_dir, env=LOCKED, passwords={"root": ROOT, **USERS})


def info(client, field: str) -> str:
    return str(client.info("persistence")[field])


def wait_bgsave(client, timeout=60) -> None:
    deadline = time.monotonic() + timeout
    while info(client, "rdb_bgsave_in_progress") == "1":
        assert time.monotonic() < deadline
        time.sleep(0.02)


def log_text(proc) -> str:
    with open(proc.log_path, "rb") as handle:
        return handle.read().decode("utf-8", "replace")


# -- round trip -------------------------------------------------------------------------

def test_three_tenants_every_type_survive_a_restart(tmp_path):
    make_users(tmp_path)
    with auth_server(tmp_path) as proc:
        for name in USERS:
            for db in (0, 5, 15):
                fill(login(proc, name, db=db), name, db)
        before = {name: dump_tenant(login(proc, name)) for name in USERS}
        digests = {name: login(proc, name).execute_command("DEBUG", "DIGEST") for name in USERS}
    assert proc.stop() == 0   # SIGTERM: saves (the default save rules are on)
    assert os.path.exists(tmp_path / "dump.kdb")
    assert not glob.glob(str(tmp_path / "temp-*.kdb"))
    time.sleep(1)   # TTLs must still be right after time passed
    with auth_server(tmp_path) as proc:
        for name in USERS:
            after = dump_tenant(login(proc, name))
            assert len(after) == 3 * 14
            same_data(before[name], after, ttl_lost_ms=6000, ttl_gained_ms=0)
            assert login(proc, name).execute_command("DEBUG", "DIGEST") == digests[name]
        assert "Done loading the snapshot" in log_text(proc)
        assert "126 keys loaded" in log_text(proc)
        # tenants stay apart after the reload
        assert login(proc, "alice").get("str:bob") is None


def test_expired_keys_are_not_resurrected(tmp_path):
    with ServerProcess(tmp_path) as proc:
        r = proc.client()
        r.set("gone", "x", px=200)
        r.set("stays", "y")
        r.set("later", "z", px=1200)
        assert r.save() is True
    time.sleep(1.5)
    with ServerProcess(tmp_path) as proc:
        r = proc.client()
        assert r.keys("*") == [b"stays"]
        assert info(r, "rdb_last_load_keys_expired") in ("1", "2")


# -- damaged files ---------------------------------------------------------------------------

def test_damaged_snapshots_stop_the_start_with_the_offset(tmp_path):
    with ServerProcess(tmp_path) as proc:
        r = proc.client()
        for db in range(3):
            r.execute_command("SELECT", db)
            r.mset({"k%d" % i: "v%d" % i for i in range(500)})
            r.rpush("l", *range(100))
        r.execute_command("SELECT", 0)
        r.save()
    path = tmp_path / "dump.kdb"
    good = path.read_bytes()
    size = len(good)
    cases = [("flip", off) for off in (0, 9, 20, 40, 100, size // 2, size - 20, size - 1)]
    cases += [("cut", off) for off in (0, 5, 31, 36, 200, size // 3, size - 16, size - 1)]
    for kind, off in cases:
        data = bytearray(good)
        if kind == "flip":
            data[off] ^= 0x20
        else:
            data = data[:off]
        path.write_bytes(bytes(data))
        with pytest.raises(RuntimeError, match="exited with 1"):
            ServerProcess(tmp_path)
        with open(tmp_path / "server.log", "rb") as handle:
            text = handle.read().decode()
        assert "Refusing to start" in text and " at offset " in text, (kind, off, text)
        # the damaged file is left in place, never overwritten with an empty one
        assert path.read_bytes() == bytes(data)
    path.write_bytes(good)
    with ServerProcess(tmp_path) as proc:
        assert proc.client().dbsize() == 501


def test_an_unknown_version_is_refused(tmp_path):
    with ServerProcess(tmp_path) as proc:
        proc.client().set("k", "v")
        proc.client().save()
    data = bytearray((tmp_path / "dump.kdb").read_bytes())
    data[8] = 9
    (tmp_path / "dump.kdb").write_bytes(bytes(data))
    with pytest.raises(RuntimeError):
        ServerProcess(tmp_path)
    assert "unsupported .kdb version 9 (this server reads 1, 2, 3) at offset 8" in \
        (tmp_path / "server.log").read_text()


def _children(pid: int) -> list:
    with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
        return [int(p) for p in handle.read().split()]


def test_a_killed_bgsave_child_leaves_the_old_file(tmp_path):
    with ServerProcess(tmp_path) as proc:
        r = proc.client()
        r.mset({"old%d" % i: "v" for i in range(1000)})
        r.save()
        good = (tmp_path / "dump.kdb").read_bytes()
        r.mset({"new%d" % i: "w" for i in range(20000)})
        r.config_set("rdb-key-save-delay", 200)   # 21000 keys: over 4 seconds
        assert r.bgsave() is True
        assert info(r, "rdb_bgsave_in_progress") == "1"
        with pytest.raises(redis.ResponseError, match="Background save already in progress"):
            r.bgsave()
        with pytest.raises(redis.ResponseError, match="Background save already in progress"):
            r.save()
        time.sleep(0.5)
        (child,) = _children(proc.process.pid)
        assert glob.glob(str(tmp_path / ("temp-%d.kdb" % child)))
        os.kill(child, signal.SIGKILL)
        wait_bgsave(r)
        assert info(r, "rdb_last_bgsave_status") == "err"
        assert (tmp_path / "dump.kdb").read_bytes() == good
        assert not glob.glob(str(tmp_path / "temp-*.kdb"))
        # As Redis (stop-writes-on-bgsave-error, save rules set): writes and
        # PING refused until a save succeeds; reads go on.
        with pytest.raises(redis.ResponseError, match="^MISCONF Redis is configured to save"):
            r.ping()
        assert r.get("old1") == b"v"
        r.config_set("rdb-key-save-delay", 0)
        r.bgsave()
        wait_bgsave(r)
        assert info(r, "rdb_last_bgsave_status") == "ok"
        assert r.ping() is True
        assert info(r, "rdb_changes_since_last_save") == "0"


def test_a_failed_write_keeps_the_old_file_and_blocks_shutdown(tmp_path):
    """A full disk, simulated with RLIMIT_FSIZE on the running server (writes
    past the limit fail with EFBIG; SIGXFSZ is ignored so they fail, not kill)."""
    with ServerProcess(tmp_path, preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN)) as proc:
        process = proc.process
        r = proc.client(retry=NO_RETRY)
        r.set("small", "ok")
        r.save()
        good = (tmp_path / "dump.kdb").read_bytes()
        r.mset({"big%d" % i: "x" * 1000 for i in range(3000)})   # 3 MB
        resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        with pytest.raises(redis.ResponseError, match="^$"):   # Redis's bare "-ERR"
            r.save()
        with pytest.raises(redis.ResponseError, match="File too large"):
            r.execute_command("KDB", "SAVE")
        r.bgsave()
        wait_bgsave(r)
        assert info(r, "rdb_last_bgsave_status") == "err"
        assert (tmp_path / "dump.kdb").read_bytes() == good
        assert not glob.glob(str(tmp_path / "temp-*.kdb"))
        with pytest.raises(redis.ResponseError, match="Errors trying to SHUTDOWN"):
            r.shutdown()
        process.send_signal(signal.SIGTERM)   # refused as well: the server stays up
        time.sleep(0.5)
        assert r.get("small") == b"ok"   # (PING is refused: MISCONF, as Redis)
        assert process.poll() is None
        r.shutdown(nosave=True)   # redis-py takes the closed connection as success
        assert process.wait(10) == 0
        assert (tmp_path / "dump.kdb").read_bytes() == good
        text = (tmp_path / "server.log").read_text()
        assert "Error trying to save the DB, can't exit." in text
        assert "SIGTERM received but errors trying to shut down the server" in text


# -- BGSAVE under load ------------------------------------------------------------------------

@pytest.mark.slow
def test_bgsave_of_a_million_keys_does_not_stall_clients(tmp_path):
    with ServerProcess(tmp_path, "--save", "") as proc:
        # DEBUG DIGEST of a million keys takes seconds on a loaded machine:
        # more than redis-py's default socket timeout.
        r = proc.client(socket_timeout=60, retry=NO_RETRY)
        p = r.pipeline(transaction=False)
        for start in range(0, 1_000_000, 1000):
            p.mset({b"key:%d" % i: b"value:%d" % i for i in range(start, start + 1000)})
            if start % 50000 == 0:
                p.execute()
        p.hset("h", mapping={"a": 1})
        p.execute()
        assert r.dbsize() == 1_000_001
        digest = r.execute_command("DEBUG", "DIGEST")
        latencies = []
        stop = threading.Event()

        def pinger():
            c = proc.client()
            while not stop.is_set():
                t = time.perf_counter()
                c.ping()
                latencies.append(time.perf_counter() - t)
                time.sleep(0.001)

        thread = threading.Thread(target=pinger)
        thread.start()
        time.sleep(0.3)
        before = len(latencies)
        started = time.perf_counter()
        r.bgsave()
        wait_bgsave(r, timeout=120)
        took = time.perf_counter() - started
        time.sleep(0.1)
        stop.set()
        thread.join()
        during = sorted(latencies[before:])
        p99 = during[int(len(during) * 0.99) - 1]
        print("\nBGSAVE of 1,000,001 keys: %.2f s; PING during it: %d pings, p99 %.1f ms, max %.1f ms"
              % (took, len(during), p99 * 1000, during[-1] * 1000))
        assert info(r, "rdb_last_bgsave_status") == "ok"
        assert p99 < 0.25   # the target is 50 ms (printed above); this bound catches a stall
        r.shutdown(nosave=True)
    with ServerProcess(tmp_path, "--save", "") as proc:
        r = proc.client()
        assert r.dbsize() == 1_000_001
        assert r.execute_command("DEBUG", "DIGEST") == digest


# -- commands -------------------------------------------------------------------------------------

def test_debug_reload_and_digests(tmp_path):
    with ServerProcess(tmp_path) as proc:
        r = proc.client()
        fill(r, "x", 0)
        digest = r.execute_command("DEBUG", "DIGEST")
        values = r.execute_command("DEBUG", "DIGEST-VALUE", "list", "zset", "nokey")
        assert values[2] == b"0" * 40
        assert r.execute_command("DEBUG", "RELOAD") == b"OK"
        assert r.execute_command("DEBUG", "DIGEST") == digest
        assert r.execute_command("DEBUG", "DIGEST-VALUE", "list", "zset", "nokey") == values
        r.set("str:x", "changed")
        assert r.execute_command("DEBUG", "DIGEST") != digest
        # NOFLUSH over the same keys: Redis panics on the duplicate; refused here, nothing changed
        changed = r.execute_command("DEBUG", "DIGEST")
        with pytest.raises(redis.ResponseError, match="Error trying to load the RDB dump"):
            r.execute_command("DEBUG", "RELOAD", "NOFLUSH", "NOSAVE")
        assert r.execute_command("DEBUG", "DIGEST") == changed
        assert r.execute_command("DEBUG", "RELOAD", "MERGE", "NOFLUSH", "NOSAVE") == b"OK"
        assert r.execute_command("DEBUG", "DIGEST") == digest
        r.set("str:x", "changed")
        r.flushall()
        assert r.execute_command("DEBUG", "DIGEST") == b"0" * 40


def test_kdb_save_and_load_paths_stay_in_the_data_directory(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), str(data / "escape"))
    os.symlink(str(outside / "x.kdb"), str(data / "link.kdb"))
    with ServerProcess(data) as proc:
        r = proc.client()
        r.set("k", "v1")
        assert r.execute_command("KDB", "SAVE", "backup.kdb") == 1
        assert r.execute_command("KDB", "SAVE", str(data / "sub.kdb")) == 1
        for bad, message in [("../x.kdb", "'..'"), ("a/../../x.kdb", "'..'"),
                             (str(outside / "x.kdb"), "inside the data directory"),
                             ("escape/x.kdb", "inside the data directory"),
                             ("link.kdb", "inside the data directory"),
                             ("users.db", "end in .kdb"), ("", "invalid")]:
            for sub in ("SAVE", "LOAD"):
                with pytest.raises(redis.ResponseError, match=message):
                    r.execute_command("KDB", sub, bad)
        assert os.listdir(outside) == []
        r.set("k", "v2")
        r.set("other", "x")
        assert r.execute_command("KDB", "LOAD", "backup.kdb") == 1
        assert r.get("k") == b"v1" and r.get("other") is None
        with pytest.raises(redis.ResponseError, match="KDB LOAD failed"):
            r.execute_command("KDB", "LOAD", "missing.kdb")
        (data / "bad.kdb").write_bytes(b"\x89KDB\r\n\x1a\nrubbish")
        with pytest.raises(redis.ResponseError, match="KDB LOAD refused bad.kdb: .* at offset"):
            r.execute_command("KDB", "LOAD", "bad.kdb")
        assert r.get("k") == b"v1"   # a refused file changed nothing


def test_kdb_paths_never_follow_or_replace_what_is_planted_in_the_data_directory(tmp_path):
    """A symlink planted in the data directory (evil.kdb -> users.db, or at the
    snapshot writer's predictable temp name), a directory, a FIFO: KDB SAVE and
    LOAD refuse them or write beside them, users.db is never touched, and a
    FIFO does not hang the server."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "inside").mkdir()
    os.symlink("inside", str(data / "alias"))   # a directory link that stays inside: fine
    with ServerProcess(data) as proc:
        r = proc.client()
        r.set("k", "v")
        users = data / "users.db"
        assert users.exists()
        before = users.read_bytes()
        os.symlink(str(users), str(data / "evil.kdb"))
        os.symlink("users.db", str(data / "relative.kdb"))
        os.symlink(str(data / "missing-target.kdb"), str(data / "dangling.kdb"))
        os.mkdir(str(data / "dir.kdb"))
        os.mkfifo(str(data / "fifo.kdb"))
        for bad in ("evil.kdb", "relative.kdb", "dangling.kdb", "dir.kdb", "fifo.kdb",
                    str(data / "evil.kdb"), "alias/../evil.kdb"):
            for sub in ("SAVE", "LOAD"):
                with pytest.raises(redis.ResponseError, match="regular file|'..'"):
                    r.execute_command("KDB", sub, bad)
        assert users.read_bytes() == before
        assert os.readlink(str(data / "evil.kdb")) == str(users)
        assert not (data / "missing-target.kdb").exists()
        # The append-only log's directory holds a .kdb base: not a KDB target.
        r.config_set("appendonly", "yes")
        with pytest.raises(redis.ResponseError, match="append-only log's directory"):
            r.execute_command("KDB", "SAVE", "appendonlydir/x.kdb")
        r.config_set("appendonly", "no")
        # The temp file's name is predictable (temp-<pid>.kdb): a symlink there
        # is removed, never written through, and the save works.
        os.symlink(str(users), str(data / ("temp-%d.kdb" % proc.process.pid)))
        assert r.execute_command("KDB", "SAVE", "good.kdb") == 1
        assert r.execute_command("KDB", "SAVE", "alias/good.kdb") == 1
        assert r.save() is True
        assert users.read_bytes() == before
        assert not os.path.lexists(str(data / ("temp-%d.kdb" % proc.process.pid)))
        r.set("k", "changed")
        assert r.execute_command("KDB", "LOAD", "alias/good.kdb") == 1
        assert r.get("k") == b"v"
        assert r.ping()


def test_export_import_per_tenant_and_root_only_commands(tmp_path):
    make_users(tmp_path)
    with auth_server(tmp_path) as proc:
        alice, bob = login(proc, "alice"), login(proc, "bob")
        fill(alice, "a", 0)
        login(proc, "alice", db=7).set("in7", "x", ex=1000)
        bob.set("bobs", "own")
        for command in (("SAVE",), ("BGSAVE",), ("KDB", "SAVE"), ("KDB", "LOAD"),
                        ("DEBUG", "RELOAD")):
            with pytest.raises(redis.ResponseError, match="no permissions"):
                alice.execute_command(*command)
        payload = alice.execute_command("KDB", "EXPORT")
        assert payload.startswith(b"\x89KDB\r\n\x1a\n")
        assert b"bobs" not in payload and b"own" not in payload
        # bob imports alice's export into his own tenant; alice is unchanged
        assert bob.execute_command("KDB", "IMPORT", payload) == 15
        assert bob.get("str:a") == b"value-a-0" and bob.get("bobs") == b"own"
        assert 0 < login(proc, "bob", db=7).ttl("in7") <= 1000
        with pytest.raises(redis.ResponseError, match="BUSYKEY"):
            bob.execute_command("KDB", "IMPORT", payload)
        bob.set("str:a", "changed")
        assert bob.execute_command("KDB", "IMPORT", payload, "REPLACE") == 15
        assert bob.get("str:a") == b"value-a-0"
        with pytest.raises(redis.ResponseError, match="invalid KDB payload: .* at offset"):
            bob.execute_command("KDB", "IMPORT", payload[:-1])
        with pytest.raises(redis.ResponseError, match="syntax error"):
            bob.execute_command("KDB", "IMPORT", payload, "NOPE")
        assert login(proc, "alice").get("bobs") is None
        root = login(proc, "root")
        assert root.execute_command("KDB", "SAVE") == 15 + 1 + 15


def test_offline_export_and_import(tmp_path):
    make_users(tmp_path)
    with auth_server(tmp_path) as proc:
        alice = login(proc, "alice")
        fill(alice, "a", 0)
        before = dump_tenant(alice)
        login(proc, "bob").set("b", "1")
    cli = [sys.executable, "-m", "tenantkv.cli.admin", "--data-dir", str(tmp_path)]
    out = subprocess.run(cli + ["export", "--user", "alice", str(tmp_path / "alice.kdb")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "14 keys" in out.stdout
    out = subprocess.run(cli + ["import", "--user", "carol", str(tmp_path / "alice.kdb")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(cli + ["import", "--user", "carol", str(tmp_path / "alice.kdb")],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "already exist" in out.stderr
    out = subprocess.run(cli + ["export", "--user", "nobody", str(tmp_path / "x.kdb")],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "no such user" in out.stderr
    with auth_server(tmp_path) as proc:
        same_data(before, dump_tenant(login(proc, "carol")), ttl_lost_ms=6000, ttl_gained_ms=0)
        assert login(proc, "bob").get("b") == b"1"
        assert login(proc, "carol").get("b") is None


# -- shutdown and the schedule -----------------------------------------------------------------------

def test_shutdown_save_rules(tmp_path):
    # NOSAVE skips the save the default rules would make
    with ServerProcess(tmp_path) as proc:
        r = proc.client(retry=NO_RETRY)
        r.set("a", "1")
        r.shutdown(nosave=True)
        assert proc.process.wait(10) == 0
    assert not os.path.exists(tmp_path / "dump.kdb")
    # no save rules: SIGTERM does not save, SHUTDOWN SAVE does
    with ServerProcess(tmp_path, "--save", "") as proc:
        proc.client().set("b", "2")
    assert not os.path.exists(tmp_path / "dump.kdb")
    with ServerProcess(tmp_path, "--save", "") as proc:
        r = proc.client(retry=NO_RETRY)
        r.set("c", "3")
        r.shutdown(save=True)
        assert proc.process.wait(10) == 0
    with ServerProcess(tmp_path) as proc:
        assert proc.client().keys("*") == [b"c"]
        proc.client().set("d", "4")
    assert proc.stop() == 0   # SIGTERM with rules: saves
    with ServerProcess(tmp_path) as proc:
        assert sorted(proc.client().keys("*")) == [b"c", b"d"]


def test_save_schedule_and_changes_counter(tmp_path):
    with ServerProcess(tmp_path, "--save", "") as proc:
        r = proc.client()
        assert r.config_get("save") == {"save": ""}
        for bad in ("1 2 3", "a b", "0 1", "10 -1"):
            with pytest.raises(redis.ResponseError, match="Invalid save parameters"):
                r.config_set("save", bad)
        r.set("a", 1)
        r.incr("a")
        r.mset({"b": 1, "c": 2})
        with pytest.raises(redis.ResponseError):
            r.lpush("a", "x")   # failed writes do not count
        r.get("a")              # nor reads
        assert info(r, "rdb_changes_since_last_save") == "3"
        r.config_resetstat()
        r.set("d", 1)
        assert info(r, "rdb_changes_since_last_save") == "4"
        last = r.lastsave()
        r.config_set("save", "1 3")
        assert r.config_get("save") == {"save": "1 3"}
        deadline = time.monotonic() + 10
        while r.lastsave() == last or info(r, "rdb_bgsave_in_progress") == "1":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert info(r, "rdb_changes_since_last_save") == "0"
        assert info(r, "rdb_last_bgsave_status") == "ok"
        assert "4 changes in 1 seconds. Saving..." in log_text(proc) or \
            "3 changes in 1 seconds. Saving..." in log_text(proc)
        with pytest.raises(redis.ResponseError, match="syntax error"):
            r.execute_command("BGSAVE", "NOW")
        assert r.execute_command("BGSAVE", "SCHEDULE") is True   # redis-py: +Background saving started
        wait_bgsave(r)


def test_data_files_are_private_to_the_server_account(tmp_path):
    """Snapshots and the append-only log hold every tenant's data: owner-only
    modes (the server runs with umask 077), never readable by other accounts."""
    import stat as stat_module
    data = tmp_path   # made by the test (its mode is the operator's choice)
    with ServerProcess(data, "--appendonly", "yes") as srv:
        client = srv.client()
        client.set("secret", "value")
        client.save()
        client.bgrewriteaof()
        deadline = time.monotonic() + 10
        while client.info("persistence")["aof_rewrite_in_progress"] and time.monotonic() < deadline:
            time.sleep(0.05)
        paths = [data / "dump.kdb", data / "users.db", data / "appendonlydir"]
        paths += list((data / "appendonlydir").iterdir())
        assert len(paths) >= 5
        for path in paths:
            mode = stat_module.S_IMODE(os.stat(path).st_mode)
            assert mode & 0o077 == 0, "%s is mode %o" % (path, mode)
