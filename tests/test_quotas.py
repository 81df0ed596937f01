"""Per-tenant quotas (issue 15): overrides by root (ACL SETUSER quota:...,
`tenantkv user set-quota`), kept in the user store; the connections quota at
login; the rate quota per read; TENANT LIST / TENANT INFO and INFO's quota
section. (The memory and keys quotas are enforced by server/memory.py and
tested with it.) Real server, real clients: redis-py and raw sockets."""

import socket
import subprocess
import sys
import time

import pytest
import redis

from conftest import ServerProcess, add_user, locked_server, login, read_reply, resp

ROOT_PASSWORD = "quota-root-secret"
USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}


def quota_connections(limit: int) -> str:
    return "max number of clients reached for this tenant ('connections' quota %d)." % limit


def quota_rate(limit: int) -> str:
    return "command not allowed: the tenant is over its 'rate' quota (at most %d a second)." % limit


@pytest.fixture
def srv(tmp_path):
    with locked_server(tmp_path, USERS, ROOT_PASSWORD) as proc:
        yield proc


def setuser(root, name, *tokens):
    assert root.execute_command("ACL", "SETUSER", name, *tokens) in (b"OK", "OK", True)


def flags_of(root, name) -> list:
    reply = root.execute_command("ACL", "GETUSER", name)
    if isinstance(reply, list):   # RESP2: flat pairs
        reply = dict(zip(reply[::2], reply[1::2]))
    flags = reply.get(b"flags", reply.get("flags"))
    return sorted(f.decode() if isinstance(f, bytes) else f for f in flags)


def quota_flags(root, name) -> list:
    return [f for f in flags_of(root, name) if f.startswith("quota:")]


def as_map(reply) -> dict:
    """A map reply (RESP3) or its flat pairs (RESP2) as a dict."""
    return dict(zip(reply[::2], reply[1::2])) if isinstance(reply, list) else reply


def raw_auth(port: int, name: str, password: str):
    """A raw connection and the reply to its AUTH."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(resp("AUTH", name, password))
    return sock, read_reply(sock, timeout=10)


def info_fields(client, section="quota") -> dict:
    return client.info(section)


# -- connections -------------------------------------------------------------------

def test_connections_quota_refuses_the_tenant_not_the_others(srv):
    root = login(srv, "root")
    setuser(root, "alice", "quota:connections=2")
    held = [login(srv, "alice"), login(srv, "alice")]
    sock, reply = raw_auth(srv.port, "alice", USERS["alice"])
    try:
        # The right password, no room: the quota's error, and the connection
        # stays open and unauthenticated.
        assert reply == b"-ERR " + quota_connections(2).encode() + b"\r\n"
        sock.sendall(resp("GET", "k"))
        assert read_reply(sock).startswith(b"-NOAUTH")
        # Another tenant logs in as often as it likes meanwhile.
        others = [login(srv, "bob") for _ in range(4)]
        assert all(c.set("k", "v") for c in others)
        # Root sees the figures.
        entry = as_map(root.execute_command("TENANT", "INFO", "alice"))
        assert entry[b"connections"] == 2 and entry[b"quota_connections"] == 2
        # A place freed is a place taken: the same socket logs in now.
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:
            sock.sendall(resp("AUTH", "alice", USERS["alice"]))
            reply = read_reply(sock, timeout=10)
            if reply == b"+OK\r\n" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert reply == b"+OK\r\n"
        for c in others:
            c.close()
    finally:
        sock.close()
        for c in held:
            c.close()


def test_connections_default_follows_config_set_and_override_wins(srv):
    root = login(srv, "root")
    root.config_set("tenant-quota-connections", 1)
    try:
        first = login(srv, "carol")
        sock, reply = raw_auth(srv.port, "carol", USERS["carol"])
        sock.close()
        assert reply == b"-ERR " + quota_connections(1).encode() + b"\r\n"
        # An override of 0 is "no limit" for that user, whatever the default.
        setuser(root, "carol", "quota:connections=0")
        more = [login(srv, "carol") for _ in range(3)]
        # Root is not held to the defaults (it could not administer else).
        roots = [login(srv, "root") for _ in range(2)]
        for c in [first, *more, *roots]:
            c.close()
    finally:
        root.config_set("tenant-quota-connections", 0)
        root.close()


# -- rate --------------------------------------------------------------------------

def test_rate_quota_refuses_the_tenant_not_the_others(srv):
    root = login(srv, "root")
    setuser(root, "alice", "quota:rate=50")
    alice, bob = login(srv, "alice"), login(srv, "bob")
    assert alice.info("quota")["quota_rate"] == 50
    refused = None
    started = time.monotonic()
    ran = 0
    while time.monotonic() - started < 10:
        try:
            alice.set("k", ran)
            ran += 1
        except redis.ResponseError as exc:
            refused = str(exc)
            break
        # Another tenant's commands run all along.
        assert bob.set("k", ran) is True
    assert refused == quota_rate(50)
    elapsed = time.monotonic() - started
    # A second's burst, then 50 a second (generous: the first read after
    # the bucket empties still runs, and the clock is coarse on a loaded box).
    assert ran <= 50 + 50 * elapsed + 10, (ran, elapsed)
    # While throttled: every command refused, MULTI's too; QUIT still runs.
    with pytest.raises(redis.ResponseError, match="'rate' quota"):
        alice.get("k")
    assert bob.get("k") is not None
    # Idle for a while: the bucket refills and the commands run again.
    time.sleep(1.5)
    assert alice.set("k", "again") is True
    assert alice.info("quota")["quota_rate"] == 50
    # Held at its rate for a few seconds, it runs about 50 a second (the
    # figure TENANT INFO and its INFO show: the last whole second's).
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        try:
            alice.set("k", 1)
        except redis.ResponseError:
            time.sleep(0.005)
    rate = as_map(root.execute_command("TENANT", "INFO", "alice"))[b"rate"]
    assert 20 <= rate <= 110, rate
    # Dropping the override lifts the throttle for good.
    setuser(root, "alice", "quota:rate=default")
    for i in range(300):
        alice.set("k", i)
    assert alice.info("quota")["quota_rate"] == 0
    for c in (alice, bob, root):
        c.close()


def test_default_rate_quota_spares_root_and_logins(srv):
    """CONFIG SET tenant-quota-rate: every tenant without an override, at
    once; not root's (not held to the defaults), and not the logins (the
    connections that have not authenticated are in no user's tenant)."""
    root = login(srv, "root")
    alice = login(srv, "alice")
    root.config_set("tenant-quota-rate", 1)
    try:
        with pytest.raises(redis.ResponseError, match=r"'rate' quota \(at most 1 a"):
            for i in range(200):
                alice.set("k", i)
        for i in range(200):
            assert root.set("k", i) is True
        for _ in range(10):   # AUTH runs in the default tenant, which has no quota
            sock, reply = raw_auth(srv.port, "carol", USERS["carol"])
            sock.close()
            assert reply == b"+OK\r\n"
    finally:
        root.config_set("tenant-quota-rate", 0)
    assert root.info("quota")["quota_rate"] == 0
    for c in (alice, root):
        c.close()


def _replies(sock, count: int) -> list:
    """`count` whole replies (simple ones: a line each) from a raw socket."""
    data = b""
    deadline = time.monotonic() + 10
    while data.count(b"\r\n") < count and time.monotonic() < deadline:
        data += sock.recv(65536)
    return data.split(b"\r\n")[:count]


def test_rate_quota_counts_pipelines_and_refuses_inside_multi(srv):
    root = login(srv, "root")
    setuser(root, "bob", "quota:rate=100")
    bob, carol = login(srv, "bob"), login(srv, "carol")
    # Every request of a pipeline counts: of 300 INCRs at least the bucket's
    # 100 run (a read that finds tokens runs whole), then reads are refused.
    pipe = bob.pipeline(transaction=False)
    for _ in range(300):
        pipe.incr("n")
    replies = pipe.execute(raise_on_error=False)
    ran = [r for r in replies if not isinstance(r, Exception)]
    assert ran == list(range(1, len(ran) + 1)) and len(ran) >= 100
    assert all(quota_rate(100) == str(r) for r in replies if isinstance(r, Exception))
    # Inside MULTI too: each request refused as it arrives, none queued.
    # (A read that finds a fresh token runs: measured again until one is refused.)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    refused = None
    try:
        sock.sendall(resp("AUTH", "bob", USERS["bob"]))
        assert read_reply(sock, timeout=10) == b"+OK\r\n"
        deadline = time.monotonic() + 10
        while refused is None and time.monotonic() < deadline:
            sock.sendall(resp("INCR", "n"))
            if b"'rate' quota" not in read_reply(sock):
                continue
            sock.sendall(resp("MULTI") + resp("INCR", "n") + resp("EXEC"))
            got = _replies(sock, 3)
            if all(b"'rate' quota" in r for r in got):
                refused = got
            else:
                sock.sendall(resp("DISCARD"))
                read_reply(sock)
    finally:
        sock.close()
    assert refused == [b"-ERR " + quota_rate(100).encode()] * 3
    assert carol.incr("n") == 1   # another tenant, all along
    # The debt is paid back, then bob runs again.
    deadline = time.monotonic() + 15
    while True:
        try:
            assert int(bob.get("n")) >= len(ran)
            break
        except redis.ResponseError:
            assert time.monotonic() < deadline
            time.sleep(0.25)
    for c in (bob, carol, root):
        c.close()


# -- administration ------------------------------------------------------------------

def test_setuser_quota_syntax_getuser_list_and_refusals(srv):
    root = login(srv, "root")
    setuser(root, "alice", "quota:memory=100mb", "quota:keys=100000", "quota:connections=50",
            "quota:rate=5000")
    assert quota_flags(root, "alice") == ["quota:connections=50", "quota:keys=100000",
                                          "quota:memory=104857600", "quota:rate=5000"]
    line = [l for l in root.execute_command("ACL", "LIST") if l.startswith(b"user alice ")][0]
    assert b" quota:memory=104857600 quota:keys=100000 quota:connections=50 quota:rate=5000 " in line
    # Relative to the current overrides; `default` drops one.
    setuser(root, "alice", "quota:rate=default", "quota:keys=7")
    assert quota_flags(root, "alice") == ["quota:connections=50", "quota:keys=7",
                                          "quota:memory=104857600"]
    for bad in ("quota:bogus=1", "quota:memory=-1", "quota:keys=x", "quota:rate",
                "quota:connections=99999999999"):
        with pytest.raises(redis.ResponseError, match="Error in ACL SETUSER modifier"):
            root.execute_command("ACL", "SETUSER", "alice", bad)
    assert quota_flags(root, "alice") == ["quota:connections=50", "quota:keys=7",
                                          "quota:memory=104857600"]
    # Non-root: NOPERM for setting quotas, and for TENANT.
    alice = login(srv, "alice")
    for command in (("ACL", "SETUSER", "alice", "quota:rate=0"), ("TENANT", "LIST"),
                    ("TENANT", "INFO", "alice")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            alice.execute_command(*command)
    assert quota_flags(root, "alice") == ["quota:connections=50", "quota:keys=7",
                                          "quota:memory=104857600"]
    # Her own INFO shows her figures against her quotas.
    alice.set("a", 1)
    info = alice.info("quota")
    assert info["quota_keys"] == 7 and info["quota_memory"] == 104857600
    assert info["tenant_keys"] == 1 and info["tenant_connections"] == 1
    # `reset` makes the user as new: no overrides.
    setuser(root, "bob", "quota:rate=9", "reset")
    assert quota_flags(root, "bob") == []
    alice.close()
    root.close()


def test_quotas_survive_a_restart_and_the_offline_cli(tmp_path):
    data = tmp_path
    with locked_server(data, USERS, ROOT_PASSWORD) as proc:
        root = login(proc, "root")
        setuser(root, "alice", "quota:rate=5000", "quota:memory=1gb")
        root.close()
    cli = [sys.executable, "-m", "tenantkv.cli.admin", "--data-dir", str(data), "user", "set-quota"]
    done = subprocess.run(cli + ["bob", "--memory", "100mb", "--rate", "5000"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "memory=104857600 rate=5000" in done.stdout
    done = subprocess.run(cli + ["alice", "--rate", "default", "--keys", "12"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    bad = subprocess.run(cli + ["bob", "--connections", "lots"], capture_output=True, text=True)
    assert bad.returncode == 1 and "connections" in bad.stderr
    bad = subprocess.run(cli + ["nobody", "--rate", "1"], capture_output=True, text=True)
    assert bad.returncode == 1 and "no such user" in bad.stderr
    env = {"TENANTKV_AUTH__DEFAULT_USER": "off"}
    with ServerProcess(data, env=env, passwords={"root": ROOT_PASSWORD, **USERS}) as proc:
        root = login(proc, "root")
        assert quota_flags(root, "alice") == ["quota:keys=12", "quota:memory=1073741824"]
        assert quota_flags(root, "bob") == ["quota:memory=104857600", "quota:rate=5000"]
        entry = as_map(root.execute_command("TENANT", "INFO", "bob"))
        assert (entry[b"quota_memory"], entry[b"quota_rate"]) == (104857600, 5000)
        # A change made offline while the server runs arrives with ACL LOAD.
        done = subprocess.run(cli + ["bob", "--rate", "0"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert root.execute_command("ACL", "LOAD") in (b"OK", True)
        assert as_map(root.execute_command("TENANT", "INFO", "bob"))[b"quota_rate"] == 0
        root.close()


def test_store_migration_to_schema_4_keeps_users(tmp_path):
    """A users.db of schema 3 (before quotas) gains the quota column, its
    users kept, without overrides (the defaults)."""
    import sqlite3
    from tenantkv.tenancy import SCHEMA_VERSION, UserStore
    path = str(tmp_path / "users.db")
    with UserStore(path) as store:
        before = store.add("alice", b"pw")
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE users DROP COLUMN quota")
    con.execute("UPDATE schema_version SET version = 3")
    con.commit()
    con.close()
    with UserStore(path) as store:
        assert SCHEMA_VERSION >= 4 and store.schema_version() == SCHEMA_VERSION
        alice = store.get("alice")
        assert (alice.id, alice.tenant_key, alice.quota) == (before.id, before.tenant_key, None)
        assert store.set_quota("alice", "memory=5 rate=7").quota == "memory=5 rate=7"


# -- visibility ---------------------------------------------------------------------

FIELDS = [b"name", b"users", b"keys", b"used_memory", b"connections", b"commands_processed",
          b"rate", b"quota_memory", b"quota_keys", b"quota_connections", b"quota_rate"]


def test_tenant_list_and_info_shapes(srv):
    root = login(srv, "root", protocol=3)
    setuser(root, "carol", "namespace:shared", "quota:keys=500")
    setuser(root, "bob", "namespace:shared", "quota:keys=300", "quota:rate=1000")
    bob = login(srv, "bob")
    bob.mset({"x": 1, "y": 2})
    tenants = root.execute_command("TENANT", "LIST")
    assert isinstance(tenants, list) and all(isinstance(t, dict) for t in tenants)
    assert all(list(t) == FIELDS for t in tenants)
    names = [t[b"name"] for t in tenants]
    assert names == sorted(names)
    shared = [t for t in tenants if t[b"name"] == b"shared"][0]
    # A namespace's quota is the strictest of its users' figures.
    assert shared[b"users"] == [b"bob", b"carol"]
    assert (shared[b"keys"], shared[b"connections"]) == (2, 1)
    assert (shared[b"quota_keys"], shared[b"quota_rate"]) == (300, 1000)
    processed = bob.info("stats")["total_commands_processed"]
    assert as_map(root.execute_command("TENANT", "INFO", "bob"))[b"commands_processed"] \
        == processed + 1   # and that INFO
    # TENANT INFO: by a user's name or by the tenant's key, the same map.
    by_user = root.execute_command("TENANT", "INFO", "carol")
    by_key = root.execute_command("TENANT", "INFO", "shared")
    assert list(by_user) == FIELDS and by_user[b"name"] == by_key[b"name"] == b"shared"
    assert by_user[b"quota_keys"] == 300
    with pytest.raises(redis.ResponseError, match="no such user or tenant 'nobody'"):
        root.execute_command("TENANT", "INFO", "nobody")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        root.execute_command("TENANT", "INFO")
    # RESP2: flat pairs.
    root2 = login(srv, "root", protocol=2)
    flat = root2.execute_command("TENANT", "INFO", "alice")
    assert flat[::2] == FIELDS and flat[1] == b"tenant:" + flat[1][7:]
    help_ = root2.execute_command("TENANT", "HELP")
    assert any(b"LIST" in line for line in help_)
    for c in (bob, root, root2):
        c.close()
