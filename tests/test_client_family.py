"""The rest of the CLIENT family (issue 16): PAUSE/UNPAUSE per tenant (root:
the whole server), REPLY ON|OFF|SKIP (byte for byte as redis-server), and
CLIENT INFO's fields against redis-server 7.0."""

import socket
import threading
import time

import pytest

from conftest import locked_fixture, login, read_reply, resp

locked = locked_fixture({"alice": "alice-pw", "bob": "bob-pw"}, "root-pw")

PAUSE_MS = 3000


def timed(client, *args):
    """(seconds the command took, its reply)."""
    started = time.monotonic()
    reply = client.execute_command(*args)
    return time.monotonic() - started, reply


def in_thread(fn, *args):
    result = {}

    def run():
        result["value"] = fn(*args)
    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_tenant_pause_holds_only_its_own_clients(locked):
    alice, alice2, bob = login(locked, "alice"), login(locked, "alice"), login(locked, "bob")
    root = login(locked, "root")
    try:
        assert alice.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL") == b"OK"
        held, result = in_thread(timed, alice2, "GET", "k")
        # Another tenant and root are not held at all.
        took, _ = timed(bob, "SET", "k", "bob")
        assert took < PAUSE_MS / 1000 / 2
        took, _ = timed(root, "GET", "k")
        assert took < PAUSE_MS / 1000 / 2
        # Bob's UNPAUSE ends only bob's (no) pause; alice's client stays held.
        assert bob.execute_command("CLIENT", "UNPAUSE") == b"OK"
        held.join(PAUSE_MS / 1000 * 4)
        took, reply = result["value"]
        assert reply is None
        assert took > PAUSE_MS / 1000 * 0.6   # the pause's end released it, not bob
    finally:
        root.execute_command("CLIENT", "UNPAUSE")


def test_tenant_unpause_under_write_and_write_semantics(locked):
    alice, alice2 = login(locked, "alice"), login(locked, "alice")
    root = login(locked, "root")
    try:
        alice.set("w", "before")
        assert alice.execute_command("CLIENT", "PAUSE", 60000, "WRITE") == b"OK"
        took, reply = timed(alice2, "GET", "w")   # reads go on
        assert reply == b"before" and took < 5
        held, result = in_thread(timed, alice2, "SET", "w", "after")
        time.sleep(0.5)
        assert alice.get("w") == b"before"        # the write waits
        assert held.is_alive()
        # EXEC of a queue of reads is not held; one with a write is.
        pipe = alice.pipeline(transaction=True)
        pipe.get("w")
        assert pipe.execute() == [b"before"]
        alice3 = login(locked, "alice")
        transaction = alice3.pipeline(transaction=True)
        transaction.get("w")
        transaction.incr("counter")
        held_exec, result_exec = in_thread(transaction.execute)
        time.sleep(0.5)
        assert held_exec.is_alive() and alice.get("counter") is None
        # The tenant's own UNPAUSE (not a write) ends it: the write runs.
        assert alice.execute_command("CLIENT", "UNPAUSE") == b"OK"
        held.join(10)
        took, reply = result["value"]
        assert reply is True and took < 30
        held_exec.join(10)
        assert result_exec["value"][1] == 1
        assert alice.get("w") == b"after"
    finally:
        root.execute_command("CLIENT", "UNPAUSE")


def test_root_pause_holds_every_tenant_and_root_unpause_frees(locked):
    alice, bob = login(locked, "alice"), login(locked, "bob")
    root, root2 = login(locked, "root"), login(locked, "root")
    try:
        assert root.execute_command("CLIENT", "PAUSE", 60000, "WRITE") == b"OK"
        assert timed(alice, "GET", "k")[0] < 5
        held_a, result_a = in_thread(timed, alice, "SET", "ra", "1")
        held_b, result_b = in_thread(timed, bob, "SET", "rb", "1")
        time.sleep(0.5)
        assert held_a.is_alive() and held_b.is_alive()
        assert root2.execute_command("CLIENT", "UNPAUSE") == b"OK"
        held_a.join(10)
        held_b.join(10)
        assert result_a["value"][1] is True and result_b["value"][1] is True
        assert result_a["value"][0] < 30
        # Root's UNPAUSE ends a tenant's pause too.
        assert alice.execute_command("CLIENT", "PAUSE", 60000, "WRITE") == b"OK"
        held_a, result_a = in_thread(timed, alice, "SET", "ra", "2")
        time.sleep(0.5)
        assert held_a.is_alive()
        assert root2.execute_command("CLIENT", "UNPAUSE") == b"OK"
        held_a.join(10)
        assert result_a["value"][1] is True
    finally:
        root.execute_command("CLIENT", "UNPAUSE")


def test_pause_all_holds_pipeline_and_unpause_of_paused_client(make_server):
    """As Redis: under ALL even CLIENT UNPAUSE of a held client waits; a
    refused request (unknown command) is answered at once; the pipeline runs
    in order when the pause ends."""
    proc = make_server()
    sock = proc.raw()
    other = proc.raw()
    sock.sendall(resp("CLIENT", "PAUSE", 1500, "ALL") + resp("INCR", "n") + resp("INCR", "n"))
    assert read_reply(sock, timeout=5).startswith(b"+OK\r\n")
    other.sendall(resp("NOSUCHCOMMAND"))
    assert read_reply(other, timeout=1).startswith(b"-ERR unknown command")
    started = time.monotonic()
    other.sendall(resp("CLIENT", "UNPAUSE") + resp("GET", "n"))
    reply = read_reply(other, timeout=10)
    assert time.monotonic() - started > 0.5
    assert reply == b"+OK\r\n$1\r\n2\r\n"
    assert read_reply(sock, timeout=1) == b":1\r\n:2\r\n"


@pytest.mark.parametrize("mode", [b"foo", b"-1", b"x"])
def test_pause_errors_as_redis(make_server, redis_server, mode):
    proc = make_server()
    for args in [("CLIENT", "PAUSE", mode), ("CLIENT", "PAUSE", 10, mode),
                 ("CLIENT", "PAUSE", 10, "WRITE", "x")]:
        replies = []
        for port in (redis_server.port, proc.port):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(resp(*args) + resp("CLIENT", "UNPAUSE"))
                replies.append(read_reply(sock))
        assert replies[0] == replies[1], args


# CLIENT REPLY: the same pipeline against both servers, byte for byte.
REPLY_SESSION = [
    ("CLIENT", "REPLY", "foo"),
    ("CLIENT", "REPLY", "SKIP"), ("PING",), ("ECHO", "shown-1"),
    ("CLIENT", "REPLY", "OFF"), ("SET", "k", "1"), ("GETX",), ("CLIENT", "REPLY", "SKIP"),
    ("CLIENT", "REPLY", "ON"), ("GET", "k"),
    ("CLIENT", "REPLY", "SKIP"), ("CLIENT", "REPLY", "ON"), ("ECHO", "shown-2"),
    ("CLIENT", "REPLY", "SKIP"), ("CLIENT", "REPLY", "SKIP"), ("PING",), ("ECHO", "shown-3"),
    ("CLIENT", "REPLY", "OFF"), ("BLPOP", "nolist", "0.05"), ("RESET",), ("ECHO", "shown-4"),
]


def reply_session(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(resp(*args) for args in REPLY_SESSION))
        data = b""
        deadline = time.monotonic() + 10
        while not data.endswith(b"shown-4\r\n") and time.monotonic() < deadline:
            data += read_reply(sock)
        return data


def test_client_reply_as_redis(make_server, redis_server):
    proc = make_server()
    expected = reply_session(redis_server.port)
    assert reply_session(proc.port) == expected
    assert b"shown-1" in expected and b"PONG" not in expected


def info_fields(port: int) -> dict:
    """CLIENT INFO of a client in RESP3, named, in db 3, in MULTI with two
    queued commands (the INFO itself runs outside, on that client: EXEC)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(resp("HELLO", "3", "SETNAME", "fields") + resp("SELECT", "3")
                     + resp("MULTI") + resp("SET", "a", "b") + resp("GET", "a")
                     + resp("CLIENT", "INFO"))
        data = b""
        while data.count(b"QUEUED") < 3:
            data += read_reply(sock)
        sock.sendall(resp("DISCARD") + resp("CLIENT", "INFO"))
        data = b""
        while b"resp=" not in data:
            data += read_reply(sock)
        line = data[data.index(b"txt:") + 4:].split(b"\n")[0].decode()
        return dict(item.split("=", 1) for item in line.split(" "))


def test_client_info_fields_as_redis(make_server, redis_server):
    proc = make_server()
    expected = info_fields(redis_server.port)
    got = info_fields(proc.port)
    # 7.0's fields in 7.0's order (tenantkv adds 7.2's lib-name, lib-ver).
    assert list(got)[:len(expected)] == list(expected)
    for field in ("age", "idle"):   # seconds: the two sessions may straddle a second
        assert abs(int(got[field]) - int(expected[field])) <= 2, field
    for field in ("name", "flags", "db", "sub", "psub", "ssub", "multi",
                  "multi-mem", "oll", "omem", "events", "cmd", "user",
                  "redir", "resp"):
        assert got[field] == expected[field], field
    # While monitoring: flag O, as Redis.
    for port in (redis_server.port, proc.port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as watcher, \
                socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            watcher.sendall(resp("CLIENT", "SETNAME", "watcher") + resp("MONITOR"))
            assert read_reply(watcher) == b"+OK\r\n+OK\r\n"
            sock.sendall(resp("CLIENT", "LIST"))
            listing = read_reply(sock).decode()
            line = [entry for entry in listing.split("\n") if "name=watcher" in entry][0]
            assert " flags=O " in line, (port, line)


def test_pause_write_then_all_holds_reads(make_server):
    """Two pauses make one, the stronger kind: reads go on under WRITE and
    are held once ALL joins it (the gate then wraps every command)."""
    proc = make_server()
    pauser, reader = proc.client(), proc.client()
    reader.set("k", "v")
    assert pauser.execute_command("CLIENT", "PAUSE", 1500, "WRITE") == b"OK"
    took, reply = timed(reader, "GET", "k")
    assert reply == b"v" and took < 1.0
    assert pauser.execute_command("CLIENT", "PAUSE", 1500, "ALL") == b"OK"
    took, reply = timed(reader, "GET", "k")
    assert reply == b"v" and took > 0.7


def subscribed_line(port: int) -> tuple:
    """A client subscribed to 2 channels, 1 pattern and 1 shard channel: its
    CLIENT LIST line (seen from another client) and the names CLIENT LIST
    TYPE pubsub / TYPE normal list. None if SUBSCRIBE does not exist yet."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sub, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as other:
        sub.sendall(resp("CLIENT", "SETNAME", "subscriber"))
        assert read_reply(sub) == b"+OK\r\n"
        sub.sendall(resp("SUBSCRIBE", "a", "b") + resp("PSUBSCRIBE", "p*")
                    + resp("SSUBSCRIBE", "s"))
        if read_reply(sub).startswith(b"-ERR unknown command"):
            return None
        other.sendall(resp("CLIENT", "SETNAME", "other"))
        assert read_reply(other) == b"+OK\r\n"
        listed = {}
        for kind in ("", "pubsub", "normal"):
            other.sendall(resp("CLIENT", "LIST", *(("TYPE", kind) if kind else ())))
            text = read_reply(other).decode()
            listed[kind] = sorted(entry.split(" name=")[1].split(" ")[0]
                                  for entry in text.split("\n")[1:] if " name=" in entry)
            if not kind:
                line = [entry for entry in text.split("\n") if "name=subscriber" in entry][0]
        fields = dict(item.split("=", 1) for item in line.split(" "))
        return ({f: fields[f] for f in ("flags", "sub", "psub", "ssub")},
                listed["pubsub"], listed["normal"])


def test_subscriber_fields_and_type_as_redis(make_server, redis_server):
    proc = make_server()
    got = subscribed_line(proc.port)
    if got is None:
        pytest.skip("SUBSCRIBE arrives with issue 16's pub/sub part")
    expected = subscribed_line(redis_server.port)
    assert expected == ({"flags": "P", "sub": "2", "psub": "1", "ssub": "1"},
                        ["subscriber"], ["other"])
    assert got == expected
