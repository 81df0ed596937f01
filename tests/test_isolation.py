"""The isolation proof of issue 3: two non-root tenants write the same key names
(special bytes included) in several databases, then B runs an attack list
against A. Nothing of A's may become visible to B, and A's data (every key,
value and expiry) must be exactly as before. Plus namespaces and re-AUTH.

A real server with the default user off; users made offline. Failed AUTHs go
over raw sockets only (redis-py retries a failed login, and every failure
counts for the brute-force throttle).
"""

import time

import pytest
import redis

from conftest import WRONGPASS, exchange, locked_fixture, login, read_reply, resp

ROOT_PASSWORD = "isolation-root-secret"
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw",
         "erin": "erin-pw"}

# Key names both tenants write: special bytes, glob characters, non-UTF-8, a
# 1 KB name, and names that look like tenant keys or prefixes.
SHARED = [
    b"k", b"", b"a\x00b", b"\x00", b"cr\r\nlf", b"\r\n", b"with space", b" ",
    b"*", b"?", b"[a]", b"[", b"\\", b"*?[]\\", b"a*b?c[d]e\\f",
    b"\xff\xfe\x80", b"\xc3\x28", b"x" * 1024, b"user:1:x", b"user:2:x", b"user:3",
    b"default", b"default:x", b"namespace:team", b"team:x", b"$-1", b"*1\r\n$4\r\nPING",
]
A_ONLY = [b"alice-secret-%d" % i for i in range(5)] + [b"\x00alice\xff", b"user:2:alice"]
B_ONLY = [b"bob-own-%d" % i for i in range(3)]
SHARED_DBS = [0, 1, 15]
A_ONLY_DBS = [3, 9]   # A has data there; B has none
B_ONLY_DBS = [4]
DATABASES = 16

NOPERM = "this user has no permissions to run the '%s' command"   # redis-py drops "NOPERM "


srv = locked_fixture(USERS, ROOT_PASSWORD)


def cmd(client, *args):
    """The reply, or the error text (redis-py drops the error code)."""
    try:
        return client.execute_command(*args)
    except redis.ResponseError as exc:
        return exc


def error_text(reply) -> str:
    assert isinstance(reply, redis.ResponseError), reply
    return str(reply)


def a_value(db: int, key: bytes) -> bytes:
    return b"ALICE|%d|" % db + key[:40]


def b_value(db: int, key: bytes) -> bytes:
    return b"BOB|%d|" % db + key[:40]


def populate(client, names, dbs, value_of, ttl_every=3):
    for db in dbs:
        client.execute_command("SELECT", db)
        for i, key in enumerate(names):
            client.set(key, value_of(db, key))
            if i % ttl_every == 0:
                client.pexpire(key, 3_600_000 + i)
    client.execute_command("SELECT", 0)


def snapshot(client) -> dict:
    """Everything the client's tenant holds, read through its own connection:
    db -> {key: (value, absolute expiry ms or -1)}, by SCAN + GET + PEXPIRETIME,
    checked against KEYS * and DBSIZE."""
    view = {}
    for db in range(DATABASES):
        client.execute_command("SELECT", db)
        found = set()
        cursor = b"0"
        while True:
            cursor, batch = client.execute_command("SCAN", cursor, "COUNT", 7)
            found.update(batch)
            if int(cursor) == 0:
                break
        assert found == set(client.execute_command("KEYS", "*"))
        assert len(found) == client.dbsize()
        if found:
            view[db] = {key: (client.get(key), client.execute_command("PEXPIRETIME", key))
                        for key in found}
    client.execute_command("SELECT", 0)
    return view


def expected_bob_keys(db: int) -> set:
    if db in SHARED_DBS:
        return set(SHARED) | set(B_ONLY)
    if db in B_ONLY_DBS:
        return set(B_ONLY)
    return set()


def full_scan(client, *options, cursor=b"0") -> tuple:
    seen = []
    for _ in range(10_000):
        cursor, batch = client.execute_command("SCAN", cursor, *options)
        seen.extend(batch)
        if int(cursor) == 0:
            break
    return seen


GLOBS = [b"*", b"?", b"??", b"*?*", b"[a-z]*", b"[^a]*", b"[!a]*", b"alice*", b"*alice*",
         b"*secret*", b"user:*", b"user:2:*", b"\\*", b"\\?", b"\\[a\\]", b"[", b"[]", b"[\\]",
         b"*\\", b"\\", b"*\x00*", b"\x00*", b"[\x00-\xff]*", b"*\xff*", b"[a", b"a[", b"**",
         b"*" * 200, b"*" + b"?" * 30, b"x*" * 50, b"", b"*[", b"[-]", b"[z-a]*",
         b"*\r\n*", b"* *"]


def matching(pattern: bytes, keys) -> set:
    """As Redis: "*" alone is every key (even ""), else stringmatchlen."""
    from tenantkv.util.glob import glob_match
    return set(keys) if pattern == b"*" else {k for k in keys if glob_match(pattern, k)}


def check_bob_sees_only_bob(bob):
    """B's every view of every database: KEYS with each glob, SCAN with
    MATCH/COUNT/TYPE, RANDOMKEY, DBSIZE, INFO keyspace."""
    for db in range(DATABASES):
        bob.execute_command("SELECT", db)
        own = expected_bob_keys(db)
        assert bob.dbsize() == len(own)
        assert set(bob.execute_command("KEYS", "*")) == own
        for pattern in GLOBS:
            got = bob.execute_command("KEYS", pattern)
            assert set(got) == matching(pattern, own), (db, pattern)
        assert set(full_scan(bob)) == own
        for count in (1, 2, 5, 1000):
            assert sorted(full_scan(bob, "COUNT", count)) == sorted(own)
        for pattern in GLOBS[:12]:
            got = full_scan(bob, "MATCH", pattern, "COUNT", 3)
            assert set(got) == matching(pattern, own), (db, pattern)
        for kind in ("string", "hash", "list", "none", "STRING"):
            got = set(full_scan(bob, "TYPE", kind, "COUNT", 4))
            assert got == (own if kind.lower() == "string" else set()), (db, kind)
        for _ in range(20):
            key = bob.randomkey()
            assert (key is None) if not own else (key in own)
    bob.execute_command("SELECT", 0)


# -- the attack --------------------------------------------------------------------

def test_same_names_then_attack_list_leaves_alice_untouched(srv):
    alice = login(srv, "alice")
    bob = login(srv, "bob")
    root = login(srv, "root")
    alice.flushall()
    bob.flushall()
    populate(alice, SHARED + A_ONLY, SHARED_DBS + A_ONLY_DBS, a_value)
    populate(bob, SHARED + B_ONLY, SHARED_DBS, b_value, ttl_every=4)
    populate(bob, B_ONLY, B_ONLY_DBS, b_value)
    before = snapshot(alice)
    assert set(before) == set(SHARED_DBS + A_ONLY_DBS)
    assert all(len(before[db]) == len(SHARED) + len(A_ONLY) for db in before)
    # the same names hold each tenant's own value
    for db in SHARED_DBS:
        alice.execute_command("SELECT", db)
        bob.execute_command("SELECT", db)
        for key in SHARED:
            assert alice.get(key) == a_value(db, key)
            assert bob.get(key) == b_value(db, key)
    alice.execute_command("SELECT", 0)
    bob.execute_command("SELECT", 0)

    # An iteration A has started: its cursor, handed to B, is no cursor of A's.
    alice_cursor, _ = alice.execute_command("SCAN", 0, "COUNT", 2)
    assert int(alice_cursor) != 0
    alice_cursor = b"%d" % alice_cursor
    alice.execute_command("SELECT", 3)
    alice_cursor3, _ = alice.execute_command("SCAN", 0, "COUNT", 2)
    alice_cursor3 = b"%d" % alice_cursor3
    alice.execute_command("SELECT", 0)

    check_bob_sees_only_bob(bob)

    # SCAN cursors of every kind, A's included, in a shared and an A-only db
    odd_cursors = [alice_cursor, alice_cursor3, b"-1", b"18446744073709551615", b"1", b"7",
                   b"4294967296", b"4294967297", b"8589934594", b"%d" % ((5 << 32) | 3),
                   b"%d" % ((1 << 63) | 1), b"", b"0\x00junk"]
    for db in (0, 3, 9, 7):
        bob.execute_command("SELECT", db)
        own = expected_bob_keys(db)
        for cursor in odd_cursors:
            got = full_scan(bob, "COUNT", 3, cursor=cursor)
            assert set(got) <= own, (db, cursor, got)
        for cursor in (b"abc", b" 1", b"1.5", b"18446744073709551616", b"0x10"):
            assert error_text(cmd(bob, "SCAN", cursor)) == "invalid cursor"
    bob.execute_command("SELECT", 0)
    # A's iteration goes on undisturbed
    rest = full_scan(alice, "COUNT", 2, cursor=alice_cursor)
    assert set(rest) <= set(before[0]) and len(rest) >= len(before[0]) - 2

    # Reads of A's names, in every database
    for db in range(DATABASES):
        bob.execute_command("SELECT", db)
        own = expected_bob_keys(db)
        for key in A_ONLY + SHARED[:6]:
            mine = key in own
            assert bob.exists(key) == int(mine)
            assert bob.type(key) == (b"string" if mine else b"none")
            if not mine:
                assert bob.ttl(key) == -2 and bob.pttl(key) == -2
                assert bob.execute_command("EXPIRETIME", key) == -2
                assert bob.get(key) is None
                assert bob.strlen(key) == 0
                assert bob.getrange(key, 0, -1) == b""
                for sub in ("ENCODING", "REFCOUNT", "IDLETIME"):
                    assert cmd(bob, "OBJECT", sub, key) is None
                assert bob.execute_command("MEMORY", "USAGE", key, "SAMPLES", 0) is None
                assert bob.execute_command("LCS", key, key) == b""
            else:
                assert bob.get(key) == b_value(db, key)
                assert bob.execute_command("MEMORY", "USAGE", key) > len(b_value(db, key))
        assert bob.mget(A_ONLY) == [None] * len(A_ONLY)
        assert bob.exists(*A_ONLY) == 0
    bob.execute_command("SELECT", 0)

    # Writes to A's names and every key-moving command, every db index
    for db in range(DATABASES):
        bob.execute_command("SELECT", db)
        for key in A_ONLY[:2]:
            assert bob.delete(key) == 0
            assert bob.unlink(key) == 0
            assert bob.expire(key, 1) is False
            assert bob.pexpire(key, 1) is False
            assert bob.persist(key) is False
            assert bob.getdel(key) is None
            assert error_text(cmd(bob, "RENAME", key, b"stolen")) == "no such key"
            assert error_text(cmd(bob, "RENAMENX", key, b"stolen")) == "no such key"
            assert bob.copy(key, b"stolen") is False
            assert cmd(bob, "MOVE", key, (db + 1) % DATABASES) == 0
        if db in SHARED_DBS:
            # B's own copies of shared names: renamed onto A's names, copied and
            # moved to every db, expired, deleted; all within B's tenant
            bob.rename(b"k", A_ONLY[0])
            assert bob.renamenx(A_ONLY[0], A_ONLY[1]) is True
            for other in range(DATABASES):
                if other != db:
                    cmd(bob, "COPY", A_ONLY[1], A_ONLY[2], "DB", other, "REPLACE")
                    cmd(bob, "COPY", b"a\x00b", b"a\x00b", "DB", other)
            for other in range(DATABASES):
                if other != db:
                    cmd(bob, "MOVE", b"cr\r\nlf", other)
            bob.set(A_ONLY[3], b"bob wrote this")
            bob.append(A_ONLY[3], b"!")
            bob.setrange(A_ONLY[4], 0, b"bob")
            bob.incr(b"alice-counter")
            bob.expire(b"with space", 1000)
            bob.persist(b"*")
            bob.getex(b"?", px=5)
            bob.delete(b"[a]", b"\\", b"x" * 1024, b"user:1:x")
            bob.unlink(b"\xff\xfe\x80", b"")
        for index in (-1, 16, 17, 2**31, -2**31, 2**63, 2**64, "x", "", "1.5", " 1"):
            reply = cmd(bob, "MOVE", b"*?[]\\", index)
            assert isinstance(reply, redis.ResponseError), (index, reply)
            reply = cmd(bob, "COPY", b"*?[]\\", b"copied", "DB", index)
            assert isinstance(reply, redis.ResponseError), (index, reply)
        assert error_text(cmd(bob, "MOVE", b"*?[]\\", db)) == \
            "source and destination objects are the same"
    bob.execute_command("SELECT", 0)

    # SELECT out of range: an error, and B stays where it was
    bob.execute_command("SELECT", 15)
    for index in (-1, 16, 17, 2**31, 2**31 - 1, -2**31, -2**31 - 1, 2**63, 2**64,
                  "abc", "", "1.5", " 1", "1 ", "0x1", "+1x", "١"):
        reply = cmd(bob, "SELECT", index)
        assert isinstance(reply, redis.ResponseError), (index, reply)
        assert "DB index is out of range" in str(reply) or "out of range" in str(reply) \
            or "not an integer" in str(reply)
    assert bob.get(b"a*b?c[d]e\\f") == b_value(15, b"a*b?c[d]e\\f")
    bob.execute_command("SELECT", 0)

    # DEBUG OBJECT is open to users, on their own tenant only (issue 3)
    assert "no such key" in error_text(cmd(bob, "DEBUG", "OBJECT", A_ONLY[0]))
    bob.set(b"bob-debug-object", b"v")
    assert b"encoding:" in bob.execute_command("DEBUG", "OBJECT", b"bob-debug-object")
    bob.delete(b"bob-debug-object")
    # Pub/sub is the tenant's (tests/test_pubsub.py): alice's channels and
    # patterns are invisible to bob, and his PUBLISH does not reach her.
    alice_sub = login(srv, "alice").pubsub()
    alice_sub.subscribe("ch")
    alice_sub.psubscribe("*")
    assert [alice_sub.get_message(timeout=2)["type"] for _ in range(2)] == ["subscribe",
                                                                           "psubscribe"]
    assert cmd(bob, "PUBLISH", "ch", "x") == 0
    assert cmd(bob, "PUBSUB", "CHANNELS") == [] and cmd(bob, "PUBSUB", "NUMPAT") == 0
    assert cmd(bob, "PUBSUB", "NUMSUB", "ch") == [b"ch", 0]
    assert alice_sub.get_message(timeout=0.3) is None
    alice_sub.close()
    # MONITOR is the tenant's too (tests/test_monitor.py).
    # Introspection and admin: NOPERM for a non-root user
    for args, name in [(("DEBUG", "SLEEP", "0"), "debug"), (("DEBUG", "HELP"), "debug"),
                       (("DEBUG", "SET-ACTIVE-EXPIRE", "0"), "debug"),
                       (("CONFIG", "GET", "*"), "config|get"),
                       (("CONFIG", "SET", "maxclients", "1"), "config|set"),
                       (("CONFIG", "RESETSTAT"), "config|resetstat"),
                       (("CONFIG", "REWRITE"), "config|rewrite"),
                       (("SHUTDOWN",), "shutdown"), (("SHUTDOWN", "NOSAVE"), "shutdown"),
                       (("ACL", "LIST"), "acl|list"), (("ACL", "GETUSER", "alice"), "acl|getuser"),
                       (("ACL", "USERS"), "acl|users"), (("ACL", "LOG"), "acl|log"),
                       (("ACL", "SETUSER", "alice", ">bob-owns-you"), "acl|setuser"),
                       (("ACL", "DELUSER", "alice"), "acl|deluser"),
                       (("ACL", "DRYRUN", "alice", "GET", "k"), "acl|dryrun")]:
        assert error_text(cmd(bob, *args)) == NOPERM % name, args
    assert bob.execute_command("ACL", "WHOAMI") == b"bob"

    # INFO, every section: B's own databases only, none of A's names or counts
    check_info_shows_only_own(bob, alice)

    # FLUSHDB / FLUSHALL, sync and async, in every db
    for db in range(DATABASES):
        bob.execute_command("SELECT", db)
        assert bob.execute_command("FLUSHDB", *(["ASYNC"] if db % 2 else [])) is True
    bob.execute_command("SELECT", 0)
    for mode in ([], ["ASYNC"], ["SYNC"]):
        populate(bob, SHARED, SHARED_DBS, b_value)
        assert bob.execute_command("FLUSHALL", *mode) is True
        assert all(n == 0 for n in _dbsizes(bob))
    bob.execute_command("SELECT", 0)

    # After all of it, A's data is exactly as before; root's tenant is its own
    assert snapshot(alice) == before
    assert root.dbsize() == 0 and root.keys("*") == []
    assert srv.alive()
    for client in (alice, bob, root):
        client.close()


def _dbsizes(client) -> list:
    sizes = []
    for db in range(DATABASES):
        client.execute_command("SELECT", db)
        sizes.append(client.dbsize())
    client.execute_command("SELECT", 0)
    return sizes


def raw_info(client, *sections) -> bytes:
    """INFO's text as sent (redis-py's INFO callback would parse it)."""
    client.connection.send_command("INFO", *sections)
    text = client.connection.read_response()
    return text if isinstance(text, bytes) else text.encode()


def _info_fields(text: bytes) -> dict:
    fields = {}
    for line in text.split(b"\r\n"):
        if line and not line.startswith(b"#") and b":" in line:
            name, value = line.split(b":", 1)
            fields[name.decode()] = value.decode()
    return fields


INFO_SECTIONS = [None, "all", "everything", "default", "server", "clients", "memory",
                 "persistence", "stats", "replication", "cpu", "modules", "errorstats",
                 "cluster", "keyspace", "commandstats", "latencystats", "KEYSPACE"]


def check_info_shows_only_own(bob, alice):
    own_dbs = {db: bob_keys for db in range(DATABASES)
               if (bob_keys := len(_dbkeys(bob, db)))}
    for section in INFO_SECTIONS:
        text = raw_info(bob, *([section] if section else []))
        for name in A_ONLY:
            assert name not in text, (section, name)
        assert b"alice" not in text and b"ALICE" not in text, section
        fields = _info_fields(text)
        keyspace = {int(k[2:]): v for k, v in fields.items() if k.startswith("db")}
        for db, value in keyspace.items():
            assert db in own_dbs and value.startswith("keys=%d," % own_dbs[db]), (section, db, value)
        if section in (None, "all", "everything", "default", "keyspace", "KEYSPACE"):
            assert set(keyspace) == set(own_dbs), section
    # A's own INFO keyspace shows A's databases, not B's
    fields = _info_fields(raw_info(alice, "keyspace"))
    assert {int(k[2:]) for k in fields if k.startswith("db")} == \
        {db for db in range(DATABASES) if _dbkeys(alice, db)}


def _dbkeys(client, db: int) -> list:
    client.execute_command("SELECT", db)
    keys = client.keys("*")
    client.execute_command("SELECT", 0)
    return keys


# -- INFO figures ------------------------------------------------------------------

def _stat(client, section: str, name: str) -> int:
    return int(_info_fields(raw_info(client, section))[name])


def test_info_clients_counts_only_own_clients(srv):
    bob = login(srv, "bob")
    root = login(srv, "root")
    before = _stat(bob, "clients", "connected_clients")
    extra = [login(srv, "alice") for _ in range(4)]
    assert _stat(bob, "clients", "connected_clients") == before
    assert _stat(root, "clients", "connected_clients") >= len(extra) + 2
    more_bob = login(srv, "bob")
    assert _stat(bob, "clients", "connected_clients") == before + 1
    for client in extra + [more_bob, bob, root]:
        client.close()


def test_info_stats_do_not_count_other_tenants_keys(srv):
    """keyspace_hits/misses and expired_keys of a non-root user are its own
    tenant's: B cannot watch A's reads hit or miss, nor count A's keys expiring.
    Root sees the server-wide figures."""
    alice = login(srv, "alice", db=8)
    bob = login(srv, "bob", db=8)
    root = login(srv, "root")
    alice.flushdb()
    names = ["hits", "misses", "expired"]
    fields = {"hits": "keyspace_hits", "misses": "keyspace_misses", "expired": "expired_keys"}

    def figures(client):
        return {n: _stat(client, "stats", fields[n]) for n in names}

    bob_before, root_before = figures(bob), figures(root)
    alice_before = figures(alice)
    alice.set("present", "v")
    for _ in range(25):
        alice.get("present")
        alice.get("absent")
    for i in range(12):
        alice.set("short-%d" % i, "v", px=1)
    time.sleep(0.05)
    assert alice.keys("short-*") == []   # expired, and counted
    bob_after, root_after, alice_after = figures(bob), figures(root), figures(alice)
    assert bob_after == bob_before
    assert alice_after["hits"] - alice_before["hits"] == 25
    assert alice_after["misses"] - alice_before["misses"] == 25
    assert alice_after["expired"] - alice_before["expired"] == 12
    assert root_after["hits"] - root_before["hits"] >= 25
    assert root_after["expired"] - root_before["expired"] >= 12
    # B's own figures move with B's own reads
    bob.get("absent")
    assert figures(bob)["misses"] == bob_before["misses"] + 1
    alice.flushdb()
    for client in (alice, bob, root):
        client.close()


# -- CLIENT ------------------------------------------------------------------------

def _entries(text) -> list:
    text = text.decode() if isinstance(text, bytes) else text
    entries = []
    for line in text.splitlines():
        if line.strip():
            entries.append(dict(pair.split("=", 1) for pair in line.split(" ") if "=" in pair))
    return entries


def test_client_list_info_kill_see_only_own_tenant(srv):
    alice = login(srv, "alice")
    alice.client_setname("alice-conn")
    alice_id = alice.client_id()
    alice_info = _entries(alice.execute_command("CLIENT", "INFO"))[0]
    alice_addr = alice_info["addr"]
    bob = login(srv, "bob")
    bob_other = login(srv, "bob")
    root = login(srv, "root")
    bob_id = bob.client_id()

    listed = _entries(bob.execute_command("CLIENT", "LIST"))
    assert {e["user"] for e in listed} == {"bob"}
    assert {int(e["id"]) for e in listed} >= {bob_id, bob_other.client_id()}
    assert str(alice_id) not in {e["id"] for e in listed}
    assert b"alice" not in bob.execute_command("CLIENT", "LIST")
    assert _entries(bob.execute_command("CLIENT", "LIST", "ID", alice_id)) == []
    assert _entries(bob.execute_command("CLIENT", "LIST", "ID", alice_id, bob_id))[0]["id"] == str(bob_id)
    assert {e["user"] for e in _entries(bob.execute_command("CLIENT", "LIST", "TYPE", "normal"))} == {"bob"}
    assert _entries(bob.execute_command("CLIENT", "INFO"))[0]["id"] == str(bob_id)
    # root sees every client
    assert alice_id in {int(e["id"]) for e in _entries(root.execute_command("CLIENT", "LIST"))}

    # CLIENT KILL of A's client: by ID, ADDR (both forms), USER, LADDR, TYPE, MAXAGE
    assert bob.execute_command("CLIENT", "KILL", "ID", alice_id) == 0
    assert bob.execute_command("CLIENT", "KILL", "ADDR", alice_addr) == 0
    assert error_text(cmd(bob, "CLIENT", "KILL", alice_addr)) == "No such client"
    # a user of another tenant is as unknown as a user that does not exist
    assert error_text(cmd(bob, "CLIENT", "KILL", "USER", "alice")) == "No such user 'alice'"
    assert error_text(cmd(bob, "CLIENT", "KILL", "USER", "nobody")) == "No such user 'nobody'"
    assert bob.execute_command("CLIENT", "KILL", "ID", alice_id, "SKIPME", "no") == 0
    assert alice.ping() is True
    assert alice.client_getname() in ("alice-conn", b"alice-conn")
    # the broad filters kill B's own other client, never A's
    laddr = _entries(bob.execute_command("CLIENT", "INFO"))[0]["laddr"]
    others = {int(e["id"]) for e in _entries(bob.execute_command("CLIENT", "LIST"))} - {bob_id}
    assert bob_other.client_id() in others and alice_id not in others
    assert bob.execute_command("CLIENT", "KILL", "LADDR", laddr, "TYPE", "normal", "MAXAGE", 0) \
        == len(others)
    assert bob.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes") == 0
    assert alice.ping() is True and alice.client_id() == alice_id
    assert {int(e["id"]) for e in _entries(bob.execute_command("CLIENT", "LIST"))} == {bob_id}
    # B may kill its own clients by user name
    bob_third = login(srv, "bob")
    assert bob.execute_command("CLIENT", "KILL", "USER", "bob") == 1
    assert alice.ping() is True and alice.client_id() == alice_id
    # root may kill A's client
    assert root.execute_command("CLIENT", "KILL", "ID", alice_id) == 1
    with pytest.raises(redis.ConnectionError):
        alice.connection.send_command("PING")
        alice.connection.read_response()
    for client in (alice, bob, bob_other, bob_third, root):
        client.close()


# -- namespaces and re-AUTH ----------------------------------------------------------

def test_namespace_shared_by_two_users_not_by_a_third(srv):
    root = login(srv, "root")
    carol = login(srv, "carol")            # connected before the binding
    carol.set("before-binding", "carol's own")
    for name in ("carol", "dave"):
        assert root.execute_command("ACL", "SETUSER", name, "namespace:team") == b"OK"
    dave = login(srv, "dave")
    erin = login(srv, "erin")
    alice = login(srv, "alice")
    # carol's live connection moved into the team tenant
    assert carol.get("before-binding") is None
    carol.set(b"team\x00key", "shared")
    carol.execute_command("SELECT", 5)
    carol.set("in-db5", "five")
    assert dave.get(b"team\x00key") == b"shared"
    dave.execute_command("SELECT", 5)
    assert dave.get("in-db5") == b"five"
    dave.execute_command("SELECT", 0)
    dave.set("from-dave", "d")
    carol.execute_command("SELECT", 0)
    assert sorted(carol.keys("*")) == [b"from-dave", b"team\x00key"]
    for outsider in (erin, alice):
        assert outsider.get(b"team\x00key") is None
        assert outsider.get("from-dave") is None
        assert b"team\x00key" not in outsider.keys("*")
        outsider.execute_command("SELECT", 5)
        assert outsider.get("in-db5") is None
        outsider.execute_command("SELECT", 0)
    # CLIENT LIST: the team sees the team's clients, erin only hers
    team_users = {e["user"] for e in _entries(dave.execute_command("CLIENT", "LIST"))}
    assert team_users == {"carol", "dave"}
    assert {e["user"] for e in _entries(erin.execute_command("CLIENT", "LIST"))} == {"erin"}
    # carol leaves the namespace: back to her own data, the team's stays
    assert root.execute_command("ACL", "SETUSER", "carol", "namespace:") == b"OK"
    assert carol.get("before-binding") == b"carol's own"
    assert carol.get(b"team\x00key") is None
    assert dave.get(b"team\x00key") == b"shared"
    for client in (root, carol, dave, erin, alice):
        client.close()


def test_namespace_cannot_reach_the_default_tenant(srv):
    """The default tenant holds the connections that have not authenticated
    (and the password-less default user's data): a namespace named "default"
    must not be that tenant."""
    root = login(srv, "root")
    reply = cmd(root, "ACL", "SETUSER", "erin", "namespace:default")
    if not isinstance(reply, redis.ResponseError):
        waiting = srv.raw()   # not authenticated yet
        erin = login(srv, "erin")
        listed = _entries(erin.execute_command("CLIENT", "LIST"))
        assert {e["user"] for e in listed} == {"erin"}, listed
        assert erin.execute_command("CLIENT", "KILL", "TYPE", "normal") == 0
        waiting.sendall(resp("PING"))
        assert waiting.recv(100) == b"-NOAUTH Authentication required.\r\n"
        waiting.close()
        root.execute_command("ACL", "SETUSER", "erin", "namespace:")
        erin.close()
    root.close()


def test_reauth_switches_what_the_connection_sees(srv):
    alice = login(srv, "alice")
    bob = login(srv, "bob")
    alice.flushall()
    bob.flushall()
    alice.set(b"who\r\nami", "alice's")
    bob.set(b"who\r\nami", "bob's")
    alice.execute_command("SELECT", 2)
    alice.set("a-db2", "x")
    sock = srv.raw()
    key = b"who\r\nami"
    exchange(sock, resp("AUTH", "alice", "alice-pw") + resp("GET", key), b"+OK\r\n$7\r\nalice's\r\n")
    exchange(sock, resp("AUTH", "bob", "bob-pw") + resp("GET", key), b"+OK\r\n$5\r\nbob's\r\n")
    # a failed AUTH keeps the current user (as Redis): still bob, never alice
    exchange(sock, resp("AUTH", "alice", "not-alice-pw"), WRONGPASS)
    exchange(sock, resp("GET", key) + resp("ACL", "WHOAMI"), b"$5\r\nbob's\r\n$3\r\nbob\r\n")
    exchange(sock, resp("HELLO", "2", "AUTH", "alice", "not-alice-pw"), WRONGPASS)
    exchange(sock, resp("GET", key), b"$5\r\nbob's\r\n")
    sock.sendall(resp("HELLO", "2", "AUTH", "alice", "alice-pw"))
    assert read_reply(sock).startswith(b"*14\r\n")
    exchange(sock, resp("GET", key) + resp("ACL", "WHOAMI"), b"$7\r\nalice's\r\n$5\r\nalice\r\n")
    # the selected db number is kept, in the new tenant
    exchange(sock, resp("SELECT", "2") + resp("AUTH", "alice", "alice-pw") + resp("GET", "a-db2"),
             b"+OK\r\n+OK\r\n$1\r\nx\r\n")
    exchange(sock, resp("AUTH", "bob", "bob-pw") + resp("GET", "a-db2") + resp("DBSIZE"),
             b"+OK\r\n$-1\r\n:0\r\n")
    # RESET: back to unauthenticated, nothing of anyone's visible
    exchange(sock, resp("RESET") + resp("GET", key) + resp("KEYS", "*"),
             b"+RESET\r\n-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n")
    sock.close()
    alice.flushall()
    bob.flushall()
    alice.close()
    bob.close()
