"""SORT / SORT_RO beyond what a compat session shows (sessions/sort.txt):
patterns resolve only in the caller's tenant and database; big sorts run in
slices (tenant B is served meanwhile, A's second client waits) and give the
same bytes as redis-server; STORE is logged and survives a restart (a SORT
without STORE is not logged), wakes a client blocked on the destination,
touches WATCH and notifies "sortstore"; the GET patterns are bounded."""

import glob
import os
import threading
import time

import pytest
import redis

from conftest import ServerProcess, add_user, locked_fixture, login
from test_bounded import Neighbours, assert_sliced

ROOT_PASSWORD = "sort-root-secret"
USERS = {"alice": "alice-pw", "bob": "bob-pw"}

srv = locked_fixture(USERS, ROOT_PASSWORD)


def test_patterns_stay_in_the_callers_tenant_and_db(ab):
    a, b = ab
    a.rpush("ids", 1, 2, 3)
    a.mset({"w_1": 3, "w_2": 1, "w_3": 2, "o_1": "a1", "o_2": "a2", "o_3": "a3"})
    a.hset("h_1", "f", "secret")
    b.rpush("ids", 1, 2, 3)
    # Alice's own view
    assert a.sort("ids", by="w_*", get=["#", "o_*", "h_*->f"]) == [
        b"2", b"a2", None, b"3", b"a3", None, b"1", b"a1", b"secret"]
    # Bob's list with the same names: none of Alice's weights or values
    assert b.sort("ids", by="w_*", get=["#", "o_*", "h_*->f"]) == [
        b"1", None, None, b"2", None, None, b"3", None, None]
    assert b.execute_command("SORT_RO", "ids", "BY", "w_*", "DESC", "GET", "o_*") == [None] * 3
    # Another db of Alice's: the patterns read that db only
    a.execute_command("SELECT", 1)
    a.rpush("ids", 1, 2, 3)
    a.set("o_2", "db1")
    assert a.sort("ids", get="o_*") == [None, b"db1", None]
    a.execute_command("SELECT", 0)
    # STORE writes the caller's tenant only
    b.sort("ids", get="o_*", store="dst")
    assert b.lrange("dst", 0, -1) == [b"", b"", b""]
    assert a.exists("dst") == 0


def test_get_patterns_are_bounded(ab):
    a, _ = ab
    a.rpush("l", 1)
    args = ["SORT", "l"] + ["GET", "#"] * 256
    assert a.execute_command(*args) == [b"1"] * 256
    with pytest.raises(redis.ResponseError, match="at most 256 GET patterns"):
        a.execute_command(*(args + ["GET", "#"]))
    assert a.ping()


def test_store_wakes_blocked_client_and_touches_watch(srv, ab):
    a, _ = ab
    a.rpush("src", 3, 1, 2)
    waiter = login(srv, "alice")
    got = []
    t = threading.Thread(target=lambda: got.append(waiter.blpop(["dst"], timeout=10)))
    t.start()
    time.sleep(0.3)
    assert a.sort("src", store="dst") == 3
    t.join(10)
    assert got == [(b"dst", b"1")]
    assert a.lrange("dst", 0, -1) == [b"2", b"3"]
    # WATCH: SORT ... STORE touches the destination; a SORT without STORE does not
    watcher = login(srv, "alice")
    for store, fails in ((None, False), ("dst", True)):
        watcher.execute_command("WATCH", "dst")
        if store:
            a.sort("src", store=store)
        else:
            a.sort("src")
        watcher.execute_command("MULTI")
        watcher.execute_command("PING")
        assert (watcher.execute_command("EXEC") is None) == fails
    waiter.close()
    watcher.close()


def test_store_notifies_sortstore_and_del(srv, ab):
    a, _ = ab
    a.config_set("notify-keyspace-events", "KEA")
    sub = login(srv, "alice").pubsub()
    sub.psubscribe("__keyspace@0__:*")
    assert sub.get_message(timeout=2)["type"] == "psubscribe"
    try:
        a.rpush("src", 2, 1)
        a.sort("src", store="dst")
        a.sort("nosuch", store="dst")
        a.sort("src")   # no STORE: no event
        a.set("end", "x")
        events = []
        while True:
            msg = sub.get_message(timeout=2)
            if msg is None:
                break
            events.append((msg["channel"], msg["data"]))
            if msg["channel"] == b"__keyspace@0__:end":
                break
        assert events == [(b"__keyspace@0__:src", b"rpush"),
                          (b"__keyspace@0__:dst", b"sortstore"),
                          (b"__keyspace@0__:dst", b"del"),
                          (b"__keyspace@0__:end", b"set")]
    finally:
        a.config_set("notify-keyspace-events", "")
        sub.close()


def test_store_is_logged_and_sort_alone_is_not(tmp_path):
    add_user(tmp_path, "alice", "alice-pw")
    env = {"TENANTKV_AUTH__DEFAULT_USER": "off"}
    with ServerProcess(tmp_path, "--appendonly", "yes", "--save", "", env=env,
                       passwords={"alice": "alice-pw"}) as server:
        a = login(server, "alice")
        a.rpush("src", 3, 1, 2)
        a.mset({"o_1": "one", "o_2": "two", "o_3": "three"})
        a.set("dst2", "old")
        a.sort("src", get="o_*", store="dst")
        a.sort("nosuch", store="dst2")   # deletes dst2
        for _ in range(5):
            a.sort("src", desc=True)
        a.close()
    log = b"".join(open(f, "rb").read()
                   for f in glob.glob(os.path.join(str(tmp_path), "appendonlydir", "*.incr.aof")))
    assert log.lower().count(b"$4\r\nsort\r\n") == 2, log
    with ServerProcess(tmp_path, "--appendonly", "yes", "--save", "", env=env,
                       passwords={"alice": "alice-pw"}) as server:
        a = login(server, "alice")
        assert a.lrange("dst", 0, -1) == [b"one", b"two", b"three"]
        assert a.exists("dst2") == 0
        a.close()


# -- big sorts: sliced, and the same bytes as redis-server ---------------------------

N_BIG = 70_000   # past slices.BIG (65,536): the job's path


def _raw(port, *args, auth=None) -> bytes:
    import socket
    from conftest import read_reply, resp
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        if auth:
            sock.sendall(resp("AUTH", *auth))
            assert read_reply(sock) == b"+OK\r\n"
        sock.sendall(resp(*args))
        return read_reply(sock, timeout=60)


@pytest.mark.slow
def test_big_sorts_give_redis_bytes(srv, ab, redis_server):
    a, _ = ab
    ref = redis_server
    if True:
        r = redis.Redis(port=ref.port)
        r.flushall()
        for client in (a, r):
            pipe = client.pipeline(transaction=False)
            for start in range(0, N_BIG, 5000):
                pipe.rpush("l", *[(i * 7919) % 100_003 for i in range(start, start + 5000)])
                pipe.mset({"w_%d" % ((i * 7919) % 100_003): i % 1000
                           for i in range(start, start + 5000, 3)})
                pipe.mset({"o_%d" % ((i * 7919) % 100_003): "v%d" % i
                           for i in range(start, start + 5000, 2)})
            pipe.execute()
        auth = ("alice", USERS["alice"])
        for args in (("SORT", "l"), ("SORT", "l", "DESC"), ("SORT", "l", "ALPHA"),
                     ("SORT", "l", "BY", "w_*", "GET", "#", "GET", "o_*"),
                     ("SORT", "l", "BY", "w_*", "DESC", "LIMIT", "10", "100"),
                     ("SORT", "l", "BY", "nosort", "GET", "o_*", "DESC"),
                     ("SORT", "l", "BY", "w_*", "ALPHA", "GET", "#"),
                     ("SORT", "l", "BY", "w_*", "ALPHA", "DESC")):
            assert _raw(srv.port, *args, auth=auth) == _raw(ref.port, *args), args
        assert a.sort("l", by="w_*", store="dst") == N_BIG
        assert r.sort("l", by="w_*", store="dst") == N_BIG
        assert a.lrange("dst", 0, -1) == r.lrange("dst", 0, -1)
        r.close()


@pytest.mark.slow
def test_big_sort_is_sliced_and_atomic_for_its_tenant(srv):
    hood = Neighbours(srv)
    try:
        hood.a.flushall()
        pipe = hood.a.pipeline(transaction=False)
        for start in range(0, 600_000, 10_000):
            pipe.rpush("big", *range(start * 7 % 1_000_003, start * 7 % 1_000_003 + 10_000))
        pipe.execute()
        # A2 appends just after SORT started: it is not in the stored result
        result = hood.run(("SORT", "big", "DESC", "STORE", "dst"), follow=("RPUSH", "big", "-1"))
        assert result["reply"] == 600_000
        assert result["follow"] == 600_001
        assert hood.a.llen("dst") == 600_000
        assert_sliced(result)
    finally:
        hood.a.flushall()
        hood.close()


def _peak_rss_kb(pid: int) -> int:
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_long_patterns_are_not_copied_for_every_element(srv, ab):
    # 100 elements and a 4 MB pattern: a key made per element at once
    # would take 400 MB per pattern; one at a time, 4 MB.
    a, b = ab
    a.rpush("l", *range(100))
    pattern = "p" * (4 << 20) + "*"
    before = _peak_rss_kb(srv.process.pid)
    reply = a.execute_command("SORT", "l", "BY", pattern, "GET", pattern, "GET", "#")
    # no weights: all 0, ties in bytes order
    assert reply == [x for i in sorted(b"%d" % i for i in range(100)) for x in (None, i)]
    assert _peak_rss_kb(srv.process.pid) - before < 200_000   # KB
    assert b.ping()


@pytest.mark.slow
def test_long_patterns_count_as_work_and_are_sliced(srv):
    # 20,000 elements (few) but a 64 KB pattern read twice each: ~2.6 GB
    # of keys to build, long enough to freeze everyone if not sliced.
    hood = Neighbours(srv)
    try:
        hood.a.flushall()
        hood.a.rpush("few", *range(20_000))
        pattern = "k" * (64 << 10) + "*"
        result = hood.run(("SORT", "few", "BY", pattern, "GET", pattern),
                          follow=("RPUSH", "few", "x"))
        assert result["reply"] == [None] * 20_000
        assert result["follow"] == 20_001
        assert_sliced(result)
    finally:
        hood.a.flushall()
        hood.close()


def test_only_a_store_is_a_change_for_save(srv, ab):
    a, _ = ab
    root = login(srv, "root")

    def changes():
        return root.info("persistence")["rdb_changes_since_last_save"]

    a.rpush("l", 3, 1, 2)
    a.rpush("bad", 1, "x")
    a.set("str", "x")
    before = changes()
    a.sort("l")
    a.sort("l", desc=True, start=0, num=1)
    for args in (("SORT", "bad"), ("SORT", "str"), ("SORT", "bad", "STORE", "d")):
        with pytest.raises(redis.ResponseError):
            a.execute_command(*args)
    assert changes() == before
    a.sort("l", store="d")
    assert changes() == before + 1
    root.close()


@pytest.mark.slow
def test_a_sliced_store_wakes_the_blocked_client(srv, ab):
    # 200,000 elements: the job's path; the list exists only at its end
    a, _ = ab
    pipe = a.pipeline(transaction=False)
    for start in range(0, 200_000, 10_000):
        pipe.rpush("big", *range(start, start + 10_000))
    pipe.execute()
    waiter = login(srv, "alice")
    got = []
    t = threading.Thread(target=lambda: got.append(waiter.blpop(["dst"], timeout=20)))
    t.start()
    time.sleep(0.3)
    assert a.sort("big", desc=True, store="dst") == 200_000
    stored = time.monotonic()
    t.join(20)
    assert got == [(b"dst", b"199999")]
    assert time.monotonic() - stored < 2.0   # served by the store, not some later event
    assert a.llen("dst") == 199_999
    waiter.close()
