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

from conftest import WRONGPASS, exchange, locked_server, login, read_reply, resp

# Lines that move with the clock alone.
CLOCK = {"server_time_usec", "uptime_in_seconds", "uptime_in_days", "lru_clock"}

# What INFO's server section says about the host: root's only.
HOST_FACTS = ("os", "python_version", "process_id", "executable", "config_file")

# Server-wide figures a tenant is not shown at all.
SERVER_ONLY = ("used_memory", "used_memory_rss", "used_memory_peak", "used_cpu_sys",
               "used_cpu_user", "rdb_changes_since_last_save", "rejected_connections",
               "auth_throttled", "rdb_last_load_keys_loaded")


def start(data_dir):
    return locked_server(data_dir, {"alice": "alice-pw", "bob": "bob-pw"}, "root-pw")


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


def tenant_a_activity(srv, n: int = 300) -> None:
    """Everything tenant A (alice) does (test_tenant_a_sees_exactly_its_own_activity counts it)."""
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
    alice.client_id()                                 # a container's subcommand
    assert alice.get("k0") == b"v" * 1000
    alice.close()
    # Failed AUTHs on a connection logged in as alice (raw: redis-py
    # reconnects after one).
    sock = srv.raw()
    exchange(sock, resp("AUTH", "alice", "alice-pw"), b"+OK\r\n")
    for _ in range(2):
        exchange(sock, resp("AUTH", "alice", "wrong-pw"), WRONGPASS)
    sock.close()
    # An unauthenticated connection guessing bob's password: not bob's activity either.
    # (The third failure from this address: a throttle may answer it with an
    # error of its own.)
    guesser = srv.raw()
    guesser.sendall(resp("AUTH", "bob", "guess"))
    assert read_reply(guesser, timeout=30).startswith(b"-")
    guesser.close()


def moved(before: dict, after: dict) -> dict:
    return {name: (before.get(name), after.get(name)) for name in set(before) | set(after)
            if name not in CLOCK and before.get(name) != after.get(name)}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """One server: bob's INFO before and after everything alice does."""
    with start(tmp_path_factory.mktemp("info_isolation")) as srv:
        bob = Watcher(srv, "bob", "bob-pw")
        bob_client = login(srv, "bob")
        bob_client.set("mine", "1")
        bob_client.hset("bob-hash", "f", "v")         # a command alice never runs
        bob_client.close()
        deadline = time.monotonic() + 10
        while bob.info("clients")["connected_clients"] != "1":   # the server saw the close
            assert time.monotonic() < deadline
            time.sleep(0.05)
        before = bob.info("everything")
        sent, reply_size = bob.sent, bob.last_reply
        tenant_a_activity(srv)
        after = bob.info("everything")
        yield srv, before, after, bob.sent - sent, reply_size
        bob.close()


def test_tenant_b_sees_none_of_tenant_a_activity(scene):
    srv, before, after, request_size, reply_size = scene
    # Exactly bob's own INFO in between: one command, its request in (read
    # before INFO ran), the previous INFO's reply out; nothing else moved.
    expected = {
        "total_commands_processed": int(before["total_commands_processed"]) + 1,
        "total_net_input_bytes": int(before["total_net_input_bytes"]) + request_size,
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
    assert int(after["connected_clients"]) == 1


def test_tenant_a_sees_exactly_its_own_activity(scene):
    srv, *_ = scene
    alice = Watcher(srv, "alice", "alice-pw")
    info = alice.info("everything")
    stat = {name[len("cmdstat_"):]: dict(item.split("=") for item in value.split(","))
            for name, value in info.items() if name.startswith("cmdstat_")}
    assert stat["set"] == {"calls": "301", "rejected_calls": "0", "failed_calls": "0"}
    assert stat["get"] == {"calls": "42", "rejected_calls": "2", "failed_calls": "0"}
    assert stat["lpush"] == {"calls": "2", "rejected_calls": "0", "failed_calls": "2"}
    assert stat["incrby"]["calls"] == "2" and stat["exec"]["calls"] == stat["multi"]["calls"] == "1"
    assert stat["config|set"] == {"calls": "0", "rejected_calls": "2", "failed_calls": "0"}
    assert stat["client|id"]["calls"] == "1"
    assert "hset" not in stat                   # bob's
    assert all(set(fields) == {"calls", "rejected_calls", "failed_calls"} for fields in stat.values())
    assert info["errorstat_WRONGTYPE"] == "count=2"
    assert info["errorstat_NOPERM"] == "count=2"
    assert info["errorstat_WRONGPASS"] == "count=2"   # not the guess at bob's password
    assert info["acl_access_denied_auth"] == info["acl_access_denied_cmd"] == "2"
    assert (info["keyspace_hits"], info["keyspace_misses"], info["expired_keys"]) == ("21", "21", "1")
    assert 301 * 1000 < int(info["total_net_input_bytes"]) < 330 * 1000
    assert 21 * 1000 < int(info["total_net_output_bytes"]) < 30 * 1000
    processed = int(info["total_commands_processed"])
    assert 301 + 42 + 2 + 2 + 4 <= processed < 301 + 42 + 50
    alice.close()


def test_root_sees_the_server(scene):
    srv, _, bob_after, *_ = scene
    root = Watcher(srv, "root", "root-pw")
    info = root.info("everything")
    assert _calls(info["cmdstat_set"]) >= 301 + 1
    assert _calls(info["cmdstat_hset"]) >= 1
    # alice's 2 and the guess at bob's (unless a throttle answered that one)
    assert info["errorstat_WRONGPASS"] in ("count=2", "count=3")
    assert int(info["acl_access_denied_auth"]) >= 2
    assert int(info["acl_access_denied_cmd"]) == 2
    assert int(info["total_commands_processed"]) > 301 + 42 + int(bob_after["total_commands_processed"])
    assert int(info["total_net_input_bytes"]) > 301 * 1000
    assert int(info["keyspace_hits"]) >= 21 and int(info["expired_keys"]) >= 1
    assert int(info["total_connections_received"]) >= 6
    for name in HOST_FACTS + SERVER_ONLY:
        assert name in info, name
    assert int(info["process_id"]) == srv.process.pid
    root.close()


def test_resetstat_by_root_resets_tenants_too(tmp_path):
    with start(tmp_path) as srv:
        alice = login(srv, "alice")
        pipe = alice.pipeline(transaction=False)
        for i in range(50):
            pipe.set("k%d" % i, i)
        pipe.execute()
        alice.get("k1")
        with pytest.raises(redis.ResponseError):
            alice.lpush("k1", "x")
        assert alice.info("commandstats")["cmdstat_set"]["calls"] == 50
        root = login(srv, "root")
        assert root.config_resetstat()
        info = alice.info("everything")   # its own INFO is counted after it ran
        assert "cmdstat_set" not in info and "errorstat_WRONGTYPE" not in info
        assert info["total_commands_processed"] == 0 and info["total_error_replies"] == 0
        assert info["keyspace_hits"] == 0
        assert info["total_net_input_bytes"] < 100 and info["total_net_output_bytes"] == 0
        alice.set("again", 1)
        assert alice.info("commandstats")["cmdstat_set"]["calls"] == 1


def _calls(cmdstat: str) -> int:
    return int(cmdstat.split(",")[0].removeprefix("calls="))
