"""INFO shows a non-root user its own tenant's activity only; root sees the
server (issue 13, point 8; the rule is at the top of commands/server.py's INFO).

Each test watches user B through a raw socket, so that B's own traffic is
known to the byte: B's figures must move by exactly what B did, whatever
tenant A does meanwhile (many commands, pipelined and in MULTI, errors,
failed AUTHs, writes, large replies).
"""

import socket
import time

import pytest
import redis

from conftest import WRONGPASS, exchange, locked_server, login, resp

# Lines that move with the clock alone.
CLOCK = {"server_time_usec", "uptime_in_seconds", "uptime_in_days", "lru_clock"}

# What INFO's server section says about the host: root's only.
HOST_FACTS = ("os", "python_version", "process_id", "executable", "config_file")

# Server-wide figures a tenant is not shown at all.
SERVER_ONLY = ("used_memory", "used_memory_rss", "used_memory_peak", "used_cpu_sys",
               "used_cpu_user", "rdb_changes_since_last_save", "rejected_connections",
               "auth_throttled", "rdb_last_load_keys_loaded")


@pytest.fixture
def srv(tmp_path):
    with locked_server(tmp_path, {"alice": "alice-pw", "bob": "bob-pw"}, "root-pw") as proc:
        yield proc


class Watcher:
    """User `name` on a raw socket, counting what it sends and receives."""

    def __init__(self, server, name: str, password: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.sent = self.received = 0
        assert self.call("AUTH", name, password) == b"+OK\r\n"

    def call(self, *args) -> bytes:
        request = resp(*args)
        self.sock.sendall(request)
        self.sent += len(request)
        reply = self._read()
        self.received += len(reply)
        return reply

    def _read(self) -> bytes:
        data = b""
        while b"\r\n" not in data:
            data += self._recv()
        head, _, rest = data.partition(b"\r\n")
        if head[:1] != b"$":
            assert not rest, data
            return data
        size = int(head[1:]) + 2
        while len(rest) < size:
            rest += self._recv()
        assert len(rest) == size
        return head + b"\r\n" + rest

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        assert chunk, "the server closed the connection"
        return chunk

    def info(self, *sections) -> dict:
        reply = self.call("INFO", *sections)
        self.last_reply = len(reply)
        text = reply.partition(b"\r\n")[2][:-2].decode()
        fields = {}
        for line in text.split("\r\n"):
            if line and not line.startswith("#"):
                name, _, value = line.partition(":")
                fields[name] = value
        return fields

    def close(self) -> None:
        self.sock.close()


def tenant_a_activity(srv, n: int = 300) -> dict:
    """Everything tenant A (alice) does: returns what it should count."""
    alice = login(srv, "alice")
    pipe = alice.pipeline(transaction=False)
    for i in range(n):
        pipe.set("k%d" % i, "v" * 1000)
    pipe.execute()                                    # pipelined (one read, many commands)
    for i in range(20):
        alice.get("k%d" % i)                          # one request per read; hits
        alice.get("missing%d" % i)                    # misses
    alice.set("short", "x", px=1)
    time.sleep(0.05)
    assert alice.get("short") is None                 # an expired key
    with alice.pipeline(transaction=True) as multi:
        multi.incr("counter").incr("counter")
        multi.execute()                               # MULTI / EXEC
    for _ in range(2):
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            alice.lpush("k1", "x")
        with pytest.raises(redis.ResponseError, match="unknown command"):
            alice.execute_command("NOSUCHCOMMAND")
        with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
            alice.execute_command("GET")
        with pytest.raises(redis.ResponseError, match="no permissions"):
            alice.config_set("maxmemory", "0")
        with pytest.raises(redis.AuthenticationError):
            alice.auth("wrong-pw", "alice")           # failed AUTH on alice's logged-in connection
    alice.client_id()                                 # a container's subcommand
    assert alice.get("k0") == b"v" * 1000
    alice.close()
    # An unauthenticated connection guessing bob's password: not bob's activity either.
    guesser = srv.raw()
    for _ in range(1):
        exchange(guesser, resp("AUTH", "bob", "guess"), WRONGPASS)
    guesser.close()
    return {"sets": n + 1, "wrongpass": 2, "noperm": 2}


def moved(before: dict, after: dict) -> dict:
    return {name: (before.get(name), after.get(name)) for name in set(before) | set(after)
            if name not in CLOCK and before.get(name) != after.get(name)}


@pytest.mark.slow   # failed AUTHs wait for the login throttle (~10 s)
def test_tenant_b_sees_none_of_tenant_a_activity(srv):
    bob = Watcher(srv, "bob", "bob-pw")
    bob_client = login(srv, "bob")
    bob_client.set("mine", "1")
    bob_client.close()
    time.sleep(0.3)   # the closed client is gone from connected_clients
    before = bob.info("everything")
    sent, reply_size = bob.sent, bob.last_reply
    tenant_a_activity(srv)
    after = bob.info("everything")
    # Exactly bob's own INFO in between: one command, its request in (read
    # before INFO ran), the previous INFO's reply out; nothing else moved.
    expected = {
        "total_commands_processed": int(before["total_commands_processed"]) + 1,
        "total_net_input_bytes": int(before["total_net_input_bytes"]) + bob.sent - sent,
        "total_net_output_bytes": int(before["total_net_output_bytes"]) + reply_size,
    }
    changes = moved(before, after)
    for name, value in expected.items():
        assert int(after[name]) == value, (name, before[name], after[name])
        changes.pop(name)
    calls = _calls(before.get("cmdstat_info", "calls=0,"))   # the first INFO shows none yet
    assert changes.pop("cmdstat_info")[1] == "calls=%d,rejected_calls=0,failed_calls=0" % (calls + 1)
    assert changes == {}
    # What bob sees is bob's own, from the start: its SET, its client's
    # set-up (redis-py's CLIENT SETINFO, and an unknown subcommand's ERR).
    assert _calls(after["cmdstat_set"]) == 1 and "cmdstat_lpush" not in after
    errorstats = {name: int(value.removeprefix("count=")) for name, value in after.items()
                  if name.startswith("errorstat_")}
    assert set(errorstats) <= {"errorstat_ERR"}
    assert int(after["total_error_replies"]) == sum(errorstats.values())
    assert after["acl_access_denied_auth"] == after["acl_access_denied_cmd"] == "0"
    assert after["keyspace_hits"] == after["keyspace_misses"] == after["expired_keys"] == "0"
    for name in HOST_FACTS + SERVER_ONLY:
        assert name not in after, name
    for name in ("redis_version", "tcp_port", "uptime_in_seconds", "maxmemory", "role",
                 "connected_clients", "rdb_last_save_time", "aof_enabled"):
        assert name in after, name
    assert int(after["total_connections_received"]) == 2   # its two logins
    bob.close()


def _calls(cmdstat: str) -> int:
    return int(cmdstat.split(",")[0].removeprefix("calls="))
