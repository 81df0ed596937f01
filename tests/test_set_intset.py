"""Intsets (small all-integer sets, keyspace/intset.py) against the real
redis-server 7.0: the same replies, the same OBJECT ENCODING, the same
digests, across the conversion to a hashtable (by a non-integer member, by
size, with CONFIG SET set-max-intset-entries), and through a snapshot and the
append-only log."""

import random

from compact_helpers import (call as _call, flushed_pair, own_server_fixture, same_members,
                             set_args, spop_both, srandmember_both, wait_for_rewrite)
from conftest import ServerProcess

# Members: mostly small integers (intsets), a few that only look like one
# (Redis's string2ll refuses them: they make a hashtable) and plain strings.
INTS = [b"%d" % n for n in range(-6, 25)] + [b"9223372036854775807", b"-9223372036854775808",
                                            b"70000", b"-2147483648", b"2147483648"]
NOT_INTS = [b"01", b"+1", b" 1", b"1 ", b"-0", b"9223372036854775808", b"x", b"abc", b"1.0", b""]
KEYS = [b"a", b"b", b"c", b"d"]


# A server of its own: the test changes set-max-intset-entries.
ours = own_server_fixture("intset")


def _member(rng) -> bytes:
    return rng.choice(NOT_INTS) if rng.random() < 0.04 else rng.choice(INTS)


def _members(rng, most: int = 6) -> list:
    return [_member(rng) for _ in range(rng.randint(1, most))]


def _all_ints(members) -> bool:
    return all(m not in NOT_INTS for m in members)


def _numeric(members) -> list:
    return sorted(members, key=int)


def _same_state(a, b, key) -> None:
    """Same members, encoding and digest for `key` on both servers."""
    ta, tb = _call(a, "TYPE", key), _call(b, "TYPE", key)
    assert ta == tb, key
    if ta != b"set":
        return
    ea, eb = a.object("encoding", key), b.object("encoding", key)
    # a small non-integer set is 7.2's listpack (test_set_listpack.py), 7.0's hashtable
    assert ea == eb or (ea, eb) == (b"listpack", b"hashtable"), (key, sorted(b.smembers(key)))
    ma, mb = _call(a, "SMEMBERS", key), _call(b, "SMEMBERS", key)
    if eb == b"intset":
        assert ma == mb == _numeric(mb), key   # an intset answers in numeric order
    else:
        assert sorted(ma) == sorted(mb), key
    assert _call(a, "DEBUG", "DIGEST-VALUE", key) == _call(b, "DEBUG", "DIGEST-VALUE", key)


def _step(rng, a, b, limit: int) -> None:
    """One random command on both servers (a: tenantkv, b: redis), checked."""
    op = rng.choice(["sadd", "sadd", "sadd", "srem", "sismember", "smismember", "scard",
                     "smove", "algebra", "algebra_store", "sintercard", "sscan", "spop",
                     "srandmember", "copy", "del"])
    key = rng.choice(KEYS)
    args = set_args(rng, op, key, KEYS, _member, _members)   # None: an op of this module's
    if op == "sadd":
        args = ("SADD", key, *_members(rng, rng.choice([3, 8, 25])))
    elif op == "copy":
        args = ("COPY", key, rng.choice(KEYS), *(["REPLACE"] if rng.random() < 0.5 else []))
    elif op == "del":
        if rng.random() < 0.5:
            return
        args = ("DEL", key)
    elif op == "algebra":
        name = rng.choice(["SINTER", "SUNION", "SDIFF"])
        keys = rng.sample(KEYS, rng.randint(1, 3))
        got, want = _call(a, name, *keys), _call(b, name, *keys)
        if isinstance(want, tuple):
            assert got == want
            return
        # SUNION/SDIFF build an intset while they can (sorted reply); SINTER
        # walks its smallest set, which is sorted when that is an intset.
        sortable = _all_ints(want) and len(want) <= limit
        ordered = sortable and (name != "SINTER" or want == _numeric(want))
        same_members(got, want, ordered)
        return
    elif op == "sscan":
        encoding = _call(b, "OBJECT", "ENCODING", key)
        got, want = _call(a, "SSCAN", key, 0), _call(b, "SSCAN", key, 0)
        if encoding == b"intset" or isinstance(want, tuple):
            assert got == want   # an intset whole, in order, cursor 0
        return
    elif op == "spop":
        popped = spop_both(rng, a, b, key, [None, 0, 1, 2, 5, 40, "most"])
        if popped is None:
            return
        count, got, before = popped
        if count is not None and count >= len(before):   # answered as SUNION key
            assert sorted(got) == sorted(before)
            if _all_ints(before) and len(before) <= limit:
                assert got == _numeric(before)
        _same_state(a, b, key)
        return
    elif op == "srandmember":
        drawn = srandmember_both(rng, a, b, key, [None, 0, 1, 3, 50, -1, -4, -60])
        if drawn is not None:
            count, got, want, members = drawn
            if count >= len(members):   # the whole set, in its own order
                same_members(got, want, b.object("encoding", key) == b"intset")
        return
    got, want = _call(a, *args), _call(b, *args)
    assert got == want, args
    for k in KEYS:
        _same_state(a, b, k)


def test_random_commands_match_redis(ours, redis_server):
    rng = random.Random(14)
    a, b = flushed_pair(ours, redis_server)
    try:
        for round_, limit in enumerate([512, 6, 20, 3, 512]):
            # Redis converts on the next write past the limit, never back: the
            # same holds after each change of the setting
            for client in (a, b):
                client.config_set("set-max-intset-entries", limit)
            for _ in range(500):
                _step(rng, a, b, limit)
            assert a.execute_command("DEBUG", "DIGEST") == b.execute_command("DEBUG", "DIGEST")
    finally:
        for client in (a, b):
            client.config_set("set-max-intset-entries", 512)


def test_conversions_match_redis(ours, redis_server):
    a, b = flushed_pair(ours, redis_server)
    steps = [
        ("SADD", "s", 3, 1, 2),               # intset
        ("SADD", "s", "-9223372036854775808"),
        ("SISMEMBER", "s", "01"),             # not the member 1
        ("SADD", "t", "01"),                  # a hashtable from the start
        ("SADD", "s", "+5"),                  # converts
        ("SREM", "s", "+5"),                  # stays a hashtable
        ("SADD", "u", *range(512)),           # intset at the limit
        ("SADD", "u", 512),                   # past it
        ("SUNIONSTORE", "v", "s"),            # all integers again: an intset
        ("SMOVE", "u", "w", 7),               # a new intset
        ("SMOVE", "t", "w", "01"),            # converts the destination
        ("SINTERSTORE", "x", "u", "u"),       # 512 integers: an intset
    ]
    for args in steps:
        assert _call(a, *args) == _call(b, *args), args
        for key in ("s", "t", "u", "v", "w", "x"):
            _same_state(a, b, key)
    assert a.execute_command("DEBUG", "DIGEST") == b.execute_command("DEBUG", "DIGEST")
    assert a.execute_command("DEBUG", "OBJECT", "v").split()[3] == b"encoding:intset"


def test_copy_is_independent(ours):
    a = ours.client()
    a.flushall()
    a.sadd("src", 1, 2, 3)
    assert a.copy("src", "dst") is True
    assert a.object("encoding", "dst") == b"intset"
    a.sadd("dst", 4)
    a.srem("src", 1)
    assert a.smembers("src") == {b"2", b"3"}
    assert a.smembers("dst") == {b"1", b"2", b"3", b"4"}


def test_memory_usage_of_an_intset_is_small(ours):
    a = ours.client()
    a.flushall()
    a.sadd("ints", *range(100))
    # (a hashtable: one member longer than set-max-listpack-value)
    a.sadd("strs", *("m%d" % i for i in range(100)), "x" * 65)
    ints = a.memory_usage("ints", samples=0)
    assert ints < 1200   # the array: 8 bytes a member, no object per member
    assert ints * 4 < a.memory_usage("strs", samples=0)
    # 2 bytes a member while they fit (Redis's int16 encoding), 8 once one needs it
    a.sadd("ints", 2 ** 40)
    assert a.memory_usage("ints", samples=0) - ints >= 100 * 6
    assert a.sismember("ints", 2 ** 40) and a.sismember("ints", 99) and a.scard("ints") == 101


def _fill(client):
    client.sadd("small", 5, -3, 9223372036854775807)
    client.sadd("big", *range(600))                        # a hashtable by size
    client.sadd("mixed", 1, 2, "x")
    client.sadd("shrunk", 1, 2, "x")
    client.srem("shrunk", "x")                             # a listpack of integers
    client.sadd("ttl", 4, 8)
    client.pexpire("ttl", 10 ** 9)
    client.select(3)
    client.sadd("other", 42)
    client.select(0)


def test_snapshot_and_log_round_trip(tmp_path):
    with ServerProcess(tmp_path, "--appendonly", "yes") as proc:
        r = proc.client(single_connection_client=True)
        _fill(r)
        digest = r.execute_command("DEBUG", "DIGEST")
        assert r.object("encoding", "shrunk") == b"listpack"   # 7.2's (7.0: hashtable)
        r.save()
    # the snapshot (appendonly off: the log is not read)
    with ServerProcess(tmp_path, "--appendonly", "no") as proc:
        r = proc.client()
        assert r.execute_command("DEBUG", "DIGEST") == digest
        assert r.object("encoding", "small") == b"intset"
        assert r.smembers("small") == {b"5", b"-3", b"9223372036854775807"}
        assert r.object("encoding", "big") == b"hashtable"
        assert r.object("encoding", "mixed") == b"listpack"
        # as Redis's RDB load: a set of few integers comes back an intset
        assert r.object("encoding", "shrunk") == b"intset"
        assert r.pttl("ttl") > 0
    # the log (its base and what was appended), and after a rewrite
    with ServerProcess(tmp_path, "--appendonly", "yes") as proc:
        r = proc.client()
        assert r.execute_command("DEBUG", "DIGEST") == digest
        r.sadd("small", 77)
        digest = r.execute_command("DEBUG", "DIGEST")
        assert r.execute_command("DEBUG", "RELOAD") == b"OK"
        assert r.execute_command("DEBUG", "DIGEST") == digest
        assert r.object("encoding", "small") == b"intset"
        r.bgrewriteaof()
        wait_for_rewrite(r)
        r.sadd("small", 78)
        digest = r.execute_command("DEBUG", "DIGEST")
    with ServerProcess(tmp_path, "--appendonly", "yes") as proc:
        r = proc.client()
        assert r.execute_command("DEBUG", "DIGEST") == digest
        assert r.object("encoding", "small") == b"intset"
        assert r.smembers("small") == {b"5", b"-3", b"9223372036854775807", b"77", b"78"}
