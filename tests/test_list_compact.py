"""Lists as QuickLists (keyspace/quicklist.py: packed chunks, Redis's
quicklist of listpacks) against the real redis-server: random list commands
(every list command, blocking forms on keys that have data) on small lists
and on lists of several chunks (> 8 KB), elements with the bytes the packed
format is made of (0xff, 0x01, 0xfe, "\\r\\n$"), empty and 9 KB ones, under
several list-max-listpack-size settings (CONFIG SET), compared reply by
reply with OBJECT ENCODING and DEBUG DIGEST-VALUE; and lists written to a
snapshot and to the log load back equal (DEBUG DIGEST)."""

import random
import time

import pytest
import redis

from compact_helpers import RESTART_MODES, assert_reload_keeps, call, restarted

_VALUES = [b"", b"a", b"b", b"1", b"-7", b"elem", b"\xff", b"\xff\x01", b"\xff\xfe\x01",
           b"x\r\n$3\r\n", b"y" * 70, b"z" * 9000, b"element:42"]


def _value(rng) -> bytes:
    if rng.random() < 0.2:
        return b"v%d" % rng.randrange(400)
    return rng.choice(_VALUES)


def _index(rng, n: int) -> str:
    return str(rng.choice([0, 1, -1, -2, n // 2, -(n // 2), n - 1, n, n + 3, -n, -n - 2,
                           rng.randrange(-n - 2, n + 3)]))


def _args(rng, keys: list, lengths: dict) -> list:
    key = rng.choice(keys)
    other = rng.choice(keys)
    n = lengths.get(key, 0) or 1
    side = rng.choice(["LEFT", "RIGHT"])
    name = rng.choice(["LPUSH", "RPUSH", "LPUSHX", "RPUSHX", "LPOP", "RPOP", "LPOPC", "RPOPC",
                       "LRANGE", "LRANGE", "LINDEX", "LSET", "LINSERT", "LREM", "LTRIM",
                       "LPOS", "LLEN", "LMOVE", "RPOPLPUSH", "LMPOP", "BLPOP", "BRPOP",
                       "BLMOVE", "BRPOPLPUSH", "BLMPOP", "ENCODING", "DIGEST"])
    if name in ("LPUSH", "RPUSH", "LPUSHX", "RPUSHX"):
        count = rng.choice([1, 1, 2, 5, 40])
        return [name, key] + [_value(rng) for _ in range(count)]
    if name in ("LPOP", "RPOP"):
        return [name, key]
    if name in ("LPOPC", "RPOPC"):
        return [name[:4], key, str(rng.choice([0, 1, 3, 50, n, n + 5]))]
    if name == "LRANGE":
        return [name, key, _index(rng, n), _index(rng, n)]
    if name == "LINDEX":
        return [name, key, _index(rng, n)]
    if name == "LSET":
        return [name, key, _index(rng, n), _value(rng)]
    if name == "LINSERT":
        return [name, key, rng.choice(["BEFORE", "AFTER"]), _value(rng), _value(rng)]
    if name == "LREM":
        return [name, key, str(rng.choice([0, 1, 2, -1, -3, 100])), _value(rng)]
    if name == "LTRIM":
        return [name, key, _index(rng, n), _index(rng, n)]
    if name == "LPOS":
        args = [name, key, _value(rng)]
        if rng.random() < 0.5:
            args += ["RANK", str(rng.choice([1, 2, -1, -2, 5]))]
        if rng.random() < 0.5:
            args += ["COUNT", str(rng.choice([0, 1, 3]))]
        if rng.random() < 0.3:
            args += ["MAXLEN", str(rng.choice([1, 10, 100]))]
        return args
    if name == "LLEN":
        return [name, key]
    if name == "LMOVE":
        return [name, key, other, side, rng.choice(["LEFT", "RIGHT"])]
    if name == "RPOPLPUSH":
        return [name, key, other]
    if name == "LMPOP":
        return [name, "2", "nosuch", key, side, "COUNT", str(rng.choice([1, 4, 1000]))]
    # blocking forms: on keys that have data they answer at once ("big"
    # mostly has: few 10 ms timeouts); otherwise both servers time out
    if name in ("BLPOP", "BRPOP"):
        return [name, "nosuch", key, "big", "0.01"]
    if name == "BLMOVE":
        return [name, key, other, side, "RIGHT", "0.01"]
    if name == "BRPOPLPUSH":
        return [name, key, other, "0.01"]
    if name == "BLMPOP":
        return [name, "0.01", "2", key, "big", side, "COUNT", "3"]
    if name == "ENCODING":
        return ["OBJECT", "ENCODING", key]
    return ["DEBUG", "DIGEST-VALUE", key]


def _same_lists(ours, theirs, keys) -> None:
    for key in keys:
        assert ours.lrange(key, 0, -1) == theirs.lrange(key, 0, -1), key
        assert (ours.execute_command("DEBUG", "DIGEST-VALUE", key)
                == theirs.execute_command("DEBUG", "DIGEST-VALUE", key)), key


@pytest.mark.slow
def test_random_list_commands_match_redis(server, redis_server):
    ours = server.client(protocol=2)
    theirs = redis.Redis(port=redis_server.port)
    ours.flushall()
    theirs.flushall()
    rng = random.Random(2014)
    keys = ["l:%d" % i for i in range(3)] + ["big"]
    lengths: dict = {}
    try:
        for size in (-2, 4, -1, 1, 128, -5):
            for client in (ours, theirs):
                client.config_set("list-max-listpack-size", size)
                # a list of several chunks (> 8 KB) to work on
                client.rpush("big", *[b"element:%d" % i for i in range(1500)])
            for step in range(600):
                args = _args(rng, keys, lengths)
                mine, redis_reply = call(ours, *args), call(theirs, *args)
                assert mine == redis_reply, (size, step, args, mine, redis_reply)
                if step % 50 == 0:
                    lengths = {key: theirs.llen(key) for key in keys}
            assert [ours.object("encoding", k) for k in keys] == \
                [theirs.object("encoding", k) for k in keys]
            _same_lists(ours, theirs, keys)
            assert ours.dbsize() == theirs.dbsize()
            for client in (ours, theirs):
                client.delete(keys[0])
    finally:
        for client in (ours, theirs):
            client.config_set("list-max-listpack-size", -2)


def test_lists_resp3_and_transactions(server, redis_server):
    """LRANGE's reply is built from the packed entries: the same in RESP3,
    inside MULTI/EXEC, and for elements holding the format's own bytes."""
    elements = [b"\xff\x01", b"", b"\r\n$5\r\n", b"q" * 5000, b"\xff\xfe"] * 3
    ours3 = server.client(protocol=3)
    ours3.delete("bin")
    ours3.rpush("bin", *elements)
    assert ours3.lrange("bin", 0, -1) == elements
    assert ours3.lrange("bin", 2, 7) == elements[2:8]
    pipe = ours3.pipeline(transaction=True)
    pipe.lrange("bin", -4, -1)
    pipe.lindex("bin", 3)
    pipe.lpop("bin", 2)
    assert pipe.execute() == [elements[-4:], elements[3], elements[:2]]
    theirs = redis.Redis(port=redis_server.port)
    theirs.delete("bin")
    theirs.rpush("bin", *elements[2:])
    assert (ours3.execute_command("DEBUG", "DIGEST-VALUE", "bin")
            == theirs.execute_command("DEBUG", "DIGEST-VALUE", "bin"))
    assert ours3.object("encoding", "bin") == b"quicklist"
    assert ours3.type("bin") == b"list"
    assert 5000 < ours3.memory_usage("bin") < 20000
    assert ours3.copy("bin", "bin2") and ours3.rpush("bin2", "x") == len(elements) - 1
    assert ours3.llen("bin") == len(elements) - 2


def _fill(c) -> None:
    for i in range(50):
        c.rpush("small:%d" % i, *[b"e%d" % j for j in range(5)])
    c.rpush("bin", b"\xff", b"\xff\x01x", b"", b"\r\n$1\r\n")
    c.rpush("big", *[b"element:%d" % i for i in range(3000)])
    c.lpush("big", b"w" * 20000)
    c.linsert("big", "BEFORE", b"element:1500", b"middle")
    c.lset("big", 700, b"set")


@pytest.mark.parametrize("mode", RESTART_MODES)
def test_lists_survive_restart(tmp_path, mode):
    with restarted(tmp_path, mode, _fill, lambda c: c.lrange("big", 0, -1)) as (c, digest, big):
        assert c.lrange("big", 0, -1) == big and len(big) == 3002
        assert c.lrange("bin", 0, -1) == [b"\xff", b"\xff\x01x", b"", b"\r\n$1\r\n"]
        assert c.object("encoding", "small:7") == b"quicklist"
        assert_reload_keeps(c, digest)


def test_hot_pushes_and_pops_with_ttls(r):
    """LPUSH/RPUSH/LPOP/RPOP skip write_typed only while the database has no
    TTL: a list with one keeps it, an expired one is gone for them all."""
    r.flushdb()
    r.rpush("l", "a", "b", "c")
    r.pexpire("l", 60_000)
    assert r.lpush("l", "z") == 4 and r.rpop("l") == b"c" and r.lpop("l") == b"z"
    assert 0 < r.pttl("l") <= 60_000
    r.rpush("gone", "x")
    r.pexpire("gone", 1)
    time.sleep(0.05)
    assert r.lpop("gone") is None and r.rpop("gone") is None
    r.rpush("gone2", "x")
    r.pexpire("gone2", 1)
    time.sleep(0.05)
    assert r.rpush("gone2", "new") == 1 and r.pttl("gone2") == -1
    r.set("s", "v")
    for push in (r.lpush, r.rpush):
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            push("s", "x")
    r.persist("l")
    r.delete("gone2")   # no TTL left in the database: the inline path
    assert r.rpush("l", "q") == 3 and r.lpop("l") == b"a" and r.rpop("l") == b"q"
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.lpop("s")
