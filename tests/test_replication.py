"""Replication, the data path: a tenantkv primary and a tenantkv replica
(real processes, real clients). What the tenants wrote on the primary is on
the replica, each tenant's in its own tenant (PUBLISH too); the replica
refuses writes with Redis's -READONLY; users follow the primary; expiry is
the primary's; WAIT counts the acknowledgements of the caller's writes; a
restarted replica resyncs, partially after a clean shutdown, fully after a
crash.

The module's pair (`pair`) is started once; the restart test starts its own.
"""

import signal
import threading
import time

import pytest
import redis

from conftest import (ServerProcess, WRONGPASS, add_user, exchange, locked_server, login,
                      read_reply, resp, value_of)

ROOT_PW = "primary-root-pw"
REPLICA_OWN_ROOT_PW = "replica-own-root-pw"   # the replica's root before its first sync
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
LOCKED = {"TENANTKV_AUTH__DEFAULT_USER": "off"}
READONLY = b"-READONLY You can't write against a read only replica.\r\n"
LINK_TIMEOUT = 20.0   # a full sync forks; a loaded 2-core machine can be slow

# A library per tenant, under the same name: each tenant's replica must run
# its own. `put` writes (not allowed on a replica), `get` is flagged no-writes.
LIBRARY = """#!lua name=lib
redis.register_function('put', function(keys, args)
  return redis.call('hset', keys[1], '%s', args[1])
end)
redis.register_function{function_name='get', flags={'no-writes'},
  callback=function(keys) return redis.call('hget', keys[1], '%s') end}
"""
SEED_LIBRARY = """#!lua name=seedlib
redis.register_function('seedput', function(keys, args)
  return redis.call('set', keys[1], args[1])
end)
"""


def start_replica(data_dir, primary: ServerProcess) -> ServerProcess:
    """A new replica of `primary` with a root user of its own (which the
    first sync replaces by the primary's users)."""
    add_user(data_dir, "root", REPLICA_OWN_ROOT_PW, "--root")
    return restart_replica(data_dir, primary)


def restart_replica(data_dir, primary: ServerProcess) -> ServerProcess:
    """The replica of `primary` whose data dir is `data_dir`."""
    return ServerProcess(data_dir, "--replicaof", "127.0.0.1 %d" % primary.port,
                         "--masteruser", "root", "--masterauth", ROOT_PW,
                         env=LOCKED, passwords={"root": ROOT_PW, **USERS})


def replication_info(replica: ServerProcess) -> dict:
    """INFO replication of `replica`, read as the primary's root (who exists
    on the replica once it synced): {} while that login fails."""
    try:
        client = login(replica, "root", ROOT_PW, socket_timeout=5)
    except (redis.AuthenticationError, redis.ResponseError, redis.ConnectionError):
        return {}
    try:
        return client.info("replication")
    finally:
        client.close()


def wait_link_up(replica: ServerProcess, timeout: float = LINK_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert replica.alive(), open(replica.log_path).read()[-2000:]
        info = replication_info(replica)
        if info.get("master_link_status") == "up":
            return info
        time.sleep(0.05)
    raise AssertionError("replica link not up after %.0f s: %r\n%s"
                         % (timeout, info, open(replica.log_path).read()[-2000:]))


def acked(root: redis.Redis, replicas: int = 1) -> None:
    """Every write so far, of any tenant, has reached (and been applied by)
    the replica. WAIT covers the caller's own writes (Redis's woff), so root
    writes a fence key in its own tenant: the stream is in order, and what
    any tenant wrote before is before the fence."""
    root.incr("replication-test:fence")
    assert root.execute_command("WAIT", replicas, 10000) >= replicas


def make_users(root: redis.Redis) -> None:
    for name, password in USERS.items():
        assert root.execute_command("ACL", "SETUSER", name, "on", ">" + password) == b"OK"


def tenant_data(client: redis.Redis, dbs=(0, 3)) -> dict:
    """{(db, key): (type, value, has a TTL, DUMP)} of the client's tenant,
    read type by type (streams included)."""
    out = {}
    for db in dbs:
        client.execute_command("SELECT", db)
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            value = value_of(client, key, kind, streams=True)
            # DUMP too (encodings), but of a set: its order is not its data
            # (a replica that loaded a snapshot orders it otherwise); nor of
            # a stream: a consumer's seen-time is each server's clock (Redis's too).
            dump = client.dump(key) if kind not in ("set", "stream") else None
            out[(db, key)] = (kind, value, client.pttl(key) > 0, dump)
    client.execute_command("SELECT", 0)
    return out


def seed(client: redis.Redis, name: str) -> None:
    """Data written before the replica exists: it arrives by the full sync."""
    client.set("shared", "seed-of-" + name)
    client.hset("seed:hash", mapping={"owner": name, "n": 1})
    client.rpush("seed:list", name, "x", "y")
    client.set("seed:ttl", name, ex=3600)
    assert client.function_load(SEED_LIBRARY) == b"seedlib"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(primary, replica, root client of the primary); alice and bob made
    with ACL SETUSER on the primary and seeded before the replica started."""
    primary = locked_server(tmp_path_factory.mktemp("primary"), {}, ROOT_PW)
    replica = None
    try:
        primary.passwords.update(USERS)
        root = login(primary, "root")
        make_users(root)
        for name in USERS:
            with login(primary, name) as client:
                seed(client, name)
        replica = start_replica(tmp_path_factory.mktemp("replica"), primary)
        wait_link_up(replica)
        yield primary, replica, root
        root.close()
    finally:
        if replica is not None:
            replica.stop()
        primary.stop()


def write_everything(client: redis.Redis, name: str) -> None:
    """Every kind of write a tenant makes, the same key names for each tenant
    (their values differ): what the stream must carry."""
    client.set("shared", "value-of-" + name)
    client.set("str", name)
    client.append("str", "-appended")
    client.incrbyfloat("float", 1.5)      # Redis replicates the result, not the increment
    client.hset("hash", mapping={"owner": name, "a": 1, "b": 2})
    client.hincrby("hash", "a", 10)
    client.rpush("list", *[name + str(i) for i in range(10)])
    client.lpop("list")
    client.sadd("set", *[name + str(i) for i in range(20)])
    client.spop("set", 5)                 # random: replicated as the members removed
    client.zadd("zset", {name + "-a": 1, name + "-b": 2.5, "c": -3})
    client.zincrby("zset", 4, "c")
    client.xadd("stream", {"who": name})  # "*": the id the primary chose must be replicated
    client.xadd("stream", {"n": 2})
    client.xadd("stream", {"n": 3}, id="99999999999999-0")
    client.set("ttl:ex", name, ex=1000)
    client.set("ttl:later", name)
    client.expire("ttl:later", 500)       # relative: the replica must not restart the clock
    client.set("ttl:gone", name, ex=1000)
    client.persist("ttl:gone")
    with client.pipeline(transaction=True) as pipe:
        pipe.set("tx:a", name).incr("tx:n").incr("tx:n").lpush("tx:list", name)
        assert pipe.execute() == [True, 1, 2, 1]
    script = ("redis.call('set', KEYS[1], ARGV[1]) "
              "redis.call('incrby', KEYS[2], 7) "
              "return redis.call('sadd', KEYS[3], ARGV[1], redis.call('time')[1])")
    assert client.eval(script, 3, "lua:str", "lua:n", "lua:set", name) == 2
    assert client.function_load(LIBRARY % (name, name)) == b"lib"
    assert client.fcall("put", 1, "fn:hash", "by-fcall") == 1
    client.execute_command("SELECT", 3)
    client.set("db3", name)
    client.execute_command("SELECT", 0)


def test_data_of_each_tenant_arrives(pair):
    primary, replica, root = pair
    clients = {name: login(primary, name) for name in USERS}
    for name, client in clients.items():
        write_everything(client, name)
    for i in range(3):   # turn by turn, in the same db: the stream switches tenants each time
        for name, client in clients.items():
            client.rpush("interleaved", "%s-%d" % (name, i))
    acked(root)
    for name, client in clients.items():
        expected = tenant_data(client)
        assert client.lrange("interleaved", 0, -1) == [b"%s-%d" % (name.encode(), i)
                                                       for i in range(3)]
        with login(replica, name) as on_replica:
            got = tenant_data(on_replica)
            assert got == expected, name
            # Each tenant reads its own values, under the key names both use.
            assert on_replica.get("shared") == ("value-of-" + name).encode()
            assert on_replica.hget("seed:hash", "owner") == name.encode()
            assert on_replica.get("seed:ttl") == name.encode()
            assert 3000 * 1000 < on_replica.pttl("seed:ttl") <= 3600 * 1000
            assert 900 * 1000 < on_replica.pttl("ttl:ex") <= 1000 * 1000
            assert 400 * 1000 < on_replica.pttl("ttl:later") <= 500 * 1000
            assert on_replica.pttl("ttl:gone") == -1
            assert sorted(on_replica.keys()) == sorted(client.keys())
            # The tenant's library, and only its own, runs there (reads only).
            assert on_replica.fcall_ro("get", 1, "fn:hash") == b"by-fcall"
            assert on_replica.hgetall("fn:hash") == {name.encode(): b"by-fcall"}
            libraries = {}
            for flat in on_replica.function_list(withcode=True):
                lib = dict(zip(flat[::2], flat[1::2]))
                libraries[lib[b"library_name"]] = lib[b"library_code"]
            assert sorted(libraries) == [b"lib", b"seedlib"]
            assert libraries[b"lib"] == (LIBRARY % (name, name)).encode()
    assert tenant_data(clients["alice"]) != tenant_data(clients["bob"])
    for client in clients.values():
        client.close()


def write_more(client: redis.Redis, name: str) -> None:
    """Writes whose effects differ from the command (blocking pops, STORE
    forms, trimming, random picks in a script), other types, odd bytes."""
    binary = bytes(range(256)) + b"\r\n*3\r\n"
    client.set(b"bin:\x00\xff\r\n" + name.encode(), binary)
    client.set("big", name.encode() * (300_000 // len(name)))   # > one read of the stream
    client.rpush("src", *range(20))
    client.sort("src", desc=True, store="sorted")
    client.sadd("s1", "a", "b", name)
    client.sadd("s2", "b", "c")
    client.sunionstore("union", ["s1", "s2"])
    client.zadd("z1", {"a": 1, "b": 2})
    client.zunionstore("zunion", ["z1", "zset"])
    client.lmove("src", "moved", "LEFT", "RIGHT")
    client.set("todel", name)
    client.getdel("todel")
    client.set("gx", name)
    client.getex("gx", px=400_000)
    client.set("past", name)
    client.expireat("past", 1)            # in the past: a DEL
    client.rename("moved", "renamed")
    client.copy("renamed", "copied")
    client.set("tomove", name)
    client.move("tomove", 5)
    for i in range(50):
        client.xadd("capped", {"i": i}, maxlen=10, approximate=True)
    client.xgroup_create("capped", "g", id="0")
    client.xreadgroup("g", "c1", {"capped": ">"}, count=3)
    client.xack("capped", "g", client.xrange("capped", count=1)[0][0])
    client.pfadd("hll", *("%s%d" % (name, i) for i in range(100)))
    client.geoadd("geo", (13.36, 38.11, name))
    client.setbit("bits", 1000, 1)
    client.setrange("range", 10, name)
    client.lpush("queue", "first")
    # A random pick in a script: its effect (the member removed) is replicated.
    client.sadd("pool", *range(30))
    client.eval("return redis.call('spop', KEYS[1], 3)", 1, "pool")


def blocked_pop(server: ServerProcess, name: str, client: redis.Redis) -> None:
    """A BLMOVE that waits, then served by a push: the replica gets the pop."""
    sock = server.raw()
    try:
        exchange(sock, resp("AUTH", name, USERS[name]), b"+OK\r\n")
        exchange(sock, resp("SELECT", 1), b"+OK\r\n")   # the client's db
        sock.sendall(resp("BLMOVE", "waiting", "served", "LEFT", "RIGHT", 10))
        time.sleep(0.1)
        client.rpush("waiting", "pushed", "left")
        assert read_reply(sock) == b"$6\r\npushed\r\n"
    finally:
        sock.close()


def test_more_writes_arrive(pair):
    primary, replica, root = pair
    clients = {name: login(primary, name) for name in USERS}
    for name, client in clients.items():
        client.execute_command("SELECT", 1)
        client.flushdb()
        write_more(client, name)
        blocked_pop(primary, name, client)
    acked(root)
    for name, client in clients.items():
        with login(replica, name, db=1) as on_replica:
            assert tenant_data(on_replica, dbs=(1, 5)) == tenant_data(client, dbs=(1, 5)), name
    for client in clients.values():
        client.close()


def test_a_tenants_flush_stays_in_its_tenant(pair):
    """FLUSHALL, FLUSHDB and SWAPDB of one tenant, replayed on the replica,
    touch that tenant's data only."""
    primary, replica, root = pair
    alice, bob = login(primary, "alice"), login(primary, "bob")
    for client in (alice, bob):
        for db in (7, 8):
            client.execute_command("SELECT", db)
            client.set("db", db)
    bob_before = tenant_data(bob, dbs=range(16))
    alice.execute_command("SWAPDB", 7, 8)
    alice.execute_command("SELECT", 8)
    alice.flushdb()
    acked(root)
    with login(replica, "alice") as on_replica:
        on_replica.execute_command("SELECT", 7)
        assert on_replica.get("db") == b"8"
        on_replica.execute_command("SELECT", 8)
        assert on_replica.dbsize() == 0
    alice.flushall()
    acked(root)
    with login(replica, "bob") as on_replica:
        assert tenant_data(on_replica, dbs=range(16)) == bob_before
        on_replica.execute_command("SELECT", 7)
        assert on_replica.get("db") == b"7"
    with login(replica, "alice") as on_replica:
        assert tenant_data(on_replica, dbs=range(16)) == {}
    alice.close()
    bob.close()


def test_publish_reaches_the_tenants_subscribers_on_the_replica(pair):
    """A PUBLISH on the primary reaches the subscribers of that channel on
    the replica in the publisher's tenant only."""
    primary, replica, root = pair
    subscribers = {}
    for name in USERS:
        sub = login(replica, name).pubsub()
        sub.subscribe("news")
        assert sub.get_message(timeout=5)["type"] == "subscribe"
        subscribers[name] = sub
    try:
        with login(primary, "alice") as alice:
            assert alice.publish("news", "for alice's tenant") == 0   # none on the primary
            acked(root)
        message = subscribers["alice"].get_message(timeout=5)
        assert message is not None and message["data"] == b"for alice's tenant"
        assert subscribers["bob"].get_message(timeout=0.5) is None
    finally:
        for sub in subscribers.values():
            sub.close()


def test_replica_refuses_writes(pair):
    primary, replica, root = pair
    with login(primary, "alice") as alice:
        alice.set("ro:key", "from-primary")
        acked(root)
    for name, password in (("alice", USERS["alice"]), ("root", ROOT_PW)):
        value = b"$12\r\nfrom-primary\r\n" if name == "alice" else b"$-1\r\n"
        sock = replica.raw()
        try:
            exchange(sock, resp("AUTH", name, password), b"+OK\r\n")
            exchange(sock, resp("SET", "ro:key", "x"), READONLY)
            exchange(sock, resp("DEL", "ro:key"), READONLY)
            exchange(sock, resp("FLUSHALL"), READONLY)
            exchange(sock, resp("MULTI"), b"+OK\r\n")
            exchange(sock, resp("SET", "ro:key", "x"), READONLY)
            exchange(sock, resp("GET", "ro:key"), b"+QUEUED\r\n")
            exchange(sock, resp("EXEC"),
                     b"-EXECABORT Transaction discarded because of previous errors.\r\n")
            # A script's redis.call: Redis's text, then where in the script.
            sock.sendall(resp("EVAL", "return redis.call('set', KEYS[1], 'x')", 1, "ro:key"))
            reply = read_reply(sock)
            assert reply.startswith(READONLY[:-2]), reply
            assert reply.endswith(b"\r\n") and reply.count(b"\r\n") == 1, reply
            exchange(sock, resp("EVAL", "return redis.pcall('set', KEYS[1], 'x')", 1, "ro:key"),
                     READONLY)
            # A function or a script with a shebang that may write is a write
            # command (Redis's processCommand): refused whole, before it runs;
            # FCALL_RO's own error comes after that check in Redis.
            if name == "alice":   # root's tenant has no library
                exchange(sock, resp("FCALL", "seedput", 1, "ro:key", "x"), READONLY)
                exchange(sock, resp("FCALL_RO", "seedput", 1, "ro:key", "x"), READONLY)
            exchange(sock, resp("EVAL", "#!lua\nreturn redis.call('get', KEYS[1])", 1, "ro:key"),
                     READONLY)
            exchange(sock, resp("EVAL", "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])",
                                1, "ro:key"), value)
            exchange(sock, resp("EVAL_RO", "return redis.call('get', KEYS[1])", 1, "ro:key"),
                     value)
            exchange(sock, resp("PING"), b"+PONG\r\n")
        finally:
            sock.close()
    with login(replica, "alice") as on_replica:
        assert on_replica.get("ro:key") == b"from-primary"
    assert replica.alive() and primary.alive()


def can_auth(server: ServerProcess, name: str, password: str) -> bool:
    sock = server.raw()
    try:
        sock.sendall(resp("AUTH", name, password))
        reply = read_reply(sock)
    finally:
        sock.close()
    if reply == b"+OK\r\n":
        return True
    assert reply == WRONGPASS, reply
    return False


def wait_auth(server: ServerProcess, name: str, password: str, expected: bool,
              timeout: float = 10.0) -> float:
    """Poll until AUTH name password succeeds (expected True) or fails; the
    seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if can_auth(server, name, password) == expected:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError("AUTH %s on the replica still %s after %.0f s"
                         % (name, "fails" if expected else "succeeds", timeout))


def test_users_follow_the_primary(pair):
    primary, replica, root = pair
    # The replica's own root user went with its first sync.
    assert not can_auth(replica, "root", REPLICA_OWN_ROOT_PW)
    assert can_auth(replica, "root", ROOT_PW)
    assert root.execute_command("ACL", "SETUSER", "carol", "on", ">carol-1") == b"OK"
    # Within ~2 s (the bound is wider: a loaded machine).
    assert wait_auth(replica, "carol", "carol-1", True) < 5
    with login(primary, "carol", "carol-1") as carol:
        carol.set("carol:key", "carol-data")
        acked(root)
    # The same tenant: the replica's carol reads what the primary's wrote.
    with login(replica, "carol", "carol-1") as on_replica:
        assert on_replica.keys() == [b"carol:key"]
        assert on_replica.get("carol:key") == b"carol-data"

    assert root.execute_command("ACL", "SETUSER", "carol", "resetpass", ">carol-2") == b"OK"
    assert wait_auth(replica, "carol", "carol-2", True) < 5
    assert not can_auth(replica, "carol", "carol-1")
    with login(replica, "carol", "carol-2") as on_replica:
        assert on_replica.get("carol:key") == b"carol-data"

    # Its rules too: a command taken away on the primary is refused on the replica.
    assert root.execute_command("ACL", "SETUSER", "carol", "-get") == b"OK"
    with login(replica, "carol", "carol-2") as on_replica:
        deadline = time.monotonic() + 5
        while True:
            try:
                on_replica.get("carol:key")
            except redis.exceptions.NoPermissionError:
                break
            assert time.monotonic() < deadline, "GET still allowed on the replica"
            time.sleep(0.05)
        assert on_replica.exists("carol:key") == 1

    assert root.execute_command("ACL", "DELUSER", "carol") == 1
    assert wait_auth(replica, "carol", "carol-2", False) < 5

    # Made again: a new tenant on the primary, the same one on the replica.
    assert root.execute_command("ACL", "SETUSER", "carol", "on", ">carol-3") == b"OK"
    assert wait_auth(replica, "carol", "carol-3", True) < 5
    with login(primary, "carol", "carol-3") as carol:
        carol.set("carol:new", "1")
        expected = sorted(carol.keys())
        acked(root)
    with login(replica, "carol", "carol-3") as on_replica:
        assert sorted(on_replica.keys()) == expected
    root.execute_command("ACL", "DELUSER", "carol")


def dbsize(server: ServerProcess, name: str) -> int:
    with login(server, name) as client:
        return client.dbsize()


def test_expiry_is_the_primarys(pair):
    primary, replica, root = pair
    root.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 0)
    try:
        with login(primary, "bob") as bob:
            bob.flushall()
            bob.set("short", "v", px=300)
            bob.set("long", "v")
            acked(root)
            with login(replica, "bob") as on_replica:
                time.sleep(0.5)
                # Logically expired: hidden from reads, still held (the
                # replica waits for the primary's DEL).
                assert on_replica.get("short") is None
                assert on_replica.exists("short") == 0
                assert on_replica.pttl("short") == -2
                assert on_replica.type("short") == b"none"
                assert on_replica.strlen("short") == 0
                assert on_replica.mget("short", "long") == [None, b"v"]
                assert on_replica.keys() == [b"long"]
                assert on_replica.keys("*o*") == [b"long"]
                assert on_replica.scan(0) == (0, [b"long"])
                assert on_replica.dbsize() == 2   # as Redis: counted until the DEL
                assert on_replica.get("long") == b"v"
                # The primary's own access expires it and sends the DEL.
                assert bob.get("short") is None
                acked(root)
                assert on_replica.dbsize() == 1
                # The primary's active expiry: the DEL arrives unasked.
                root.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 1)
                bob.set("short2", "v", px=100)
                acked(root)   # the replica has it (or already its DEL)
                deadline = time.monotonic() + 10
                while on_replica.dbsize() != 1 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert on_replica.dbsize() == 1
                assert on_replica.keys() == [b"long"]
                assert bob.dbsize() == 1
    finally:
        root.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 1)


WAIT_ON_REPLICA = (b"-ERR WAIT cannot be used with replica instances. Please also note that "
                   b"since Redis 4.0 if a replica is configured to be writable (which is not "
                   b"the default) writes to replicas are just local and are not propagated.\r\n")


def test_wait(pair):
    primary, replica, root = pair
    with login(primary, "alice") as alice:
        for i in range(100):
            alice.set("wait:%d" % i, i)
        assert alice.execute_command("WAIT", 1, 1000) == 1
        with login(replica, "alice") as on_replica:
            assert on_replica.get("wait:99") == b"99"
        alice.set("wait:more", 1)
        started = time.monotonic()   # 0 replicas asked for: at once, whatever they acked
        assert alice.execute_command("WAIT", 0, 0) in (0, 1)
        assert time.monotonic() - started < 1
        started = time.monotonic()
        assert alice.execute_command("WAIT", 2, 300) == 1
        took = time.monotonic() - started
        assert 0.25 <= took < 5, took
    sock = replica.raw()
    try:
        exchange(sock, resp("AUTH", "alice", USERS["alice"]), b"+OK\r\n")
        exchange(sock, resp("WAIT", 1, 1000), WAIT_ON_REPLICA)
        exchange(sock, resp("WAIT", 0, 0), WAIT_ON_REPLICA)
    finally:
        sock.close()


def test_wait_after_wait(pair):
    """With nothing written since a WAIT that got its replica, WAIT 0 0
    says 1 at once (the GETACK that WAIT sent is acknowledged too)."""
    primary, replica, root = pair
    with login(primary, "alice") as alice:
        for _ in range(3):
            alice.set("wait:again", 1)
            assert alice.execute_command("WAIT", 1, 1000) == 1
            assert alice.execute_command("WAIT", 0, 0) == 1


def test_wait_counts_the_callers_writes(pair):
    """Redis's WAIT counts the replicas that have the caller's writes
    (c->woff): another tenant's writes since do not lower alice's count
    (nor make her wait for them)."""
    primary, replica, root = pair
    with login(primary, "alice") as alice, login(primary, "bob") as bob:
        alice.set("wait:mine", 1)
        assert alice.execute_command("WAIT", 1, 1000) == 1
        bob.mset({"wait:bob:%d" % i: i for i in range(100)})   # not acknowledged yet
        assert alice.execute_command("WAIT", 0, 0) == 1


def resync_logged(replica: ServerProcess) -> tuple:
    """(partial resync, full resync) in the log of the replica's last start."""
    with open(replica.log_path, "rb") as handle:
        log = handle.read()
    return b"Partial Resynchronization" in log, b"Full resync" in log


class Writer(threading.Thread):
    """A tenant writing on the primary without pause (the stream flows while
    a replica stops and starts): until stop(), which returns how many."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.client, self.done, self.count = client, threading.Event(), 0

    def run(self) -> None:
        while not self.done.is_set():
            self.client.rpush("flowing", self.count)
            self.client.incr("flowing:n")
            self.count += 1
            time.sleep(0.002)

    def stop(self) -> int:
        self.done.set()
        self.join(10)
        return self.count


def test_replica_restart_resyncs(tmp_path):
    """A replica restarted while the primary is being written: after SIGTERM
    (it saved its data and where it stood in the stream) it goes on with a
    partial resync; after SIGKILL (nothing to go on from) a full one. The
    data is the same as the primary's after each."""
    (tmp_path / "p").mkdir()
    primary = locked_server(tmp_path / "p", {}, ROOT_PW)
    replica = None
    writer = None
    try:
        primary.passwords.update(USERS)
        root = login(primary, "root")
        make_users(root)
        clients = {name: login(primary, name) for name in USERS}
        for name, client in clients.items():
            seed(client, name)
        replica_dir = tmp_path / "r"
        replica_dir.mkdir()
        replica = start_replica(replica_dir, primary)
        wait_link_up(replica)
        assert resync_logged(replica) == (False, True)

        def check_equal():
            acked(root)
            for name, client in clients.items():
                with login(replica, name) as on_replica:
                    assert tenant_data(on_replica) == tenant_data(client), name

        def stats():
            info = root.info("stats")
            return info["sync_full"], info["sync_partial_ok"]

        for name, client in clients.items():
            write_everything(client, name)
        check_equal()

        for how, resync in (("stop", "partial"), ("kill", "full")):   # SIGTERM, SIGKILL
            before = stats()
            writer = Writer(login(primary, "bob"))
            writer.start()
            time.sleep(0.1)
            old = replica
            assert getattr(old, how)() == (0 if how == "stop" else -signal.SIGKILL)
            for name, client in clients.items():    # written while the replica is away
                client.set("while-away:" + resync, name)
                client.rpush("list", "away")
                client.delete("str")
            replica = restart_replica(replica_dir, primary)
            wait_link_up(replica)
            time.sleep(0.1)
            assert writer.stop() > 10
            writer.client.close()
            writer = None
            if resync == "partial":
                assert resync_logged(replica) == (True, False)
                assert stats() == (before[0], before[1] + 1)
            else:
                assert resync_logged(replica) == (False, True)
                assert stats() == (before[0] + 1, before[1])
            check_equal()
        for client in clients.values():
            client.close()
        root.close()
    finally:
        if writer is not None:
            writer.stop()
        if replica is not None:
            replica.stop()
        primary.stop()
