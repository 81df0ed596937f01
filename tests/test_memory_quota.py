"""Per-tenant memory and keys quotas (issue 15), and the accounting they
stand on: used_memory is the logical figure of server/memory.py, kept by
deltas in the write path, which must follow the process's RSS and come back
down when the data goes (expiry, DEL, FLUSHALL)."""

import time

import pytest
import redis

from conftest import exchange, locked_fixture, login, read_reply, resp

locked = locked_fixture({"alice": "alice-pw", "bob": "bob-pw"}, "root-pw")


def _dataset(root) -> int:
    return root.info("memory")["used_memory_dataset"]


@pytest.fixture
def clients(locked):
    root = login(locked, "root")
    alice = login(locked, "alice")
    bob = login(locked, "bob")
    for client in (root, alice, bob):
        client.flushall()
    yield root, alice, bob
    root.config_set("tenant-quota-memory", "0")
    root.config_set("tenant-quota-keys", "0")
    root.config_set("maxmemory", "0")
    for client in (root, alice, bob):
        client.flushall()
        client.close()


def test_memory_quota_refuses_the_tenant_over_it_only(locked, clients):
    root, alice, bob = clients
    root.config_set("tenant-quota-memory", "1mb")
    value = b"x" * 10_000
    with pytest.raises(redis.ResponseError) as refused:
        for i in range(1_000):   # 10 MB: far over the quota
            alice.set(b"k%d" % i, value)
    assert "'memory' quota (1048576 bytes)" in str(refused.value)
    written = alice.dbsize()
    assert 90 <= written <= 110   # ~1 MB of 10 KB values
    # The exact reply, on the wire.
    sock = locked.raw()
    exchange(sock, resp("AUTH", "alice", "alice-pw"), b"+OK\r\n")
    exchange(sock, resp("SET", "one-more", "v"),
             b"-OOM command not allowed when the tenant's used memory > its 'memory' "
             b"quota (1048576 bytes).\r\n")
    sock.close()
    # Reads and DEL still work for alice; another tenant writes normally.
    assert alice.get(b"k0") == value
    for i in range(200):
        bob.set(b"b%d" % i, value)   # 2 MB: bob is under its own quota... until 1 MB
        if bob.dbsize() >= 50:
            break
    assert bob.dbsize() == 50
    assert alice.delete(*[b"k%d" % i for i in range(50)]) == 50
    alice.set(b"again", value)   # under the quota again
    root.config_set("tenant-quota-memory", "0")
    alice.set(b"free", value)


def test_keys_quota_refuses_new_keys_only(locked, clients):
    root, alice, bob = clients
    root.config_set("tenant-quota-keys", "100")
    pipe = alice.pipeline(transaction=False)
    for i in range(100):
        pipe.set(b"k%d" % i, b"v")
    pipe.execute()
    with pytest.raises(redis.ResponseError) as refused:
        alice.set(b"k100", b"v")
    assert str(refused.value) == \
        "command not allowed: the tenant has reached its 'keys' quota (100 keys)."
    with pytest.raises(redis.ResponseError):
        alice.hset(b"h", b"f", b"v")
    alice.select(3)
    with pytest.raises(redis.ResponseError):
        alice.lpush(b"k0", b"v")   # a key of another database is a new key too
    alice.select(0)
    assert alice.set(b"k5", b"new value")   # an existing key may change
    assert alice.append(b"k6", b"more") == 5
    for i in range(150):
        bob.set(b"b%d" % i, b"v")   # 150: over the quota... bob's own is separate
        if i == 99:
            break
    assert bob.dbsize() == 100
    assert alice.delete(b"k0") == 1
    assert alice.set(b"k100", b"v")   # one freed, one made
    assert alice.dbsize() == 100


def test_growth_past_the_quota_is_refused_before_allocating(clients):
    root, alice, _ = clients
    root.config_set("tenant-quota-memory", "10mb")
    for command in (["SETRANGE", "s", 50_000_000, "x"], ["SETBIT", "b", 400_000_000, 1],
                    ["BITFIELD", "f", "SET", "u8", 400_000_000, 1]):
        with pytest.raises(redis.ResponseError) as refused:
            alice.execute_command(*command)
        assert "'memory' quota" in str(refused.value)
    alice.set(b"a", b"x" * 1000)
    with pytest.raises(redis.ResponseError):
        alice.append(b"a", b"y" * 11_000_000)
    assert alice.strlen(b"a") == 1000
    assert alice.setrange(b"s", 100_000, b"x") == 100_001   # small growth is fine
    assert alice.exists(b"b", b"f") == 0


def test_accounting_comes_back_down(locked, clients):
    """Every way data leaves is counted: DEL, overwrite, expiry (lazy and
    active), FLUSHDB, FLUSHALL, MOVE, eviction-free shrinking pops."""
    root, alice, bob = clients
    root.config_set("tenant-quota-keys", "1000000")   # accounting on
    empty = _dataset(root)
    value = b"x" * 5000
    pipe = alice.pipeline(transaction=False)
    for i in range(1000):
        pipe.set(b"s%d" % i, value)
        pipe.rpush(b"l%d" % (i % 10), value)
        pipe.hset(b"h%d" % (i % 10), b"f%d" % i, value)
        pipe.sadd(b"set", b"m%d" % i)
        pipe.zadd(b"z", {b"m%d" % i: i})
        pipe.set(b"e%d" % i, value, px=200)
    pipe.execute()
    full = _dataset(root)
    assert full - empty > 1000 * 5000 * 3
    bob.set(b"bob", value)
    assert alice.move(b"s0", 2)
    alice.delete(*[b"s%d" % i for i in range(1, 500)])
    for i in range(10):
        while alice.lpop(b"l%d" % i, 50):
            pass
    time.sleep(0.5)
    alice.get(b"e0")   # lazy expiry; the rest by the active cycle
    deadline = time.time() + 10
    while alice.dbsize() > 500 + 10 + 2 and time.time() < deadline:
        time.sleep(0.1)
    alice.flushdb()
    assert alice.dbsize() == 0
    alice.select(2)
    assert alice.get(b"s0") == value
    alice.flushall()
    left = _dataset(root) - empty
    # bob's one key (~5 KB) remains; nothing of alice's.
    assert 5000 <= left < 6000, left
    bob.delete(b"bob")
    assert _dataset(root) == empty


def test_used_memory_tracks_rss_growth(make_server):
    """100+ MB of mixed values: the accounting's growth within 20% of RSS's."""
    proc = make_server("--maxmemory", "4gb")
    r = proc.client()
    before = r.info("memory")
    pipe = r.pipeline(transaction=False)
    n = 0
    for i in range(20_000):
        kind = i % 6
        if kind == 0:
            pipe.set(b"str:%d" % i, b"s" * (1000 + i % 9000))
        elif kind == 1:
            pipe.set(b"small:%d" % i, b"v%d" % i)
        elif kind == 2:
            pipe.rpush(b"list:%d" % (i % 300), *[b"e" * 100] * 40)
        elif kind == 3:
            pipe.hset(b"hash:%d" % (i % 400), mapping={b"f%d:%d" % (i, j): b"h" * 80
                                                       for j in range(40)})
        elif kind == 4:
            pipe.sadd(b"set:%d" % (i % 200), *[b"member:%d:%d" % (i, j) for j in range(60)])
        else:
            pipe.zadd(b"zset:%d" % (i % 200), {b"zm:%d:%d" % (i, j): j for j in range(60)})
        n += 1
        if n % 200 == 0:
            pipe.execute()
    pipe.execute()
    after = r.info("memory")
    rss = after["used_memory_rss"] - before["used_memory_rss"]
    used = after["used_memory"] - before["used_memory"]
    print("used_memory growth %d, RSS growth %d" % (used, rss))
    assert rss > 100 * 1024 * 1024, rss
    assert abs(used - rss) <= 0.2 * rss, (used, rss)


def test_accounting_counts_pops_served_to_blocked_clients(locked, clients):
    root, alice, _ = clients
    root.config_set("tenant-quota-keys", "1000000")   # accounting on
    empty = _dataset(root)
    value = b"p" * 100_000
    sock = locked.raw()
    exchange(sock, resp("AUTH", "alice", "alice-pw"), b"+OK\r\n")
    sock.sendall(resp("BLPOP", "queue", 10))
    time.sleep(0.2)   # parked
    alice.rpush(b"queue", value)
    reply = read_reply(sock, timeout=10)
    assert reply.endswith(value + b"\r\n")
    assert alice.exists(b"queue") == 0
    assert _dataset(root) == empty
    sock.sendall(resp("BLMOVE", "src", "dst", "LEFT", "RIGHT", 10))
    time.sleep(0.2)
    alice.rpush(b"src", value)
    assert read_reply(sock, timeout=10).endswith(value + b"\r\n")
    sock.close()
    assert alice.llen(b"dst") == 1
    assert _dataset(root) - empty > 100_000
    alice.delete(b"dst")
    assert _dataset(root) == empty


def test_accounting_counts_expiry_lazy_and_active(clients):
    root, alice, _ = clients
    root.config_set("tenant-quota-keys", "1000000")   # accounting on
    empty = _dataset(root)
    root.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 0)
    pipe = alice.pipeline(transaction=False)
    for i in range(200):
        pipe.set(b"e%d" % i, b"x" * 5000, px=150)
    pipe.execute()
    assert _dataset(root) - empty > 200 * 5000
    time.sleep(0.3)
    for i in range(100):
        assert alice.get(b"e%d" % i) is None   # expired on access
    assert alice.dbsize() == 100
    assert empty + 100 * 5000 < _dataset(root) < empty + 100 * 6000
    root.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 1)
    deadline = time.time() + 10
    while alice.dbsize() and time.time() < deadline:   # the rest by the active cycle
        time.sleep(0.05)
    assert alice.dbsize() == 0
    assert _dataset(root) == empty
    # A write to a key that expired (found expired by the write itself).
    root.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 0)
    alice.set(b"k", b"x" * 5000, px=50)
    alice.rpush(b"l", b"x" * 5000)
    alice.pexpire(b"l", 50)
    alice.mset({b"m1": b"x" * 5000, b"m2": b"y" * 5000})
    alice.pexpire(b"m1", 50)
    time.sleep(0.1)
    alice.set(b"k", b"new")
    alice.rpush(b"l", b"new")
    alice.mset({b"m1": b"new", b"m2": b"new"})
    root.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 1)
    alice.delete(b"k", b"l", b"m1", b"m2")
    assert _dataset(root) == empty


def test_queued_multi_counts_toward_the_tenant_quota(locked, clients):
    root, alice, bob = clients
    root.config_set("tenant-quota-memory", "1mb")
    sock = locked.raw()
    exchange(sock, resp("AUTH", "alice", "alice-pw"), b"+OK\r\n")
    exchange(sock, resp("MULTI"), b"+OK\r\n")
    value = "q" * 100_000
    for i in range(15):   # 1.5 MB held in the queue, no data yet
        exchange(sock, resp("SET", "k%d" % i, value), b"+QUEUED\r\n")
    time.sleep(0.5)   # the cron counts the clients' buffers
    sock.sendall(resp("SET", "one-more", value))
    assert read_reply(sock).startswith(b"-OOM command not allowed when the tenant's used memory")
    # Still over at EXEC, which holds denyoom commands: refused with the
    # reason, as Redis's processCommand rejects such an EXEC.
    sock.sendall(resp("EXEC"))
    assert read_reply(sock).startswith(
        b"-EXECABORT Transaction discarded because of: OOM command not allowed when the "
        b"tenant's used memory > its 'memory' quota")
    sock.close()
    assert bob.set(b"b", "x" * 100_000)   # bob's quota is his own
    time.sleep(0.5)
    assert alice.set(b"a", b"fine again")   # the queue is gone


def test_kdb_import_is_charged_and_refused_past_the_quota_while_decoding(locked, clients):
    """KDB IMPORT decodes in slices and installs at its end: what it installs
    is charged then (not by a recount of the tenant), and a payload whose
    decoded data would pass the tenant's room is refused before it is
    decoded whole."""
    root, alice, bob = clients
    root.config_set("tenant-quota-memory", "64mb")
    pipe = alice.pipeline(transaction=False)
    for i in range(20_000):
        pipe.set(b"k%d" % i, b"v" * 100)
    pipe.execute()
    payload = alice.execute_command("KDB", "EXPORT")
    alice.flushall()
    empty = _dataset(root)
    assert alice.execute_command("KDB", "IMPORT", payload) == 20_000
    charged = _dataset(root) - empty
    assert 20_000 * 200 < charged < 20_000 * 400, charged
    # The same payload again, under a quota it cannot fit: refused, nothing kept.
    alice.flushall()
    root.config_set("tenant-quota-memory", "2mb")
    with pytest.raises(redis.ResponseError) as refused:
        alice.execute_command("KDB", "IMPORT", payload)
    assert "'memory' quota (2097152 bytes)" in str(refused.value)
    assert alice.dbsize() == 0
    assert bob.set(b"b", b"v")
