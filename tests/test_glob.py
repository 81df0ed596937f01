"""Glob patterns (KEYS, SCAN MATCH, COMMAND LIST FILTERBY PATTERN) against
redis-server: the same keys, the same patterns, the same answers; and patterns
that used to take the server down or could burn its CPU."""

import random
import time

import pytest
import redis

from conftest import raw_command

# Keys that exercise every branch: case, signed bytes (ranges compare chars as
# signed in Redis), the pattern's own special bytes, the empty key.
KEYS = [b"", b"a", b"A", b"b", b"ab", b"aB", b"ba", b"abc", b"aXc", b"a*c", b"a?c",
        b"a[c", b"a]c", b"a\\c", b"a-c", b"a^c", b"\x80", b"\xff", b"a\xffc", b"\x7f",
        b"zZ", b"Za", b"[", b"]", b"\\", b"*", b"?", b"-", b"^", b"aaaa", b"aaab",
        b"abab", b"hello", b"hallo", b"hllo", b"heeeello", b"h\xe9llo", b"x", b"_", b"`"]

# Bytes patterns are made of, weighted towards the special ones.
TOKENS = [b"a", b"A", b"b", b"c", b"z", b"Z", b"*", b"*", b"?", b"[", b"[", b"]", b"]",
          b"^", b"-", b"-", b"\\", b"\\", b"\x80", b"\xff", b"_", b"`", b"h", b"l", b"o"]

HANDPICKED = [
    b"*", b"**", b"?", b"a*", b"*c", b"a?c", b"a[bX]c", b"a[^b]c", b"[a-c]*", b"[c-a]*",
    b"[Z-a]", b"[a-]", b"[-a]", b"[]", b"[]a]", b"[", b"[^", b"[a", b"[^a", b"a[",
    b"\\", b"a\\", b"a\\*c", b"a\\?c", b"a\\[c", b"\\a", b"[\\]]", b"[\\", b"[a\\",
    b"[\\-]", b"[a-\\]", b"[\x80-\xff]", b"[\xff-\x80]", b"[a-\xff]", b"[\x00-\x7f]",
    b"h[ae]llo", b"h[^e]llo", b"h*llo", b"h?llo", b"h[a-b]llo", b"*a*", b"*a*b*",
    b"a*a*a*", b"*[", b"*\\", b"*?", b"?*", b"[*]", b"[?]", b"a**c", b"*a", b"a*b",
]


def _patterns() -> list:
    rng = random.Random(1307)
    found = set(HANDPICKED)
    while len(found) < 2500:
        found.add(b"".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 7))))
    # Longer ones, mostly plain bytes, '?' and '*', against the longer keys below.
    while len(found) < 4000:
        found.add(b"".join(rng.choice(TOKENS[:4] * 4 + TOKENS[6:9] + [b"[ab]", b"?" * 3])
                           for _ in range(rng.randint(3, 14))))
    return sorted(found)


def _long_keys() -> list:
    rng = random.Random(7031)
    return [b"".join(rng.choice([b"a", b"b", b"A", b"c", b"ab"]) for _ in range(rng.randint(5, 25)))
            for _ in range(60)]


def _keys_answers(client: redis.Redis, patterns: list) -> list:
    pipe = client.pipeline(transaction=False)
    for pattern in patterns:
        pipe.execute_command("KEYS", pattern)
    return [set(reply) for reply in pipe.execute()]


def _load(client: redis.Redis) -> None:
    client.flushall()
    client.mset({key: b"1" for key in KEYS + _long_keys()})


def test_keys_patterns_match_redis(redis_server, server):
    """KEYS with 4,000 patterns (classes, escapes, reversed and signed ranges,
    '[^', unclosed '[', trailing backslash, runs of '?' and of plain bytes)
    over keys with every special byte and longer ones: the same names as
    redis-server."""
    reference = redis.Redis(port=redis_server.port)
    subject = server.client()
    _load(reference)
    _load(subject)
    patterns = _patterns()
    expected = _keys_answers(reference, patterns)
    actual = _keys_answers(subject, patterns)
    wrong = [(p, sorted(e), sorted(a)) for p, e, a in zip(patterns, expected, actual) if e != a]
    assert not wrong, "%d of %d patterns differ, e.g. %r" % (len(wrong), len(patterns), wrong[:5])


def test_scan_match_uses_the_same_glob(redis_server, server):
    reference = redis.Redis(port=redis_server.port)
    subject = server.client()
    _load(reference)
    _load(subject)
    for pattern in HANDPICKED:
        want = set(reference.scan_iter(match=pattern, count=1000))
        assert set(subject.scan_iter(match=pattern, count=1000)) == want, pattern
    reference.hset("h", mapping={key or b"empty": b"v" for key in KEYS})
    subject.hset("h", mapping={key or b"empty": b"v" for key in KEYS})
    for pattern in HANDPICKED:
        want = dict(reference.hscan_iter("h", match=pattern, count=1000))
        assert dict(subject.hscan_iter("h", match=pattern, count=1000)) == want, pattern


NOCASE = [b"GET", b"get", b"g?T", b"[F-H]et", b"[f-h]ET", b"[Z-a]*", b"[A-z]*", b"[\\G]et",
          b"[\\g]et", b"*[^A-Z]*", b"*[^a-z]*", b"[^G]ET", b"x[A-C]*", b"*ADD", b"z*",
          b"[_-a]*", b"[`-b]*", b"*|*", b"[@-B]*", b"client[|]*", b"*\\|*"]


def test_nocase_patterns_match_redis(redis_server, server):
    """COMMAND LIST FILTERBY PATTERN compares without case, as Redis does:
    ranges lowered after the swap, an escaped byte in a class compared exactly."""
    reference = redis.Redis(port=redis_server.port)
    subject = server.client()
    common = set(raw_command(reference, "COMMAND", "LIST")) & \
        set(raw_command(subject, "COMMAND", "LIST"))
    assert len(common) > 150
    for pattern in NOCASE:
        want = set(raw_command(reference, "COMMAND", "LIST", "FILTERBY", "PATTERN", pattern))
        got = set(raw_command(subject, "COMMAND", "LIST", "FILTERBY", "PATTERN", pattern))
        assert got & common == want & common, pattern


def _timed_keys(client, pattern):
    start = time.monotonic()
    reply = client.execute_command("KEYS", pattern)
    return set(reply), time.monotonic() - start


@pytest.mark.parametrize("pattern, key", [
    (b"*" * 1000, b"a" * 100),                       # was a RecursionError
    (b"a*" * 1000 + b"b", b"a" * 3000),              # exponential without skipLongerMatches
    (b"*a" * 1500 + b"*", b"a" * 1500),              # past Redis's 1,000 nested '*'s
    (b"*a" * 1000 + b"*", b"a" * 1000),              # 1,001 '*'s, the last one trailing
    (b"*a" * 1000 + b"*", b"a" * 999),
    (b"*a" * 1001, b"a" * 1500),
    (b"*a" * 999 + b"*b", b"a" * 1500 + b"b"),
    (b"a*" * 1001, b"a" * 1500),
    (b"a*" * 1002, b"a" * 1500),
    (b"*" + b"?" * 2000 + b"b", b"a" * 20000),       # a long segment slid along a long key
    (b"*" + b"a" * 2000 + b"b", b"a" * 20000),
    (b"[" * 5000, b"a"),                            # a class that never closes
    (b"?" * 1_000_000, b"a" * 1_000_000),            # megabyte patterns are read in C
    (b"ab" * 500_000, b"ab" * 500_000),
    (b"[ab]" * 250_000 + b"*", b"ab" * 500_000),
    (b"*a" * 500_000, b"a" * 2000),
    (b"\\" * 4001, b"\\" * 2001),
])
def test_pathological_patterns(redis_server, server, pattern, key):
    """Each answers as redis-server does, without an error, in well under a
    second of server time (a generous bound for a loaded machine)."""
    reference = redis.Redis(port=redis_server.port)
    subject = server.client()
    for client in (reference, subject):
        client.flushall()
        client.set(key, b"1")
        client.set(b"other", b"1")
    want, _ = _timed_keys(reference, pattern)
    elapsed = min(_timed_keys(subject, pattern)[1] for _ in range(3))   # best of 3
    got, _ = _timed_keys(subject, pattern)
    assert got == want
    assert elapsed < 2.0, elapsed
    assert subject.ping()
