"""A fair event loop: one client's long pipeline does not hold the others.

libuv reads a ready socket up to 32 times per loop turn, so before the
turn share (server/connection.py, TURN_REQUESTS) a client pipelining a
million INCRs held every other client for seconds (issue 15: 5.8 s).
"""

import socket
import threading
import time

from conftest import locked_fixture, read_exactly, resp


def _ping_latencies(port: int, stop: threading.Event, out: list) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(30)
    try:
        while not stop.is_set():
            start = time.monotonic()
            sock.sendall(b"PING\r\n")
            assert read_exactly(sock, 7) == b"+PONG\r\n"
            out.append(time.monotonic() - start)
            time.sleep(0.001)
    finally:
        sock.close()


def test_a_long_pipeline_shares_the_loop_and_keeps_its_order(server):
    count = 300_000
    attacker = socket.create_connection(("127.0.0.1", server.port))
    attacker.settimeout(60)
    attacker.sendall(resp("DEL", "fair:counter"))
    assert read_exactly(attacker, 4) in (b":0\r\n", b":1\r\n")
    latencies: list = []
    stop = threading.Event()
    victim = threading.Thread(target=_ping_latencies, args=(server.port, stop, latencies))
    victim.start()
    time.sleep(0.2)
    # The whole pipeline in one write, then a protocol error after it: its
    # replies come in order, the error last, then the close.
    payload = resp("INCR", "fair:counter") * count + b"*1\r\n+bad\r\n"
    sender = threading.Thread(target=attacker.sendall, args=(payload,))
    sender.start()
    expected = b"".join(b":%d\r\n" % i for i in range(1, count + 1))
    got = read_exactly(attacker, len(expected), timeout=60)
    sender.join()
    tail = attacker.recv(1024)
    stop.set()
    victim.join()
    attacker.close()
    assert got == expected
    assert tail.startswith(b"-ERR Protocol error")
    # The victim was served all along: its slowest PING stays far under the
    # seconds the whole pipeline takes (generous for a loaded 2-core machine).
    assert len(latencies) > 20
    assert max(latencies) < 0.25, max(latencies)


def test_slow_commands_in_a_pipeline_share_the_loop_by_time(server):
    """32 pipelined SUNIONSTORE of two 100,000-member sets (~15 ms each):
    after a command that is not @fast, a batch past its time share yields."""
    loader = socket.create_connection(("127.0.0.1", server.port))
    loader.settimeout(60)
    loader.sendall(resp("SELECT", "3"))
    assert read_exactly(loader, 5) == b"+OK\r\n"
    for name, first in (("fair:a", 0), ("fair:b", 50_000)):
        loader.sendall(resp("SADD", name, *range(first, first + 100_000)))
        assert read_exactly(loader, 9) == b":100000\r\n"
    latencies: list = []
    stop = threading.Event()
    victim = threading.Thread(target=_ping_latencies, args=(server.port, stop, latencies))
    victim.start()
    time.sleep(0.2)
    loader.sendall(resp("SUNIONSTORE", "fair:c", "fair:a", "fair:b") * 32)
    replies = read_exactly(loader, 32 * 9)
    stop.set()
    victim.join()
    loader.sendall(resp("FLUSHDB"))
    assert read_exactly(loader, 5) == b"+OK\r\n"
    loader.close()
    assert replies == b":150000\r\n" * 32
    assert max(latencies) < 0.2, max(latencies)


def test_a_long_read_is_parsed_in_shares_whatever_its_values_hold(server):
    """A read over 64 KB is cut after the last request that starts in its
    first 64 KB (server/connection.py, INPUT_SHARE), the rest parsed on the
    next turns: values holding "\\r\\n*" (a false boundary) still come out
    whole, every reply in order."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(60)
    values = [b"v%d\r\n*3\r\n$3\r\nSET\r\n" % i + b"\r\n*" * (i % 7) for i in range(20_000)]
    payload = b"".join(resp("SET", "share:%d" % i, v) for i, v in enumerate(values))
    payload += b"".join(resp("GET", "share:%d" % i) for i in range(20_000))
    payload += resp("DEL", *["share:%d" % i for i in range(20_000)])
    sock.sendall(payload)
    expected = (b"+OK\r\n" * 20_000
                + b"".join(b"$%d\r\n%s\r\n" % (len(v), v) for v in values) + b":20000\r\n")
    assert read_exactly(sock, len(expected), timeout=60) == expected
    sock.close()


# -- the tenant's share: N connections of one tenant do not get N shares ----------------------

tenants = locked_fixture({"fairness-a": "a-pw", "fairness-b": "b-pw"}, "root-pw")


def _auth(port: int, user: str, password: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(60)
    sock.sendall(resp("AUTH", user, password))
    assert read_exactly(sock, 5) == b"+OK\r\n"
    return sock


def _timed_pings(sock: socket.socket, stop: threading.Event, out: list) -> None:
    """PING in a loop: the monotonic time each answer came."""
    while not stop.is_set():
        sock.sendall(b"PING\r\n")
        assert read_exactly(sock, 7) == b"+PONG\r\n"
        out.append(time.monotonic())
        time.sleep(0.001)


def test_a_tenants_connections_share_one_turn_share(tenants):
    """12 connections of tenant A each pipeline SUNIONSTOREs of ~5 ms (64,000
    elements: under slices.BIG, so each runs whole, not as a sliced job that
    holds the tenant's other clients anyway): with a share per connection,
    every turn of the loop ran 12 of them before tenant B's next PING; with
    the tenant's share (dispatch/slices.py: charge), a turn runs about one.
    Counted, not timed (a loaded 2-core machine's noise is in every time):
    the PINGs B gets answered while A's commands run, one per turn at most."""
    loader = _auth(tenants.port, "fairness-a", "a-pw")
    for name, first in (("t:a", 0), ("t:b", 32_000)):
        loader.sendall(resp("SADD", name, *range(first, first + 32_000)))
        assert read_exactly(loader, 8) == b":32000\r\n"
    attackers = [_auth(tenants.port, "fairness-a", "a-pw") for _ in range(12)]
    victim = _auth(tenants.port, "fairness-b", "b-pw")
    answered: list = []
    stop = threading.Event()
    pinger = threading.Thread(target=_timed_pings, args=(victim, stop, answered))
    pinger.start()
    time.sleep(0.1)
    rounds = 24
    started = time.monotonic()
    for i, sock in enumerate(attackers):
        sock.sendall(resp("SUNIONSTORE", "t:c%d" % i, "t:a", "t:b") * rounds)
    for sock in attackers:
        assert read_exactly(sock, 8 * rounds) == b":64000\r\n" * rounds
    ended = time.monotonic()
    stop.set()
    pinger.join()
    loader.sendall(resp("FLUSHALL"))
    assert read_exactly(loader, 5) == b"+OK\r\n"
    for sock in attackers + [loader, victim]:
        sock.close()
    during = sum(1 for t in answered if started < t < ended)
    commands = rounds * len(attackers)
    # Per connection: ~commands / 12 turns, so about as many PINGs (24).
    # Per tenant: ~one turn per command.
    assert during > commands / 4, (during, commands, ended - started)
