"""What a small string costs in RSS, loaded the way bulk loads arrive: one
client pipelining a stream of SETs (as `redis-cli --pipe`). The numbers and
the comparison with redis-server are bench/strings_memory.py's; this test
keeps the bound that a regression in the allocator settings would break."""

import threading

KEYS = 100_000
VALUE = b"v" * 20


def _rss_bytes(pid: int) -> int:
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for pid %d" % pid)


def _pipe_sets(server, count: int, value=lambda i: VALUE) -> None:
    """SET key:0000000..count-1 to value(i) in 1 MB writes, replies drained by
    a thread meanwhile (as redis-cli --pipe does); every reply must be +OK."""
    sock = server.raw()
    sock.settimeout(60)
    expected = b"+OK\r\n" * count
    got = bytearray()

    def drain():
        while len(got) < len(expected):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            got.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    batch = []
    for i in range(count):
        v = value(i)
        batch.append(b"*3\r\n$3\r\nSET\r\n$11\r\nkey:%07d\r\n$%d\r\n%s\r\n" % (i, len(v), v))
        if len(batch) == 20_000:
            sock.sendall(b"".join(batch))
            batch = []
    sock.sendall(b"".join(batch))
    reader.join(60)
    sock.close()
    assert bytes(got) == expected


def test_bulk_loaded_small_strings_leave_no_freed_buffers_resident(make_server):
    # glibc, left alone, raises its mmap and trim thresholds after the
    # keyspace dict's first resizes; the big read and reply buffers of a
    # pipelined load then come from the heap and stay resident: ~300 B of
    # RSS per key here. With the thresholds fixed (server/main.py) it is
    # ~165 B (Python objects and the dict entry; redis-server takes ~109 B).
    server = make_server()
    client = server.client()
    client.set("warm", "up")   # the first command's one-time allocations
    before = _rss_bytes(server.process.pid)
    _pipe_sets(server, KEYS)
    assert client.dbsize() == KEYS + 1
    assert client.get("key:0012345") == VALUE
    per_key = (_rss_bytes(server.process.pid) - before) / KEYS
    assert per_key < 230, "%.0f B of RSS per 20-byte string" % per_key


def test_small_integers_are_stored_once(make_server):
    # "0".."9999" are one shared object each, as Redis's shared integers:
    # a key holding one costs its key and its dict entry (~109 B here; ~155 B
    # with a value object of its own per key).
    server = make_server()
    client = server.client()
    client.set("warm", "up")
    before = _rss_bytes(server.process.pid)
    _pipe_sets(server, KEYS, lambda i: b"%d" % (i % 10_000))
    assert client.get("key:0012345") == b"2345"
    per_key = (_rss_bytes(server.process.pid) - before) / KEYS
    assert per_key < 130, "%.0f B of RSS per key holding a small integer" % per_key


def test_shared_integers_are_still_each_keys_own_value(r):
    # The shared objects must never leak one key's change into another.
    for command in (("set", "a", "5"), ("set", "b", "5"), ("setnx", "c", "5"),
                    ("setex", "d", 100, "5"), ("getset", "e", "5")):
        r.execute_command(*command)
    assert r.append("a", "x") == 2
    assert r.setrange("b", 0, "7") == 1
    assert r.incr("c") == 6
    assert r.append("d", "") == 1   # a raw copy in Redis, the same bytes
    assert r.mget("a", "b", "c", "d", "e") == [b"5x", b"7", b"6", b"5", b"5"]
    assert [r.object("encoding", k) for k in "abcde"] == [b"raw", b"raw", b"int", b"raw", b"int"]
    assert r.object("refcount", "e") == 2147483647   # as Redis's shared integers
    # Only the canonical decimal form is shared: other spellings keep their bytes.
    for text in (b"007", b"0", b"-1", b"+5", b"9999", b"10000", b"\xd9\xa3", b"1 "):
        r.set("f", text)
        assert r.get("f") == text
    # Counters cross the shared range both ways.
    r.set("g", 9998)
    assert [r.incr("g"), r.incr("g"), r.decrby("g", 10_001), r.incrby("g", 1)] == [9999, 10_000, -1, 0]
    assert r.get("g") == b"0" and r.object("encoding", "g") == b"int"
