"""Hash commands through redis-py: what a recorded transcript cannot check
(randomness, iteration under concurrent writes, large hashes). Exact replies
and error texts are compared with redis-server in compat/sessions/hashes.txt."""

import collections

import pytest
import redis


def test_basic_roundtrip(r):
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hset("h", "a", "3") == 0
    assert r.hgetall("h") == {b"a": b"3", b"b": b"2"}
    assert r.hdel("h", "a", "b") == 2
    assert r.exists("h") == 0
    assert r.type("h") == b"none"


def test_hgetall_resp3_is_a_map(r3):
    r3.hset("h", mapping={"a": "1", "b": "2"})
    assert r3.hgetall("h") == {b"a": b"1", b"b": b"2"}
    assert r3.hgetall("missing") == {}


def test_keyspace_hits_and_misses(r):
    r.hset("h", "f", "v")
    before = r.info("stats")
    r.hget("h", "f")
    r.hget("h", "nofield")   # the key exists: a hit
    r.hget("missing", "f")   # a miss
    after = r.info("stats")
    assert after["keyspace_hits"] - before["keyspace_hits"] == 2
    assert after["keyspace_misses"] - before["keyspace_misses"] == 1


# -- HRANDFIELD ------------------------------------------------------------------------

def test_hrandfield_positive_count_is_distinct(r):
    fields = {("f%d" % i).encode(): ("v%d" % i).encode() for i in range(20)}
    r.hset("h", mapping=fields)
    for count in (1, 2, 5, 19, 20, 25):
        got = r.hrandfield("h", count)
        assert len(got) == min(count, 20)
        assert len(set(got)) == len(got)
        assert set(got) <= set(fields)
    got = r.hrandfield("h", 7, withvalues=True)
    pairs = list(zip(got[::2], got[1::2]))
    assert len(pairs) == 7 and len({f for f, _ in pairs}) == 7
    assert all(fields[f] == v for f, v in pairs)


def test_hrandfield_negative_count_allows_repeats(r):
    r.hset("h", mapping={"a": "1", "b": "2", "c": "3"})
    got = r.hrandfield("h", -300)
    assert len(got) == 300
    counts = collections.Counter(got)
    assert set(counts) == {b"a", b"b", b"c"}           # every field drawn
    assert all(60 < n < 140 for n in counts.values())  # roughly uniform (p of failure ~1e-9)
    got = r.hrandfield("h", -50, withvalues=True)
    assert len(got) == 100
    assert all({b"a": b"1", b"b": b"2", b"c": b"3"}[f] == v for f, v in zip(got[::2], got[1::2]))


def test_hrandfield_single_is_uniform(r):
    r.hset("h", mapping={"f%d" % i: i for i in range(10)})
    counts = collections.Counter(r.hrandfield("h") for _ in range(2000))
    assert len(counts) == 10
    assert all(120 < n < 290 for n in counts.values())


def test_hrandfield_sample_is_uniform(r):
    # count < size: each field equally likely to be in the sample
    r.hset("h", mapping={"f%d" % i: i for i in range(10)})
    counts = collections.Counter()
    for _ in range(600):
        counts.update(r.hrandfield("h", 3))
    assert len(counts) == 10
    assert all(110 < n < 250 for n in counts.values())   # expected 180 each


def test_hrandfield_resp3_withvalues_nests_pairs(server):
    client = server.client(protocol=3)
    try:
        client.flushall()
        client.hset("h", mapping={"a": "1", "b": "2"})
        got = client.execute_command("HRANDFIELD", "h", "-4", "WITHVALUES")
        assert len(got) == 4
        assert all(list(pair) in ([b"a", b"1"], [b"b", b"2"]) for pair in got)
        assert client.execute_command("HRANDFIELD", "h", "2") in ([b"a", b"b"], [b"b", b"a"])
    finally:
        client.close()


def test_hrandfield_huge_negative_count_is_refused_not_built(r):
    r.hset("h", "a", "1")
    with pytest.raises(redis.ResponseError, match="value is out of range"):
        r.hrandfield("h", -(1 << 40))
    assert r.ping()


# -- HSCAN ---------------------------------------------------------------------------------

def _hscan_all(client, key, count=None, match=None):
    cursor, seen, calls = 0, [], 0
    while True:
        cursor, page = client.hscan(key, cursor, match=match, count=count)
        seen.extend(page.items())
        calls += 1
        if cursor == 0:
            return seen, calls


def test_hscan_full_iteration_with_concurrent_writes(server):
    writer = server.client()
    scanner = server.client()
    try:
        writer.flushall()
        stable = {b"s%d" % i: b"v%d" % i for i in range(10000)}
        doomed = {b"d%d" % i: b"x" for i in range(1000)}
        pipe = writer.pipeline(transaction=False)
        for i in range(0, 10000, 1000):
            pipe.hset("h", mapping=dict(list(stable.items())[i:i + 1000]))
        pipe.hset("h", mapping=doomed)
        pipe.execute()
        cursor, seen, added = 0, [], 0
        while True:
            cursor, page = scanner.hscan("h", cursor, count=100)
            seen.extend(page.items())
            # between the calls: new fields, deleted fields, rewritten stable ones
            writer.hset("h", mapping={b"n%d" % (added + j): b"new" for j in range(20)})
            added += 20
            if added <= 1000:
                writer.hdel("h", *[b"d%d" % (added - 20 + j) for j in range(20)])
            writer.hset("h", b"s%d" % (added % 10000), b"rewritten")
            if cursor == 0:
                break
        fields = [f for f, _ in seen]
        counts = collections.Counter(fields)
        assert set(stable) <= set(counts), "a field present throughout the scan was missed"
        assert all(counts[f] == 1 for f in stable), "a stable field was returned twice"
        assert all(f in stable or f.startswith((b"n", b"d")) for f in counts)
        for field, value in seen:
            if field in stable:
                assert value in (stable[field], b"rewritten")
        assert len(seen) > 100   # it did take many calls (hashtable encoding)
    finally:
        writer.close()
        scanner.close()


def test_hscan_match_and_count_on_a_hashtable(r):
    r.hset("h", mapping={"f%d" % i: i for i in range(1000)})
    assert r.object("encoding", "h") == b"hashtable"
    seen, calls = _hscan_all(r, "h", count=50, match="f1*")
    assert sorted(f for f, _ in seen) == sorted(
        ("f%d" % i).encode() for i in range(1000) if str(i).startswith("1"))
    assert calls >= 20
    cursor, page = r.hscan("h", 0, count=2000)
    assert cursor == 0 and len(page) == 1000


def test_hscan_small_hash_in_one_call(r):
    r.hset("h", mapping={"a": 1, "b": 2})
    assert r.hscan("h", 0, count=1) == (0, {b"a": b"1", b"b": b"2"})


def test_hscan_cursor_of_another_key_is_not_replayed(r):
    r.hset("h1", mapping={"f%d" % i: i for i in range(1000)})
    r.hset("h2", mapping={"g%d" % i: i for i in range(1000)})
    cursor, _ = r.hscan("h1", 0, count=10)
    assert cursor != 0
    # a cursor is an opaque number: another key's cursor returns no names of h1
    _, page = r.hscan("h2", cursor, count=10)
    assert not any(f.startswith(b"f") for f in page)
    keys_cursor, keys = r.scan(cursor, count=10)
    assert keys_cursor == 0 and keys == []


# -- big hashes ------------------------------------------------------------------------------
# (Speed is measured by make bench, never by a timed test.)

def test_200k_field_hash(r):
    pipe = r.pipeline(transaction=False)
    for i in range(0, 200000, 2000):
        pipe.hset("big", mapping={b"field:%d" % j: b"value:%d" % j for j in range(i, i + 2000)})
    pipe.execute()
    assert r.hlen("big") == 200000
    assert r.object("encoding", "big") == b"hashtable"
    fields = [b"field:%d" % j for j in range(0, 200000, 97)]
    pipe = r.pipeline(transaction=False)
    for f in fields[:500]:
        pipe.hget("big", f)
        pipe.hincrby("big", "counter", 1)
    replies = pipe.execute()
    assert replies[0::2] == [b"value:%s" % f.split(b":")[1] for f in fields[:500]]
    assert replies[-1] == 500
    seen, _ = _hscan_all(r, "big", count=1000)
    assert len({f for f, _ in seen}) == 200001   # 200,000 + "counter"
    assert r.hdel("big", *fields) == len(fields)
    assert r.hlen("big") == 200001 - len(fields)
