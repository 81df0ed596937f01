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


def _pipe_sets(server, count: int) -> None:
    """SET key:0000000..count-1 to VALUE in 1 MB writes, replies drained by a
    thread meanwhile (as redis-cli --pipe does); every reply must be +OK."""
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
        batch.append(b"*3\r\n$3\r\nSET\r\n$11\r\nkey:%07d\r\n$%d\r\n%s\r\n" % (i, len(VALUE), VALUE))
        if len(batch) == 20_000:
            sock.sendall(b"".join(batch))
            batch = []
    sock.sendall(b"".join(batch))
    reader.join(60)
    sock.close()
    assert bytes(got) == expected


def test_bulk_loaded_small_strings_leave_no_freed_buffers_resident(make_server):
    # glibc, left alone, raises its mmap threshold after the keyspace dict's
    # first resize; the big read and reply buffers of a pipelined load then
    # come from the heap and stay resident between the keys: ~300 B of RSS
    # per key here. With the threshold pinned (server/main.py) it is ~170 B
    # (Python objects and the dict entry; redis-server takes ~109 B).
    server = make_server()
    client = server.client()
    client.set("warm", "up")   # the first command's one-time allocations
    before = _rss_bytes(server.process.pid)
    _pipe_sets(server, KEYS)
    assert client.dbsize() == KEYS + 1
    assert client.get("key:0012345") == VALUE
    per_key = (_rss_bytes(server.process.pid) - before) / KEYS
    assert per_key < 230, "%.0f B of RSS per 20-byte string" % per_key
