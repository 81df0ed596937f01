"""Cheap tenants (issue 14): a small tenant costs little memory, and the
databases it never used are made only when something writes to them.

The memory checks measure live Python objects with tracemalloc in this
process (robust on a loaded machine, unlike RSS); bench/memory.py measures
RSS per tenant on a real server. The behaviour checks drive a real server:
every walker of a tenant's databases (INFO keyspace, DEBUG DIGEST, SAVE,
DEBUG RELOAD, the log's rewrite, FLUSHALL) must see a database by its number,
not by its place among the databases made so far.
"""

import gc
import time
import tracemalloc

import redis

from tenantkv.keyspace.tenant import Tenant
from tenantkv.persistence.kdb import format as kdb
from tenantkv.server.stats import Stats

TENANTS = 2_000
# Per tenant holding one 20-byte string: ~1.1 KB of objects now, ~9.5 KB when
# every tenant made its 16 databases up front. The budget is 2 KB of
# RSS; objects must stay well under it.
MAX_BYTES_PER_TENANT = 1_600


def _traced(build):
    """(live bytes, peak bytes) that `build()` allocates and keeps."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        kept = build()
        gc.collect()
        now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return now - base, peak - base


def test_a_tenant_with_one_key_costs_little_memory():
    stats = Stats()
    names = ["tenant:%032x" % i for i in range(TENANTS)]

    def build():
        tenants = {}
        for name in names:
            tenant = tenants[name] = Tenant(name, stats)
            tenant.dbs[0].set(b"key", b"v" * 20)
            tenant.join(name)   # a connection logs in, and leaves
            tenant.leave(name)
            tenant.fold()
            tenant.reset_stats()   # what CONFIG RESETSTAT does: makes nothing
        return tenants

    live, _ = _traced(build)
    assert live / TENANTS <= MAX_BYTES_PER_TENANT, live / TENANTS


def test_loading_many_small_tenants_allocates_little_on_the_way():
    # A start-up load of a snapshot: the parsed data must not hold empty
    # dicts for the 15 databases each tenant does not use (they would stay
    # behind in the allocator as RSS).
    blob = kdb.dumps({"tenant:%032x" % i: [({b"key": b"v" * 20}, {})] for i in range(TENANTS)})
    _, peak = _traced(lambda: kdb.load(blob, databases=16))
    assert peak / TENANTS <= 1_000, peak / TENANTS


def test_databases_are_made_on_first_write_only():
    tenant = Tenant("t", Stats())
    assert len(tenant.dbs) == 16 and list(tenant.dbs) == []
    db = tenant.dbs[9]
    assert [d.index for d in tenant.dbs] == [9] and tenant.dbs[9] is db
    tenant.dbs[2]
    assert [d.index for d in tenant.dbs] == [2, 9]   # index order for the walkers
    assert tenant.dbs.get(5) is None and [d.index for d in tenant.dbs] == [2, 9]
    for bad in (16, -1):
        try:
            tenant.dbs[bad]
        except IndexError:
            pass
        else:
            raise AssertionError("dbs[%d] made a database" % bad)


def test_a_tenant_keeps_no_client_set_once_its_last_client_left():
    tenant = Tenant("t", Stats())
    a, b = object(), object()
    tenant.join(a)
    tenant.join(b)
    assert tenant.clients == {a, b}
    tenant.leave(a)
    assert tenant.clients == {b}
    tenant.leave(b)
    assert tenant.clients == set() and tenant._clients is None   # 216 bytes freed
    tenant.leave(b)   # twice: nothing happens


def _fill(client: redis.Redis) -> None:
    """Keys in databases 5 and 11 only, of several types, one with a TTL."""
    client.execute_command("SELECT", 5)
    client.set("s", "v")
    client.hset("h", mapping={"a": "1", "b": "2"})
    client.rpush("l", "x", "y")
    client.execute_command("SELECT", 11)
    client.zadd("z", {"m": 1.5})
    client.sadd("set", "p", "q")
    client.set("ttl", "1", ex=1000)


def _by_db(client: redis.Redis) -> dict:
    out = {}
    for index in range(16):
        client.execute_command("SELECT", index)
        keys = sorted(client.keys("*"))
        if keys:
            out[index] = keys
    return out


EXPECTED = {5: [b"h", b"l", b"s"], 11: [b"set", b"ttl", b"z"]}


def test_walkers_see_each_database_by_its_number(make_server, redis_server, tmp_path):
    server = make_server()
    c = server.client(single_connection_client=True)
    # SELECT of a database never used, and reads there: empty, no error.
    c.execute_command("SELECT", 7)
    assert c.dbsize() == 0 and c.get("k") is None and c.keys("*") == []
    assert c.scan(0) == (0, [])
    assert c.info("keyspace") == {}
    _fill(c)
    keyspace = c.info("keyspace")
    assert set(keyspace) == {"db5", "db11"}
    assert keyspace["db11"]["keys"] == 3 and keyspace["db11"]["expires"] == 1

    # DEBUG DIGEST mixes in each database's number: as Redis's, for the same data.
    ref = redis.Redis(port=redis_server.port, single_connection_client=True)
    ref.flushall()
    _fill(ref)
    ref.persist("ttl")
    c.persist("ttl")
    assert c.execute_command("DEBUG", "DIGEST") == ref.execute_command("DEBUG", "DIGEST")
    ref.flushall()
    c.expire("ttl", 1000)

    digest = c.execute_command("DEBUG", "DIGEST")
    # MOVE into a database never used makes it.
    c.execute_command("SELECT", 11)
    assert c.move("set", 14) is True
    expected = {5: EXPECTED[5], 11: [b"ttl", b"z"], 14: [b"set"]}
    assert _by_db(c) == expected
    c.execute_command("SELECT", 14)
    assert c.move("set", 11) is True   # back: the digest is the same again
    assert c.execute_command("DEBUG", "DIGEST") == digest

    # A snapshot, DEBUG RELOAD and a restart keep every key in its database.
    assert c.save() is True
    assert c.execute_command("DEBUG", "RELOAD") == b"OK"
    assert _by_db(c) == EXPECTED
    assert c.execute_command("DEBUG", "DIGEST") == digest
    server.stop()
    server = make_server(data_dir=server.data_dir)
    c = server.client(single_connection_client=True)
    assert _by_db(c) == EXPECTED
    assert c.execute_command("DEBUG", "DIGEST") == digest
    c.execute_command("SELECT", 11)
    assert 0 < c.ttl("ttl") <= 1000

    # FLUSHALL empties them all.
    assert c.flushall() is True
    assert _by_db(c) == {} and c.info("keyspace") == {}


def test_log_rewrite_keeps_each_database_by_its_number(make_server, tmp_path):
    server = make_server("--appendonly", "yes", "--save", "")
    c = server.client(single_connection_client=True)
    _fill(c)
    digest = c.execute_command("DEBUG", "DIGEST")
    c.bgrewriteaof()
    deadline = time.monotonic() + 60
    while c.info("persistence")["aof_rewrite_in_progress"] \
            or c.info("persistence")["aof_rewrite_scheduled"]:
        assert time.monotonic() < deadline, "BGREWRITEAOF did not finish"
        time.sleep(0.05)
    c.execute_command("SELECT", 5)
    c.set("after", "rewrite")   # in the incremental file, after the base
    server.stop()
    server = make_server("--appendonly", "yes", "--save", "", data_dir=server.data_dir)
    c = server.client(single_connection_client=True)
    assert _by_db(c) == {5: [b"after", *EXPECTED[5]], 11: EXPECTED[11]}
    c.execute_command("SELECT", 5)
    c.delete("after")
    assert c.execute_command("DEBUG", "DIGEST") == digest
