"""The wire protocol through raw sockets: framing, limits, errors, pipelining,
backpressure, and a misbehaving client that must not hurt anyone else."""

import os
import random
import socket
import time

import pytest

from conftest import closed, locked_fixture, read_exactly, read_reply, resp

locked = locked_fixture({"alice": "alice-pw"}, "root-pw")


def send(server, data: bytes) -> socket.socket:
    sock = server.raw()
    sock.sendall(data)
    return sock



# -- protocol errors: Redis's text, then the connection is closed -------------

@pytest.mark.parametrize("request_bytes, error", [
    (b"*x\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1048577\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1\r\n$x\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$-1\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n$536870913\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\nx\r\n", b"-ERR Protocol error: expected '$', got 'x'\r\n"),
    (b"*2\r\n$4\r\nECHO\r\n:1\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
    (b'SET a "b\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n"),
    (b"SET a 'b'c\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n"),
    (b"A" * (64 * 1024 + 10), b"-ERR Protocol error: too big inline request\r\n"),
    (b"*" + b"1" * (64 * 1024 + 10), b"-ERR Protocol error: too big mbulk count string\r\n"),
    (b"*1\r\n$" + b"1" * (64 * 1024 + 10), b"-ERR Protocol error: too big bulk count string\r\n"),
])
def test_protocol_error_replies_and_closes(server, request_bytes, error):
    sock = send(server, request_bytes)
    assert read_reply(sock) == error
    assert closed(sock)
    sock.close()


# One element of each RESP2/RESP3 type but '$' (and a few stray bytes), as an
# argument: Redis answers "expected '$', got 'X'" and closes. hiredis, the fast
# reader, returns `+simple`, `=verbatim` and `(bignum` as bytes, like bulks.
NOT_BULK = [b"+v\r\n", b"=5\r\ntxt:v\r\n", b"(12\r\n", b":1\r\n", b",1.5\r\n", b"#t\r\n",
            b"_\r\n", b"-ERR x\r\n", b"!1\r\nx\r\n", b"%1\r\n$1\r\na\r\n$1\r\nb\r\n",
            b"~1\r\n$1\r\na\r\n", b">1\r\n$1\r\na\r\n", b"*1\r\n$1\r\na\r\n",
            b"|1\r\n$1\r\na\r\n$1\r\nb\r\n", b"x\r\n", b"$$1\r\nv\r\n"]


def _not_bulk_requests(element: bytes) -> list:
    return [
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n" + element,
        # A CRLF inside an argument makes up for the one a `+` element lacks.
        b"*3\r\n$3\r\nSET\r\n$4\r\nk\r\nx\r\n" + element,
        b"*4\r\n$4\r\nMSET\r\n$2\r\n+k\r\n" + element + b"$4\r\n=(\r\n\r\n",
        resp("PING") + b"*3\r\n$3\r\nSET\r\n$4\r\nk\r\nx\r\n" + element + resp("PING"),
    ]


def _answer(port: int, data: bytes, prefix: bytes = b"", prefix_reply: bytes = b"") -> tuple:
    """What the server sends to `data` (after `prefix`, answered `prefix_reply`),
    and whether it then closes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        if prefix:
            sock.sendall(prefix)
            assert read_exactly(sock, len(prefix_reply)) == prefix_reply
        sock.sendall(data)
        reply = b""
        sock.settimeout(5)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return reply, True
                reply += chunk
        except socket.timeout:
            return reply, False
        except ConnectionResetError:
            return reply, True
    finally:
        sock.close()


@pytest.mark.parametrize("element", NOT_BULK, ids=lambda e: repr(e[:1])[2:-1])
def test_non_bulk_elements_answered_as_redis_does(redis_server, server, locked, element):
    """Each request answered byte for byte as redis-server answers it (the
    protocol error, after the replies to what came before it, then the
    close): on the password-less server, logged in, and before AUTH."""
    auth = resp("AUTH", "alice", "alice-pw")
    for data in _not_bulk_requests(element):
        want = _answer(redis_server.port, data)
        assert want[1] and b"Protocol error" in want[0], (data, want)
        assert _answer(server.port, data) == want, data
        assert _answer(locked.port, data, auth, b"+OK\r\n") == want, data
        if not data.startswith(resp("PING")):
            assert _answer(locked.port, data) == want, data   # before AUTH


def test_requests_before_a_protocol_error_are_answered(server):
    sock = send(server, resp("PING") + resp("ECHO", "hi") + b"*1\r\n$x\r\n" + resp("PING"))
    assert read_reply(sock) == b"+PONG\r\n$2\r\nhi\r\n-ERR Protocol error: invalid bulk length\r\n"
    assert closed(sock)


def test_error_after_partial_header_waits_for_the_line(server):
    # "*1\r" alone is not an error yet: Redis waits for the rest of the line.
    sock = send(server, b"*1\r")
    time.sleep(0.1)
    sock.sendall(b"\n$4\r\nPING\r\n")
    assert read_reply(sock) == b"+PONG\r\n"


@pytest.mark.parametrize("request_bytes, reply", [
    (b"POST / HTTP/1.1\r\nHost: x\r\n", b""),
    (b"Host: example.com\r\n", b""),
    # As Redis: "GET / HTTP/1.1" is a GET with too many arguments, whose reply
    # is dropped with the connection when "Host:" follows in the same read.
    (b"GET / HTTP/1.1\r\nHost: x\r\nPING\r\n", b""),
])
def test_http_request_closes_the_connection(server, request_bytes, reply):
    sock = send(server, request_bytes)
    assert read_reply(sock) == reply
    assert closed(sock)


def test_unknown_command_and_arity_keep_the_connection(server):
    sock = send(server, resp("NOSUCH", "a", "b") + resp("GET") + resp("PING"))
    assert read_reply(sock) == (
        b"-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \r\n"
        b"-ERR wrong number of arguments for 'get' command\r\n+PONG\r\n")


def test_unknown_client_subcommand_is_an_error_not_a_disconnect(server):
    sock = send(server, resp("CLIENT", "MAINT_NOTIFICATIONS", "on") + resp("PING"))
    assert read_reply(sock) == (
        b"-ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP.\r\n+PONG\r\n")


# -- inline form ----------------------------------------------------------------

def test_inline_commands_with_quotes(server):
    sock = send(server, b'SET k "a b\\x41\\n"\r\nGET k\nPING\r\n\r\nSTRLEN k\r\n')
    assert read_reply(sock) == b"+OK\r\n$5\r\na bA\n\r\n+PONG\r\n:5\r\n"


def test_inline_and_multibulk_mixed(server):
    sock = send(server, b"SET m 1\r\n" + resp("INCR", "m") + b"GET m\r\n")
    assert read_reply(sock) == b"+OK\r\n:2\r\n$1\r\n2\r\n"


def test_empty_multibulk_is_skipped(server):
    sock = send(server, b"*0\r\n*-1\r\n" + resp("PING"))
    assert read_reply(sock) == b"+PONG\r\n"


# -- framing -------------------------------------------------------------------

def test_pipeline_of_10000_commands_in_one_write(server):
    count = 10_000
    batch = b"".join(resp("INCR", "counter") for _ in range(count))
    sock = send(server, batch)
    expected = b"".join(b":%d\r\n" % i for i in range(1, count + 1))
    assert read_exactly(sock, len(expected)) == expected


def test_pipeline_of_10000_inline_commands(server):
    batch = b"".join(b"SET key:%d %d\r\n" % (i, i) for i in range(10_000)) + b"DBSIZE\r\n"
    sock = send(server, b"FLUSHALL\r\n" + batch)
    expected = b"+OK\r\n" * 10_001 + b":10000\r\n"
    assert read_exactly(sock, len(expected)) == expected


def test_large_value_split_across_many_writes(server):
    value = os.urandom(3 * 1024 * 1024 + 17)
    data = resp("SET", "big", value) + resp("STRLEN", "big") + resp("GET", "big")
    sock = server.raw()
    position = 0
    rng = random.Random(7)
    while position < len(data):
        step = rng.choice((1, 2, 3, 100, 4096, 65536, 1 << 20))
        sock.sendall(data[position:position + step])
        position += step
    expected = b"+OK\r\n:%d\r\n$%d\r\n%s\r\n" % (len(value), len(value), value)
    assert read_exactly(sock, len(expected)) == expected


def test_every_split_point_of_a_small_pipeline(server):
    data = resp("SET", "s", "x\r\ny") + b"GET s\r\n" + resp("ECHO", "") + resp("PING")
    expected = b"+OK\r\n$4\r\nx\r\ny\r\n$0\r\n\r\n+PONG\r\n"
    for cut in range(1, len(data)):
        sock = server.raw()
        sock.sendall(data[:cut])
        time.sleep(0.002)
        sock.sendall(data[cut:])
        assert read_exactly(sock, len(expected)) == expected, cut
        sock.close()


def test_binary_safe_keys_and_values(r, server):
    key = b"\x00k\r\n\xff"
    value = b"\r\n\x00" * 100
    sock = send(server, resp("SET", key, value) + resp("GET", key))
    assert read_reply(sock) == b"+OK\r\n$300\r\n" + value + b"\r\n"


# -- limits and misbehaving clients ---------------------------------------------

def test_query_buffer_limit_closes_only_that_client(server):
    healthy = server.client()
    healthy.config_set("client-query-buffer-limit", "1mb")
    try:
        # An announced 100 MB value, sent 2 MB in: Redis's limit counts the buffered input.
        sock = send(server, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000000\r\n")
        sent = 0
        try:
            while sent < 8 * 1024 * 1024:
                sock.sendall(b"x" * 65536)
                sent += 65536
        except OSError:
            pass
        assert closed(sock)
        # Many arguments, each small: the parsed ones count too.
        sock = server.raw()
        try:
            sock.sendall(b"*100000\r\n")
            for _ in range(400):
                sock.sendall(resp("x" * 10_000)[4:])   # just "$10000\r\n...\r\n"
        except OSError:
            pass
        assert closed(sock)
        assert healthy.ping() is True
    finally:
        healthy.config_set("client-query-buffer-limit", "1gb")


def test_slow_reader_is_served_later_without_unbounded_memory(server):
    """A client that pipelines GETs of a big value but does not read its replies:
    the server stops reading from it (backpressure) instead of buffering
    gigabytes, keeps serving others, and delivers everything once it reads."""
    client = server.client()
    value = b"v" * (1024 * 1024)
    client.set("big", value)
    rss_before = _rss_kb(server.process.pid)
    count = 1500   # 1.5 GB of replies if buffered
    sock = server.raw()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    request = resp("GET", "big")
    sock.setblocking(False)
    pending = request * count
    deadline = time.monotonic() + 2.0
    while pending and time.monotonic() < deadline:
        try:
            sent = sock.send(pending)
            pending = pending[sent:]
        except BlockingIOError:
            time.sleep(0.01)
    time.sleep(0.5)
    assert client.ping() is True
    assert _rss_kb(server.process.pid) - rss_before < 300 * 1024   # less than 300 MB grown
    sock.setblocking(True)
    if pending:
        sock.sendall(pending)
    one = b"$%d\r\n%s\r\n" % (len(value), value)
    received = 0
    sock.settimeout(30)
    while received < len(one) * count:
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed after %d bytes" % received
        received += len(chunk)
    assert received == len(one) * count
    sock.close()


def test_garbage_spraying_clients_beside_a_healthy_one(server):
    healthy = server.client()
    healthy.set("canary", "alive")
    rng = random.Random(1234)
    templates = [resp("SET", "a", "b"), resp("GET", "a"), b"PING\r\n", b"*2\r\n$3\r\n",
                 b"$", b"*", b"\r\n", b'"', b"'", b"\x00", b"*-5\r\n", b"$-9\r\n"]
    for round_number in range(300):
        sock = server.raw()
        try:
            parts = []
            for _ in range(rng.randint(1, 20)):
                if rng.random() < 0.5:
                    parts.append(rng.choice(templates))
                else:
                    parts.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))))
            sock.sendall(b"".join(parts))
            if round_number % 10 == 0:
                read_reply(sock, timeout=0.05)
        except OSError:
            pass
        finally:
            sock.close()
        if round_number % 25 == 0:
            assert healthy.get("canary") == b"alive"
            assert healthy.incr("healthy-counter") == round_number // 25 + 1
    assert server.alive()
    assert healthy.get("canary") == b"alive"
    assert healthy.dbsize() >= 1


def test_client_that_disconnects_mid_request(server):
    for _ in range(50):
        sock = server.raw()
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc")
        sock.close()
    assert server.client().ping() is True


def _rss_kb(pid: int) -> int:
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_concurrent_pipelining_clients_get_their_own_replies_in_order(server):
    # Replies of all connections are flushed together at the end of a loop
    # turn: each client must still get exactly its replies, in order, even
    # when it sends its pipeline in pieces and others are served meanwhile.
    socks = [server.raw() for _ in range(40)]
    expected = {}
    for round_number in range(5):
        second_halves = []
        for index, sock in enumerate(socks):
            values = [b"c%d-r%d-%d" % (index, round_number, i) for i in range(20)]
            request = b"".join(resp("ECHO", v.decode()) for v in values)
            half = len(request) // 2 + index % 7   # split at a different point each
            sock.sendall(request[:half])
            second_halves.append(request[half:])
            expected[index] = b"".join(b"$%d\r\n%s\r\n" % (len(v), v) for v in values)
        for sock, rest in zip(socks, second_halves):
            sock.sendall(rest)
        for index, sock in enumerate(socks):
            assert read_exactly(sock, len(expected[index])) == expected[index]
    for sock in socks:
        sock.close()
    assert server.client().ping() is True


def test_clients_resetting_right_after_a_request_do_not_stall_others(server):
    # A reply queued for the end-of-turn flush may find its client already
    # reset: the flush must drop it and still serve everyone else.
    import struct
    healthy = server.raw()
    for round_number in range(30):
        resetters = []
        for _ in range(20):
            sock = server.raw()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            resetters.append(sock)
        for sock in resetters:
            sock.sendall(resp("ECHO", "x" * 100) * 50)
        healthy.sendall(resp("INCR", "healthy"))
        for sock in resetters:
            sock.close()   # RST, probably before the server wrote its replies
        expected = b":%d\r\n" % (round_number + 1)
        assert read_exactly(healthy, len(expected), timeout=5) == expected
    assert server.alive()
    assert b"Traceback" not in open(server.log_path, "rb").read()
