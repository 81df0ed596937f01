"""The server's RSS follows its data (issue 15): freed memory is handed back
to the system (MEMORY PURGE, and the cron's own trim after RSS grows), a
refused KDB IMPORT leaves nothing behind, and clients that never read are
evicted before their output takes the server past maxmemory."""

import os
import socket
import time

import pytest
import redis

from conftest import exchange, locked_server, login, read_reply, resp

MB = 1 << 20


def _rss(proc) -> int:
    with open("/proc/%d/statm" % proc.process.pid) as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _fill(r, prefix: str, count: int, value: bytes) -> None:
    pipe = r.pipeline(transaction=False)
    for start in range(0, count, 1_000):
        pipe.mset({"%s%d" % (prefix, i): value for i in range(start, min(count, start + 1_000))})
    pipe.execute()


def _settled_rss(proc, seconds: float = 1.5) -> int:
    """RSS once the cron had the time to trim (at most once a second)."""
    time.sleep(seconds)
    return _rss(proc)


def _heap_filled(proc, r, count: int) -> int:
    """`count` 600-byte values (from the C heap: pymalloc takes 512 B at most)
    and one made after them, kept (at the heap's top: glibc keeps the pages
    of the others once freed, unless trimmed); the RSS once settled."""
    _fill(r, "v", count, b"x" * 600)
    r.set("pin", b"p" * 600)
    return _settled_rss(proc)


def test_memory_purge_hands_freed_memory_back(make_server):
    proc = make_server()
    r = proc.client()
    count = 120_000
    full = _heap_filled(proc, r, count)
    sock = proc.raw()
    # One write: the DEL and the PURGE run in the same loop turn, so the
    # cron's own trim cannot be what hands the memory back.
    sock.sendall(resp("DEL", *("v%d" % i for i in range(count))) + resp("MEMORY", "PURGE"))
    replies = b""
    while b"+OK" not in replies:
        replies += read_reply(sock, timeout=30)
    purged = _rss(proc)
    assert replies == b":%d\r\n+OK\r\n" % count
    sock.close()
    assert full - purged > 40 * MB, (full >> 20, purged >> 20)
    # Any user may ask, as in Redis; asked again at once, it does not trim
    # again (one trim a second at most, however many ask) and answers OK.
    for _ in range(3):
        assert r.execute_command("MEMORY", "PURGE") == b"OK"
    assert b"PURGE" in b" ".join(r.execute_command("MEMORY", "HELP"))


def test_memory_purge_arity(make_server):
    r = make_server().client()
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'memory|purge'"):
        r.execute_command("MEMORY", "PURGE", "now")


def test_the_cron_trims_after_a_big_free(make_server):
    proc = make_server()
    r = proc.client()
    count = 120_000
    full = _heap_filled(proc, r, count)
    r.delete(*("v%d" % i for i in range(count)))
    # No PURGE: the cron trims by itself (it follows up on the growth the
    # fill made, as a big buffer may be freed after its trim).
    deadline = time.monotonic() + 10
    while _rss(proc) > full - 40 * MB and time.monotonic() < deadline:
        time.sleep(0.1)
    assert full - _rss(proc) > 40 * MB, (full >> 20, _rss(proc) >> 20)


def test_a_refused_import_leaves_nothing_behind(make_server):
    """KDB IMPORT refused part way (OOM, decided in a later slice of the
    job) kept its payload and what it had decoded alive in a reference
    cycle (its error's traceback held the frame that held the future that
    held the error) until a full collection: +40 MB a time."""
    proc = make_server()
    r = proc.client()
    _fill(r, "key:", 300_000, b"v" * 40)
    payload = r.execute_command("KDB", "EXPORT")
    assert len(payload) > 15 * MB
    r.flushall()
    r.config_set("maxmemory", "1gb")   # the accounting on, to read its figure
    # Room for a part of the payload: the refusal comes after some slices.
    r.config_set("maxmemory", str(r.info("memory")["used_memory"] + 8 * MB))
    before = _settled_rss(proc)
    for _ in range(4):
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            r.execute_command("KDB", "IMPORT", payload)
    after = _settled_rss(proc)
    assert r.dbsize() == 0
    assert after - before < 30 * MB, (before >> 20, after >> 20)


def test_clients_that_never_read_are_evicted_over_maxmemory(tmp_path):
    users = {"alice": "alice-pw", "bob": "bob-pw"}
    with locked_server(tmp_path, users, "root-pw") as proc:
        root, alice, bob = login(proc, "root"), login(proc, "alice"), login(proc, "bob")
        pipe = alice.pipeline(transaction=False)
        # LRANGE 0 -1: a 4.6 MB reply of 60,000 elements, under the count a
        # sliced job streams at the client's pace (slices.BIG): such replies
        # pile up unread.
        for start in range(0, 60_000, 1_000):
            pipe.rpush("big", *[b"e%07d" % i + b"x" * 62 for i in range(start, start + 1_000)])
        pipe.execute()
        root.config_set("maxmemory", "1gb")   # the accounting on, to read its figure
        root.config_set("maxmemory", str(root.info("memory")["used_memory"] + 20 * MB))
        readers = []
        for _ in range(6):   # each asks for 17 MB and reads nothing
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(5)
            sock.connect(("127.0.0.1", proc.port))
            exchange(sock, resp("AUTH", "alice", "alice-pw"), b"+OK\r\n")
            sock.sendall(resp("LRANGE", "big", 0, -1) * 4)
            readers.append(sock)
        deadline = time.monotonic() + 20
        while root.info("stats")["evicted_clients"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        evicted = root.info("stats")["evicted_clients"]
        assert 1 <= evicted < 6
        time.sleep(0.5)   # the cron sums the clients' buffers again
        # The others' writes go on: the output left is under maxmemory.
        assert bob.set("k", "v") is True
        assert root.info("memory")["used_memory"] <= int(root.config_get("maxmemory")["maxmemory"])
        with open(proc.log_path, "rb") as log:
            assert log.read().count(b"Evicting client: id=") == evicted
        for sock in readers:
            sock.close()
