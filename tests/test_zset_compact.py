"""Compact small sorted sets (keyspace/zset.py's PackedZSet, Redis's listpack)
against the real redis-server 7.0: random sorted set commands on a few keys,
small and large, crossing zset-max-listpack-entries / -value (CONFIG SET
included), compared reply by reply, OBJECT ENCODING and DEBUG DIGEST-VALUE
included; and compact zsets written to a snapshot and to the log load back
equal (DEBUG DIGEST)."""

import random
import time

import pytest
import redis

from compact_helpers import (RESTART_MODES, assert_reload_keeps, call as _call, encodings,
                             flushed_pair, own_server_fixture, restarted)

SCORE_KEYS = ["z:0", "z:1", "z:2", "z:3"]
# Lex commands assume equal scores (Redis answers something undefined, and
# different per encoding, otherwise): these keys only ever get score 0.
LEX_KEYS = ["l:0", "l:1"]
MEMBERS = [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h", b"ab", b"", b"m" * 10,
           b"\xff", b"\xff\x01", b"x\xff\xfey", b"n" * 65, b"12"]
SCORES = ["0", "1", "2", "-1", "1.5", "0.1", "-0", "3e5", "inf", "-inf", "10", "2.5"]
BOUNDS = ["-inf", "+inf", "0", "(0", "1", "(1.5", "2", "(10", "-1", "5"]
LEX = ["-", "+", "[a", "(a", "[b", "(c", "[e", "(g", "[m", "[", "(\xff"]


# A server of its own: the tests change the zset-max-listpack-* settings.
ours = own_server_fixture("zset-compact")


def _rev_limit(rng, args: list) -> list:
    """REV, then LIMIT, each half the time."""
    if rng.random() < 0.5:
        args.append("REV")
    if rng.random() < 0.5:
        args += ["LIMIT", str(rng.randrange(0, 4)), str(rng.randrange(-1, 4))]
    return args


def _command(rng) -> list:
    """A random sorted set command (its arguments)."""
    key = rng.choice(SCORE_KEYS)
    lex = rng.choice(LEX_KEYS)
    any_key = rng.choice(SCORE_KEYS + LEX_KEYS)
    member = rng.choice(MEMBERS)
    name = rng.choice(
        ["zadd"] * 8 + ["zadd_lex"] * 4 + ["zadd_flags", "zincrby", "zrem", "zrem", "zscore",
         "zmscore", "zrank", "zrevrank", "zcard", "zcount", "zlexcount", "zrange", "zrange",
         "zrange_score", "zrange_lex", "zrangebyscore", "zrevrangebyscore", "zrangebylex",
         "zrevrangebylex", "zrevrange", "zremrangebyrank", "zremrangebyscore",
         "zremrangebylex", "zpop", "zpop", "bzpop", "zmpop", "bzmpop", "zrandmember",
         "zscan", "zsetop", "zsetop", "zintercard", "zrangestore", "encoding", "digest"])
    if name == "zadd":
        args = ["ZADD", key]
        for _ in range(rng.choice([1, 1, 2, 3, 20])):
            args += [rng.choice(SCORES), rng.choice(MEMBERS)]
        return args
    if name == "zadd_lex":
        args = ["ZADD", lex]
        for _ in range(rng.choice([1, 2, 3])):
            args += ["0", rng.choice(MEMBERS)]
        return args
    if name == "zadd_flags":
        flags = rng.sample(["NX", "XX", "GT", "LT", "CH"], rng.randrange(0, 3))
        if rng.random() < 0.3:
            return ["ZADD", key, *flags, "INCR", rng.choice(SCORES), member]
        return ["ZADD", key, *flags, rng.choice(SCORES), member, rng.choice(SCORES),
                rng.choice(MEMBERS)]
    if name == "zincrby":
        return ["ZINCRBY", key, rng.choice(SCORES), member]
    if name == "zrem":
        return ["ZREM", any_key] + rng.sample(MEMBERS, rng.choice([1, 2, 3, 10]))
    if name in ("zscore", "zrank", "zrevrank"):
        args = [name.upper(), any_key, member]
        return args
    if name == "zmscore":
        return ["ZMSCORE", any_key] + rng.sample(MEMBERS, rng.choice([3, 12]))
    if name == "zcard":
        return ["ZCARD", any_key]
    if name == "zcount":
        return ["ZCOUNT", any_key, rng.choice(BOUNDS), rng.choice(BOUNDS)]
    if name == "zlexcount":
        return ["ZLEXCOUNT", lex, rng.choice(LEX), rng.choice(LEX)]
    if name == "zrange":
        args = ["ZRANGE", any_key, str(rng.randrange(-8, 8)), str(rng.randrange(-8, 8))]
        if rng.random() < 0.5:
            args.append("REV")
        if rng.random() < 0.5:
            args.append("WITHSCORES")
        return args
    if name == "zrange_score":
        args = _rev_limit(rng, ["ZRANGE", any_key, rng.choice(BOUNDS), rng.choice(BOUNDS),
                                "BYSCORE"])
        if rng.random() < 0.5:
            args.append("WITHSCORES")
        return args
    if name == "zrange_lex":
        return _rev_limit(rng, ["ZRANGE", lex, rng.choice(LEX), rng.choice(LEX), "BYLEX"])
    if name in ("zrangebyscore", "zrevrangebyscore"):
        args = [name.upper(), any_key, rng.choice(BOUNDS), rng.choice(BOUNDS)]
        if rng.random() < 0.5:
            args.append("WITHSCORES")
        return args
    if name in ("zrangebylex", "zrevrangebylex"):
        return [name.upper(), lex, rng.choice(LEX), rng.choice(LEX)]
    if name == "zrevrange":
        return ["ZREVRANGE", any_key, str(rng.randrange(-5, 5)), str(rng.randrange(-5, 5)),
                "WITHSCORES"]
    if name == "zremrangebyrank":
        return ["ZREMRANGEBYRANK", any_key, str(rng.randrange(-6, 6)), str(rng.randrange(-6, 6))]
    if name == "zremrangebyscore":
        return ["ZREMRANGEBYSCORE", key, rng.choice(BOUNDS), rng.choice(BOUNDS)]
    if name == "zremrangebylex":
        return ["ZREMRANGEBYLEX", lex, rng.choice(LEX), rng.choice(LEX)]
    if name == "zpop":
        args = [rng.choice(["ZPOPMIN", "ZPOPMAX"]), any_key]
        if rng.random() < 0.5:
            args.append(str(rng.randrange(0, 4)))
        return args
    if name == "bzpop":
        return [rng.choice(["BZPOPMIN", "BZPOPMAX"]), "nokey", any_key, "0.01"]
    if name == "zmpop":
        return ["ZMPOP", "2", "nokey", any_key, rng.choice(["MIN", "MAX"]), "COUNT",
                str(rng.randrange(1, 4))]
    if name == "bzmpop":
        return ["BZMPOP", "0.01", "1", any_key, rng.choice(["MIN", "MAX"])]
    if name == "zrandmember":
        return ["ZRANDMEMBER", any_key] + rng.choice(
            [[], ["2"], ["-3"], ["2", "WITHSCORES"], ["50"]])
    if name == "zscan":
        return ["ZSCAN", any_key, "0", "COUNT", "1000"]
    if name == "zsetop":
        op = rng.choice(["ZUNION", "ZINTER", "ZDIFF", "ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"])
        sources = rng.sample(SCORE_KEYS + LEX_KEYS, 2)
        args = [op] + ([rng.choice(SCORE_KEYS)] if op.endswith("STORE") else []) + ["2", *sources]
        if op not in ("ZDIFF", "ZDIFFSTORE"):
            if rng.random() < 0.5:
                args += ["WEIGHTS", "2", rng.choice(["1", "-1", "0.5"])]
            if rng.random() < 0.5:
                args += ["AGGREGATE", rng.choice(["SUM", "MIN", "MAX"])]
        if not op.endswith("STORE") and rng.random() < 0.5:
            args.append("WITHSCORES")
        return args
    if name == "zintercard":
        return ["ZINTERCARD", "2", *rng.sample(SCORE_KEYS + LEX_KEYS, 2)]
    if name == "zrangestore":
        return ["ZRANGESTORE", rng.choice(SCORE_KEYS), any_key, str(rng.randrange(-5, 3)),
                str(rng.randrange(-3, 8))]
    if name == "encoding":
        return ["OBJECT", "ENCODING", any_key]
    return ["DEBUG", "DIGEST-VALUE", any_key]


def _members_of(client, key) -> dict:
    """member -> score (a float) of `key`."""
    reply = client.execute_command("ZRANGE", key, "0", "-1", "WITHSCORES")
    if reply and isinstance(reply[0], list):   # redis-py pairs WITHSCORES replies itself
        return {m: float(s) for m, s in reply}
    return {m: float(s) for m, s in zip(reply[::2], reply[1::2])}


def _check(args, ours_reply, theirs_reply, theirs) -> None:
    name = args[0]
    if name == "ZRANDMEMBER" and not isinstance(theirs_reply, tuple):
        # random: as many members, drawn from the set (with their scores)
        members = _members_of(theirs, args[1])
        if theirs_reply is None or isinstance(theirs_reply, bytes):
            assert ours_reply == theirs_reply or ours_reply in members, args
            return
        assert len(ours_reply) == len(theirs_reply), (args, ours_reply, theirs_reply)
        if "WITHSCORES" in args:
            pairs = ours_reply if ours_reply and isinstance(ours_reply[0], list) \
                else zip(ours_reply[::2], ours_reply[1::2])
            for m, s in pairs:
                assert members[m] == float(s), args
        else:
            assert set(ours_reply) <= set(members), args
        return
    if name == "ZSCAN" and not isinstance(theirs_reply, tuple):
        assert ours_reply[0] == theirs_reply[0] == b"0", args
        if theirs.object("encoding", args[1]) == b"listpack":
            assert ours_reply == theirs_reply, args   # whole, in listpack order
        else:
            pairs = lambda r: sorted(zip(r[1][::2], r[1][1::2]))  # noqa: E731
            assert pairs(ours_reply) == pairs(theirs_reply), args
        return
    assert ours_reply == theirs_reply, (args, ours_reply, theirs_reply)


def _same_state(ours, theirs, keys) -> None:
    for key in keys:
        assert ours.execute_command("OBJECT", "ENCODING", key) \
            == _call(theirs, "OBJECT", "ENCODING", key), key
        assert ours.execute_command("DEBUG", "DIGEST-VALUE", key) \
            == theirs.execute_command("DEBUG", "DIGEST-VALUE", key), key


@pytest.mark.slow
def test_random_zset_commands_match_redis(ours, redis_server):
    clients = mine, theirs = flushed_pair(ours, redis_server)
    rng = random.Random(1414)
    keys = SCORE_KEYS + LEX_KEYS
    history = []
    try:
        for entries, value in [(128, 64), (4, 64), (8, 1), (128, 64), (0, 64), (16, 10),
                               (128, 64)]:
            for client in clients:
                client.config_set("zset-max-listpack-entries", entries)
                client.config_set("zset-max-ziplist-value", value)   # the alias
            for _ in range(800):
                args = _command(rng)
                _check(args, _call(mine, *args), _call(theirs, *args), theirs)
                # the whole data set after every command: a divergence shows where it starts
                assert mine.execute_command("DEBUG", "DIGEST") \
                    == theirs.execute_command("DEBUG", "DIGEST"), (
                        args, history[-5:], entries, value,
                        [(c.execute_command("ZRANGE", k, 0, -1, "WITHSCORES"),
                          c.execute_command("OBJECT", "ENCODING", k))
                         for k in keys for c in clients])
                history.append(args)
            # converted sets stay skiplist under raised limits; new ones start compact
            _same_state(mine, theirs, keys)
            assert mine.dbsize() == theirs.dbsize()
            dropped = rng.sample(keys, 3)
            for client in clients:
                client.delete(*dropped)
    finally:
        for client in clients:
            client.config_set("zset-max-listpack-entries", 128)
            client.config_set("zset-max-listpack-value", 64)


def test_large_zsets_match_redis(ours, redis_server):
    """Big sets (past 128) built in one ZADD and grown one by one, then read
    and trimmed, the same on both; a STORE result takes the form of its size."""
    clients = mine, theirs = flushed_pair(ours, redis_server)
    rng = random.Random(7)
    pairs = []
    for i in range(300):
        pairs += [str(rng.randrange(-50, 50) / 4), "m%03d" % i]
    grow = [(str(rng.randrange(100)), "g%d" % i) for i in range(140)]
    for client in clients:
        client.execute_command("ZADD", "big", *pairs[:40])
        client.execute_command("ZADD", "big", *pairs)
        for score, member in grow:
            client.execute_command("ZADD", "grown", score, member)
    for args in (["OBJECT", "ENCODING", "big"], ["OBJECT", "ENCODING", "grown"],
                 ["ZRANGE", "big", "0", "-1", "WITHSCORES"],
                 ["ZRANGE", "big", "(-3", "4", "BYSCORE", "LIMIT", "5", "20", "WITHSCORES"],
                 ["ZREVRANGE", "grown", "3", "30", "WITHSCORES"],
                 ["ZRANK", "big", "m150"], ["ZREVRANK", "grown", "g7"], ["ZCOUNT", "big", "0", "5"],
                 ["ZRANGESTORE", "small", "big", "0", "99"], ["OBJECT", "ENCODING", "small"],
                 ["ZRANGESTORE", "big2", "big", "0", "199"], ["OBJECT", "ENCODING", "big2"],
                 ["ZUNIONSTORE", "u", "2", "big", "grown"], ["OBJECT", "ENCODING", "u"],
                 ["ZINTERSTORE", "i", "2", "big", "small"], ["OBJECT", "ENCODING", "i"],
                 ["ZREMRANGEBYRANK", "big", "10", "250"], ["OBJECT", "ENCODING", "big"],
                 ["ZPOPMIN", "grown", "5"], ["ZPOPMAX", "big", "3"], ["ZCARD", "big"],
                 ["ZMSCORE", "big", "m001", "m299", "nope"]):
        assert _call(mine, *args) == _call(theirs, *args), args
    _same_state(mine, theirs, ["big", "grown", "small", "big2", "u", "i"])


def test_listpack_conversion_keeps_ttl_and_blocked_clients_get_served(ours):
    r = ours.client()
    r.flushall()
    r.zadd("z", {"a": 1, "b": 2})
    r.expire("z", 100)
    r.zadd("z", {"c": 3})
    assert r.object("encoding", "z") == b"listpack" and 0 < r.ttl("z") <= 100
    r.zadd("z", {"x" * 65: 4})   # past zset-max-listpack-value: converted for good
    assert r.object("encoding", "z") == b"skiplist" and 0 < r.ttl("z") <= 100
    r.zrem("z", "x" * 65)
    assert r.object("encoding", "z") == b"skiplist"
    # COPY of a listpack is independent of the original
    r.zadd("p", {"a": 1})
    assert r.copy("p", "p2")
    r.zadd("p2", {"b": 2})
    assert r.zcard("p") == 1 and r.object("encoding", "p2") == b"listpack"
    assert r.type("p") == b"zset"
    assert 0 < r.memory_usage("p") < r.memory_usage("z")
    assert r.execute_command("DEBUG", "OBJECT", "p").find(b"encoding:listpack") >= 0
    for wrong in (lambda: r.get("p"), lambda: r.lpush("p", "x"), lambda: r.strlen("p")):
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            wrong()
    # a client blocked on a missing key is served by the ZADD that makes a listpack
    waiter = ours.client()
    waiter.client_setname("waiter")
    reply = []
    import threading
    thread = threading.Thread(target=lambda: reply.append(waiter.bzpopmin("w", 10)))
    thread.start()
    deadline = time.time() + 10
    while b"waiter" not in b"".join(c["name"].encode() for c in r.client_list()
                                    if c.get("cmd") == "bzpopmin") and time.time() < deadline:
        time.sleep(0.02)
    r.zadd("w", {"m": 5})
    thread.join(10)
    assert reply == [(b"w", b"m", 5.0)]
    assert r.exists("w") == 0


def _fill(c, n=50):
    for i in range(n):
        c.zadd("small:%d" % i, {"member%d" % j: j + i / 4 for j in range(5)})
    c.zadd("bin", {b"\xff": 1.5, b"\xff\x01": -2, b"": float("inf")})
    c.zadd("big", {"m%d" % j: j % 7 for j in range(300)})
    c.zadd("wide", {"w" * 100: 1})
    c.zadd("ttl", {"a": 1})
    c.expire("ttl", 1000)


@pytest.mark.parametrize("mode", RESTART_MODES)
def test_compact_zsets_survive_restart(tmp_path, mode):
    keys = ("small:7", "bin", "big", "wide", "ttl")
    with restarted(tmp_path, mode, _fill, lambda c: encodings(c, keys)) as (c, digest, before):
        assert before == [b"listpack", b"listpack", b"skiplist", b"skiplist", b"listpack"]
        assert encodings(c, keys) == before
        assert c.zrange("bin", 0, -1, withscores=True) == [
            (b"\xff\x01", -2.0), (b"\xff", 1.5), (b"", float("inf"))]
        assert c.ttl("ttl") > 0
        assert_reload_keeps(c, digest)


def test_packed_size_cap_under_raised_limits(ours):
    """Limits raised far past the defaults: a zset whose buffer would pass
    PACKED_MAX_BYTES (256 KB) becomes a skiplist (Redis would keep a listpack
    up to 1 GB; quadratic copies here), its data intact."""
    r = ours.client()
    r.flushall()
    try:
        r.config_set("zset-max-listpack-entries", 100000)
        r.config_set("zset-max-listpack-value", 100000)
        r.zadd("capped", {"%d" % i + "v" * 60000: i for i in range(4)})
        assert r.object("encoding", "capped") == b"listpack"   # 240 KB: still packed
        r.zadd("capped", {"4" + "w" * 60000: 4})
        assert r.object("encoding", "capped") == b"skiplist"
        assert r.zcard("capped") == 5 and r.zscore("capped", "4" + "w" * 60000) == 4
    finally:
        r.config_set("zset-max-listpack-entries", 128)
        r.config_set("zset-max-listpack-value", 64)
