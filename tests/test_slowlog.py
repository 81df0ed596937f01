"""SLOWLOG, LATENCY and the latency histograms (issue 19, part S): a tenant
sees only its own tenant's entries and events, root every tenant's (the
others tagged in the client-name field); secrets are redacted; every way a
command runs is timed (one request, a pipeline, EXEC, a blocked command).
The replies' shape against redis-server: tests/compat/sessions/slowlog.txt."""

import time

import pytest
import redis

from conftest import locked_fixture, login, read_reply, resp

locked = locked_fixture({"alice": "alice-pw", "bob": "bob-pw"}, "root-pw")


@pytest.fixture
def clients(locked):
    root = login(locked, "root")
    alice = login(locked, "alice")
    bob = login(locked, "bob")
    root.config_set("slowlog-log-slower-than", 0)
    root.config_set("slowlog-max-len", 128)
    for c in (root, alice, bob):
        c.slowlog_reset()
    yield root, alice, bob
    root.config_set("slowlog-log-slower-than", 10000)
    root.config_set("latency-monitor-threshold", 0)
    for c in (root, alice, bob):
        c.close()


def raw_entries(client, count=-1) -> list:
    return client.execute_command("SLOWLOG", "GET", count)


def args_of(entry) -> list:
    """An entry's arguments, the command name in lower case (redis-py sends it upper)."""
    return [entry[3][0].lower(), *entry[3][1:]]


def flat(entries) -> bytes:
    """Everything an entry list shows, as one byte string to search."""
    out = []
    for e in entries:
        out += [str(e[0]).encode(), e[4], e[5], *e[3]]
    return b"\n".join(out)


def test_tenant_sees_its_own_entries_only(clients):
    root, alice, bob = clients
    alice.client_setname("alice-conn")
    alice.set("alice-secret-key", "alice-value")
    bob.set("bob-secret-key", "bob-value")
    root.set("root-key", "root-value")

    mine = raw_entries(alice)
    shown = flat(mine)
    assert b"alice-secret-key" in shown
    assert b"bob" not in shown and b"root-key" not in shown
    assert all(len(e) == 6 for e in mine)   # Redis's shape
    entry = next(e for e in mine if args_of(e)[:2] == [b"set", b"alice-secret-key"])
    assert entry[5] == b"alice-conn"           # untagged: her own
    assert alice.slowlog_len() == len(mine) + 1   # and the GET, logged after it ran
    assert b"alice" not in flat(raw_entries(bob))

    # root: every tenant's, the others tagged after the client name
    everything = raw_entries(root)
    by_key = {e[3][1]: e for e in everything if args_of(e)[0] == b"set"}
    assert set(by_key) >= {b"alice-secret-key", b"bob-secret-key", b"root-key"}
    assert by_key[b"root-key"][5] == b""
    assert by_key[b"alice-secret-key"][5].startswith(b"alice-conn tenant=")
    assert by_key[b"alice-secret-key"][5].endswith(b" user=alice")
    assert by_key[b"bob-secret-key"][5].startswith(b" tenant=")
    ids = [e[0] for e in everything]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)   # newest first
    # redis-py parses root's view
    parsed = root.slowlog_get(-1)
    assert any(p["command"].lower() == b"set bob-secret-key bob-value" for p in parsed)


def test_tenant_len_reset_and_ids_are_its_own(clients):
    root, alice, bob = clients
    alice.slowlog_reset()
    start = raw_entries(alice)[0][0]     # the RESET itself is the first entry
    for i in range(5):
        bob.set("b%d" % i, i)            # another tenant's slow commands ...
    alice.get("a")
    ids = [e[0] for e in raw_entries(alice)]
    assert ids == [start + 2, start + 1, start]   # ... do not move her ids
    bob_len = bob.slowlog_len()
    alice.slowlog_reset()
    assert alice.slowlog_len() == 1      # her RESET, logged after it ran
    assert bob.slowlog_len() == bob_len + 1   # her RESET left his alone (+ his LEN)
    assert b"b4" in flat(raw_entries(root))   # root still sees bob's
    root.slowlog_reset()                       # root's RESET clears every tenant's
    assert bob.slowlog_len() == 0


def test_max_len_is_per_tenant(clients):
    root, alice, bob = clients
    root.config_set("slowlog-max-len", 5)
    try:
        alice.set("kept", "1")
        for i in range(50):              # a flood from bob ...
            bob.incr("flood")
        assert bob.slowlog_len() == 5
        assert b"kept" in flat(raw_entries(alice))   # ... does not push hers out
        assert root.slowlog_len() >= 10
    finally:
        root.config_set("slowlog-max-len", 128)


def test_pipeline_exec_and_blocked_commands_are_logged(clients, locked):
    root, alice, bob = clients
    pipe = alice.pipeline(transaction=False)
    for i in range(10):
        pipe.set("p%d" % i, i)
    pipe.execute()
    logged = [args_of(e) for e in raw_entries(alice)]
    assert [[b"set", b"p%d" % i, b"%d" % i] for i in range(10)] == list(reversed(logged[:10]))

    alice.slowlog_reset()
    tx = alice.pipeline(transaction=True)
    tx.incr("n")
    tx.execute()
    names = [e[3][0].lower() for e in raw_entries(alice)]
    assert b"incrby" in names and b"multi" in names and b"exec" not in names

    waiter = login(locked, "alice")
    alice.slowlog_reset()
    blocked = waiter.connection_pool.get_connection()
    blocked.send_command("BLPOP", "queue", 0)
    deadline = time.monotonic() + 10
    while b"blpop" not in flat(raw_entries(root)).lower():
        if time.monotonic() > deadline:
            break
        if alice.client_list() and any(c.get("cmd") == "blpop" for c in alice.client_list()):
            break
        time.sleep(0.02)
    assert not any(e[3][0].lower() == b"blpop" for e in raw_entries(alice))   # not while it waits
    alice.lpush("queue", "x")
    assert blocked.read_response() == [b"queue", b"x"]
    assert any(e[3] == [b"BLPOP", b"queue", b"0"] for e in raw_entries(alice))
    waiter.close()


def test_secrets_are_redacted(clients, locked):
    root, alice, bob = clients
    root.execute_command("ACL", "SETUSER", "carol", "on", ">carol-secret-pw", "+@all")
    sock = locked.raw()
    try:
        sock.sendall(resp("AUTH", "alice", "alice-pw"))
        assert read_reply(sock) == b"+OK\r\n"
        sock.sendall(resp("HELLO", "2", "AUTH", "alice", "alice-pw"))
        assert read_reply(sock).startswith(b"*")
        sock.sendall(resp("AUTH", "alice", "wrong-secret"))
        assert read_reply(sock).startswith(b"-WRONGPASS")
    finally:
        sock.close()
    everything = flat(raw_entries(root))
    assert b"carol-secret-pw" not in everything
    assert b"alice-pw" not in everything and b"wrong-secret" not in everything
    setuser = next(e for e in raw_entries(root) if e[3][:2] == [b"ACL", b"SETUSER"])
    assert setuser[3] == [b"ACL", b"SETUSER"] + [b"(redacted)"] * 4
    auths = [e[3] for e in raw_entries(alice) if e[3][0] in (b"AUTH", b"HELLO")]
    assert [b"AUTH", b"(redacted)", b"(redacted)"] in auths
    assert [b"HELLO", b"2", b"AUTH", b"(redacted)", b"(redacted)"] in auths
    root.execute_command("ACL", "DELUSER", "carol")


def test_bad_input(clients):
    root, alice, bob = clients
    for args, text in ((("GET", "-2"), "count should be greater than or equal to -1"),
                       (("GET", "nope"), "count should be greater than or equal to -1"),
                       (("GET", "1", "2"), "wrong number of arguments for 'GET'")):
        with pytest.raises(redis.ResponseError, match=text):
            alice.execute_command("SLOWLOG", *args)
    with pytest.raises(redis.ResponseError, match="argument must be between"):
        root.config_set("slowlog-log-slower-than", -2)
    # a tenant cannot change the server's thresholds
    with pytest.raises(redis.ResponseError):
        alice.config_set("slowlog-log-slower-than", 0)
    # arguments are bounded: 32 of them, 128 bytes each
    alice.execute_command("SADD", "s", *[b"x" * 1000 + b"%d" % i for i in range(1000)])
    entry = next(e for e in raw_entries(alice) if args_of(e)[0] == b"sadd")
    assert len(entry[3]) == 32 and entry[3][-1] == b"... (971 more arguments)"
    assert entry[3][2] == b"x" * 128 + b"... (873 more bytes)"
    assert root.ping()


def as_dict(reply):
    """A map reply as a dict, whether redis-py got it as RESP2's flat list."""
    if isinstance(reply, list):
        reply = dict(zip(reply[::2], reply[1::2]))
    if isinstance(reply, dict):
        return {k: as_dict(v) for k, v in reply.items()}
    return reply


def _slow_sort(client, key: str, size: int = 30000) -> None:
    """A command that takes milliseconds: SORT of a long list."""
    if not client.exists(key):
        pipe = client.pipeline(transaction=False)
        for start in range(0, size, 1000):
            pipe.rpush(key, *range(start, start + 1000))
        pipe.execute()
    client.sort(key)


def test_latency_events_per_tenant(clients):
    root, alice, bob = clients
    root.config_set("latency-monitor-threshold", 1)
    for c in (root, alice, bob):
        c.execute_command("LATENCY", "RESET")
    for _ in range(20):   # retried measurement: a loaded machine may be fast once
        _slow_sort(bob, "big")
        if bob.execute_command("LATENCY", "LATEST"):
            break
    latest = {e[0]: e for e in bob.execute_command("LATENCY", "LATEST")}
    assert b"command" in latest   # SORT; RPUSH of 1000 may be a fast-command event too
    name, when, last, worst = latest[b"command"]
    assert abs(when - time.time()) < 60 and 1 <= last <= worst
    assert bob.execute_command("LATENCY", "HISTORY", "command")
    assert b"command - high" in bob.execute_command("LATENCY", "GRAPH", "command")
    # alice sees none of bob's events; root sees the server's
    assert alice.execute_command("LATENCY", "LATEST") == []
    assert alice.execute_command("LATENCY", "HISTORY", "command") == []
    with pytest.raises(redis.ResponseError, match="No samples available for event 'command'"):
        alice.execute_command("LATENCY", "GRAPH", "command")
    assert b"command" in [e[0] for e in root.execute_command("LATENCY", "LATEST")]
    # a tenant's reset is its own
    assert alice.execute_command("LATENCY", "RESET") == 0
    assert bob.execute_command("LATENCY", "RESET") == len(latest)
    assert bob.execute_command("LATENCY", "LATEST") == []
    assert root.execute_command("LATENCY", "LATEST") != []
    assert root.execute_command("LATENCY", "RESET") >= 1


def test_histograms_and_latencystats_are_roots(clients):
    root, alice, bob = clients
    root.config_resetstat()
    for i in range(3):
        alice.set("h%d" % i, i)
    alice.get("h0")
    histo = as_dict(root.execute_command("LATENCY", "HISTOGRAM", "set", "get"))
    assert histo[b"set"][b"calls"] == 3 and histo[b"get"][b"calls"] == 1
    buckets = histo[b"set"][b"histogram_usec"]
    assert list(buckets.values())[-1] == 3 and list(buckets) == sorted(buckets)
    everything = as_dict(root.execute_command("LATENCY", "HISTOGRAM"))
    assert b"config|resetstat" in everything and b"config" not in everything
    # a tenant: no server-wide figures
    assert as_dict(alice.execute_command("LATENCY", "HISTOGRAM")) == {}
    assert alice.info("latencystats") == {}
    stats = root.info("latencystats")
    assert set(stats["latency_percentiles_usec_set"]) == {"p50", "p99", "p99.9"}
    root.config_set("latency-tracking-info-percentiles", "90")
    assert set(root.info("latencystats")["latency_percentiles_usec_set"]) == {"p90"}
    root.config_set("latency-tracking-info-percentiles", "50 99 99.9")
    # commandstats usec for root; CONFIG RESETSTAT clears the histograms
    assert root.info("commandstats")["cmdstat_set"]["usec"] > 0
    root.config_resetstat()
    assert list(as_dict(root.execute_command("LATENCY", "HISTOGRAM"))) == [b"config|resetstat"]
    root.config_set("latency-tracking", "no")
    try:
        alice.set("untracked", 1)
        assert as_dict(root.execute_command("LATENCY", "HISTOGRAM", "set")) == {}
        assert root.info("latencystats") == {}   # as Redis: none while off
    finally:
        root.config_set("latency-tracking", "yes")


@pytest.mark.slow
def test_expire_cycle_is_roots_event(clients):
    root, alice, bob = clients
    root.config_set("latency-monitor-threshold", 1)
    root.execute_command("LATENCY", "RESET")
    alice.execute_command("LATENCY", "RESET")
    def seen() -> bool:
        return b"expire-cycle" in [e[0] for e in root.execute_command("LATENCY", "LATEST")]

    for attempt in range(5):   # retried measurement: the cycle must take >= 1 ms once
        pipe = alice.pipeline(transaction=False)
        for i in range(100000):
            pipe.set("exp:%d" % i, "v", px=1)
        pipe.execute()
        deadline = time.monotonic() + 30
        # One cycle of 1 ms or more is all it takes: not every key gone.
        while alice.dbsize() and time.monotonic() < deadline and not seen():
            time.sleep(0.05)
        if seen():
            break
    alice.flushall()
    assert b"expire-cycle" in [e[0] for e in root.execute_command("LATENCY", "LATEST")]
    # the cycle walks every tenant: not a tenant's figure
    assert b"expire-cycle" not in [e[0] for e in alice.execute_command("LATENCY", "LATEST")]
    assert b"expire-cycle" not in [e[0] for e in bob.execute_command("LATENCY", "LATEST")]
    assert b"expire-cycle - high" in root.execute_command("LATENCY", "GRAPH", "expire-cycle")


def test_pipelined_slow_command_is_timed_on_its_own(clients):
    """Above 1 ms a pipeline's @fast commands share its time, but a command
    that may take long is timed on its own: only it is logged."""
    root, alice, bob = clients
    root.config_set("slowlog-log-slower-than", 50000)   # 50 ms
    root.slowlog_reset()
    pipe = root.pipeline(transaction=False)
    for i in range(20):
        pipe.set("before%d" % i, i)
    pipe.execute_command("DEBUG", "SLEEP", "0.1")
    for i in range(20):
        pipe.set("after%d" % i, i)
    pipe.execute()
    entries = raw_entries(root)
    assert [args_of(e) for e in entries] == [[b"debug", b"SLEEP", b"0.1"]]
    assert 100000 <= entries[0][2] < 5000000
    stats = root.info("commandstats")
    assert stats["cmdstat_debug"]["usec"] >= 100000   # its own time, not shared
