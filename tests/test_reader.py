"""The hiredis fast path must answer exactly as the strict reader does."""

import re

import pytest

from tenantkv.errors import ProtocolError
from tenantkv.protocol.reader import Reader
from tenantkv.protocol.strict import RequestReader

CASES = [
    b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n" * 5,
    b"*1\r\n$4\r\nPING\r\n$4\r\nPING\r\n",          # "$4" is an inline command in Redis
    b"*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n",         # CRLF inside an argument
    b"*0\r\n*1\r\n$4\r\nPING\r\n",                   # empty request skipped
    b"*-1\r\n*1\r\n$4\r\nPING\r\n",
    b"*3\r\n$3\r\nSET\r\n",                          # incomplete
    b"*1\r\n$4\r\nPING\r\nPING\r\n",                 # multibulk then inline
    b"*1\r\n$0\r\n\r\n",
    # a second request that is not an array: inline in Redis, never a hiredis reply
    b"*1\r\n$4\r\nPING\r\n+OK\r\n",
    b"*1\r\n$4\r\nPING\r\n:12\r\n",
    b"*1\r\n$4\r\nPING\r\n-ERR x\r\n",
    b"*1\r\n$4\r\nPING\r\n$3\r\nabc\r\n",
    # '+', '=', '(' inside arguments are data (the fast path takes them)
    b"*3\r\n$3\r\nSET\r\n$2\r\n+k\r\n$4\r\n=(v=\r\n" * 2,
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$70000\r\n" + b"+=(" * 23333 + b"x\r\n",
]
_BIG = b"a\r\n" + b"b" * 69997   # 70,000 bytes with a CRLF inside

ERRORS = [
    (b"*1\r\n:5\r\n", "expected '$', got ':'"),
    (b"*1\r\n+PING\r\n", "expected '$', got '+'"),
    (b"*1\r\n*1\r\n$4\r\nPING\r\n", "expected '$', got '*'"),
    (b"*1\r\n$-1\r\n", "invalid bulk length"),
    (b"*1\r\n_\r\n", "expected '$', got '_'"),
    (b"*99999999999\r\n", "invalid multibulk length"),
    (b"*1\r\n$4\r\nPING\r\n*2000000\r\n", "invalid multibulk length"),
    (b"*1\r\n$4\r\nPING\r\n*1\r\n$2\r\nab\r\n*1\r\n:1\r\n", "expected '$', got ':'"),
    # hiredis returns these as bytes; a CRLF in an argument evens the count
    (b"*3\r\n$3\r\nSET\r\n$4\r\nk\r\nx\r\n+v\r\n", "expected '$', got '+'"),
    (b"*2\r\n$4\r\nECHO\r\n=5\r\ntxt:v\r\n", "expected '$', got '='"),
    (b"*3\r\n$3\r\nSET\r\n$4\r\nk\r\nx\r\n(12\r\n", "expected '$', got '('"),
    (b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$4\r\nk\r\nx\r\n+v\r\n", "got '+'"),
    (b"*3\r\n$3\r\nSET\r\n$70000\r\n" + _BIG + b"\r\n+v\r\n", "expected '$', got '+'"),
    (b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$70000\r\n" + _BIG + b"\r\n=5\r\ntxt:v\r\n",
     "expected '$', got '='"),
]


@pytest.mark.parametrize("data", CASES)
def test_same_requests_as_strict_reader(data):
    assert Reader(1 << 29).feed(data) == RequestReader(1 << 29).feed(data)


@pytest.mark.parametrize("data, message", ERRORS)
def test_same_errors_as_strict_reader(data, message):
    with pytest.raises(ProtocolError, match=re.escape(message)) as error:
        Reader(1 << 29).feed(data)
    with pytest.raises(ProtocolError) as strict_error:
        RequestReader(1 << 29).feed(data)
    assert error.value.requests == strict_error.value.requests   # those before it still run


def test_split_request_then_fast_again():
    reader = Reader(1 << 29)
    assert reader.feed(b"*2\r\n$4\r\nECHO\r\n$5\r\nhel") == []
    assert reader.feed(b"lo\r\n") == [[b"ECHO", b"hello"]]
    assert reader.feed(b"*1\r\n$4\r\nPING\r\n") == [[b"PING"]]


def test_every_two_piece_split_of_a_pipeline():
    # A read may end anywhere, even right after the '*' of the next request;
    # the two reads together must give exactly the requests sent.
    request = b"*4\r\n$4\r\nZADD\r\n$1\r\nz\r\n$3\r\n1.5\r\n$2\r\nm1\r\n"
    data = request * 3
    for cut in range(1, len(data)):
        reader = Reader(1 << 29)
        got = reader.feed(data[:cut]) + reader.feed(data[cut:])
        assert got == [[b"ZADD", b"z", b"1.5", b"m1"]] * 3, cut
        assert reader.feed(b"*1\r\n$4\r\nPING\r\n") == [[b"PING"]], cut


def _random_stream(rng) -> bytes:
    """A pipeline as a client may send it: mostly RESP arrays, with values
    that contain CRLF, '*', "\r\n*", the type bytes '+=(' or nothing, now
    and then an inline command or an empty array."""
    values = [b"", b"v", b"\r\n", b"\r\n*", b"*3\r\n", b"+x", b"=(", b"x" * 300,
              b"\r\n*1\r\n$4\r\nPING\r\n", b"abc\r", b"\n"]
    parts = []
    for _ in range(rng.randrange(1, 60)):
        roll = rng.random()
        if roll < 0.05:
            parts.append(b"PING\r\n")
        elif roll < 0.07:
            parts.append(b"*0\r\n")
        else:
            args = [rng.choice([b"SET", b"ECHO", b"GET"])] + \
                [rng.choice(values) for _ in range(rng.randrange(0, 4))]
            parts.append(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    return b"".join(parts)


def _chunks(rng, data: bytes) -> list:
    out, at = [], 0
    while at < len(data):
        size = rng.choice([1, 2, 3, 7, 16, 50, 200, 4096])
        out.append(data[at:at + size])
        at += size
    return out


def _parse_all(reader, chunks):
    got = []
    try:
        for chunk in chunks:
            got += reader.feed(chunk)
    except ProtocolError as exc:
        return got + exc.requests, str(exc)
    return got, None


def test_random_splits_of_random_pipelines_as_strict_reader():
    # Every read may end anywhere: the requests (and a protocol error after
    # them) must be exactly the strict reader's, read by read.
    import random
    rng = random.Random(1405)
    for _ in range(400):
        # a protocol error may come in any read, after requests of the same read
        broken = rng.choice([b"", b"", b"*1\r\n:5\r\n", b"*2\r\n$1\r\na\r\n+b\r\n"])
        chunks = _chunks(rng, _random_stream(rng) + broken + _random_stream(rng))
        assert _parse_all(Reader(1 << 29), chunks) == \
            _parse_all(RequestReader(1 << 29), chunks), chunks
