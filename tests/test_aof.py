"""The append-only log: round trips, SIGKILL at random moments, torn tails,
corruption, BGREWRITEAOF, CONFIG SET appendonly. Real server processes."""

import glob
import os
import random
import shutil
import subprocess
import sys
import time

import pytest
import redis

from conftest import ServerProcess, add_user, dump_tenant, exchange, resp, same_data

PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "carol": "carol-pw-3"}
ROOT = "root-pw-0"
LOCKED = {"TENANTKV_AUTH__DEFAULT_USER": "off"}


# No snapshots (save ""): what comes back comes through the log.
AOF = ("--appendonly", "yes", "--save", "")


def aof_server(data_dir, *extra, env=None) -> ServerProcess:
    return ServerProcess(data_dir, *AOF, *extra, env=env)


def incr_file(data_dir) -> str:
    files = sorted(glob.glob(os.path.join(str(data_dir), "appendonlydir", "*.incr.aof")))
    assert len(files) == 1, files
    return files[0]


def fill(c: redis.Redis, tag: str) -> None:
    """Every type, TTLs of every kind, several databases, and the commands the
    log must rewrite to replay deterministically."""
    for index in (0, 3, 15):
        c.execute_command("SELECT", index)
        p = "%s:%d:" % (tag, index)
        c.set(p + "s", "v" * 10)
        c.set(p + "bin", bytes(range(256)) + b"\r\n*3\r\n")
        c.set(p + "ex", "1", ex=500)
        c.set(p + "px", "2", px=400000)
        c.execute_command("SETEX", p + "setex", 300, "3")
        c.psetex(p + "psetex", 200000, "4")
        c.set(p + "exat", "5", exat=int(time.time()) + 600)
        c.set(p + "keep", "6", ex=100)
        c.set(p + "keep", "7", keepttl=True)
        c.set(p + "gone", "x", px=1)
        c.set(p + "nx", "first", nx=True)
        c.set(p + "nx", "second", nx=True)
        c.set(p + "getset", "a")
        c.set(p + "getset", "b", get=True, ex=50)
        c.incr(p + "counter", 41)
        c.incrbyfloat(p + "float", "1.1")
        c.incrbyfloat(p + "float", "2.25")
        c.set(p + "fttl", "10")
        c.expire(p + "fttl", 77)
        c.incrbyfloat(p + "fttl", "0.5")
        c.append(p + "s", "-appended")
        c.setrange(p + "s", 2, "XY")
        c.setbit(p + "bits", 77, 1)
        c.hset(p + "h", mapping={"a": "1", "b": "2", "c": "3"})
        c.hincrby(p + "h", "a", 10)
        c.hincrbyfloat(p + "h", "f", "3.75")
        c.hdel(p + "h", "b")
        c.rpush(p + "l", *[str(i) for i in range(100)])
        c.lpush(p + "l", "head")
        c.lpop(p + "l")
        c.ltrim(p + "l", 0, 80)
        c.lset(p + "l", 3, "three")
        c.sadd(p + "set", *[str(i) for i in range(50)])
        c.spop(p + "set")
        c.spop(p + "set", 5)
        c.srem(p + "set", "0", "1")
        c.zadd(p + "z", {"a": 1, "b": 2.5, "c": -3, "inf": float("inf"), "tiny": 1e-300})
        c.zincrby(p + "z", 0.1, "a")
        c.zpopmin(p + "z")
        c.expire(p + "z", 1000)
        c.expire(p + "h", 2000)
        c.pexpire(p + "l", 3000000)
        c.expireat(p + "set", int(time.time()) + 4000)
        c.pexpireat(p + "bits", int(time.time() * 1000) + 5000000)
        c.getex(p + "counter", ex=900)
        c.getex(p + "counter")
        c.set(p + "persist", "p", ex=100)
        c.persist(p + "persist")
        c.set(p + "deleted", "1")
        c.delete(p + "deleted")
        c.set(p + "expired-now", "1")
        c.expire(p + "expired-now", -1)
        c.set(p + "old", "o")
        c.rename(p + "old", p + "new")
        c.copy(p + "new", p + "copied")
        c.rpush(p + "src", "a", "b", "c")
        c.lmove(p + "src", p + "dst", "LEFT", "RIGHT")
        c.blpop([p + "src"], timeout=1)
        c.sinterstore(p + "inter", [p + "set", p + "set"])
        c.zunionstore(p + "zu", [p + "z"])
        pipe = c.pipeline(transaction=True)
        pipe.set(p + "tx1", "1")
        pipe.incr(p + "tx1")
        pipe.sadd(p + "tx2", "x")
        pipe.execute()
        c.move(p + "s", 7 if index != 7 else 8)
    c.execute_command("SELECT", 0)


def _users(data_dir) -> None:
    add_user(data_dir, "root", ROOT, "--root")
    for name, password in PASSWORDS.items():
        add_user(data_dir, name, password)


def _clients(server):
    return {name: server.client(username=name, password=pw, protocol=2)
            for name, pw in PASSWORDS.items()}


def test_round_trip_three_tenants(tmp_path):
    _users(tmp_path)
    with aof_server(tmp_path, env=LOCKED) as server:
        clients = _clients(server)
        for name, c in clients.items():
            fill(c, name)
        # A blocked client served later is logged as the non-blocking pop.
        blocked = server.client(username="bob", password=PASSWORDS["bob"])
        import threading
        got = []
        t = threading.Thread(target=lambda: got.append(blocked.blpop(["waiting"], timeout=5)))
        t.start()
        time.sleep(0.3)
        clients["bob"].rpush("waiting", "one", "two")
        t.join()
        assert got == [(b"waiting", b"one")]
        time.sleep(0.05)   # the key of px=1 has expired (its DEL is logged when seen)
        before = {name: dump_tenant(c) for name, c in clients.items()}
        assert before["alice"][(0, b"alice:0:float")] == ("string", b"3.35", -1)
        assert before["bob"][(0, b"waiting")][1] == [b"two"]
        assert before["alice"] != before["bob"]
    assert server.stop() == 0
    assert not glob.glob(str(tmp_path / "*.kdb"))   # through the log only
    with aof_server(tmp_path, env=LOCKED) as server:
        clients = _clients(server)
        for name, c in clients.items():
            same_data(before[name], dump_tenant(c))
        root = server.client(username="root", password=ROOT)
        assert root.info("persistence")["aof_enabled"] == 1


@pytest.mark.parametrize("kdb_base", [True, False])
def test_round_trip_after_sigkill_and_rewrite(tmp_path, kdb_base):
    with aof_server(tmp_path, "--appendfsync", "always",
                    "--aof-use-rdb-preamble", "yes" if kdb_base else "no") as server:
        c = server.client()
        fill(c, "t")
        assert c.bgrewriteaof()
        fill(c, "u")   # logged to the new incremental file during / after the rewrite
        deadline = time.time() + 10
        while c.info("persistence")["aof_rewrite_in_progress"] and time.time() < deadline:
            time.sleep(0.05)
        info = c.info("persistence")
        assert info["aof_rewrites"] == 1 and info["aof_last_bgrewrite_status"] == "ok"
        c.set("after-rewrite", "1")
        names = sorted(os.listdir(tmp_path / "appendonlydir"))
        kind = "kdb" if kdb_base else "aof"
        assert names == ["appendonly.aof.2.base." + kind, "appendonly.aof.2.incr.aof",
                         "appendonly.aof.manifest"]
        before = dump_tenant(c)
        server.kill()
    with aof_server(tmp_path) as server:
        same_data(before, dump_tenant(server.client()))


def test_rewrite_in_progress_error(tmp_path):
    with aof_server(tmp_path) as server:
        c = server.client()
        pipe = c.pipeline(transaction=False)
        for i in range(200000):
            pipe.set("key:%d" % i, "x" * 20)
        pipe.execute()
        assert c.bgrewriteaof()
        with pytest.raises(redis.ResponseError,
                           match="Background append only file rewriting already in progress"):
            c.bgrewriteaof()
        assert c.info("persistence")["aof_rewrite_in_progress"] == 1
        assert c.ping()
        deadline = time.time() + 30
        while c.info("persistence")["aof_rewrite_in_progress"] and time.time() < deadline:
            time.sleep(0.05)
        assert c.dbsize() == 200000
    assert server.stop() == 0
    with aof_server(tmp_path) as server:
        assert server.client().dbsize() == 200000


def test_config_set_appendonly_at_runtime(tmp_path):
    with ServerProcess(tmp_path, "--save", "") as server:
        c = server.client()
        c.set("before", "1")
        c.rpush("list", "a", "b")
        assert c.config_set("appendonly", "yes")
        c.set("after", "2")
        deadline = time.time() + 10
        while c.info("persistence")["aof_rewrite_in_progress"] and time.time() < deadline:
            time.sleep(0.05)
        assert c.info("persistence")["aof_enabled"] == 1
        c.incr("counter")
        c.config_set("appendfsync", "always")
        c.incr("counter")
        server.kill()
    with aof_server(tmp_path) as server:
        c = server.client()
        assert c.mget("before", "after", "counter") == [b"1", b"2", b"2"]
        assert c.lrange("list", 0, -1) == [b"a", b"b"]
        c.config_set("appendonly", "no")
        c.set("unlogged", "1")
    assert server.stop() == 0
    with aof_server(tmp_path) as server:
        c = server.client()
        assert c.get("unlogged") is None and c.get("counter") == b"2"
        c.config_set("appendonly", "no")
        c.set("unlogged", "1")
        c.config_set("appendonly", "yes")   # again: a new base holds what is in memory
        c.incr("counter")
        deadline = time.time() + 10
        while c.info("persistence")["aof_rewrite_in_progress"] and time.time() < deadline:
            time.sleep(0.05)
        names = sorted(os.listdir(tmp_path / "appendonlydir"))
        assert len(names) == 3 and names[-1] == "appendonly.aof.manifest", names
    assert server.stop() == 0
    with aof_server(tmp_path) as server:
        assert server.client().mget("unlogged", "counter") == [b"1", b"3"]


# -- the crash test ----------------------------------------------------------------

WRITER = r"""
import socket, sys
port, prefix, total, batch = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3]), 64

def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

def command(n):
    kind = n % 3
    if kind == 0:
        return enc(b"INCR", prefix + b"counter")
    if kind == 1:
        return enc(b"SET", prefix + b"s:%d" % n, b"%d" % n)
    return enc(b"LPUSH", prefix + b"list", b"%d" % n)

sock = socket.create_connection(("127.0.0.1", port))
print("ready", flush=True)
acked = 0
buf = b""
try:
    n = 0
    while n < total:
        count = min(batch, total - n)
        sock.sendall(b"".join(command(n + i) for i in range(count)))
        need = count
        while need:
            while b"\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError
                buf += chunk
            line, buf = buf.split(b"\r\n", 1)
            assert line[:1] in (b":", b"+"), line
            acked += 1
            need -= 1
        n += count
except (ConnectionError, OSError):
    pass
print(acked, flush=True)
"""


def verify_acked(c: redis.Redis, prefix: str, acked: int) -> int:
    """Every acknowledged write of a writer's run is there; the count checked."""
    incrs = len(range(0, acked, 3))
    counter = int(c.get(prefix + "counter") or 0)
    assert counter >= incrs, (prefix, counter, incrs)
    sets = list(range(1, acked, 3))
    if sets:
        values = c.mget([prefix + "s:%d" % n for n in sets])
        assert values == [b"%d" % n for n in sets], prefix
    pushes = [b"%d" % n for n in range(2, acked, 3)]
    pushed = c.lrange(prefix + "list", 0, -1)[::-1]   # oldest first
    assert pushed[:len(pushes)] == pushes, prefix
    return incrs + len(sets) + len(pushes)


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_write(make_server):
    rng = random.Random(int(os.environ.get("AOF_CRASH_SEED", time.time())))
    runs = []
    checked = 0
    server = make_server(*AOF, "--appendfsync", "always")
    started = time.monotonic()

    def writer(prefix):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(server.port), prefix, "20000"],
                                   stdout=subprocess.PIPE)
        assert process.stdout.readline() == b"ready\n"
        return process

    # How long a whole run takes here: the kills land within it.
    calibration = writer("calibration:")
    began = time.monotonic()
    assert int(calibration.communicate(timeout=60)[0]) == 20000
    duration = time.monotonic() - began
    for run in range(20):
        prefix = "run%d:" % run
        process = writer(prefix)
        time.sleep(rng.uniform(0.0, duration))
        server.kill()
        out, _ = process.communicate(timeout=30)
        acked = int(out)
        runs.append((prefix, acked))
        server = make_server(*AOF, "--appendfsync", "always")
        c = server.client()
        checked += verify_acked(c, prefix, acked)
        c.close()
    # And nothing of the earlier runs went missing through 20 crashes.
    c = server.client()
    for prefix, acked in runs:
        verify_acked(c, prefix, acked)
    print("\ncrash test: %d SIGKILLs, %d acknowledged writes checked, 0 lost (%.1f s; a run "
          "of 20000 takes %.2f s; acked per run: %s)"
          % (len(runs), checked, time.monotonic() - started, duration, [a for _, a in runs]))
    assert sum(a for _, a in runs) > 0
    assert sum(1 for _, a in runs if a < 20000) >= 10   # most kills landed mid-run


# -- torn tails ----------------------------------------------------------------------

@pytest.mark.slow
def test_torn_tail_loads_a_prefix(tmp_path):
    with aof_server(tmp_path) as server:
        c = server.client()
        expected = []
        for i in range(60):
            if i % 5 == 4:   # a transaction: both elements or neither
                pipe = c.pipeline(transaction=True)
                pipe.rpush("seq", "%d-a" % i)
                pipe.rpush("seq", "%d-b" % i)
                pipe.execute()
                expected += [b"%d-a" % i, b"%d-b" % i]
            else:
                c.rpush("seq", "%d" % i)
                expected.append(b"%d" % i)
            if i % 7 == 0:
                c.execute_command("SELECT", 2)
                c.incr("other")
                c.execute_command("SELECT", 0)
        assert c.lrange("seq", 0, -1) == expected
    assert server.stop() == 0
    pristine = str(tmp_path / "pristine")
    shutil.copytree(tmp_path / "appendonlydir", pristine)
    path = incr_file(tmp_path)
    size = os.path.getsize(path)
    rng = random.Random(5)
    offsets = sorted(rng.sample(range(size), 50))
    lengths = set()
    for offset in offsets:
        shutil.rmtree(tmp_path / "appendonlydir")
        shutil.copytree(pristine, tmp_path / "appendonlydir")
        os.truncate(path, offset)
        with aof_server(tmp_path) as server:
            c = server.client()
            got = c.lrange("seq", 0, -1)
            assert got == expected[:len(got)], offset
            for element in got:   # never half a transaction
                if element.endswith(b"-a"):
                    assert element[:-2] + b"-b" in got, offset
            lengths.add(len(got))
            # the log goes on after the truncated part
            c.rpush("seq", "after")
        assert server.stop() == 0
        with aof_server(tmp_path) as server:
            assert server.client().lrange("seq", 0, -1) == got + [b"after"]
    assert len(lengths) > 10


def test_corruption_in_the_middle_stops_the_start(tmp_path):
    with aof_server(tmp_path) as server:
        c = server.client()
        for i in range(20):
            c.set("k%d" % i, i)
    path = incr_file(tmp_path)
    with open(path, "r+b") as f:
        data = f.read()
        where = data.index(b"k10") - 4   # the '$3' of the key: no longer RESP
        f.seek(where)
        f.write(b"?")
    process = subprocess.run(
        [sys.executable, "-m", "tenantkv", "--port", "0", "--dir", str(tmp_path), "--appendonly", "yes"],
        capture_output=True, timeout=30, env={**os.environ, "TENANTKV_AUTH__DEFAULT_USER": "nopass"})
    assert process.returncode == 1
    output = process.stdout + process.stderr
    assert b"Bad file format reading the append only file" in output
    record = data.rindex(b"*3\r\n", 0, where)
    assert b"at offset %d" % record in output
    assert b"tenantkv check-aof --fix " + path.encode() in output
    fix = subprocess.run([sys.executable, "-m", "tenantkv.cli.admin", "check-aof", "--fix", "--yes", path],
                         capture_output=True, timeout=30)
    assert fix.returncode == 0, fix.stdout
    assert b"Successfully truncated AOF" in fix.stdout
    check = subprocess.run([sys.executable, "-m", "tenantkv.cli.admin", "check-aof", path],
                           capture_output=True, timeout=30)
    assert check.returncode == 0 and b"valid" in check.stdout
    with aof_server(tmp_path) as server:
        c = server.client()
        assert c.dbsize() == 10 and c.get("k9") == b"9"


def test_torn_tail_refused_without_aof_load_truncated(tmp_path):
    with aof_server(tmp_path) as server:
        server.client().set("a", "1")
        server.client().set("b", "2")
    path = incr_file(tmp_path)
    os.truncate(path, os.path.getsize(path) - 3)
    process = subprocess.run(
        [sys.executable, "-m", "tenantkv", "--port", "0", "--dir", str(tmp_path), "--appendonly", "yes",
         "--aof-load-truncated", "no"],
        capture_output=True, timeout=30, env={**os.environ, "TENANTKV_AUTH__DEFAULT_USER": "nopass"})
    assert process.returncode == 1
    assert b"unexpected end of file" in process.stdout + process.stderr
    with aof_server(tmp_path) as server:
        assert server.client().mget("a", "b") == [b"1", None]
    assert b"not loaded; truncating" in open(server.log_path, "rb").read()


def test_snapshot_then_log(tmp_path):
    """appendonly yes without a log yet: the snapshot is loaded and becomes the
    log's base; then the log (not the snapshot) is what is loaded. Data that
    KDB LOAD / KDB IMPORT / DEBUG RELOAD put in place without write commands
    is logged too."""
    with ServerProcess(tmp_path) as server:
        c = server.client()
        c.set("from-snapshot", "1", ex=1000)
        c.rpush("list", "a")
        assert c.save()
    with aof_server(tmp_path) as server:
        c = server.client()
        assert c.get("from-snapshot") == b"1" and 0 < c.ttl("from-snapshot") <= 1000
        c.rpush("list", "b")
        c.set("extra", "x")
        c.execute_command("KDB", "LOAD")   # back to the snapshot: extra goes, list is [a]
        assert c.get("extra") is None
        c.set("other", "y")
        c.execute_command("KDB", "SAVE", "other.kdb")
        payload = c.execute_command("KDB", "EXPORT")
        c.delete("other")
        c.execute_command("KDB", "IMPORT", payload, "REPLACE")
        c.execute_command("DEBUG", "RELOAD", "NOSAVE")   # dump.kdb again: other goes
        c.execute_command("KDB", "IMPORT", payload, "REPLACE")
        c.rpush("list", "c")
        before = dump_tenant(c)
        server.kill()
    os.unlink(tmp_path / "dump.kdb")   # the log alone
    with aof_server(tmp_path) as server:
        c = server.client()
        same_data(before, dump_tenant(c))
        assert c.lrange("list", 0, -1) == [b"a", b"c"] and c.get("other") == b"y"


def test_bgrewriteaof_waits_for_bgsave(tmp_path):
    with aof_server(tmp_path, "--rdb-key-save-delay", "2000") as server:
        c = server.client()
        for i in range(300):
            c.set("k%d" % i, i)
        assert c.bgsave()
        sock = server.raw()
        exchange(sock, resp("BGREWRITEAOF"), b"+Background append only file rewriting scheduled\r\n")
        sock.close()
        assert c.info("persistence")["aof_rewrite_in_progress"] == 0   # not yet
        c.set("during", "1")
        deadline = time.time() + 20
        while c.info("persistence")["aof_rewrites"] < 1 and time.time() < deadline:
            time.sleep(0.05)
        assert c.info("persistence")["aof_rewrites"] == 1
    assert server.stop() == 0
    with aof_server(tmp_path) as server:
        assert server.client().dbsize() == 301


def _wait_rewrite(c: redis.Redis) -> None:
    deadline = time.time() + 20
    while c.info("persistence")["aof_rewrite_in_progress"] and time.time() < deadline:
        time.sleep(0.05)
    assert not c.info("persistence")["aof_rewrite_in_progress"]


@pytest.mark.parametrize("kdb_base", [True, False])
def test_debug_loadaof(tmp_path, kdb_base):
    # Redis's suite (expire, other) checks TTLs after DEBUG LOADAOF: the data
    # set is replaced by what the log holds, with this turn's records in it.
    with aof_server(tmp_path, "--aof-use-rdb-preamble", "yes" if kdb_base else "no") as server:
        c = server.client()
        fill(c, "t")
        assert c.bgrewriteaof()
        _wait_rewrite(c)
        c.set("keep", "a", ex=100)
        c.set("keep", "b", keepttl=True)
        c.set("persisted", "a", ex=100)
        c.getex("persisted", persist=True)
        before = dump_tenant(c)
        assert c.execute_command("DEBUG", "LOADAOF") == b"OK"
        same_data(before, dump_tenant(c))
        assert 90 < c.ttl("keep") <= 100 and c.get("keep") == b"b"
        assert c.ttl("persisted") == -1
        c.set("after", "1")   # the log goes on after the reload
        before = dump_tenant(c)
        server.kill()
    with aof_server(tmp_path) as server:
        same_data(before, dump_tenant(server.client()))


def test_debug_loadaof_with_the_log_off(tmp_path):
    with ServerProcess(tmp_path, "--save", "") as server:
        c = server.client()
        c.set("k", "1")
        with pytest.raises(redis.ResponseError, match="no append only file"):
            c.execute_command("DEBUG", "LOADAOF")
        assert c.get("k") == b"1"   # refused: nothing lost
        c.set("x", "10", ex=1000)
        assert c.bgrewriteaof()   # as Redis: a log on disk, loaded though logging is off
        _wait_rewrite(c)
        c.set("not-logged", "1")
        assert c.execute_command("DEBUG", "LOADAOF") == b"OK"
        assert c.get("not-logged") is None and c.get("k") == b"1"
        assert 900 < c.ttl("x") <= 1000


def test_debug_loadaof_refuses_a_bad_log_and_keeps_the_data(tmp_path):
    with aof_server(tmp_path) as server:
        c = server.client()
        c.set("k", "1")
        c.rpush("l", "a", "b")
        with open(incr_file(tmp_path), "ab") as handle:
            handle.write(resp("NOSUCHCOMMAND", "x"))
        before = dump_tenant(c)
        with pytest.raises(redis.ResponseError, match="(?i)unknown command 'NOSUCHCOMMAND'"):
            c.execute_command("DEBUG", "LOADAOF")
        assert dump_tenant(c) == before
