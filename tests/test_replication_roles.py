"""Replication between tenantkv nodes: roles (REPLICAOF NO ONE, re-pointing
replicas, a former primary that comes back), Redis 7 compatibility of
REPLICAOF / ROLE / INFO replication / HELLO (checked against a pair of real
redis-servers), safety (who may read the stream, which primaries a replica
accepts), min-replicas-to-write, persistence combinations and TLS links.

A pair: the primary has a root user (ROOT_PW) and alice; a replica has a
root user of its own until its first sync, which brings it the primary's
user store (so afterwards ROOT_PW logs in on every node)."""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import hiredis
import pytest
import redis

from compat import harness
from conftest import (NO_RETRY, add_user, closed, dump_tenant, exchange, free_port, login,
                      read_reply, resp, same_data)

ROOT_PW = "primary-root-pw"
REPLICA_ROOT_PW = "replica-root-pw"
USERS = {"root": ROOT_PW, "alice": "alice-pw", "bob": "bob-pw"}
LOCKED = {"TENANTKV_AUTH__DEFAULT_USER": "off"}


# -- helpers -------------------------------------------------------------------------

def wait_until(check, timeout: float = 20.0, what: str = "condition"):
    """Poll `check` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.05)


def start_primary(make_server, tmp_path, name: str = "primary", *flags, port=None):
    data_dir = tmp_path / name
    if not data_dir.exists():
        data_dir.mkdir()
        add_user(data_dir, "root", ROOT_PW, "--root")
        add_user(data_dir, "alice", USERS["alice"])
        add_user(data_dir, "bob", USERS["bob"])
    return make_server(*flags, data_dir=data_dir, env=LOCKED, passwords=USERS, port=port)


def start_replica(make_server, tmp_path, primary_port: int, name: str, *flags,
                  masteruser: str | None = "root", masterauth: str | None = ROOT_PW, port=None):
    """A replica of 127.0.0.1:`primary_port` with a data dir of its own.
    Before its first sync only its own root user (REPLICA_ROOT_PW) logs in."""
    data_dir = tmp_path / name
    if not data_dir.exists():
        data_dir.mkdir()
        add_user(data_dir, "root", REPLICA_ROOT_PW, "--root")
    extra = ["--replicaof", "127.0.0.1 %d" % primary_port]
    if masteruser is not None:
        extra += ["--masteruser", masteruser]
    if masterauth is not None:
        extra += ["--masterauth", masterauth]
    return make_server(*extra, *flags, data_dir=data_dir, env=LOCKED, passwords=USERS,
                       port=port)


def info(node, password: str = ROOT_PW) -> dict:
    with login(node, "root", password) as client:
        return client.info("replication")


def wait_link_up(replica, timeout: float = 20.0) -> None:
    """Until the replica's link is up (its first sync done: the primary's
    users, so ROOT_PW, log in from then on)."""
    def up():
        for password in (ROOT_PW, REPLICA_ROOT_PW):
            try:
                return info(replica, password).get("master_link_status") == "up"
            except redis.AuthenticationError:
                continue
        return False
    wait_until(up, timeout, "master_link_status:up on %d" % replica.port)


def wait_caught_up(primary, *replicas, timeout: float = 20.0) -> None:
    """Until every replica applied all the primary fed so far."""
    target = info(primary)["master_repl_offset"]
    for replica in replicas:
        wait_until(lambda: info(replica).get("slave_repl_offset", -1) >= target, timeout,
                   "replica %d at offset %d" % (replica.port, target))


def log_text(node) -> str:
    node.log.flush()
    with open(node.log_path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def wait_log(node, text: str, count: int = 1, timeout: float = 20.0) -> str:
    return wait_until(lambda: log_text(node).count(text) >= count and log_text(node), timeout,
                      "%r x%d in %s" % (text, count, node.log_path))


PARTIAL = "Master accepted a Partial Resynchronization"
FULL = "Full resync from master"


# -- 1. roles ----------------------------------------------------------------------------

def test_promotion_repointed_replica_and_former_primary(make_server, tmp_path):
    """REPLICAOF NO ONE makes a replica a primary that keeps its old
    history as replid2; a second replica re-pointed to it continues with a
    partial resync; the old primary, which wrote on its own meanwhile,
    joins it with a full sync and loses what only it had."""
    # Offsets are compared exactly: no PING record of the primary's between.
    primary = start_primary(make_server, tmp_path, "primary", "--repl-ping-replica-period", "60")
    r1 = start_replica(make_server, tmp_path, primary.port, "r1")
    r2 = start_replica(make_server, tmp_path, primary.port, "r2")
    wait_link_up(r1)
    wait_link_up(r2)
    alice = login(primary, "alice")
    for i in range(50):
        alice.set("k%d" % i, i)
    bob = login(primary, "bob")
    bob.rpush("list", *range(10))
    wait_caught_up(primary, r1, r2)
    old = info(r1)
    old_id, old_offset = old["master_replid"], old["master_repl_offset"]
    assert old_id == info(primary)["master_replid"]

    with login(r1, "root") as root:
        assert root.execute_command("REPLICAOF", "NO", "ONE") == b"OK"
        promoted = root.info("replication")
    assert promoted["role"] == "master"
    assert promoted["master_replid"] != old_id
    assert promoted["master_replid2"] == old_id
    assert promoted["second_repl_offset"] == old_offset + 1
    a1 = login(r1, "alice")
    a1.set("after-promotion", "yes")          # writes accepted
    assert a1.get("k7") == b"7"
    assert login(r1, "bob").lrange("list", 0, -1) == [b"%d" % i for i in range(10)]

    # The second replica: same history up to old_offset, so it goes on.
    assert log_text(r2).count(PARTIAL) == 0
    with login(r2, "root") as root:
        assert root.execute_command("REPLICAOF", "127.0.0.1", r1.port) == b"OK"
    wait_log(r2, PARTIAL)
    wait_link_up(r2)
    assert log_text(r2).count(FULL) == 1      # the first sync only
    wait_caught_up(r1, r2)
    assert login(r2, "alice").get("after-promotion") == b"yes"
    a1.set("after-repoint", "1")
    wait_caught_up(r1, r2)
    assert login(r2, "alice").get("after-repoint") == b"1"

    # The former primary wrote on its own after the split: a full sync
    # replaces its data; no divergent key survives.
    alice.set("divergent", "lost")
    bob.set("divergent-bob", "lost")
    alice.set("k1", "overwritten-on-old-primary")
    alice.close()
    bob.close()
    with login(primary, "root") as root:
        # Started without credentials (it was the primary): given now.
        root.config_set("masteruser", "root")
        root.config_set("masterauth", ROOT_PW)
        assert root.execute_command("REPLICAOF", "127.0.0.1", r1.port) == b"OK"
    wait_log(primary, FULL)
    wait_link_up(primary)
    wait_caught_up(r1, primary, r2)
    assert log_text(primary).count(PARTIAL) == 0
    old_alice, old_bob = login(primary, "alice"), login(primary, "bob")
    assert old_alice.get("divergent") is None
    assert old_bob.get("divergent-bob") is None
    assert old_alice.get("k1") == b"1"
    assert old_alice.get("after-repoint") == b"1"
    same_data(dump_tenant(a1), dump_tenant(old_alice))
    assert info(r1)["connected_slaves"] == 2
    # Read-only now: the former primary refuses writes.
    with pytest.raises(redis.ReadOnlyError):
        old_alice.set("x", 1)


UNBLOCKED = (b"-UNBLOCKED force unblock from blocking operation, instance state changed "
             b"(master -> replica?)\r\n")


def test_clients_blocked_on_a_primary_that_turns_replica(make_server, tmp_path):
    """A node that turns replica answers its blocked clients -UNBLOCKED (as
    Redis): else the primary's pushes, replayed here, would wake them and
    pop on a replica (the element handed out twice, the replica diverged)."""
    primary = start_primary(make_server, tmp_path)
    node = start_replica(make_server, tmp_path, primary.port, "node")
    wait_link_up(node)
    with login(node, "root") as root:
        root.execute_command("REPLICAOF", "NO", "ONE")     # a primary of its own
        blocked = raw_login(node, "alice", USERS["alice"])
        try:
            blocked.sendall(resp("BLPOP", "queue", 10))
            wait_until(lambda: root.info("clients")["blocked_clients"] == 1,
                       what="the BLPOP blocked")
            root.execute_command("REPLICAOF", "127.0.0.1", primary.port)
            wait_link_up(node)
            login(primary, "alice").rpush("queue", "job-1", "job-2")
            wait_caught_up(primary, node)
            blocked.settimeout(10)
            assert blocked.recv(200) == UNBLOCKED
        finally:
            blocked.close()
    assert login(node, "alice").lrange("queue", 0, -1) == [b"job-1", b"job-2"]


def test_planned_switchover_continues_partially(make_server, tmp_path):
    """A switchover by hand: the replica caught up is promoted, the old
    primary (no write since) follows it and continues its history with a
    partial resync (PSYNC2: the promoted node's replid2 is its id)."""
    # No PING of the old primary's may land in its history after the split.
    primary = start_primary(make_server, tmp_path, "primary", "--masteruser", "root",
                            "--masterauth", ROOT_PW, "--repl-ping-replica-period", "60")
    replica = start_replica(make_server, tmp_path, primary.port, "r")
    wait_link_up(replica)
    login(primary, "alice").set("k", "1")
    wait_caught_up(primary, replica)
    with login(replica, "root") as root:
        root.execute_command("REPLICAOF", "NO", "ONE")
    with login(primary, "root") as root:
        root.execute_command("REPLICAOF", "127.0.0.1", replica.port)
    wait_log(primary, PARTIAL)
    wait_link_up(primary)
    assert FULL not in log_text(primary)
    login(replica, "alice").set("k", "2")
    wait_caught_up(replica, primary)
    assert login(primary, "alice").get("k") == b"2"


def test_client_kill_by_type_and_partial_resync(make_server, tmp_path):
    """The primary lists its replica as TYPE replica (flags S); CLIENT KILL
    TYPE normal (Sentinel's failover script) spares it; TYPE replica drops
    it, and it comes back with a partial resync, no write lost."""
    primary = start_primary(make_server, tmp_path)
    replica = start_replica(make_server, tmp_path, primary.port, "r")
    wait_link_up(replica)
    alice = login(primary, "alice")
    alice.set("before", "1")
    wait_caught_up(primary, replica)
    with login(primary, "root") as root:
        for kind in ("replica", "slave"):
            listed = root.execute_command("CLIENT", "LIST", "TYPE", kind).decode()
            assert listed.count("flags=S ") == 1 and "user=root" in listed, kind
        assert "flags=S" not in root.execute_command("CLIENT", "LIST", "TYPE", "normal").decode()
        assert root.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes") == 1
        assert root.info("replication")["connected_slaves"] == 1
        assert root.execute_command("CLIENT", "KILL", "TYPE", "replica") == 1
        alice = login(primary, "alice")   # its connection was a normal one
        alice.set("while-away", "2")
    wait_log(replica, PARTIAL)
    wait_link_up(replica)
    alice.set("after", "3")
    wait_caught_up(primary, replica)
    assert log_text(replica).count(FULL) == 1
    ours = login(replica, "alice")
    assert [ours.get(k) for k in ("before", "while-away", "after")] == [b"1", b"2", b"3"]


# -- 2. compatibility with redis-server 7 ---------------------------------------------

def role_shape(reply):
    """ROLE's reply with every leaf replaced by its type (and the role
    and link-state words kept)."""
    if isinstance(reply, list):
        return [role_shape(item) for item in reply]
    if isinstance(reply, bytes) and reply in (b"master", b"slave", b"connected"):
        return reply
    return type(reply).__name__


@pytest.fixture(scope="module")
def redis_pair(tmp_path_factory):
    """A real redis-server and its replica, link up: the reference."""
    if harness.redis_server_path() is None:
        pytest.skip("redis-server is not installed (`make redis-tools`)")
    base = tmp_path_factory.mktemp("redis-pair")
    (base / "p").mkdir()
    (base / "r").mkdir()
    with harness.RedisServer(free_port(), str(base / "p")) as primary, \
            harness.RedisServer(free_port(), str(base / "r")) as replica:
        client = redis.Redis(port=replica.port)
        # Its syncs at once (redis-server waits 5 s for more replicas by default).
        redis.Redis(port=primary.port).config_set("repl-diskless-sync-delay", 0)
        assert client.execute_command("REPLICAOF", "127.0.0.1", primary.port) == b"OK"
        wait_until(lambda: client.info("replication")["master_link_status"] == "up",
                   what="redis-server replica link up")
        redis.Redis(port=primary.port).set("k", "v")
        wait_until(lambda: client.get("k") == b"v", what="redis-server replica caught up")
        wait_until(lambda: redis.Redis(port=primary.port).info("replication")
                   .get("slave0", {}).get("state") == "online", what="slave0 online")
        yield redis.Redis(port=primary.port), client
        client.close()


def test_replicaof_replies_role_info_hello_as_redis(make_server, tmp_path, redis_pair):
    """REPLICAOF's replies, ROLE's shape, INFO replication's field names and
    HELLO's role are redis-server 7.0's, on each side of a pair."""
    ref_primary, ref_replica = redis_pair
    # ROLE's offset is compared with INFO's: no PING record between.
    primary = start_primary(make_server, tmp_path, "primary", "--repl-ping-replica-period", "60")
    replica = start_replica(make_server, tmp_path, primary.port, "r")
    wait_link_up(replica)
    login(primary, "alice").set("k", "v")
    wait_caught_up(primary, replica)
    wait_until(lambda: info(primary).get("slave0", {}).get("state") == "online",
               what="slave0 online")
    p_root, r_root = login(primary, "root"), login(replica, "root")

    # REPLICAOF's replies.
    ref_port = ref_primary.connection_pool.connection_kwargs["port"]
    assert ref_replica.execute_command("REPLICAOF", "127.0.0.1", ref_port) == \
        b"OK Already connected to specified master"
    assert r_root.execute_command("REPLICAOF", "127.0.0.1", primary.port) == \
        b"OK Already connected to specified master"
    for bad in ("70000", "-1", "abc", "65536", "1.5"):
        for client in (ref_primary, p_root):
            with pytest.raises(redis.ResponseError) as caught:
                client.execute_command("REPLICAOF", "127.0.0.1", bad)
            assert str(caught.value) == "Invalid master port", (client, bad)
    for client in (ref_primary, p_root):   # an error left the role as it was
        assert client.execute_command("ROLE")[0] == b"master"
    # NO ONE on a primary: OK, nothing changes (its history id neither).
    for client in (ref_primary, p_root):
        replid = client.info("replication")["master_replid"]
        assert client.execute_command("REPLICAOF", "NO", "ONE") == b"OK"
        assert client.info("replication")["master_replid"] == replid
    # PSYNC and SYNC are refused when queued (Redis's no-multi flag).
    for client in (ref_primary, p_root):
        with login(primary, "root") if client is p_root else \
                redis.Redis(port=ref_port, single_connection_client=True) as tx:
            tx.execute_command("MULTI")
            for args in (("PSYNC", "?", "-1"), ("SYNC",)):
                with pytest.raises(redis.ResponseError,
                                   match="^Command not allowed inside a transaction$"):
                    tx.execute_command(*args)
            tx.execute_command("DISCARD")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        p_root.execute_command("REPLICAOF", "127.0.0.1")

    # ROLE, both sides.
    assert role_shape(p_root.execute_command("ROLE")) == \
        role_shape(ref_primary.execute_command("ROLE"))
    assert role_shape(r_root.execute_command("ROLE")) == \
        role_shape(ref_replica.execute_command("ROLE"))
    role = p_root.execute_command("ROLE")
    assert role[1] == info(primary)["master_repl_offset"]
    assert role[2][0][:2] == [b"127.0.0.1", b"%d" % replica.port]
    role = r_root.execute_command("ROLE")
    assert role[:4] == [b"slave", b"127.0.0.1", primary.port, b"connected"]
    # A user who is no root may ask (Sentinel-style probing of the role).
    assert login(replica, "alice").execute_command("ROLE")[0] == b"slave"

    # INFO replication's field names, both sides.
    assert set(info(primary)) == set(ref_primary.info("replication"))
    assert set(info(replica)) == set(ref_replica.info("replication"))
    slave0, ref_slave0 = info(primary)["slave0"], ref_primary.info("replication")["slave0"]
    assert set(slave0) == set(ref_slave0)
    assert slave0["port"] == replica.port and slave0["state"] == "online"

    # HELLO's role.
    assert ref_primary.execute_command("HELLO")[b"role"] == b"master"
    assert ref_replica.execute_command("HELLO")[b"role"] == b"replica"
    assert p_root.execute_command("HELLO")[b"role"] == b"master"
    assert r_root.execute_command("HELLO")[b"role"] == b"replica"

    # REPLICAOF inside MULTI is queued and runs at EXEC (Sentinel's failover
    # script): the replica is still one until EXEC.
    ref_tx = ref_replica.pipeline(transaction=True)
    ref_tx.execute_command("REPLICAOF", "NO", "ONE").execute_command("ROLE")
    ref_result = ref_tx.execute()
    r_root.execute_command("MULTI")
    assert r_root.execute_command("REPLICAOF", "NO", "ONE") == b"QUEUED"
    assert r_root.execute_command("ROLE") == b"QUEUED"
    with login(replica, "root") as other:
        assert other.execute_command("ROLE")[0] == b"slave"
    result = r_root.execute_command("EXEC")
    assert result[0] == ref_result[0] == b"OK"
    assert result[1][0] == ref_result[1][0] == b"master"
    assert role_shape(result[1]) == role_shape(ref_result[1])
    # And back, in MULTI too: the links come up again, INFO as before.
    for client, port in ((r_root, primary.port), (ref_replica, ref_port)):
        tx = client.pipeline(transaction=True)
        tx.execute_command("REPLICAOF", "127.0.0.1", port)
        assert tx.execute() == [b"OK"]
    wait_link_up(replica)
    wait_until(lambda: ref_replica.info("replication")["master_link_status"] == "up",
               what="redis-server replica link up again")
    assert set(info(replica)) == set(ref_replica.info("replication"))


def test_replicaof_rewritten_to_the_config_file_loads_again(make_server, tmp_path):
    """What REPLICAOF set, CONFIG REWRITE writes and the next start loads:
    also port 0, which REPLICAOF accepts as redis-server does."""
    config = tmp_path / "tenantkv.toml"
    config.write_text("[network]\ntimeout = 0\n")
    # masterauth is no setting CONFIG REWRITE writes: given on each start.
    auth = ("--masteruser", "root", "--masterauth", "unused")
    node = make_server("--config", str(config), *auth)
    client = node.client()
    for port in (0, 6390):
        assert client.execute_command("REPLICAOF", "127.0.0.1", port) == b"OK"
        assert client.execute_command("CONFIG", "REWRITE") == b"OK"
        node.stop()
        node = make_server("--config", str(config), *auth, port=node.port)
        client = node.client()
        assert client.config_get("replicaof") == {"replicaof": "127.0.0.1 %d" % port}
        assert client.execute_command("ROLE")[:3] == [b"slave", b"127.0.0.1", port]
    assert client.execute_command("REPLICAOF", "NO", "ONE") == b"OK"
    assert client.execute_command("CONFIG", "REWRITE") == b"OK"
    node.stop()
    assert make_server("--config", str(config), port=node.port).client() \
        .execute_command("ROLE")[0] == b"master"


def test_replicaof_leaves_no_old_link_running(make_server):
    """A REPLICAOF stops the previous link for good, even when it comes
    while that link's connection attempt is failing: no old link keeps
    trying (and one day syncing from) the old primary."""
    node = make_server("--masteruser", "root", "--masterauth", "unused")
    client = node.client()
    closed = free_port()
    for i in range(1000):   # each refused at once: the race is hit a few times
        client.execute_command("REPLICAOF", "localhost", (0, closed)[i % 2])
        time.sleep((i % 7) * 0.0005)
    # The last one stopped before it starts (one read): now nothing may try.
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("REPLICAOF", "127.0.0.1", 0).execute_command("REPLICAOF", "NO", "ONE")
    assert pipe.execute() == [b"OK", b"OK"]
    assert client.execute_command("ROLE")[0] == b"master"
    time.sleep(1.5)     # the links stopped last have logged their last line
    before = log_text(node).count("Connection refused")
    time.sleep(2.5)     # a link still running retries once a second
    assert log_text(node).count("Connection refused") == before


def test_exec_queued_on_a_primary_that_turned_replica(make_server, tmp_path):
    """A transaction queued while the node was a primary, its EXEC after
    the node turned replica: refused whole with redis-server's words if it
    holds a write (nothing of it runs, the connection leaves MULTI), run if
    it only reads."""
    if harness.redis_server_path() is None:
        pytest.skip("redis-server is not installed (`make redis-tools`)")
    ours = start_primary(make_server, tmp_path, "node", "--masteruser", "root",
                         "--masterauth", ROOT_PW)
    nowhere = free_port()   # a primary that never answers: the data stays as it is
    (tmp_path / "ref").mkdir()
    replies = []
    with harness.RedisServer(free_port(), str(tmp_path / "ref")) as ref:
        for node, auth in ((ref, ()), (ours, ("alice", USERS["alice"]))):
            admin = redis.Redis(port=node.port) if not auth else login(node, "root")
            with socket.create_connection(("127.0.0.1", node.port), timeout=5) as sock:
                if auth:
                    exchange(sock, resp("AUTH", *auth), b"+OK\r\n")
                exchange(sock, resp("SET", "a", "before"), b"+OK\r\n")
                exchange(sock, resp("MULTI") + resp("SET", "a", "1") + resp("INCR", "n")
                         + resp("GET", "a"), b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n")
                assert admin.execute_command("REPLICAOF", "127.0.0.1", nowhere) == b"OK"
                sock.sendall(resp("EXEC") + resp("ECHO", "out of MULTI") + resp("GET", "n"))
                replies.append(read_reply(sock))
                admin.execute_command("REPLICAOF", "NO", "ONE")
                exchange(sock, resp("MULTI") + resp("GET", "a"), b"+OK\r\n+QUEUED\r\n")
                admin.execute_command("REPLICAOF", "127.0.0.1", nowhere)
                sock.sendall(resp("EXEC"))
                replies.append(read_reply(sock))
                admin.execute_command("REPLICAOF", "NO", "ONE")
            admin.close()
    assert replies[0] == replies[2] == (
        b"-EXECABORT Transaction discarded because of: READONLY You can't write against a "
        b"read only replica.\r\n$12\r\nout of MULTI\r\n$-1\r\n")
    assert replies[1] == replies[3] == b"*1\r\n$6\r\nbefore\r\n"


LIB = ("#!lua name=mylib\n"
       "redis.register_function('f', function(keys, args) return redis.call('SET', keys[1], 'x') end)")
# Commands a tenant may send to a replica: which are refused (-READONLY)
# must be what redis-server's replica refuses.
ON_A_REPLICA = [
    ("SET", "k", "v"), ("SET", "k", "v", "GET"), ("INCRBY", "nokey", 0), ("DEL", "nokey"),
    ("UNLINK", "nokey"), ("EXPIRE", "s", 100), ("PERSIST", "s"), ("GETEX", "s", "EX", 100),
    ("GETDEL", "s"), ("LPOP", "l"), ("LMOVE", "l", "l2", "LEFT", "LEFT"),
    ("BLPOP", "nolist", "0.01"), ("MOVE", "s", 1), ("COPY", "s", "s2"), ("SWAPDB", 0, 1),
    ("FLUSHDB",), ("FLUSHALL",), ("RESTORE", "r", 0, b"\x00\x01x\n\x00\x8e\x15\x0b\xb3\x9fW\xf1\xb2"),
    ("SORT", "l", "ALPHA", "STORE", "dst"), ("SORT", "l", "ALPHA"), ("SORT_RO", "l", "ALPHA"),
    ("BITFIELD", "bits", "GET", "u8", 0), ("BITFIELD_RO", "bits", "GET", "u8", 0),
    ("GEORADIUS", "geo", 0, 0, 10, "km", "STORE", "d"), ("PFCOUNT", "h"), ("TOUCH", "s"),
    ("XREADGROUP", "GROUP", "g", "c", "COUNT", 1, "STREAMS", "st", ">"),
    ("XACK", "st", "g", "1-1"), ("XREAD", "COUNT", 1, "STREAMS", "st", "0"),
    ("EVAL", "return redis.call('SET', KEYS[1], 'x')", 1, "k"),
    ("EVAL", "return redis.call('GET', KEYS[1])", 1, "s"),
    ("EVAL_RO", "return redis.call('GET', KEYS[1])", 1, "s"),
    ("EVAL", "#!lua flags=no-writes\nreturn redis.call('GET', KEYS[1])", 1, "s"),
    ("SCRIPT", "LOAD", "return 1"), ("FUNCTION", "LOAD", LIB), ("FUNCTION", "FLUSH"),
    ("FUNCTION", "DELETE", "nolib"), ("PUBLISH", "ch", "m"), ("SPUBLISH", "ch", "m"),
    ("SELECT", 1), ("WAIT", 0, 0),
]


def refused_as_read_only(client, args) -> bool:
    try:
        client.execute_command(*args)
    except redis.ResponseError as exc:
        return "read only replica" in str(exc)
    finally:
        client.execute_command("SELECT", 0)
    return False


def test_a_replica_refuses_the_writes_redis_refuses(make_server, tmp_path, redis_pair):
    """Each command of ON_A_REPLICA, sent by a tenant to a replica, is
    refused with -READONLY exactly when redis-server's replica refuses it."""
    _, ref_replica = redis_pair
    primary = start_primary(make_server, tmp_path)
    replica = start_replica(make_server, tmp_path, primary.port, "r")
    wait_link_up(replica)
    alice = login(primary, "alice")
    for args in (("SET", "s", "1"), ("RPUSH", "l", "a"), ("XADD", "st", "1-1", "f", "v"),
                 ("XGROUP", "CREATE", "st", "g", "0"), ("PFADD", "h", "a"), ("SET", "bits", "x")):
        alice.execute_command(*args)
    wait_caught_up(primary, replica)
    ours = login(replica, "alice")
    ref = [refused_as_read_only(ref_replica, args) for args in ON_A_REPLICA]
    got = [refused_as_read_only(ours, args) for args in ON_A_REPLICA]
    assert [args[:2] for args, a, b in zip(ON_A_REPLICA, ref, got) if a != b] == []
    assert 25 <= sum(got) < len(ON_A_REPLICA)   # both kinds are in the list
    wait_caught_up(primary, replica)    # nothing was written on the replica
    for client in (alice, ours):
        assert sorted(client.keys()) == [b"bits", b"h", b"l", b"s", b"st"]
        assert client.ttl("s") == -1 and client.lrange("l", 0, -1) == [b"a"]
        assert client.xpending("st", "g")["pending"] == 0


# -- 3. safety ------------------------------------------------------------------------------

NOAUTH = b"-NOAUTH Authentication required.\r\n"


def test_replication_commands_are_root_only_and_need_auth(make_server, tmp_path):
    """A tenant cannot ask for the stream (it holds every tenant's data)
    nor move the server; an unauthenticated connection gets NOAUTH and
    nothing after it."""
    primary = start_primary(make_server, tmp_path)
    login(primary, "bob").set("secret-of-bob", "x")
    alice = login(primary, "alice")
    for args in (("PSYNC", "?", "-1"), ("SYNC",), ("REPLCONF", "listening-port", "6380"),
                 ("REPLCONF", "capa", "psync2"), ("REPLICAOF", "127.0.0.1", "6380"),
                 ("REPLICAOF", "NO", "ONE"), ("SLAVEOF", "NO", "ONE")):
        # redis-py: -NOPERM ... is a NoPermissionError.
        with pytest.raises(redis.exceptions.NoPermissionError):
            alice.execute_command(*args)
        assert alice.ping()
    assert info(primary)["connected_slaves"] == 0
    assert info(primary)["role"] == "master"
    # Root too, while it has no masterauth: a replica could only retry for ever.
    with login(primary, "root") as root:
        with pytest.raises(redis.ResponseError, match="^masterauth is not set"):
            root.execute_command("REPLICAOF", "127.0.0.1", free_port())
        assert root.execute_command("ROLE")[0] == b"master"
        assert root.execute_command("REPLICAOF", "NO", "ONE") == b"OK"

    for args in (("PSYNC", "?", "-1"), ("SYNC",), ("REPLCONF", "capa", "psync2")):
        with socket.create_connection(("127.0.0.1", primary.port), timeout=5) as sock:
            sock.sendall(resp(*args))
            data = b""
            sock.settimeout(0.5)
            try:   # whatever comes within a second: the error and nothing else
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except socket.timeout:
                pass
            assert data == NOAUTH, args
    assert info(primary)["connected_slaves"] == 0


def test_replica_never_syncs_without_root_credentials(make_server, tmp_path):
    """No masterauth, a masteruser that is not root on the primary, a
    wrong masterauth: the link stays down, the log says why, no data and
    no user of the primary arrives."""
    primary = start_primary(make_server, tmp_path)
    login(primary, "alice").set("alice-key", "data")
    no_auth = start_replica(make_server, tmp_path, primary.port, "no-auth",
                            masteruser=None, masterauth=None)
    not_root = start_replica(make_server, tmp_path, primary.port, "not-root",
                             masteruser="alice", masterauth=USERS["alice"])
    wrong = start_replica(make_server, tmp_path, primary.port, "wrong",
                          masterauth="not-the-password")
    wait_log(no_auth, "masterauth is not set")
    wait_log(not_root, "NOPERM")
    wait_log(wrong, "Unable to AUTH to MASTER")
    time.sleep(1.5)   # a link retries every second (and logs the same failure once a minute)
    assert "WRONGPASS" in log_text(wrong)
    for replica in (no_auth, not_root, wrong):
        assert replica.alive()
        state = info(replica, REPLICA_ROOT_PW)   # its own users: nothing came
        assert state["role"] == "slave"
        assert state["master_link_status"] == "down"
        assert state["slave_repl_offset"] == 0
        assert FULL not in log_text(replica)
        with login(replica, "root", REPLICA_ROOT_PW) as root:
            assert root.dbsize() == 0
            assert b"alice" not in root.execute_command("ACL", "USERS")
            assert root.execute_command("ROLE")[3] != b"connected"
    assert info(primary)["connected_slaves"] == 0
    for node in (primary, no_auth, not_root, wrong):   # no password in any log
        text = log_text(node)
        assert ROOT_PW not in text and "not-the-password" not in text
        assert USERS["alice"] not in text
    # Credentials given at run time: the next attempt logs in and syncs.
    with login(wrong, "root", REPLICA_ROOT_PW) as root:
        assert root.config_set("masterauth", ROOT_PW)
    wait_link_up(wrong)
    wait_caught_up(primary, wrong)
    assert login(wrong, "alice").get("alice-key") == b"data"


def test_redis_cli_replica_reads_the_stream_as_root_only(make_server, tmp_path):
    """`redis-cli --replica` (a tool's probe: REPLCONF, SYNC) works for a
    root user, and shows the writes of the tenants; a tenant gets NOPERM
    and no byte of the payload."""
    redis_cli = shutil.which("redis-cli")
    if redis_cli is None:
        pytest.skip("redis-cli is not installed (`make redis-tools`)")
    primary = start_primary(make_server, tmp_path)
    login(primary, "bob").set("bob-before", "secret")
    base = [redis_cli, "-p", str(primary.port), "--no-auth-warning", "--replica"]
    out_path = tmp_path / "cli-replica.out"
    with open(out_path, "wb") as out:
        tool = subprocess.Popen(base + ["--user", "root", "--pass", ROOT_PW],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: b"SYNC done" in out_path.read_bytes(), what="redis-cli synced")
        login(primary, "alice").set("seen-by-the-tool", "v")
        # The effect, after the record naming whose data it touches.
        wait_until(lambda: b'"SET","seen-by-the-tool","v"' in out_path.read_bytes(),
                   what="the write in redis-cli's output")
        assert b'"@context","tenant:' in out_path.read_bytes()
    finally:
        tool.terminate()
        tool.wait(10)
    denied = subprocess.run(base + ["--user", "alice", "--pass", USERS["alice"]],
                            capture_output=True, timeout=20)
    output = denied.stdout + denied.stderr
    assert b"NOPERM" in output and b"SYNC done" not in output
    assert b"secret" not in output
    with login(primary, "root") as root:
        assert root.ping()
    wait_until(lambda: info(primary)["connected_slaves"] == 0, timeout=10,
               what="the tool's link gone")


class FakePrimary:
    """A listener that plays a primary's handshake (PING, AUTH, REPLCONF:
    fine) and answers PSYNC with `script`, then hangs up: what a broken or
    hostile primary could send."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.script = b""
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                reader = hiredis.Reader()
                try:
                    while True:
                        request = reader.gets()
                        if request is False:
                            data = conn.recv(4096)
                            if not data:
                                break
                            reader.feed(data)
                            continue
                        name = request[0].upper()
                        if name == b"PSYNC":
                            conn.sendall(self.script)
                            time.sleep(0.2)
                            break
                        conn.sendall(b"+PONG\r\n" if name == b"PING" else b"+OK\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


BAD_STREAMS = [
    # (what the "primary" sends after PSYNC, what the replica logs)
    (b"+FULLRESYNC " + b"a" * 40 + b" 0\r\n$20\r\n" + b"x" * 20, "not a tenantkv sync payload"),
    (b"+FULLRESYNC zz 0\r\n", "bad FULLRESYNC reply"),
    (b"+FULLRESYNC " + b"a" * 40 + b" 0\r\n$-5\r\n", "Bad protocol from MASTER"),
    (b"+CONTINUE " + b"b" * 40 + b"\r\n:1\r\n", "Protocol error from MASTER: not a command"),
    (b"+CONTINUE " + b"b" * 40 + b"\r\n*1\r\n$6\r\nNOSUCH\r\n", "Unknown command 'NOSUCH'"),
    (b"-ERR go away\r\n", "Unexpected reply to PSYNC"),
]


def test_a_broken_primary_leaves_the_replica_up_and_its_data_intact(make_server, tmp_path):
    """Whatever a primary sends (a payload that is not one, a bad reply, a
    stream of no commands, an unknown command), the replica stays up, says
    why in its log, and keeps its data and its users."""
    node = start_primary(make_server, tmp_path, "node", "--masteruser", "root",
                         "--masterauth", "any")
    alice = login(node, "alice")
    alice.set("mine", "kept")
    fake = FakePrimary()
    try:
        with login(node, "root") as root:
            for script, reason in BAD_STREAMS:
                fake.script = script
                before = log_text(node).count(reason)
                assert root.execute_command("REPLICAOF", "127.0.0.1", fake.port) == b"OK"
                wait_log(node, reason, count=before + 1)
                assert root.execute_command("REPLICAOF", "NO", "ONE") == b"OK"
                assert node.alive()
                assert alice.get("mine") == b"kept", reason
                assert sorted(root.execute_command("ACL", "USERS")) == [b"alice", b"bob", b"root"]
    finally:
        fake.close()
    alice.set("writable", "again")   # a primary again, its data its own


def raw_login(node, name: str, password: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=5)
    sock.sendall(resp("AUTH", name, password))
    assert sock.recv(100) == b"+OK\r\n"
    return sock


def test_replica_sessions_follow_user_changes(make_server, tmp_path):
    """As on the primary: a session on a replica takes its user's new
    rights at once, and ends when the user is deleted (revoking a leaked
    password on the primary cuts the reader off the replicas too)."""
    primary = start_primary(make_server, tmp_path)
    replica = start_replica(make_server, tmp_path, primary.port, "r")
    wait_link_up(replica)
    login(primary, "alice").set("a", "1")
    login(primary, "bob").set("b", "1")
    wait_caught_up(primary, replica)
    alice = login(replica, "alice", retry=NO_RETRY)
    bob = raw_login(replica, "bob", USERS["bob"])
    assert alice.get("a") == b"1"
    with login(primary, "root") as root:
        root.execute_command("ACL", "SETUSER", "alice", "-get")
        root.execute_command("ACL", "DELUSER", "bob")
    wait_caught_up(primary, replica)
    with login(replica, "root") as root:
        assert b"bob" not in root.execute_command("ACL", "USERS")
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            alice.get("a")
        assert closed(bob, timeout=3)
    finally:
        bob.close()


def test_full_sync_ends_sessions_of_users_the_primary_lacks(make_server, tmp_path):
    """A node's own user logged in before it follows a primary whose store
    has no such user: the full sync replaces the store, and the session ends."""
    primary = start_primary(make_server, tmp_path)
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    add_user(node_dir, "root", REPLICA_ROOT_PW, "--root")
    add_user(node_dir, "eve", "eve-pw")
    node = make_server("--masteruser", "root", "--masterauth", ROOT_PW, data_dir=node_dir,
                       env=LOCKED, passwords=USERS)
    eve = raw_login(node, "eve", "eve-pw")
    try:
        with login(node, "root", REPLICA_ROOT_PW) as root:
            root.execute_command("REPLICAOF", "127.0.0.1", primary.port)
        wait_link_up(node)
        with login(node, "root") as root:
            assert b"eve" not in root.execute_command("ACL", "USERS")
        eve.sendall(resp("ACL", "WHOAMI"))
        assert closed(eve, timeout=3)
    finally:
        eve.close()


# -- 4. min-replicas-to-write -------------------------------------------------------------------

def test_min_replicas_to_write(make_server, tmp_path):
    """min-replicas-to-write 1: writes are refused with -NOREPLICAS while
    no replica acknowledged within min-replicas-max-lag (stopped, then
    killed), reads and PING go on; writes come back with the replica."""
    primary = start_primary(make_server, tmp_path, "primary",
                            "--min-replicas-to-write", "1", "--min-replicas-max-lag", "2")
    alice = login(primary, "alice")

    def refused() -> bool:
        try:
            alice.set("probe", "1")
        except redis.ResponseError as exc:
            assert str(exc) == "NOREPLICAS Not enough good replicas to write."
            return True
        return False

    wait_until(refused, timeout=5, what="NOREPLICAS with no replica")
    replica = start_replica(make_server, tmp_path, primary.port, "r")
    wait_link_up(replica)
    wait_until(lambda: not refused(), what="writes accepted with a replica")
    assert info(primary)["min_slaves_good_slaves"] == 1

    # A replica that stops acknowledging (SIGSTOP): refused after the lag.
    os.kill(replica.process.pid, signal.SIGSTOP)
    try:
        wait_until(refused, timeout=15, what="NOREPLICAS with a stopped replica")
        assert alice.ping() and alice.get("probe") == b"1"
        assert info(primary)["min_slaves_good_slaves"] == 0
    finally:
        os.kill(replica.process.pid, signal.SIGCONT)
    wait_until(lambda: not refused(), what="writes accepted again")

    # A replica killed: refused at once (its connection closed), until it returns.
    replica.kill()
    wait_until(refused, timeout=10, what="NOREPLICAS with the replica gone")
    with pytest.raises(redis.ResponseError, match="^NOREPLICAS Not enough good replicas"):
        alice.execute_command("EVAL", "return redis.call('SET', 'x', '1')", 0)
    assert alice.ping() is True
    assert alice.get("probe") == b"1"
    replica = start_replica(make_server, tmp_path, primary.port, "r", port=replica.port)
    wait_link_up(replica)
    wait_until(lambda: not refused(), what="writes accepted after the replica returned")
    alice.set("after", "back")
    wait_caught_up(primary, replica)
    assert login(replica, "alice").get("after") == b"back"


def test_min_replicas_refused_from_the_start(make_server, tmp_path):
    """As Redis: refused from the first command, not after a cron turn."""
    primary = make_server("--min-replicas-to-write", "1", "--min-replicas-max-lag", "2")
    with pytest.raises(redis.ResponseError, match="^NOREPLICAS Not enough good replicas"):
        primary.client().set("early", "1")


# -- 5. persistence combinations ------------------------------------------------------------------

AOF = ("--appendonly", "yes", "--save", "")


def fill(client, prefix: str, count: int = 200) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set("%s:s%d" % (prefix, i), "v%d" % i)
        pipe.hset("%s:h" % prefix, "f%d" % i, i)
    pipe.zadd("%s:z" % prefix, {"m%d" % i: i for i in range(count)})
    pipe.expire("%s:s0" % prefix, 1000)
    pipe.execute()


def test_appendonly_pair_replica_killed_and_appendonly_toggled(make_server, tmp_path):
    """Both with appendonly yes: a replica killed (SIGKILL, no state saved)
    comes back with a full sync and the same data; CONFIG SET appendonly
    on the primary while a replica is attached does not cut the stream."""
    primary = start_primary(make_server, tmp_path, "primary", *AOF)
    replica = start_replica(make_server, tmp_path, primary.port, "r", *AOF)
    wait_link_up(replica)
    alice, bob = login(primary, "alice"), login(primary, "bob")
    fill(alice, "a1")
    fill(bob, "b1")
    wait_caught_up(primary, replica)
    replica.kill()
    fill(alice, "a2")
    with alice.pipeline(transaction=True) as tx:
        tx.incr("counter").lpush("tx-list", "x", "y").execute()
    replica = start_replica(make_server, tmp_path, primary.port, "r", *AOF, port=replica.port)
    wait_link_up(replica)
    wait_caught_up(primary, replica)
    assert FULL in log_text(replica)
    same_data(dump_tenant(alice), dump_tenant(login(replica, "alice")))
    same_data(dump_tenant(bob), dump_tenant(login(replica, "bob")))

    with login(primary, "root") as root:
        alice.set("before-toggle", "1")
        assert root.config_set("appendonly", "no")
        alice.set("log-off", "2")
        bob.incr("bob-counter")
        wait_caught_up(primary, replica)
        assert root.config_set("appendonly", "yes")
        alice.set("log-on-again", "3")          # maybe while the log is rewritten
        fill(bob, "b3", 50)
        wait_until(lambda: root.info("persistence")["aof_rewrite_in_progress"] == 0,
                   what="the log rewrite done")
        alice.set("after-rewrite", "4")
    wait_caught_up(primary, replica)
    ra, rb = login(replica, "alice"), login(replica, "bob")
    assert [ra.get(k) for k in ("before-toggle", "log-off", "log-on-again", "after-rewrite")] \
        == [b"1", b"2", b"3", b"4"]
    assert rb.get("bob-counter") == b"1"
    same_data(dump_tenant(alice), dump_tenant(ra))
    same_data(dump_tenant(bob), dump_tenant(rb))
    assert info(primary)["connected_slaves"] == 1
    assert log_text(replica).count(FULL) == 1   # the stream went on: no new sync


def test_primary_without_log_turns_appendonly_on_with_a_replica(make_server, tmp_path):
    """A primary started without the log (its stream from a journal without
    a file) turns appendonly on and off while a replica is attached."""
    primary = start_primary(make_server, tmp_path, "primary", "--appendonly", "no")
    replica = start_replica(make_server, tmp_path, primary.port, "r")
    wait_link_up(replica)
    alice = login(primary, "alice")
    alice.set("one", "1")
    with login(primary, "root") as root:
        assert root.config_set("appendonly", "yes")
        alice.set("two", "2")
        wait_until(lambda: root.info("persistence")["aof_rewrite_in_progress"] == 0,
                   what="the log rewrite done")
        alice.set("three", "3")
        assert root.config_set("appendonly", "no")
        alice.set("four", "4")
    wait_caught_up(primary, replica)
    ra = login(replica, "alice")
    assert [ra.get(k) for k in ("one", "two", "three", "four")] == [b"1", b"2", b"3", b"4"]
    assert log_text(replica).count(FULL) == 1


def test_replica_limits_do_not_apply_to_the_stream(make_server, tmp_path):
    """A replica with a far lower maxmemory and tenant quotas (keys, memory,
    rate) than its primary still applies every write of the stream (as
    Redis's replica-ignore-maxmemory): its data stays the primary's."""
    primary = start_primary(make_server, tmp_path)
    replica = start_replica(make_server, tmp_path, primary.port, "r",
                            "--maxmemory", "1mb", "--maxmemory-policy", "allkeys-lru",
                            "--tenant-quota-keys", "10", "--tenant-quota-memory", "100kb",
                            "--tenant-quota-rate", "5")
    wait_link_up(replica)
    alice = login(primary, "alice")
    pipe = alice.pipeline(transaction=False)
    for i in range(300):
        pipe.set("big:%d" % i, "x" * 10000)
    pipe.execute()
    wait_caught_up(primary, replica)
    with login(replica, "root") as root:
        assert root.info("replication")["master_link_status"] == "up"
    ours = login(replica, "alice")
    assert ours.dbsize() == 300
    assert ours.strlen("big:299") == 10000


# -- 6. TLS ---------------------------------------------------------------------------------

def test_replication_over_tls(make_server, tmp_path):
    """tls-replication yes: the replica reaches the primary's tls-port,
    presents its certificate, and the data arrives. A replica that does not
    trust the primary's certificate, or speaks plain text to the TLS port,
    never syncs."""
    trustme = pytest.importorskip("trustme")
    ca, other_ca = trustme.CA(), trustme.CA()
    ca_file, other_ca_file = str(tmp_path / "ca.pem"), str(tmp_path / "other-ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    other_ca.cert_pem.write_to_path(other_ca_file)
    cert = str(tmp_path / "server.pem")
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(cert)
    tls_port = free_port()
    tls = ("--tls-cert-file", cert, "--tls-key-file", cert, "--tls-ca-cert-file", ca_file)
    primary = start_primary(make_server, tmp_path, "primary", "--tls-port", str(tls_port), *tls)
    replica = start_replica(make_server, tmp_path, tls_port, "r", "--tls-replication", "yes",
                            *tls)
    untrusting = start_replica(make_server, tmp_path, tls_port, "untrusting",
                               "--tls-replication", "yes", "--tls-ca-cert-file", other_ca_file)
    plain = start_replica(make_server, tmp_path, tls_port, "plain")
    wait_link_up(replica)
    login(primary, "alice").set("over-tls", "yes")
    wait_caught_up(primary, replica)
    assert login(replica, "alice").get("over-tls") == b"yes"
    assert info(primary)["slave0"]["state"] == "online"
    assert info(replica)["master_port"] == tls_port

    wait_log(untrusting, "CERTIFICATE_VERIFY_FAILED")
    wait_log(plain, "Connection with master lost during the handshake")
    time.sleep(1.5)   # a link retries every second (and logs the same failure once a minute)
    for refused in (untrusting, plain):
        assert refused.alive()
        state = info(refused, REPLICA_ROOT_PW)   # its own user store: nothing came
        assert state["master_link_status"] == "down"
        assert FULL not in log_text(refused)
    assert info(primary)["connected_slaves"] == 1


def test_scripts_and_functions_that_may_write_meet_noreplicas_whole(make_server):
    """min-replicas-to-write not met: as Redis's scriptPrepareForRun, a
    shebang script or a function that may write is refused before it runs
    (NOREPLICAS), one flagged no-writes runs, a script without a shebang runs
    until its first write; FUNCTION LOAD is refused like any write."""
    server = make_server("--save", "")
    r = server.client()
    r.execute_command("FUNCTION", "LOAD", "#!lua name=lib\n"
                      "redis.register_function('w', function() return redis.call('set', 'k', 'v') end)\n"
                      "redis.register_function('w2', function() return 2 end)\n"
                      "redis.register_function{function_name='r', callback=function() return 1 end,"
                      " flags={'no-writes'}}")
    r.config_set("min-replicas-to-write", 1)
    try:
        with pytest.raises(redis.ResponseError, match="^NOREPLICAS Not enough good replicas"):
            r.eval("#!lua\nreturn 1", 0)
        assert r.eval("#!lua flags=no-writes\nreturn 1", 0) == 1
        assert r.eval("return 1", 0) == 1
        with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
            r.eval("return redis.call('set', 'k', 'v')", 0)
        with pytest.raises(redis.ResponseError, match="^NOREPLICAS"):
            r.fcall("w", 0)
        with pytest.raises(redis.ResponseError, match="^NOREPLICAS"):
            r.fcall("w2", 0)   # may write (no no-writes flag): refused before it runs
        assert r.fcall("r", 0) == 1
        with pytest.raises(redis.ResponseError, match="^NOREPLICAS"):
            r.execute_command("FUNCTION", "LOAD", "#!lua name=lib2\n"
                              "redis.register_function('x', function() return 1 end)")
        assert r.ping()
    finally:
        r.config_set("min-replicas-to-write", 0)
    assert r.fcall("w", 0) == b"OK"
    r.close()
