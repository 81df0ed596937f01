"""Compact small hashes (keyspace/hashpack.py's PackedHash, Redis's listpack)
against the real redis-server: random hash commands on a few keys, crossing
hash-max-listpack-entries / -value (CONFIG SET included), compared reply by
reply, OBJECT ENCODING and DEBUG DIGEST-VALUE included; compact hashes
written to a snapshot and to the log load back equal (DEBUG DIGEST); and a
load builds compact hashes with the server's configured limits, as Redis's."""

import random

import pytest
import redis

from compact_helpers import (RESTART_MODES, assert_reload_keeps, call, encodings, restarted,
                             wait_for_rewrite)
from tests.conftest import ServerProcess


def _pairs(reply) -> list:
    return list(zip(reply[::2], reply[1::2]))


def _run(rng, clients, keys, fields, values):
    """One random command on both servers: their replies (or error texts)."""
    key = rng.choice(keys)
    field = rng.choice(fields)
    name = rng.choice(["hset", "hset", "hsetnx", "hget", "hdel", "hincrby", "hincrbyfloat",
                       "hmget", "hgetall", "hlen", "hstrlen", "hexists", "hkeys", "hvals",
                       "encoding", "digest", "hscan", "hrandfield"])
    if name == "hset":
        args = ["HSET", key]
        # sometimes many pairs at once: one command crossing -entries
        for _ in range(rng.randrange(1, 4) if rng.random() < 0.9 else rng.randrange(4, 40)):
            args += [rng.choice(fields), rng.choice(values)]
    elif name == "hsetnx":
        args = ["HSETNX", key, field, rng.choice(values)]
    elif name in ("hget", "hstrlen", "hexists"):
        args = [name.upper(), key, field]
    elif name == "hdel":   # sometimes many fields: the path through one dict
        args = ["HDEL", key] + rng.sample(fields, rng.randrange(1, 3) if rng.random() < 0.9 else 12)
    elif name == "hincrby":
        args = ["HINCRBY", key, field, str(rng.randrange(-50, 50))]
    elif name == "hincrbyfloat":
        args = ["HINCRBYFLOAT", key, field, rng.choice(["1.5", "-0.25", "3", "1e3"])]
    elif name == "hmget":
        args = ["HMGET", key] + rng.sample(fields, 3 if rng.random() < 0.8 else 12)
    elif name in ("hgetall", "hlen", "hkeys", "hvals"):
        args = [name.upper(), key]
    elif name == "encoding":
        args = ["OBJECT", "ENCODING", key]
    elif name == "digest":
        args = ["DEBUG", "DIGEST-VALUE", key]
    elif name == "hscan":
        args = ["HSCAN", key, "0", "COUNT", "1000"]
    else:
        args = ["HRANDFIELD", key, "-3"]
    return args, [call(client, *args) for client in clients]


def _check(args, replies, clients):
    ours, theirs = replies
    name = args[0]
    if name == "HRANDFIELD":   # random: the fields drawn exist
        if isinstance(theirs, list):
            fields = set(clients[1].hkeys(args[1]))
            assert len(ours) == len(theirs) and set(ours) <= fields, args
        return
    if name == "HSCAN":
        if ours[0] == b"0" and theirs[0] == b"0":
            if clients[1].object("encoding", args[1]) == b"listpack":
                assert ours == theirs, args   # whole, in listpack order
            else:
                assert sorted(_pairs(ours[1])) == sorted(_pairs(theirs[1])), args
        return
    if name in ("HKEYS", "HVALS", "HGETALL") and isinstance(theirs, list):
        if clients[1].object("encoding", args[1]) != b"listpack":   # hash order differs
            ours, theirs = sorted(ours), sorted(theirs)
    assert ours == theirs, (args, ours, theirs)


def test_random_hash_commands_match_redis(server, redis_server):
    ours = server.client(protocol=2)
    theirs = redis.Redis(port=redis_server.port)
    ours.flushall()
    theirs.flushall()
    clients = (ours, theirs)
    rng = random.Random(14)
    keys = ["h:%d" % i for i in range(4)]
    # the bytes the buffer's markers and escapes are made of, in fields and values
    short = ["f%d" % i for i in range(12)] + [b"\xfe", b"a\xff", b"\xfd\x00", "\u00e9t\u00e9", ""]
    values = ["", "1", "-7", "2.5", "abc", "x" * 64, "y" * 65, b"\xff\x01\x02", "10",
              b"\xfd\x01", b"\xfe\xff\xfd", "\u00e9"]
    try:
        for entries, value in [(512, 64), (4, 64), (8, 10), (128, 64), (3, 0), (16, 64)]:
            for client in clients:
                client.config_set("hash-max-listpack-entries", entries)
                client.config_set("hash-max-ziplist-value", value)   # the alias
            fields = short if entries != 16 else short + ["g%d" % i for i in range(30)]
            for _ in range(700):
                args, replies = _run(rng, clients, keys, fields, values)
                _check(args, replies, clients)
            # converted hashes stay hashtable under raised limits; new ones start compact
            for key in keys:
                assert ours.object("encoding", key) == theirs.object("encoding", key)
            assert ours.dbsize() == theirs.dbsize()
            for client in clients:
                client.delete(*keys[:2])
    finally:
        for client in clients:
            client.config_set("hash-max-listpack-entries", 512)
            client.config_set("hash-max-listpack-value", 64)


def test_listpack_order_and_conversion(r, redis_server):
    theirs = redis.Redis(port=redis_server.port)
    theirs.flushall()
    for client in (r, theirs):
        client.hset("h", mapping={"b": "1", "a": "2", "c": "3"})
        client.hset("h", "a", "22")
        client.hdel("h", "b")
        client.hset("h", "b", "4")
        client.hset("bin", b"\xff\xfe", b"\xff\x01")
    assert r.hgetall("h") == theirs.hgetall("h") == {b"a": b"22", b"c": b"3", b"b": b"4"}
    assert list(r.hgetall("h")) == list(theirs.hgetall("h"))
    assert r.hgetall("bin") == theirs.hgetall("bin")
    for key in ("h", "bin"):
        assert r.object("encoding", key) == b"listpack"
        assert (r.execute_command("DEBUG", "DIGEST-VALUE", key)
                == theirs.execute_command("DEBUG", "DIGEST-VALUE", key))
    r.hset("h", "long", "v" * 65)   # past hash-max-listpack-value: converted for good
    assert r.object("encoding", "h") == b"hashtable"
    r.hdel("h", "long")
    assert r.object("encoding", "h") == b"hashtable"
    r.expire("h", 100)
    r.hset("ttl", "f", "v")
    r.expire("ttl", 100)
    r.hset("ttl", "g", "v" * 100)   # converting keeps the TTL
    assert r.object("encoding", "ttl") == b"hashtable" and 0 < r.ttl("ttl") <= 100
    # COPY keeps the form; a copy is independent of the original
    assert r.copy("bin", "bin2")
    r.hset("bin2", "more", "1")
    assert r.object("encoding", "bin2") == b"listpack" and r.hlen("bin") == 1
    assert r.type("bin") == b"hash"
    assert 0 < r.memory_usage("bin") < r.memory_usage("h")
    assert r.execute_command("DEBUG", "OBJECT", "bin").find(b"encoding:listpack") >= 0
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.lpush("bin", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.get("bin")


def _fill(c, n=50):
    for i in range(n):
        c.hset("small:%d" % i, mapping={"f%d" % j: "v%d" % (i * j) for j in range(5)})
    c.hset("bin", mapping={b"\xff": b"\xff\xfe", b"k": b""})
    c.hset("big", mapping={"f%d" % j: "v" for j in range(600)})
    c.hset("wide", "f", "w" * 100)


@pytest.mark.parametrize("mode", RESTART_MODES)
def test_compact_hashes_survive_restart(tmp_path, mode):
    keys = ("small:7", "bin", "big", "wide")
    with restarted(tmp_path, mode, _fill, lambda c: encodings(c, keys)) as (c, digest, before):
        assert before == [b"listpack", b"listpack", b"hashtable", b"hashtable"]
        assert encodings(c, keys) == before
        assert c.hgetall("bin") == {b"\xff": b"\xff\xfe", b"k": b""}
        assert_reload_keeps(c, digest)


def test_packed_size_cap_under_raised_limits(r):
    """Limits raised far past the defaults: a hash whose buffer would pass
    PACKED_MAX_BYTES (256 KB) becomes a hashtable (Redis would keep a listpack
    up to 1 GB; quadratic copies here), its data intact."""
    try:
        r.config_set("hash-max-listpack-entries", 100000)
        r.config_set("hash-max-listpack-value", 100000)
        r.hset("capped", mapping={"f%d" % i: "v" * 60000 for i in range(4)})
        assert r.object("encoding", "capped") == b"listpack"   # 240 KB: still packed
        r.hset("capped", "f4", "w" * 60000)
        assert r.object("encoding", "capped") == b"hashtable"
        assert r.hlen("capped") == 5 and r.hget("capped", "f4") == b"w" * 60000
    finally:
        r.config_set("hash-max-listpack-entries", 512)
        r.config_set("hash-max-listpack-value", 64)


def _reload_encodings(clients, keys, entries, value):
    """CONFIG SET the limits on both servers, DEBUG RELOAD, their encodings."""
    result = []
    for client in clients:
        client.config_set("hash-max-listpack-entries", entries)
        client.config_set("hash-max-listpack-value", value)
        assert client.execute_command("DEBUG", "RELOAD") in (b"OK", True)
        result.append([client.object("encoding", key) for key in keys])
    return result


def test_load_applies_the_configured_limits(tmp_path, redis_server):
    """A snapshot loads each hash in the form the loading server's limits
    give it (Redis's rdbLoadObject does the same), both ways: a listpack
    past the new limits loads as a hashtable, a hashtable within them as a
    listpack."""
    theirs = redis.Redis(port=redis_server.port)
    theirs.flushall()
    keys = ["fields50", "value40", "shrunk", "small"]
    try:
        with ServerProcess(tmp_path, "--save", "") as proc:
            ours = proc.client()
            clients = (ours, theirs)
            for client in clients:
                client.hset("fields50", mapping={"f%d" % i: "v" for i in range(50)})
                client.hset("value40", mapping={"a": "1", "b": "x" * 40})
                client.hset("shrunk", mapping={"f%d" % i: "v" for i in range(600)})
                client.hdel("shrunk", *["f%d" % i for i in range(5, 600)])
                client.hset("small", mapping={"a": b"\xff\xfd", b"\xfe": "2"})
            digest = ours.execute_command("DEBUG", "DIGEST")
            assert digest == theirs.execute_command("DEBUG", "DIGEST")
            ours_enc, theirs_enc = _reload_encodings(clients, keys, 10, 30)
            # value40 differs on purpose: Redis keeps a hash saved as a listpack
            # a listpack under a lowered -value (it checks only -entries then);
            # a .kdb does not record the encoding, so tenantkv loads each hash as
            # its HSET would build it, both limits applied.
            assert ours_enc == [b"hashtable", b"hashtable", b"listpack", b"listpack"]
            assert theirs_enc == [b"hashtable", b"listpack", b"listpack", b"listpack"]
            ours_enc, theirs_enc = _reload_encodings(clients, keys, 100, 64)
            assert ours_enc == theirs_enc == [b"listpack", b"listpack", b"listpack", b"listpack"]
            assert ours.execute_command("DEBUG", "DIGEST") == digest
            # the loaded forms take writes like any other, crossing the limits again
            for client in clients:
                client.hset("fields50", mapping={"g%d" % i: "w" for i in range(51)})
                client.hset("small", "long", "z" * 65)
            assert ([ours.object("encoding", k) for k in ("fields50", "small")]
                    == [theirs.object("encoding", k) for k in ("fields50", "small")]
                    == [b"hashtable", b"hashtable"])
            assert ours.execute_command("DEBUG", "DIGEST") == theirs.execute_command("DEBUG", "DIGEST")
    finally:
        theirs.config_set("hash-max-listpack-entries", 512)
        theirs.config_set("hash-max-listpack-value", 64)


def test_log_base_loads_with_the_configured_limits(tmp_path):
    """appendonly with a kdb base: a restart under lower limits (flags)
    loads the base's hashes past them as hashtables; the log's tail
    (replayed HSETs) follows the same limits."""
    flags = ["--appendonly", "yes", "--save", "", "--aof-use-rdb-preamble", "yes"]
    with ServerProcess(tmp_path, *flags) as proc:
        c = proc.client()
        c.hset("base50", mapping={"f%d" % i: "v" for i in range(50)})
        c.hset("base5", mapping={"f%d" % i: "v" for i in range(5)})
        c.bgrewriteaof()
        wait_for_rewrite(c)
        c.hset("tail50", mapping={"f%d" % i: "v" for i in range(50)})
        digest = c.execute_command("DEBUG", "DIGEST")
        assert c.object("encoding", "base50") == b"listpack"
    with ServerProcess(tmp_path, *flags, "--hash-max-listpack-entries", "10") as proc:
        c = proc.client()
        assert c.execute_command("DEBUG", "DIGEST") == digest
        assert [c.object("encoding", k) for k in ("base50", "base5", "tail50")] == \
            [b"hashtable", b"listpack", b"hashtable"]


def test_hgetall_of_a_listpack_in_resp3(r3, redis_server):
    """HGETALL of a PackedHash replies from its buffer's split (RESP2: the
    split itself): the RESP3 map as Redis's, escape bytes included."""
    theirs = redis.Redis(port=redis_server.port, protocol=3)
    theirs.flushall()
    mapping = {"a": "1", b"\xfe\xfd": b"\xff", "": "", "\u00e9": b"\xfd\x00"}
    for client in (r3, theirs):
        client.hset("h", mapping=mapping)
    assert r3.object("encoding", "h") == b"listpack"
    assert r3.hgetall("h") == theirs.hgetall("h") == {
        (k.encode() if isinstance(k, str) else k): (v.encode() if isinstance(v, str) else v)
        for k, v in mapping.items()}
    assert list(r3.hgetall("h")) == list(theirs.hgetall("h"))
    assert r3.hgetall("none") == theirs.hgetall("none") == {}


def test_update_under_a_lowered_limit_converts(r, redis_server):
    """Redis checks the length after every write to a listpack, updates
    included: after CONFIG SET lowers -entries below a hash's size, an
    HSET / HINCRBY of an existing field converts it (tenantkv skips counting
    on updates only while the limit has never been lowered)."""
    theirs = redis.Redis(port=redis_server.port)
    theirs.flushall()
    clients = (r, theirs)
    try:
        for client in clients:
            client.config_set("hash-max-listpack-entries", 600)
            client.hset("a", mapping={"f%d" % i: "%d" % i for i in range(550)})
            client.hset("b", mapping={"f%d" % i: "%d" % i for i in range(550)})
            client.config_set("hash-max-listpack-entries", 512)
        assert r.object("encoding", "a") == theirs.object("encoding", "a") == b"listpack"
        for client in clients:
            client.hset("a", "f3", "new")
            client.hincrby("b", "f3", 1)
        assert [r.object("encoding", k) for k in "ab"] == \
            [theirs.object("encoding", k) for k in "ab"] == [b"hashtable", b"hashtable"]
        assert r.hgetall("b") == theirs.hgetall("b")
    finally:
        for client in clients:
            client.config_set("hash-max-listpack-entries", 512)
