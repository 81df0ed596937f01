"""keyspace/quicklist.py: QuickList against a Python list doing the same
operations (random elements with the marker and escape bytes 0xff 0xfe 0x01
in them, empty and chunk-sized ones), at the real chunk size and at tiny
ones so that every operation crosses chunk boundaries; the chunk invariants
(no empty chunk, a chunk within CHUNK_BYTES or a single element, `n`) are
checked after every step."""

import random
from collections import deque

import pytest

from hiredis import Reader

from tenantkv.keyspace import quicklist
from tenantkv.keyspace.packed import KEY
from tenantkv.keyspace.quicklist import QuickList

_ALPHABET = b"ab\xff\xfe\x01\r\n$1"
_reader = Reader()


def _word(rng) -> bytes:
    size = rng.choice([0, 1, 2, 3, 5, 8, rng.randrange(0, 3 * quicklist.CHUNK_BYTES + 2)])
    return bytes(rng.choice(_ALPHABET) for _ in range(size))


def _check(q: QuickList, model: list) -> None:
    assert list(q) == model
    assert list(reversed(q)) == model[::-1]
    assert len(q) == len(model) == q.n
    if type(q.chunks) is deque:
        assert len(q.chunks) >= 2   # else the one chunk is held alone
    else:
        assert q.chunks or not model
    for chunk in q.chunk_list():
        assert chunk.startswith(KEY)
        assert len(chunk) <= quicklist.CHUNK_BYTES or chunk.count(KEY) == 1, len(chunk)


def _step(rng, q: QuickList, model: list, words: list) -> None:
    op = rng.randrange(13)
    n = len(model)
    if op == 0:
        w = rng.choice(words)
        q.append(w)
        model.append(w)
    elif op == 1:
        w = rng.choice(words)
        q.appendleft(w)
        model.insert(0, w)
    elif op == 2:
        ws = [rng.choice(words) for _ in range(rng.randrange(1, 40))]
        q.extend(ws)
        model.extend(ws)
    elif op == 3:
        ws = [rng.choice(words) for _ in range(rng.randrange(1, 40))]
        q.extendleft(ws)
        model[:0] = ws[::-1]
    elif op == 4 and n:
        assert q.popleft() == model.pop(0)
    elif op == 5 and n:
        assert q.pop() == model.pop()
    elif op == 6 and n:
        head = rng.random() < 0.5
        count = rng.randrange(1, n + 3)
        got = q.pop_many(head, count)
        if head:
            want, model[:] = model[:count], model[count:]
        else:
            want = model[max(0, n - count):][::-1]
            del model[max(0, n - count):]
        assert got == want
    elif op == 7 and n:
        i = rng.randrange(n)
        assert q[i] == model[i]
        w = rng.choice(words)
        q[i] = w
        model[i] = w
    elif op == 8 and n:
        a = rng.randrange(n)
        b = rng.randrange(a + 1, n + 1)
        assert q.range(a, b) == model[a:b]
        _reader.feed(q.range_reply(a, b))
        assert _reader.gets() == model[a:b]
    elif op == 9:
        pivot, w, after = rng.choice(words), rng.choice(words), rng.random() < 0.5
        found = q.insert_at(pivot, w, after)
        assert found == (pivot in model)
        if found:
            i = model.index(pivot)
            model.insert(i + 1 if after else i, w)
    elif op == 10:
        w = rng.choice(words)
        count = rng.randrange(-3, 4)
        removed = q.remove(w, count)
        if count >= 0:
            limit = count or len(model)
            kept, taken = [], 0
            for x in model:
                if x == w and taken < limit:
                    taken += 1
                else:
                    kept.append(x)
        else:
            kept, taken = [], 0
            for x in reversed(model):
                if x == w and taken < -count:
                    taken += 1
                else:
                    kept.append(x)
            kept.reverse()
        assert removed == taken
        model[:] = kept
    elif op == 11 and n:
        a = rng.randrange(n)
        b = rng.randrange(a + 1, n + 1)
        q.trim(a, b)
        model[:] = model[a:b]
    elif op == 12:
        c = q.copy()
        assert list(c) == model
        assert list(QuickList(model)) == model


@pytest.mark.parametrize("chunk_bytes", [8, 40, quicklist.CHUNK_BYTES])
def test_quicklist_against_a_list(monkeypatch, chunk_bytes):
    monkeypatch.setattr(quicklist, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(quicklist, "_ROOM", chunk_bytes - 14)
    rng = random.Random(chunk_bytes)
    words = [_word(rng) for _ in range(12)] + [b"", b"x", b"\xff", b"\xff\x01"]
    for _ in range(30):
        q, model = QuickList(), []
        for _ in range(rng.randrange(1, 150)):
            _step(rng, q, model, words)
            _check(q, model)
            if not model:   # the commands delete an empty list; the class copes
                assert q.chunks == b""


def test_quicklist_packs_elements_in_chunks():
    # 1,000 elements of ~11 bytes (16 with their header): ~17 chunks of <= 1 KB, not 1,000 objects
    assert type(QuickList([b"a", b"b"]).chunks) is bytes   # a small list: no Python list
    q = QuickList([b"element:%d" % i for i in range(1000)])
    assert len(q.chunks) <= 20
    # an entry: marker, RESP's length header, the data
    assert sum(map(len, q.chunks)) == sum(len(b"\xff\x01%d\r\nelement:%d" % (len(b"element:%d" % i), i))
                                          for i in range(1000))
    big = b"x" * (5 * quicklist.CHUNK_BYTES)
    q.append(big)
    q.append(b"after")
    assert q.chunks[-2] == KEY + b"%d\r\n" % len(big) + big
    assert q.chunks[-1] == KEY + b"5\r\nafter"
