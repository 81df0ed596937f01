"""Keys and expiry through redis-py: what a transcript cannot show (time, random
order, concurrency); exact replies are covered by tests/compat/."""

import time

import pytest
import redis


def _pipeline_set(r, count, prefix="key:", **options):
    pipe = r.pipeline(transaction=False)
    for i in range(count):
        pipe.set("%s%d" % (prefix, i), i, **options)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def _info_int(r, section, field):
    return int(r.info(section)[field])


def test_active_expiry_reclaims_100000_keys_nobody_reads(r):
    r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "1")
    expired_before = _info_int(r, "stats", "expired_keys")
    expire_at = int(time.time() * 1000) + 3000
    _pipeline_set(r, 100_000, pxat=expire_at)
    r.set("survivor", "x")
    if time.time() * 1000 < expire_at - 200:
        assert r.dbsize() == 100_001
    deadline = time.monotonic() + 30
    while r.dbsize() > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    # Only DBSIZE and INFO were used: neither touches the expired keys.
    assert r.dbsize() == 1
    assert _info_int(r, "stats", "expired_keys") - expired_before == 100_000
    assert r.get("survivor") == b"x"


def test_without_active_expiry_keys_wait_for_an_access(r):
    r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")
    try:
        _pipeline_set(r, 100, px=50)
        time.sleep(0.5)
        assert r.dbsize() == 100          # nothing reclaimed them
        assert r.get("key:7") is None     # lazy expiry on access
        assert r.dbsize() == 99
        assert r.exists("key:1", "key:2") == 0
        assert r.dbsize() == 97
    finally:
        r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "1")


def test_active_expiry_leaves_live_keys_and_persisted_keys(r):
    _pipeline_set(r, 2000, prefix="short:", px=100)
    _pipeline_set(r, 2000, prefix="long:", ex=3600)
    r.set("plain", "1")
    deadline = time.monotonic() + 10
    while r.dbsize() > 2001 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.dbsize() == 2001
    assert r.ttl("long:1999") > 3500
    assert r.ttl("plain") == -1


def test_expire_options_and_ttl(r):
    r.set("k", "v")
    assert r.ttl("k") == -1
    assert r.ttl("missing") == -2
    assert r.pttl("missing") == -2
    assert r.expire("k", 100, xx=True) is False      # no TTL yet
    assert r.expire("k", 100, nx=True) is True
    assert r.expire("k", 200, nx=True) is False
    assert r.expire("k", 50, gt=True) is False
    assert r.expire("k", 500, gt=True) is True
    assert r.expire("k", 1000, lt=True) is False
    assert r.expire("k", 10, lt=True) is True
    assert 9_000 <= r.pttl("k") <= 10_000
    when = int(time.time()) + 1000
    assert r.expireat("k", when) is True
    assert r.expiretime("k") == when
    assert r.execute_command("PEXPIRETIME", "k") == when * 1000
    assert r.persist("k") is True
    assert r.persist("k") is False
    assert r.expiretime("k") == -1
    assert r.expire("k", -1) is True                 # a time in the past deletes
    assert r.exists("k") == 0
    with pytest.raises(redis.ResponseError, match="NX and XX, GT or LT options at the same time"):
        r.execute_command("EXPIRE", "k", "10", "NX", "XX")


def test_pexpire_precision_and_lazy_expiry(r):
    r.set("k", "v", px=150)
    assert 0 < r.pttl("k") <= 150
    time.sleep(0.25)
    assert r.get("k") is None
    assert r.ttl("k") == -2


def test_set_without_keepttl_clears_ttl_and_rename_keeps_it(r):
    r.set("a", "1", ex=100)
    r.rename("a", "b")
    assert 99 <= r.ttl("b") <= 100
    r.set("b", "2")
    assert r.ttl("b") == -1
    r.set("c", "3", ex=100)
    r.copy("c", "d")
    assert r.ttl("d") > 0
    r.incr("d")                                       # a modification keeps the TTL
    assert r.ttl("d") > 0


def test_scan_returns_every_key_present_throughout_despite_inserts(r):
    _pipeline_set(r, 5000, prefix="old:")
    seen = set()
    cursor = 0
    inserted = 0
    while True:
        cursor, keys = r.scan(cursor, count=100)
        seen.update(keys)
        # Concurrent writers: new keys and deletions of other new keys.
        for _ in range(50):
            r.set("new:%d" % inserted, 1)
            inserted += 1
        r.delete("new:%d" % (inserted // 2))
        if cursor == 0:
            break
    old = {b"old:%d" % i for i in range(5000)}
    assert old <= seen
    assert len(seen) == len(set(seen))


def test_scan_match_type_and_count(r):
    _pipeline_set(r, 300, prefix="user:")
    _pipeline_set(r, 300, prefix="item:")
    keys = set(r.scan_iter(match="user:1*", count=50))
    assert keys == {b"user:%d" % i for i in range(300) if str(i).startswith("1")}
    assert set(r.scan_iter(_type="string", count=1000)) >= keys
    assert list(r.scan_iter(_type="hash")) == []
    cursor, batch = r.scan(0, count=10)
    assert cursor != 0 and 1 <= len(batch) <= 20
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        r.execute_command("SCAN", "abc")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("SCAN", "0", "COUNT", "0")


def test_keys_patterns_and_pathological_patterns_return(r):
    for key in ("hello", "hallo", "hxllo", "hllo", "heeeello", "h[llo", "h*llo"):
        r.set(key, 1)
    assert sorted(r.keys("h?llo")) == [b"h*llo", b"h[llo", b"hallo", b"hello", b"hxllo"]
    assert sorted(r.keys("h[ae]llo")) == [b"hallo", b"hello"]
    assert sorted(r.keys("h[^e]llo")) == [b"h*llo", b"h[llo", b"hallo", b"hxllo"]
    assert sorted(r.keys("h[a-b]llo")) == [b"hallo"]
    assert r.keys("h\\*llo") == [b"h*llo"]
    assert r.keys("h\\[llo") == [b"h[llo"]
    assert sorted(r.keys("h*llo")) == [b"h*llo", b"h[llo", b"hallo", b"heeeello",
                                       b"hello", b"hllo", b"hxllo"]
    # Exponential for a naive matcher; Redis's nesting cap keeps these fast.
    r.set("a" * 100, 1)
    client = redis.Redis(port=r.connection_pool.connection_kwargs["port"], socket_timeout=5)
    assert client.keys("a*" * 60 + "b") == []
    assert client.keys("*?" * 25_000) == []
    assert client.keys("*" * 50_000 + "a") != []


def test_randomkey_rename_move_copy(r):
    assert r.randomkey() is None
    r.set("only", "1")
    assert r.randomkey() == b"only"
    for i in range(20):
        r.set("k%d" % i, i)
    assert {r.randomkey() for _ in range(200)} <= {b"only"} | {b"k%d" % i for i in range(20)}
    assert len({r.randomkey() for _ in range(200)}) > 5
    assert r.renamenx("only", "k1") is False
    assert r.move("only", 3) is True
    assert r.exists("only") == 0
    r.execute_command("SELECT", "3")
    assert r.get("only") == b"1"
    r.execute_command("SELECT", "0")
    assert r.copy("k1", "k1copy", destination_db=5) is True
    assert r.copy("k1", "k1copy", destination_db=5) is False
    assert r.copy("k2", "k1copy", destination_db=5, replace=True) is True
    with pytest.raises(redis.ResponseError, match="no such key"):
        r.rename("nothing", "x")


def test_flushdb_flushall_async_and_dbsize(r):
    _pipeline_set(r, 100)
    r.execute_command("SELECT", "1")
    r.set("db1", 1)
    assert r.dbsize() == 1
    assert r.execute_command("FLUSHDB", "ASYNC") is True
    assert r.dbsize() == 0
    r.execute_command("SELECT", "0")
    assert r.dbsize() == 100
    assert r.execute_command("FLUSHALL", "SYNC") is True
    assert r.dbsize() == 0
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("FLUSHALL", "LATER")


def test_object_subcommands(r):
    r.set("int", "12345")
    r.set("short", "hello")
    r.set("long", "x" * 100)
    assert r.object("encoding", "int") == b"int"
    assert r.object("encoding", "short") == b"embstr"
    assert r.object("encoding", "long") == b"raw"
    assert r.object("refcount", "short") == 1
    assert r.object("idletime", "short") <= 1
    assert r.object("encoding", "missing") is None
    assert any(b"ENCODING" in line for line in r.execute_command("OBJECT", "HELP"))
