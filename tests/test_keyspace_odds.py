"""The keyspace's odds and ends (issue 18, part K) beyond the compat session
(sessions/keyspace-odds.txt): MEMORY DOCTOR reports a tenant's own figures
(another tenant's data changes nothing in it), MALLOC-STATS shows nothing of
the process; LOLWUT's art is redis-server's, byte for byte where Redis draws
no random part, and its size is bounded; DEBUG's helpers are root's;
COMMAND COUNT and LIST follow the table."""

import re
import socket

import pytest
import redis

from conftest import locked_fixture, login, read_reply, resp

ROOT_PASSWORD = "odds-root-secret"
USERS = {"alice": "alice-pw", "bob": "bob-pw"}

srv = locked_fixture(USERS, ROOT_PASSWORD)

EMPTY = b"Hi Sam, this instance is empty or is using very little memory"
FINE = b"Hi Sam, I can't find any memory issue in your instance."


def test_memory_doctor_reports_the_tenants_own_figures(ab):
    a, b = ab
    assert a.execute_command("MEMORY", "DOCTOR").startswith(EMPTY)
    # Bob fills 8 MB: Alice's report is unchanged, Bob's is about his data
    pipe = b.pipeline(transaction=False)
    for i in range(80):
        pipe.set("big:%d" % i, b"x" * 100_000)
    pipe.execute()
    assert a.execute_command("MEMORY", "DOCTOR").startswith(EMPTY)
    assert b.execute_command("MEMORY", "DOCTOR").startswith(FINE)
    b.flushall()
    assert b.execute_command("MEMORY", "DOCTOR").startswith(EMPTY)


def test_malloc_stats_shows_nothing_of_the_process(srv, ab):
    a, _ = ab
    root = login(srv, "root")
    expected = b"Stats not supported for the current allocator"
    assert a.execute_command("MEMORY", "MALLOC-STATS") == expected
    assert root.execute_command("MEMORY", "MALLOC-STATS") == expected
    root.close()


def _raw(port: int, *args, auth=None) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        if auth:
            sock.sendall(resp("AUTH", *auth))
            assert read_reply(sock) == b"+OK\r\n"
        sock.sendall(resp(*args))
        return read_reply(sock, timeout=30)


def _art(reply: bytes) -> bytes:
    """The reply without its length line and its version number."""
    body = reply.split(b"\r\n", 1)[1]
    return re.sub(rb"Redis ver\. [0-9.]+\n", b"Redis ver. X\n", body)


def _widths(art: str) -> list:
    """Characters per line, a colour escape counting for nothing."""
    return [len(re.sub("\033\\[[0-9;]*m", "", line)) for line in art.split("\n")]


@pytest.mark.slow
def test_lolwut_art_is_redis_bytes(srv, redis_server):
    auth = ("alice", USERS["alice"])
    for args in (("5", "66", "8", "2"), ("5", "40", "4", "1"), ("5", "1", "1", "1"),
                 ("5", "3", "1", "2"), ("5", "600", "200", "2"), ("5", "120", "7", "2"),
                 ("5", "0", "0", "0"), ("5", "-5", "300", "1"), ("5", "17", "3", "2")):
        ours = _raw(srv.port, "LOLWUT", "VERSION", *args, auth=auth)
        theirs = _raw(redis_server.port, "LOLWUT", "VERSION", *args)
        assert _art(ours) == _art(theirs), args
    # The random parts: the same frame (lines, widths, caption) as Redis's
    for args in (("5",), ("6",), ("6", "30", "12")):
        ours = _art(_raw(srv.port, "LOLWUT", "VERSION", *args, auth=auth)).decode()
        theirs = _art(_raw(redis_server.port, "LOLWUT", "VERSION", *args)).decode()
        # characters (Braille) or cells (colour escapes) per line
        assert _widths(ours) == _widths(theirs), args
        assert ours.split("\n")[-3:] == theirs.split("\n")[-3:]


def test_lolwut_size_is_bounded(ab):
    a, b = ab
    with pytest.raises(redis.ResponseError, match="LOLWUT draws at most 32768 pixels"):
        a.execute_command("LOLWUT", "VERSION", "5", "1000", "1", "200")
    with pytest.raises(redis.ResponseError, match="LOLWUT draws at most 32768 pixels"):
        a.execute_command("LOLWUT", "VERSION", "6", "1000", "1000")
    assert b.ping() and a.ping()
    assert a.execute_command("LOLWUT", "VERSION", "6", "1024", "32")   # the bound itself
    assert a.execute_command("LOLWUT", "VERSION", "5")   # Redis's default size fits


def test_debug_helpers_are_roots(srv, ab):
    a, _ = ab
    root = login(srv, "root")
    for args in (("ERROR", "x"), ("LOG", "x"), ("CHANGE-REPL-ID",), ("STRINGMATCH-TEST",),
                 ("REPLYBUFFER", "RESIZING", "0")):
        with pytest.raises(redis.ResponseError, match="no permissions"):
            a.execute_command("DEBUG", *args)
    with pytest.raises(redis.ResponseError, match="^MYERR made up$"):
        root.execute_command("DEBUG", "ERROR", "MYERR made up")
    assert root.execute_command("DEBUG", "LOG", "### Starting test") == b"OK"
    assert root.execute_command("DEBUG", "STRINGMATCH-TEST") == \
        b"Apparently Redis did not crash: test passed"
    root.close()


def test_command_count_and_list_follow_the_table(ab):
    a, _ = ab
    names = a.execute_command("COMMAND LIST")
    top = [n for n in names if b"|" not in n]
    assert a.execute_command("COMMAND COUNT") == len(top)
    for name in (b"sort", b"sort_ro", b"swapdb", b"lolwut", b"memory|doctor",
                 b"memory|malloc-stats"):
        assert name in names
    dangerous = a.execute_command("COMMAND LIST FILTERBY ACLCAT dangerous")
    assert {b"sort", b"sort_ro", b"swapdb"} <= set(dangerous)
    assert b"lolwut" not in dangerous
