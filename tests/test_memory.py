"""MEMORY USAGE: an estimate of a key's size, for every type, sampled as Redis
samples (the reply shape and the error texts are compared with redis-server in
tests/compat/sessions/memory.txt; its isolation between tenants in
tests/test_isolation.py)."""

import time

import pytest
import redis

from tenantkv.commands.memory import DEFAULT_SAMPLES, value_size
from tenantkv.keyspace.quicklist import QuickList
from tenantkv.keyspace.zset import ZSet


def usage(r, key, *options):
    return r.execute_command("MEMORY", "USAGE", key, *options)


def test_every_type_has_a_size_above_its_data(r):
    r.set("string", "x" * 100)
    r.set("int", 12345)
    r.hset("hash", mapping={"f%d" % i: "v" * 50 for i in range(20)})
    r.rpush("list", *["e" * 50 for _ in range(20)])
    r.sadd("set", *["m%03d" % i + "x" * 50 for i in range(20)])
    r.zadd("zset", {"m%03d" % i + "x" * 50: i for i in range(20)})
    sizes = {key: usage(r, key) for key in ("string", "int", "hash", "list", "set", "zset")}
    assert all(isinstance(size, int) for size in sizes.values()), sizes
    assert sizes["string"] > 100 and sizes["int"] > 5
    for key in ("hash", "list", "set", "zset"):
        assert sizes[key] > 20 * 50, (key, sizes[key])


def test_bigger_values_are_bigger(r):
    r.set("small", "x")
    r.set("big", "x" * 10_000)
    assert usage(r, "big") - usage(r, "small") >= 9_990
    r.rpush("short", "a")
    r.rpush("long", *["a"] * 1000)
    # packed as a listpack: 2 bytes of marker + 1 of data an element (Redis: 2)
    assert usage(r, "long") > usage(r, "short") + 1000 * 2
    # the key's name counts too
    r.set("k" * 1000, "x")
    assert usage(r, "k" * 1000) >= usage(r, "small") + 990


def test_missing_and_expired_keys_are_nil(r, r3):
    assert usage(r, "nosuch") is None
    assert usage(r3, "nosuch") is None
    r.set("gone", "x", px=1)
    time.sleep(0.01)
    assert usage(r, "gone") is None
    r.set("other-db", "x")
    r.execute_command("SELECT", 1)
    try:
        assert usage(r, "other-db") is None
    finally:
        r.execute_command("SELECT", 0)


def test_samples_estimate_from_the_first_elements(r):
    # five small fields first, then big ones: the default estimate (5 samples)
    # sees only small fields; SAMPLES 0 measures every one
    r.hset("h", mapping={"small%d" % i: "v" for i in range(5)})
    r.hset("h", mapping={"big%d" % i: "v" * 1000 for i in range(100)})
    default = usage(r, "h")
    assert usage(r, "h", "SAMPLES", DEFAULT_SAMPLES) == default
    every = usage(r, "h", "SAMPLES", 0)
    assert every > default + 90 * 1000
    assert usage(r, "h", "SAMPLES", 10**6) == every
    assert default <= usage(r, "h", "SAMPLES", 50) <= every
    # the last SAMPLES given counts, as in Redis
    assert usage(r, "h", "samples", 0, "SAMPLES", 5) == default


@pytest.mark.parametrize("options, error", [
    (("SAMPLES",), "syntax error"),
    (("SAMPLES", "-1"), "syntax error"),
    (("SAMPLES", "x"), "value is not an integer or out of range"),
    (("SAMPLES", "9223372036854775808"), "value is not an integer or out of range"),
    (("FOO",), "syntax error"),
    (("SAMPLES", "1", "FOO"), "syntax error"),
])
def test_bad_options_fail_before_the_key_is_looked_up(r, options, error):
    r.set("k", "v")
    for key in ("k", "nosuch"):
        with pytest.raises(redis.ResponseError, match="^%s$" % error):
            usage(r, key, *options)


def test_subcommand_errors_and_help(r):
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'memory|usage'"):
        r.execute_command("MEMORY", "USAGE")
    with pytest.raises(redis.ResponseError, match=r"unknown subcommand 'NOSUCH'. Try MEMORY HELP."):
        r.execute_command("MEMORY", "NOSUCH")
    lines = r.execute_command("MEMORY", "HELP")
    assert lines[0].startswith(b"MEMORY <subcommand>")
    assert any(line.startswith(b"USAGE <key>") for line in lines)
    assert b"STATS" in lines


def test_memory_usage_in_a_transaction(r):
    r.set("k", "v")
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("MEMORY", "USAGE", "k")
    pipe.execute_command("MEMORY", "USAGE", "nosuch")
    size, missing = pipe.execute()
    assert size > 0 and missing is None


def test_value_size_samples_every_collection_type():
    members = [b"%04d" % i + b"x" * (10 if i < 5 else 500) for i in range(50)]
    zset = ZSet()
    for i, member in enumerate(members):
        zset.add(member, float(i))
    # a list is sampled by chunks (as Redis samples quicklist nodes): its first
    # chunks hold small elements, the later ones an element of 3 KB each
    lst = QuickList([b"a" * 10] * 400 + [b"x" * 3000] * 45)
    for value in (dict.fromkeys(members, b"v"), set(members), lst, zset):
        sampled = value_size(value)
        every = value_size(value, None)
        assert sampled > 0 and every > 0
        if type(value) is not set:   # a set's iteration order is its hash order
            assert every > sampled + 40 * 400, type(value)
    assert value_size(b"abc") == value_size(b"abc", None)
    assert value_size(dict()) > 0 and value_size(QuickList()) > 0
