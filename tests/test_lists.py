"""List commands through redis-py: what a recorded transcript cannot check
(large lists, LMOVE sequences, RESP3 through a client). Exact replies and
error texts are compared with redis-server in compat/sessions/lists.txt."""

import pytest
import redis


def test_basic_roundtrip(r):
    assert r.rpush("l", "a", "b") == 2
    assert r.lpush("l", "z") == 3
    assert r.lrange("l", 0, -1) == [b"z", b"a", b"b"]
    assert r.lpop("l") == b"z"
    assert r.rpop("l", 5) == [b"b", b"a"]
    assert r.exists("l") == 0
    assert r.type("l") == b"none"
    assert r.lpop("l") is None
    assert r.lpop("l", 2) is None


def test_resp3_pops(r3):
    r3.rpush("l", "a", "b", "c")
    assert r3.lpop("l", 2) == [b"a", b"b"]
    assert r3.lpop("l", 0) == []
    assert r3.lpop("missing") is None
    assert r3.lpop("missing", 2) is None
    assert r3.lmpop(2, "missing", "l", direction="RIGHT", count=3) == [b"l", [b"c"]]
    assert r3.lmpop(1, "missing", direction="LEFT") is None


def test_keyspace_hits_and_misses(r):
    r.rpush("l", "a")
    before = r.info("stats")
    r.llen("l")
    r.lindex("l", 5)      # the key exists: a hit
    r.lrange("missing", 0, -1)
    r.lpop("missing")     # a write lookup: counts nothing
    after = r.info("stats")
    assert after["keyspace_hits"] - before["keyspace_hits"] == 2
    assert after["keyspace_misses"] - before["keyspace_misses"] == 1


def test_wrongtype(r):
    r.set("s", "x")
    for call in (lambda: r.lpush("s", "a"), lambda: r.lrange("s", 0, -1),
                 lambda: r.lmove("s", "d"), lambda: r.lpos("s", "a")):
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            call()
    r.rpush("l", "a")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.lmove("l", "s")
    assert r.lrange("l", 0, -1) == [b"a"]   # nothing popped before the check


# -- LMOVE ------------------------------------------------------------------------------

def test_lmove_between_lists(r):
    r.rpush("src", *range(5))
    assert r.lmove("src", "dst", "LEFT", "RIGHT") == b"0"
    assert r.lmove("src", "dst", "RIGHT", "LEFT") == b"4"
    assert r.lmove("src", "dst", "LEFT", "LEFT") == b"1"
    assert r.lrange("src", 0, -1) == [b"2", b"3"]
    assert r.lrange("dst", 0, -1) == [b"1", b"4", b"0"]
    assert r.rpoplpush("src", "dst") == b"3"
    assert r.rpoplpush("src", "dst") == b"2"
    assert r.exists("src") == 0
    assert r.lmove("src", "dst") is None
    assert r.lrange("dst", 0, -1) == [b"2", b"3", b"1", b"4", b"0"]


def test_lmove_same_list_rotates(r):
    r.rpush("ring", *range(10))
    for _ in range(3):
        r.lmove("ring", "ring", "LEFT", "RIGHT")
    assert r.lrange("ring", 0, -1) == [str(i).encode() for i in [*range(3, 10), 0, 1, 2]]
    for _ in range(3):
        r.rpoplpush("ring", "ring")
    assert r.lrange("ring", 0, -1) == [str(i).encode() for i in range(10)]
    assert r.lmove("ring", "ring", "LEFT", "LEFT") == b"0"
    assert r.lmove("ring", "ring", "RIGHT", "RIGHT") == b"9"
    assert r.llen("ring") == 10
    r.delete("ring")
    r.rpush("ring", "only")
    assert r.lmove("ring", "ring", "RIGHT", "LEFT") == b"only"
    assert r.lrange("ring", 0, -1) == [b"only"]


def test_lmove_moves_every_element_once(r):
    r.rpush("a", *range(1000))
    pipe = r.pipeline(transaction=False)
    for i in range(1000):
        pipe.lmove("a", "b", "LEFT", "LEFT" if i % 2 else "RIGHT")
    moved = pipe.execute()
    assert moved == [str(i).encode() for i in range(1000)]
    assert r.exists("a") == 0
    got = r.lrange("b", 0, -1)
    assert sorted(map(int, got)) == list(range(1000))
    assert got[:2] == [b"999", b"997"] and got[-2:] == [b"996", b"998"]


# -- a million elements -----------------------------------------------------------------
# (Speed is measured by bench/, never by a timed test.)

N = 1_000_000


@pytest.fixture
def million(r):
    pipe = r.pipeline(transaction=False)
    for i in range(0, N, 10000):
        pipe.rpush("big", *range(i, i + 10000))
    replies = pipe.execute()
    assert replies[-1] == N
    return r


def test_million_element_list(million):
    r = million
    assert r.llen("big") == N
    assert r.object("encoding", "big") == b"quicklist"
    assert r.lrange("big", 0, 2) == [b"0", b"1", b"2"]
    assert r.lrange("big", -3, -1) == [b"999997", b"999998", b"999999"]
    assert r.lrange("big", 500000, 500002) == [b"500000", b"500001", b"500002"]
    assert r.lrange("big", N - 2, N + 100) == [b"999998", b"999999"]
    assert r.lrange("big", N, N + 5) == []
    assert r.lindex("big", 0) == b"0"
    assert r.lindex("big", -1) == b"999999"
    assert r.lindex("big", 123456) == b"123456"
    assert r.lindex("big", -123456) == str(N - 123456).encode()
    assert r.lindex("big", N) is None
    assert r.lset("big", 777777, "x")
    assert r.lindex("big", 777777) == b"x"
    # LPOS: MAXLEN bounds the scan, from either end
    assert r.lpos("big", "999999") == N - 1
    assert r.lpos("big", "999999", maxlen=1000) is None
    assert r.lpos("big", "999999", rank=-1, maxlen=1) == N - 1
    assert r.lpos("big", "5", rank=-1, maxlen=1000) is None
    assert r.lpos("big", "x", count=0) == [777777]
    assert r.lpos("big", "nothere", count=0, maxlen=10) == []
    # LTRIM: keep the middle
    assert r.ltrim("big", 1000, -1001)
    assert r.llen("big") == N - 2000
    assert r.lrange("big", 0, 0) == [b"1000"]
    assert r.lindex("big", -1) == b"998999"
    assert r.ltrim("big", 10, 19)
    assert r.lrange("big", 0, -1) == [str(i).encode() for i in range(1010, 1020)]


def test_million_element_pops(million):
    r = million
    assert r.lpop("big", 3) == [b"0", b"1", b"2"]
    assert r.rpop("big", 3) == [b"999999", b"999998", b"999997"]
    popped = r.lmpop(1, "big", direction="LEFT", count=N)
    assert popped[0] == b"big" and len(popped[1]) == N - 6
    assert popped[1][0] == b"3" and popped[1][-1] == b"999996"
    assert r.exists("big") == 0


def test_million_element_lrem(million):
    r = million
    r.rpush("big", "1", "1")
    assert r.lrem("big", -2, "1") == 2
    assert r.lindex("big", 1) == b"1"
    assert r.lrem("big", 0, "1") == 1
    assert r.llen("big") == N - 1
    assert r.linsert("big", "AFTER", "999998", "y") == N
    assert r.lrange("big", -3, -1) == [b"999998", b"y", b"999999"]
