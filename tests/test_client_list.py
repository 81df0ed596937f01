"""CLIENT LIST / CLIENT INFO fields and CLIENT KILL's arguments, as Redis 7.0
reports them (tests/unit/introspection.tcl in Redis's own suite)."""

import time

import pytest
import redis

from conftest import read_reply, resp

# Redis 7.0's fields, in its order; then 7.2's lib-name and lib-ver (CLIENT SETINFO).
FIELDS = ["id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "sub", "psub",
          "ssub", "multi", "qbuf", "qbuf-free", "argv-mem", "multi-mem", "rbs", "rbp", "obl",
          "oll", "omem", "tot-mem", "events", "cmd", "user", "redir", "resp", "lib-name", "lib-ver"]


def fields(line: bytes) -> dict:
    pairs = [item.split("=", 1) for item in line.decode().split(" ")]
    assert [name for name, _ in pairs] == FIELDS
    return dict(pairs)


def listing(sock) -> dict:
    """CLIENT LIST sent on `sock`: {name: fields} of every client with a name,
    and "me" for the caller's own line."""
    sock.sendall(resp("CLIENT", "ID") + resp("CLIENT", "LIST"))
    reply = read_reply(sock)
    me = reply[1:reply.index(b"\r\n")].decode()
    body = reply[reply.index(b"\r\n") + 2:]
    body = body[body.index(b"\r\n") + 2:]   # past the bulk header
    clients = {}
    for line in body.rstrip(b"\r\n").split(b"\n"):
        entry = fields(line)
        clients["me" if entry["id"] == me else entry["name"]] = entry
    return clients


def test_caller_line_shows_the_running_command(server):
    sock = server.raw()
    sock.sendall(resp("CLIENT", "INFO"))
    reply = read_reply(sock)
    info = fields(reply[reply.index(b"\r\n") + 2:].rstrip(b"\r\n"))
    # As Redis: the request being run is in the query buffer (26 bytes of
    # RESP), its arguments in argv-mem ("client" + "info"), and it is cmd.
    assert info["cmd"] == "client|info"
    assert (info["qbuf"], info["argv-mem"]) == ("26", "10")
    assert (info["flags"], info["multi"], info["multi-mem"], info["events"]) == ("N", "-1", "0", "r")
    assert (info["obl"], info["oll"], info["omem"], info["qbuf-free"]) == ("0", "0", "0", "0")
    assert (info["sub"], info["psub"], info["ssub"], info["redir"], info["resp"]) == ("0", "0", "0", "-1", "2")
    assert int(info["tot-mem"]) > 26
    me = listing(sock)["me"]
    assert (me["cmd"], me["qbuf"], me["argv-mem"]) == ("client|list", "26", "10")


def test_other_clients_input_transaction_and_flags(server):
    partial = server.raw()
    partial.sendall(resp("CLIENT", "SETNAME", "partial"))
    assert read_reply(partial) == b"+OK\r\n"
    # A request cut short: two arguments parsed (argv-mem 3 + 1), and three
    # bytes of the third waiting in the query buffer.
    partial.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc")
    queued = server.raw()
    queued.sendall(resp("CLIENT", "SETNAME", "queued") + resp("WATCH", "w") + resp("MULTI")
                   + resp("SET", "key", "value"))
    assert read_reply(queued) == b"+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n"
    flagged = server.raw()
    flagged.sendall(resp("CLIENT", "SETNAME", "flagged") + resp("CLIENT", "NO-EVICT", "on")
                    + resp("SELECT", "3"))
    assert read_reply(flagged) == b"+OK\r\n+OK\r\n+OK\r\n"
    observer = server.raw()
    clients = listing(observer)
    assert (clients["partial"]["qbuf"], clients["partial"]["argv-mem"]) == ("3", "4")
    assert clients["partial"]["cmd"] == "client"   # its last command; nothing of SET ran yet
    q = clients["queued"]
    assert (q["flags"], q["multi"], q["cmd"]) == ("x", "1", "multi")
    # Redis counts a queued command's arguments and one pointer per argument.
    assert q["multi-mem"] == str(3 + 3 + 5 + 8 * 3)
    assert (clients["flagged"]["flags"], clients["flagged"]["db"]) == ("e", "3")
    # WATCH then a write to the watched key: flag d (the EXEC will fail).
    server.client().set("w", "changed")
    assert listing(observer)["queued"]["flags"] == "xd"
    for sock in (partial, queued, flagged, observer):
        sock.close()


def test_client_kill_needs_arguments(r, server):
    other = server.client()
    other.ping()
    with pytest.raises(redis.ResponseError,
                       match=r"^wrong number of arguments for 'client\|kill' command$"):
        r.execute_command("CLIENT", "KILL")
    assert other.ping() is True   # the bare CLIENT KILL killed no one
    with pytest.raises(redis.ResponseError, match="^syntax error"):
        r.execute_command("CLIENT", "KILL", "ID", "10", "wrong_arg")
    with pytest.raises(redis.ResponseError, match="greater than 0"):
        r.execute_command("CLIENT", "KILL", "ID", "str")
    other.close()


def test_idle_and_age_count_seconds(server):
    sock = server.raw()
    sock.sendall(resp("CLIENT", "SETNAME", "sleepy"))
    assert read_reply(sock) == b"+OK\r\n"
    time.sleep(1.1)
    entry = listing(server.raw())["sleepy"]
    assert int(entry["idle"]) >= 1 and int(entry["age"]) >= 1
    sock.close()
