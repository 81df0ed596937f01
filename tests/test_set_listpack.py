"""Listpack sets (small sets of any members, keyspace/packedset.py's
PackedSet, Redis 7.2's listpack encoding) against the real redis-server 7.0:
random set commands (and the zset commands that read sets) on a few keys
with members mixing integers, strings, 0xff bytes and long ones, small and
large sets, crossing set-max-listpack-entries / -value and
set-max-intset-entries (CONFIG SET included), compared reply by reply (member
order aside where Redis's is a hash order), with DEBUG DIGEST-VALUE; the
conversions follow 7.2's t_set.c (7.0 has no listpack sets, so those are
checked against rules here); and listpack sets written to a snapshot and to
the log load back equal (DEBUG DIGEST)."""

import random

import pytest
import redis

from compact_helpers import (RESTART_MODES, assert_reload_keeps, call as _call,
                             encodings as _encodings, flushed_pair, own_server_fixture,
                             raw_client as _raw, restarted, same_members, set_args, spop_both,
                             srandmember_both)

INTS = [b"%d" % n for n in range(-3, 30)] + [b"9223372036854775807"]
STRS = [b"m%d" % n for n in range(30)] + [b"01", b"+1", b"", b"\xff", b"\xff\x01", b"\xff\xfe",
                                          b"a\xffb", b"\xff\x01m1\xff\x01", b"x" * 64, b"y" * 65]
KEYS = [b"a", b"b", b"c", b"d"]


# A server of its own: the tests change the set-max-* settings.
ours = own_server_fixture("listpack")


def _member(rng) -> bytes:
    return rng.choice(INTS) if rng.random() < 0.4 else rng.choice(STRS)


def _members(rng) -> list:
    most = rng.choice([3, 3, 8, 40, 160])   # 160: past set-max-listpack-entries at once
    return [_member(rng) for _ in range(rng.randint(1, most))]


class Limits:
    def __init__(self, intset: int, entries: int, value: int) -> None:
        self.intset, self.entries, self.value = intset, entries, value



# Keys that held a set when the limits last changed: a listpack made under
# the old limits stays one until a write adds to it (as Redis), so the limits
# do not bound them until they are deleted or replaced.
CARRIED: set = set()


def _check_state(a, b, key, limits: Limits, fresh: bool = False) -> None:
    """Same members and digest for `key` on both servers; the encoding is
    7.0's where 7.0 has it (intset), else a listpack only within the limits.
    `fresh`: the key was just made by SADD of few short members, which 7.2
    makes a listpack."""
    ta, tb = _call(a, "TYPE", key), _call(b, "TYPE", key)
    assert ta == tb, key
    if tb != b"set":
        CARRIED.discard(key)
        return
    ma, mb = _call(a, "SMEMBERS", key), _call(b, "SMEMBERS", key)
    assert sorted(ma) == sorted(mb), key
    ea, eb = a.object("encoding", key), b.object("encoding", key)
    if eb == b"intset":
        assert ea == b"intset" and ma == mb, key   # numeric order
    else:
        assert ea in (b"listpack", b"hashtable"), (key, ea)
    if ea == b"listpack" and key not in CARRIED:
        assert len(mb) <= limits.entries and max(map(len, mb)) <= limits.value, key
        assert _call(a, "SSCAN", key, 0, "COUNT", 1) == [b"0", ma], key   # whole, in order
    if fresh and len(mb) <= limits.entries and max(map(len, mb)) <= limits.value:
        assert ea in (b"listpack", b"intset"), key
    assert _call(a, "DEBUG", "DIGEST-VALUE", key) == _call(b, "DEBUG", "DIGEST-VALUE", key), key


def _step(rng, a, b, limits: Limits) -> None:
    """One random command on both servers (a: tenantkv, b: redis 7.0), checked."""
    op = rng.choice(["sadd", "sadd", "sadd", "sadd", "srem", "srem", "sismember",
                     "smismember", "scard", "smembers", "smove", "algebra", "algebra_store",
                     "sintercard", "sscan", "spop", "spop", "srandmember", "zsetop", "copy",
                     "del", "expire"])
    key = rng.choice(KEYS)
    fresh = False
    args = set_args(rng, op, key, KEYS, _member, _members)   # None: an op of this module's
    if op == "sadd":
        members = _members(rng)
        fresh = b.exists(key) == 0 and len(members) <= limits.entries
        args = ("SADD", key, *members)
    elif op == "smembers":
        same_members(_call(a, "SMEMBERS", key), _call(b, "SMEMBERS", key))
        return
    elif op == "copy":
        target = rng.choice(KEYS)
        args = ("COPY", key, target, *(["REPLACE"] if rng.random() < 0.5 else []))
        if key in CARRIED:
            CARRIED.add(target)
    elif op == "del":
        if rng.random() < 0.6:
            return
        args = ("DEL", key)
    elif op == "expire":
        args = ("EXPIRE", key, 1000)
    elif op == "algebra":
        name = rng.choice(["SINTER", "SUNION", "SDIFF"])
        keys = rng.sample(KEYS, rng.randint(1, 3))
        same_members(_call(a, name, *keys), _call(b, name, *keys))
        return
    elif op == "zsetop":
        name = rng.choice(["ZUNION", "ZINTER", "ZDIFF"])
        keys = rng.sample(KEYS, rng.randint(1, 3))
        args = (name, len(keys), *keys, "WITHSCORES")
        assert _call(a, *args) == _call(b, *args), args   # by score, then member: one order
        return
    elif op == "sscan":
        got, want = _call(a, "SSCAN", key, 0, "COUNT", 1000), _call(b, "SSCAN", key, 0, "COUNT", 1000)
        if isinstance(want, tuple):
            assert got == want
        else:
            assert got[0] == want[0] == b"0" and sorted(got[1]) == sorted(want[1])
        return
    elif op == "spop":
        if spop_both(rng, a, b, key, [None, 0, 1, 3, 500, "most"]) is not None:
            _check_state(a, b, key, limits)
        return
    elif op == "srandmember":
        srandmember_both(rng, a, b, key, [None, 0, 1, 3, 500, -1, -7])
        return
    got, want = _call(a, *args), _call(b, *args)
    assert got == want, args
    for k in KEYS:
        _check_state(a, b, k, limits, fresh and k == key)


@pytest.mark.slow   # ~12 s: 3,600 commands on two servers
def test_random_commands_match_redis(ours, redis_server):
    rng = random.Random(72)
    a, b = flushed_pair(ours, redis_server)
    try:
        for limits in [Limits(512, 128, 64), Limits(512, 5, 64), Limits(6, 20, 3),
                       Limits(512, 128, 64), Limits(3, 1, 0), Limits(512, 40, 10)]:
            # converted sets stay converted under new limits; new ones follow them
            for client in (a, b):
                client.config_set("set-max-intset-entries", limits.intset)
            a.config_set("set-max-listpack-entries", limits.entries)   # 7.0 has none
            a.config_set("set-max-listpack-value", limits.value)
            CARRIED.update(k for k in KEYS if b.type(k) == b"set")
            for _ in range(600):
                _step(rng, a, b, limits)
            assert a.execute_command("DEBUG", "DIGEST") == b.execute_command("DEBUG", "DIGEST")
            encodings = {a.object("encoding", k) for k in KEYS if a.type(k) == b"set"}
    finally:
        for client in (a, b):
            client.config_set("set-max-intset-entries", 512)
        a.config_set("set-max-listpack-entries", 128)
        a.config_set("set-max-listpack-value", 64)
    assert encodings   # (the last round left sets behind)


def test_conversions_follow_redis_7_2(ours):
    """7.2's rules (t_set.c: setTypeCreate's size hint, setTypeAddAux's
    intset -> listpack -> hashtable, the STORE forms, SPOP's case 3), one by one."""
    r = ours.client()
    r.flushall()
    r.sadd("s", "b", "a", "c")
    assert r.object("encoding", "s") == b"listpack"
    assert r.smembers("s") == {b"a", b"b", b"c"}
    assert _raw(ours.port).execute_command("SMEMBERS", "s") == [b"b", b"a", b"c"]   # insertion order
    r.sadd("s", "x" * 64)
    assert r.object("encoding", "s") == b"listpack"   # at set-max-listpack-value
    r.sadd("s", "y" * 65)
    assert r.object("encoding", "s") == b"hashtable"
    r.srem("s", "y" * 65, "x" * 64)
    assert r.object("encoding", "s") == b"hashtable"   # never back
    # an intset that gets a non-integer: a listpack while it stays small
    r.sadd("i", 3, 1, 2)
    assert r.object("encoding", "i") == b"intset"
    r.sadd("i", "z", 0)
    assert r.object("encoding", "i") == b"listpack"
    assert _raw(ours.port).execute_command("SMEMBERS", "i") == [b"1", b"2", b"3", b"z", b"0"]
    r.srem("i", "z")
    assert r.object("encoding", "i") == b"listpack"   # integers only, still a listpack
    r.sadd("i127", *range(127), "a")
    assert r.object("encoding", "i127") == b"listpack" and r.scard("i127") == 128
    r.sadd("i128", *range(128))
    r.sadd("i128", "a")
    assert r.object("encoding", "i128") == b"hashtable"   # the intset had 128 already
    r.sadd("ilong", 1, 2)
    r.sadd("ilong", "w" * 65)
    assert r.object("encoding", "ilong") == b"hashtable"
    # SADD's size hint: more arguments than set-max-listpack-entries, even repeated
    r.sadd("hint", *["same"] * 129)
    assert r.object("encoding", "hint") == b"hashtable" and r.scard("hint") == 1
    r.sadd("hint2", "a")
    r.sadd("hint2", *["a"] * 129)
    assert r.object("encoding", "hint2") == b"hashtable"
    r.sadd("big", *("m%d" % i for i in range(128)))
    assert r.object("encoding", "big") == b"listpack"
    r.sadd("big", "m128")
    assert r.object("encoding", "big") == b"hashtable"
    # SMOVE makes its destination as SADD of one member
    r.smove("s", "moved", "a")
    r.sadd("ints", 7)
    r.smove("ints", "moved2", 7)
    assert _encodings(r, ["moved", "moved2"]) == [b"listpack", b"intset"]
    # the STORE forms: intset if all integers, else listpack if small, else hashtable
    r.sadd("p", "a", "b", 1)
    r.sadd("q", "b", 1, 2)
    assert r.sinterstore("st1", "p", "q") == 2 and r.sunionstore("st2", "p", "q") == 4
    r.srem("q", "b")
    assert r.sinterstore("st3", "p", "q") == 1
    assert r.sunionstore("st4", "big", "p") == 132
    assert _encodings(r, ["st1", "st2", "st3", "st4"]) == [b"listpack", b"listpack", b"intset",
                                                            b"hashtable"]
    # SPOP with a count leaving a fifth or less: the rest rebuilt, a listpack when small
    assert len(r.spop("st4", 130)) == 130
    assert r.object("encoding", "st4") == b"listpack" and r.scard("st4") == 2
    # CONFIG SET, as 7.2 has the settings
    try:
        assert r.config_get("set-max-listpack-*") == {"set-max-listpack-entries": "128",
                                                      "set-max-listpack-value": "64"}
        r.config_set("set-max-listpack-entries", 3)
        r.config_set("set-max-listpack-value", 5)
        r.sadd("e", "a", "b", "c")
        r.sadd("v", "abcde")
        assert _encodings(r, ["e", "v"]) == [b"listpack", b"listpack"]
        r.sadd("e", "d")
        r.sadd("v", "abcdef")
        assert _encodings(r, ["e", "v"]) == [b"hashtable", b"hashtable"]
        r.sadd("w", 123456, 1)
        r.sadd("w", "x")   # an intset member longer than -value: a hashtable
        assert r.object("encoding", "w") == b"hashtable"
        with pytest.raises(redis.ResponseError):
            r.config_set("set-max-listpack-entries", "many")
    finally:
        r.config_set("set-max-listpack-entries", 128)
        r.config_set("set-max-listpack-value", 64)


def test_listpack_set_behaves_as_a_set(ours):
    r = ours.client()
    r.flushall()
    members = [b"", b"\xff", b"\xff\x01", b"\xff\xfe", b"a\xffb", b"\xff\x01a\xff\x01", b"a"]
    assert r.sadd("bin", *members) == len(members)
    assert r.object("encoding", "bin") == b"listpack"
    assert r.smembers("bin") == set(members)
    assert r.smismember("bin", [*members, b"\xff\xff", b"b", b"\x01"]) == [1] * 7 + [0, 0, 0]
    assert r.srem("bin", b"\xff\x01", b"nope") == 1
    assert not r.sismember("bin", b"\xff\x01") and r.sismember("bin", b"\xff\x01a\xff\x01")
    assert r.scard("bin") == 6
    # a member that only looks like a piece of the buffer is new (the
    # repeated-SADD shortcut): the empty string; the escaped form of 0xff
    r.sadd("pieces", "a", "b")
    assert r.sadd("pieces", "", "a") == 1 and r.sadd("pieces", "", "b") == 0
    r.sadd("escaped", b"\xff", b"x")
    assert r.sadd("escaped", b"\xff\xfe", b"x") == 1 and r.sadd("escaped", b"\xff", b"x") == 0
    assert r.smembers("escaped") == {b"\xff", b"\xff\xfe", b"x"}
    r.sadd("run", "a", "b", "c")   # a member holding a marker is not two members
    assert r.sadd("run", b"b\xff\x01c") == 1 and r.sadd("run", b"a", b"b\xff\x01c") == 0
    assert r.sadd("run", "c", "a") == 0 and r.sadd("run", "a", "b", "c") == 0
    # a conversion keeps the TTL; COPY keeps the form and is independent
    r.sadd("ttl", "a", "b")
    r.expire("ttl", 100)
    r.sadd("ttl", "z" * 100)
    assert r.object("encoding", "ttl") == b"hashtable" and 0 < r.ttl("ttl") <= 100
    assert r.copy("bin", "bin2")
    r.sadd("bin2", "more")
    assert r.object("encoding", "bin2") == b"listpack" and r.scard("bin") == 6
    assert r.type("bin") == b"set"
    assert b"encoding:listpack" in r.execute_command("DEBUG", "OBJECT", "bin")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.lpush("bin", "x")
    r.set("str", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.smove("bin", "str", "a")
    # popping every member one by one gives each once, then deletes the key
    assert {r.spop("bin") for _ in range(6)} == set(members) - {b"\xff\x01"}
    assert r.exists("bin") == 0


def test_memory_usage_of_a_listpack_set_is_small(ours):
    r = ours.client()
    r.flushall()
    r.sadd("small", *("member%d" % i for i in range(5)))
    r.sadd("table", *("member%d" % i for i in range(5)), "x" * 65)
    small = r.memory_usage("small", samples=0)
    assert r.object("encoding", "small") == b"listpack"
    assert small < 250   # the object, one buffer: no set, no object per member
    assert small * 3 < r.memory_usage("table", samples=0)


def _fill(c, n=30):
    for i in range(n):
        c.sadd("small:%d" % i, *("m%d" % (i * j) for j in range(5)))
    c.sadd("mixed", 1, 2, "x")
    c.sadd("ints", 1, 2, "x")
    c.srem("ints", "x")                          # a listpack of integers: loads as an intset
    c.sadd("bin", b"\xff", b"\xff\x01", b"")
    c.sadd("big", *("m%d" % j for j in range(600)))
    c.sadd("wide", "w" * 100)
    c.sadd("ttl", "a", "b")
    c.pexpire("ttl", 10 ** 9)
    c.select(3)
    c.sadd("other", "a")
    c.select(0)


KEYS_SEEN = ("small:7", "mixed", "ints", "bin", "big", "wide", "ttl")


@pytest.mark.parametrize("mode", RESTART_MODES)
def test_listpack_sets_survive_restart(tmp_path, mode):
    def after_persist(c):
        if mode.startswith("aof-rewrite"):
            c.sadd("mixed", "after")   # appended to the log after the rewrite

    with restarted(tmp_path, mode, _fill, lambda c: _encodings(c, KEYS_SEEN),
                   after_persist) as (c, digest, encodings):
        assert encodings == [b"listpack", b"listpack", b"listpack", b"listpack", b"hashtable",
                             b"hashtable", b"listpack"]
        loaded = _encodings(c, KEYS_SEEN)
        if mode == "aof-log":   # the replayed SADDs and SREM make what they made
            assert loaded == encodings
        else:   # a set of integers loaded or rewritten (as SADD) is an intset, as 7.2's
            assert loaded == encodings[:2] + [b"intset"] + encodings[3:]
        assert c.smembers("bin") == {b"\xff", b"\xff\x01", b""}
        assert c.pttl("ttl") > 0
        assert_reload_keeps(c, digest)
        assert c.object("encoding", "small:7") == b"listpack"
