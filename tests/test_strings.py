"""String commands through redis-py against the real server."""

import time

import pytest
import redis


def test_set_get_roundtrip_binary(r):
    value = bytes(range(256))
    assert r.set("k", value) is True
    assert r.get("k") == value
    assert r.get("missing") is None


def test_set_options(r):
    assert r.set("k", "v", nx=True) is True
    assert r.set("k", "w", nx=True) is None
    assert r.set("nokey", "v", xx=True) is None
    assert r.set("k", "w", xx=True, get=True) == b"v"
    assert r.set("k", "x", ex=100) is True
    assert 99 <= r.ttl("k") <= 100
    assert r.set("k", "y", keepttl=True) is True
    assert r.ttl("k") > 0
    assert r.set("k", "z") is True
    assert r.ttl("k") == -1
    r.set("k", "z", pxat=int(time.time() * 1000) + 50000)
    assert 49 <= r.ttl("k") <= 50


@pytest.mark.parametrize("args, message", [
    (["k", "v", "EX", "0"], "invalid expire time in 'set' command"),
    (["k", "v", "EX", "abc"], "value is not an integer or out of range"),
    (["k", "v", "NX", "XX"], "syntax error"),
    (["k", "v", "EX", "10", "PX", "100"], "syntax error"),
    (["k", "v", "KEEPTTL", "EX", "10"], "syntax error"),
    (["k", "v", "BOGUS"], "syntax error"),
])
def test_set_errors(r, args, message):
    with pytest.raises(redis.ResponseError, match=message):
        r.execute_command("SET", *args)


def test_counters_strict_integers(r):
    assert r.incr("n") == 1
    assert r.incrby("n", 10) == 11
    assert r.decrby("n", 20) == -9
    assert r.decr("n") == -10
    for bad in [" 1", "+1", "01", "1_0", "1.0", "", "9223372036854775808"]:
        r.set("bad", bad)
        with pytest.raises(redis.ResponseError, match="not an integer or out of range"):
            r.incr("bad")
    r.set("max", "9223372036854775807")
    with pytest.raises(redis.ResponseError, match="increment or decrement would overflow"):
        r.incr("max")


def test_incrbyfloat(r):
    r.set("f", "10.5")
    assert r.incrbyfloat("f", 0.1) == pytest.approx(10.6)
    assert r.get("f") == b"10.6"
    assert r.incrbyfloat("g", 3) == 3
    assert r.get("g") == b"3"
    r.set("s", "abc")
    with pytest.raises(redis.ResponseError, match="not a valid float"):
        r.incrbyfloat("s", 1)



def test_ranges_and_append(r):
    assert r.append("a", "Hello") == 5
    assert r.append("a", " World") == 11
    assert r.strlen("a") == 11
    assert r.getrange("a", 0, 4) == b"Hello"
    assert r.getrange("a", -5, -1) == b"World"
    assert r.getrange("a", 5, 1) == b""
    assert r.setrange("a", 6, "Redis") == 11
    assert r.get("a") == b"Hello Redis"
    assert r.setrange("pad", 3, "x") == 4
    assert r.get("pad") == b"\x00\x00\x00x"
    with pytest.raises(redis.ResponseError, match="offset is out of range"):
        r.setrange("a", -1, "x")


def test_multi_key(r):
    assert r.mset({"a": 1, "b": 2}) is True
    assert r.mget("a", "b", "c") == [b"1", b"2", None]
    assert r.msetnx({"c": 3, "a": 9}) is False
    assert r.get("c") is None
    assert r.msetnx({"c": 3, "d": 4}) is True
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'mset' command"):
        r.execute_command("MSET", "a", "1", "b")


def test_getex_getdel_getset(r):
    r.set("k", "v")
    assert r.getex("k", ex=100) == b"v"
    assert r.ttl("k") > 90
    assert r.getex("k", persist=True) == b"v"
    assert r.ttl("k") == -1
    assert r.getset("k", "w") == b"v"
    assert r.getdel("k") == b"w"
    assert r.exists("k") == 0
    assert r.execute_command("SETEX", "e", 100, "v") is True   # redis-py deprecates r.setex
    assert r.psetex("p", 100000, "v") is True
    assert 99000 < r.pttl("p") <= 100000


def test_lcs(r):
    r.mset({"key1": "ohmytext", "key2": "mynewtext"})
    assert r.lcs("key1", "key2") == b"mytext"
    assert r.lcs("key1", "key2", len=True) == 6
    reply = r.execute_command("LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN")
    assert reply == [b"matches", [[[4, 7], [5, 8], 4]], b"len", 6]
