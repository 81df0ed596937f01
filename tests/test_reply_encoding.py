"""Reply encoding of arrays, maps and sets, byte for byte as redis-server sends
them: the encoder sends arrays whose items are all bytes through hiredis's
pack_command (protocol/encoder.py), and everything else item by item; both
must give Redis's exact bytes in RESP2 and RESP3 (nil elements stay nil,
integers stay integers, scores stay doubles or bulk strings)."""

import socket

import pytest

from conftest import resp

END = resp("ECHO", "--end--")
END_REPLY = b"$7\r\n--end--\r\n"

# Items a fast path could get wrong: empty, CRLF inside, binary, long,
# digits (a bulk string, never an integer reply).
ODD = [b"", b"a\r\nb", b"\x00\xff\r", b"x" * 70_000, b"123", b"-1", b"3.5"]

SETUP = [
    ("RPUSH", "list", *ODD),
    ("RPUSH", "big", *[b"element:%d" % i for i in range(300)]),
    ("HSET", "hash", "f1", "", "f\r\n2", "v2", "3", "4"),
    ("ZADD", "zset", "1", "a", "1.5", "b\r\n", "2", "", "-inf", "m"),
    ("SADD", "one", "a\r\nb"),
    ("SADD", "ints", "3", "1", "2"),
    ("MSET", "s1", "v1", "s2", ""),
]

READS = [
    ("LRANGE", "list", "0", "-1"),
    ("LRANGE", "big", "0", "99"),
    ("LRANGE", "big", "0", "299"),
    ("LRANGE", "nokey", "0", "-1"),            # empty array
    ("MGET", "s1", "nokey", "s2"),              # a nil inside stays a nil
    ("MGET", "s1", "s2"),
    ("MGET", "nokey"),
    ("HGETALL", "hash"),                        # a map in RESP3
    ("HGETALL", "nokey"),
    ("HKEYS", "hash"),
    ("HVALS", "hash"),
    ("HMGET", "hash", "f1", "nofield", "3"),
    ("ZRANGE", "zset", "0", "-1"),
    ("ZRANGE", "zset", "0", "-1", "WITHSCORES"),  # scores: bulk (RESP2), doubles (RESP3)
    ("ZPOPMIN", "zset"),
    ("SMEMBERS", "one"),                        # a set in RESP3
    ("SMEMBERS", "ints"),
    ("SMEMBERS", "nokey"),
    ("SINTER", "ints", "ints"),
    ("KEYS", "s1"),
    ("SCAN", "0", "MATCH", "s1", "COUNT", "1000"),  # cursor, then a nested array
    ("LPOS", "big", "element:7", "COUNT", "0"),  # an array of integers
    ("SMISMEMBER", "ints", "1", "9"),
    ("CONFIG", "GET", "maxmemory-policy"),      # a map in RESP3
]


def _replies(port: int, protocol: int) -> bytes:
    """Everything the server answers to the reads (after the setup), in one stream."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = [resp("HELLO", "3")] if protocol == 3 else []
        setup = [resp("FLUSHALL")] + [resp(*cmd) for cmd in SETUP]
        sock.sendall(b"".join(head + setup + [END]))
        _read_until_end(sock)
        sock.sendall(b"".join([resp(*cmd) for cmd in READS] + [END]))
        return _read_until_end(sock)


def _read_until_end(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(END_REPLY):
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed after %r" % data[-200:]
        data += chunk
    return data


def _split(data: bytes) -> list:
    """The stream cut into one reply per read, with a tiny RESP parser."""
    replies, pos = [], 0
    while pos < len(data):
        end = _skip(data, pos)
        replies.append(data[pos:end])
        pos = end
    return replies


def _skip(data: bytes, pos: int) -> int:
    line_end = data.index(b"\r\n", pos)
    kind, rest = data[pos:pos + 1], data[pos + 1:line_end]
    pos = line_end + 2
    if kind in b"$=!" and rest != b"-1":
        return pos + int(rest) + 2
    if kind in b"*~>%|" and rest != b"-1":
        count = int(rest) * (2 if kind in b"%|" else 1)
        for _ in range(count):
            pos = _skip(data, pos)
        return pos
    return pos


@pytest.mark.parametrize("protocol", [2, 3])
def test_array_replies_byte_for_byte_as_redis(redis_server, server, protocol):
    want = _split(_replies(redis_server.port, protocol))
    got = _split(_replies(server.port, protocol))
    assert len(want) == len(got) == len(READS) + 1
    for cmd, expected, actual in zip(READS, want, got):
        assert actual == expected, cmd


@pytest.mark.parametrize("protocol", [2, 3])
def test_all_bulk_array_exact_bytes(server, protocol):
    """The exact bytes of the common replies, without a reference server: an
    array of bulk strings, a map (RESP3) or flat array (RESP2), a set (RESP3)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        if protocol == 3:
            sock.sendall(resp("HELLO", "3") + END)
            _read_until_end(sock)
        sock.sendall(b"".join([
            resp("DEL", "l", "h", "s"), resp("RPUSH", "l", "a", "", "1"),
            resp("HSET", "h", "k", "v"), resp("SADD", "s", "x"), END]))
        _read_until_end(sock)
        sock.sendall(b"".join([resp("LRANGE", "l", "0", "-1"), resp("HGETALL", "h"),
                               resp("SMEMBERS", "s"), resp("MGET", "nokey", "h"), END]))
        data = _read_until_end(sock)
    array = b"*3\r\n$1\r\na\r\n$0\r\n\r\n$1\r\n1\r\n"
    if protocol == 2:
        rest = b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n" + b"*1\r\n$1\r\nx\r\n" + b"*2\r\n$-1\r\n$-1\r\n"
    else:
        rest = b"%1\r\n$1\r\nk\r\n$1\r\nv\r\n" + b"~1\r\n$1\r\nx\r\n" + b"*2\r\n_\r\n_\r\n"
    assert data == array + rest + END_REPLY
