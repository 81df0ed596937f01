"""Stream consumer groups beyond one connection's session (the byte-for-byte
session is tests/compat/sessions/stream-groups.txt): parked XREADGROUPs and
what wakes them (against redis-server), tenants, restarts (the append-only
log after kill -9, snapshots, rewrites), the bounds, and a randomized
differential run of group operations against redis-server."""

import random
import time

import pytest
import redis

from compat import harness
from conftest import locked_server, login, raw_command

AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")


def _raw(port: int) -> harness.RawConnection:
    return harness.RawConnection(port)


# -- parked XREADGROUP: woken by XADD, answered when its group or key goes ------------

def _wake_scenario(port: int) -> list:
    """Replies of parked XREADGROUPs woken by each kind of write, in order."""
    out = []
    admin = _raw(port)
    admin.call([b"FLUSHALL"])

    def parked(wake: list, *read_args) -> bytes:
        admin.call([b"DEL", b"s", b"s2"])
        admin.call([b"XADD", b"s", b"1-1", b"a", b"1"])
        admin.call([b"XGROUP", b"CREATE", b"s", b"g", b"$"])
        reader = _raw(port)
        reader.send([b"XREADGROUP", b"GROUP", b"g", b"c1", *read_args,
                     b"BLOCK", b"0", b"STREAMS", b"s", b">"])
        time.sleep(0.1)   # parked (a reply now would be read below, in the wrong place)
        for command in wake:
            out.append(admin.call(command))
        try:
            return reader.read_reply()
        finally:
            reader.close()

    out.append(parked([[b"XADD", b"s", b"2-1", b"b", b"2"]]))
    out.append(admin.call([b"XPENDING", b"s", b"g"]))
    out.append(parked([[b"XADD", b"s", b"2-1", b"b", b"2"], [b"XADD", b"s", b"3-1", b"c", b"3"]],
                      b"COUNT", b"1"))
    out.append(parked([[b"XADD", b"s", b"2-1", b"b", b"2"]], b"NOACK"))
    out.append(admin.call([b"XPENDING", b"s", b"g"]))
    out.append(parked([[b"XGROUP", b"DESTROY", b"s", b"g"]]))
    out.append(parked([[b"DEL", b"s"]]))
    out.append(parked([[b"SET", b"s", b"string"]]))
    out.append(parked([[b"RENAME", b"s", b"s2"]]))
    out.append(parked([[b"FLUSHDB"]]))
    out.append(parked([[b"MULTI"], [b"DEL", b"s"], [b"XADD", b"s", b"5-5", b"x", b"y"],
                       [b"EXEC"]]))
    # another group's delivery does not wake it; an XADD does
    out.append(parked([[b"XGROUP", b"CREATE", b"s", b"other", b"0"],
                       [b"XREADGROUP", b"GROUP", b"other", b"c9", b"STREAMS", b"s", b">"],
                       [b"XADD", b"s", b"7-7", b"z", b"z"]]))
    out.append(admin.call([b"XINFO", b"GROUPS", b"s"]))
    admin.close()
    return out


def test_parked_xreadgroup_as_redis(server, redis_server):
    expected = _wake_scenario(redis_server.port)
    assert _wake_scenario(server.port) == expected
    assert expected[1].startswith(b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-1")
    assert any(r.startswith(b"-NOGROUP the consumer group this client was blocked on")
               for r in expected)
    assert expected.count(b"-UNBLOCKED the stream key no longer exists\r\n") == 4


def _watch_scenario(port: int) -> list:
    """Which group commands fail a WATCHer's EXEC (Redis: only XGROUP CREATE
    ... MKSTREAM making the key)."""
    out = []
    admin, watcher = _raw(port), _raw(port)
    admin.call([b"FLUSHALL"])
    admin.call([b"XADD", b"s", b"1-1", b"a", b"1"])
    admin.call([b"XGROUP", b"CREATE", b"s", b"g", b"0"])
    for command in ([b"XREADGROUP", b"GROUP", b"g", b"c", b"STREAMS", b"s", b">"],
                    [b"XCLAIM", b"s", b"g", b"d", b"0", b"1-1"], [b"XACK", b"s", b"g", b"1-1"],
                    [b"XGROUP", b"CREATECONSUMER", b"s", b"g", b"e"],
                    [b"XGROUP", b"SETID", b"s", b"g", b"0"],
                    [b"XAUTOCLAIM", b"s", b"g", b"f", b"0", b"0"],
                    [b"XGROUP", b"CREATE", b"s", b"g2", b"0"],
                    [b"XGROUP", b"DESTROY", b"s", b"g2"],
                    [b"XGROUP", b"CREATE", b"s3", b"g", b"0", b"MKSTREAM"]):
        key = b"s3" if command[2:3] == [b"s3"] or command[3:4] == [b"s3"] else b"s"
        watcher.call([b"WATCH", key])
        out.append(admin.call(command))
        watcher.call([b"MULTI"])
        watcher.call([b"PING"])
        out.append(watcher.call([b"EXEC"]))
    admin.close()
    watcher.close()
    return out


def test_watch_as_redis(server, redis_server):
    expected = _watch_scenario(redis_server.port)
    assert _watch_scenario(server.port) == expected
    assert expected.count(b"*-1\r\n") == 1   # CREATE ... MKSTREAM


def test_parked_xreadgroup_timeout_and_fifo(server):
    c = server.client()
    c.flushall()
    c.xgroup_create("s", "g", id="$", mkstream=True)
    start = time.monotonic()
    assert c.xreadgroup("g", "c", {"s": ">"}, block=100) == []
    assert time.monotonic() - start >= 0.09
    first, second = _raw(server.port), _raw(server.port)
    for conn, name in ((first, b"c1"), (second, b"c2")):
        conn.send([b"XREADGROUP", b"GROUP", b"g", name, b"BLOCK", b"0", b"STREAMS", b"s", b">"])
        time.sleep(0.05)
    c.xadd("s", {"f": "1"}, id="1-0")
    assert b"1-0" in first.read_reply()
    c.xadd("s", {"f": "2"}, id="2-0")
    assert b"2-0" in second.read_reply()
    pending = c.xpending_range("s", "g", "-", "+", 10)
    assert [(p["message_id"], p["consumer"]) for p in pending] == [(b"1-0", b"c1"), (b"2-0", b"c2")]


# -- tenants ------------------------------------------------------------------------

def test_groups_are_per_tenant(tmp_path):
    with locked_server(tmp_path, {"alice": "alice-pw", "bob": "bob-pw"}, "root-pw") as server:
        alice, bob = login(server, "alice"), login(server, "bob")
        alice.xadd("s", {"f": "a"}, id="1-0")
        alice.xgroup_create("s", "g", id="0")
        with pytest.raises(redis.ResponseError, match="NOGROUP"):
            bob.xreadgroup("g", "c", {"s": ">"})
        bob.xgroup_create("s", "g", id="$", mkstream=True)
        assert bob.xinfo_groups("s")[0]["pending"] == 0
        # alice parks; bob's XADD to his own "s" must not wake her
        waiter = _raw(server.port)
        waiter.call([b"AUTH", b"alice", b"alice-pw"])
        waiter.send([b"XREADGROUP", b"GROUP", b"g", b"c", b"COUNT", b"5", b"BLOCK", b"300",
                     b"STREAMS", b"s", b">"])
        time.sleep(0.05)
        assert waiter.read_reply().startswith(b"*1\r\n")   # her own entry 1-0, at once
        waiter.send([b"XREADGROUP", b"GROUP", b"g", b"c", b"BLOCK", b"400",
                     b"STREAMS", b"s", b">"])
        time.sleep(0.05)
        bob.xadd("s", {"f": "b"}, id="5-0")
        assert waiter.read_reply() == b"*-1\r\n"
        assert bob.xinfo_groups("s")[0]["lag"] == 1
        assert alice.xpending("s", "g")["pending"] == 1
        waiter.close()


# -- bounds --------------------------------------------------------------------------

def test_consumers_and_groups_are_bounded(server):
    from tenantkv.keyspace.streamgroups import MAX_CONSUMERS, MAX_GROUPS
    c = server.client()
    c.flushall()
    c.xgroup_create("s", "g", id="$", mkstream=True)
    pipe = c.pipeline(transaction=False)
    for i in range(MAX_CONSUMERS):
        pipe.execute_command("XGROUP", "CREATECONSUMER", "s", "g", "c%d" % i)
    assert sum(pipe.execute()) == MAX_CONSUMERS
    with pytest.raises(redis.ResponseError, match="more than %d consumers" % MAX_CONSUMERS):
        c.execute_command("XGROUP", "CREATECONSUMER", "s", "g", "one-more")
    c.xadd("s", {"f": "v"}, id="1-0")
    with pytest.raises(redis.ResponseError, match="more than %d consumers" % MAX_CONSUMERS):
        c.xreadgroup("g", "one-more", {"s": ">"})
    assert c.xinfo_groups("s")[0]["last-delivered-id"] == b"0-0"   # nothing delivered
    for i in range(1, MAX_GROUPS):
        pipe.xgroup_create("s", "g%d" % i, id="0")
    pipe.execute()
    with pytest.raises(redis.ResponseError, match="more than %d groups" % MAX_GROUPS):
        c.xgroup_create("s", "last", id="0")
    assert c.ping()


# -- restarts -----------------------------------------------------------------------

def _group_state(c, key: str = "s") -> tuple:
    """Everything a restart must keep of the groups of `key` (not the times)."""
    groups = []
    for info in c.xinfo_groups(key):
        name = info["name"]
        pending = [(p["message_id"], p["consumer"], p["times_delivered"])
                   for p in c.xpending_range(key, name, "-", "+", 100000)]
        consumers = sorted((x["name"], x["pending"]) for x in c.xinfo_consumers(key, name))
        groups.append((name, info["last-delivered-id"], info["entries-read"], info["lag"],
                       pending, consumers))
    return c.xlen(key), groups


KEY = "jobs"


def test_three_consumers_one_dies_restart_loses_nothing(make_server, tmp_path):
    """The issue's done-when test: three consumers (redis-py) of one group;
    one dies holding entries, another takes them over with XCLAIM and
    XAUTOCLAIM; the server is killed (-9) in the middle, after acknowledged
    writes, and restarted from its log (appendfsync always): no
    acknowledged entry, ack or claim is lost."""
    server = make_server(*AOF_ALWAYS)
    c = server.client()
    c.xgroup_create("jobs", "workers", id="$", mkstream=True)
    added = [c.xadd("jobs", {"n": str(i)}) for i in range(30)]
    workers = {name: server.client() for name in ("w1", "w2", "w3")}
    got = {}
    for name, w in workers.items():   # each takes 10
        reply = w.xreadgroup("workers", name, {"jobs": ">"}, count=10)
        got[name] = [sid for sid, _ in reply[0][1]]
    assert sorted(sum(got.values(), [])) == sorted(added)
    # w1 and w2 finish theirs; w3 dies holding its 10
    for name in ("w1", "w2"):
        assert workers[name].xack("jobs", "workers", *got[name]) == 10
    workers["w3"].close()
    # w1 claims 4 of them explicitly, w2 the rest with XAUTOCLAIM
    claimed = workers["w1"].xclaim("jobs", "workers", "w1", 0, got["w3"][:4], justid=True)
    assert claimed == got["w3"][:4]
    more = c.xadd("jobs", {"n": "late"})   # acknowledged, then the crash
    before = _group_state(c, KEY)
    server.kill()

    server = make_server(*AOF_ALWAYS, port=server.port)
    c = server.client()
    assert _group_state(c, KEY) == before
    assert [sid for sid, _ in c.xrange("jobs")] == added + [more]
    w2 = server.client()
    cursor, auto, deleted = raw_command(w2, "XAUTOCLAIM", "jobs", "workers", "w2", 0, "0-0",
                                        "COUNT", 100, "JUSTID")
    assert (cursor, deleted) == (b"0-0", [])
    assert sorted(auto) == sorted(got["w3"])   # w1's four too: idle 0 claims them all
    assert w2.xack("jobs", "workers", *got["w3"]) == 10
    reply = w2.xreadgroup("workers", "w2", {"jobs": ">"})
    assert [sid for sid, _ in reply[0][1]] == [more]
    assert w2.xack("jobs", "workers", more) == 1
    assert c.xpending("jobs", "workers")["pending"] == 0
    info = c.xinfo_groups("jobs")[0]
    assert (info["entries-read"], info["lag"]) == (31, 0)
    state = _group_state(c, KEY)
    server.kill()
    server = make_server(*AOF_ALWAYS, port=server.port)
    assert _group_state(server.client(), KEY) == state


def _fill_groups(c) -> None:
    c.xadd("s", {"a": "1"}, id="1-1")
    c.xadd("s", {"b": "2"}, id="2-1")
    c.xadd("s", {"c": "3"}, id="3-1")
    c.xgroup_create("s", "g1", id="0")
    c.xgroup_create("s", "g2", id="$")
    c.execute_command("XGROUP", "CREATECONSUMER", "s", "g2", "idle")
    c.xreadgroup("g1", "alice", {"s": ">"}, count=2)
    c.xreadgroup("g1", "bob", {"s": ">"}, noack=True)
    c.xclaim("s", "g1", "carol", 0, ["2-1"], retrycount=5)
    c.xdel("s", "1-1")                      # a pending entry whose entry is gone
    c.xadd("s", {"d": "4"}, id="4-1")


@pytest.mark.parametrize("how", ["save", "aof", "rewrite-kdb", "rewrite-aof"])
def test_groups_survive_restarts(make_server, tmp_path, how):
    flags = {"save": ("--save", ""), "aof": AOF_ALWAYS,
             "rewrite-kdb": AOF_ALWAYS + ("--aof-use-rdb-preamble", "yes"),
             "rewrite-aof": AOF_ALWAYS + ("--aof-use-rdb-preamble", "no")}[how]
    server = make_server(*flags)
    c = server.client()
    _fill_groups(c)
    if how.startswith("rewrite"):
        c.bgrewriteaof()
        deadline = time.time() + 20
        while c.info("persistence")["aof_rewrite_in_progress"] and time.time() < deadline:
            time.sleep(0.05)
        assert c.info("persistence")["aof_last_bgrewrite_status"] == "ok"
    before = _group_state(c)
    times = c.execute_command("XINFO", "STREAM", "s", "FULL")
    if how == "save":
        c.save()
        server.stop()
    else:
        server.kill()
    server = make_server(*flags, port=server.port)
    c = server.client()
    after = _group_state(c)
    if how == "rewrite-aof":
        # As Redis's rewrite (rewriteStreamObject: XCLAIM ... FORCE JUSTID),
        # a pending entry whose stream entry was deleted cannot be written
        # back as a command: it is gone after the rewrite.
        name, last, read, lag, pending, consumers = before[1][0]
        pending = [p for p in pending if p[0] != b"1-1"]
        consumers = [(n, k - 1 if n == b"alice" else k) for n, k in consumers]
        before = (before[0], [(name, last, read, lag, pending, consumers)] + before[1][1:])
    assert after == before
    if how == "save":   # a snapshot keeps the delivery times and seen-times exactly
        assert c.execute_command("XINFO", "STREAM", "s", "FULL") == times


# -- a randomized differential run against redis-server --------------------------------

def _normalize(command: list, reply):
    """Drop what depends on the clock (idle times, delivery times)."""
    name = command[0]
    if name == "XPENDING" and len(command) > 3 and isinstance(reply, list):
        return [item[:2] + item[3:] for item in reply]
    if name == "XINFO" and command[1] == "CONSUMERS" and isinstance(reply, list):
        return [item[:4] for item in reply]   # name, pending (not idle)
    if name == "XINFO" and command[1] == "STREAM" and isinstance(reply, list):
        return _full(reply)
    return reply


def _pairs(flat: list) -> dict:
    return dict(zip(flat[::2], flat[1::2]))


def _full(reply: list) -> dict:
    """XINFO STREAM FULL without the clock (delivery and seen times) and
    the rax's shape (radix-tree-keys/-nodes: tenantkv's blocks differ)."""
    info = _pairs(reply)
    del info[b"radix-tree-keys"], info[b"radix-tree-nodes"]
    groups = []
    for flat in info[b"groups"]:
        group = _pairs(flat)
        group[b"pending"] = [p[:2] + p[3:] for p in group[b"pending"]]
        consumers = []
        for c in group[b"consumers"]:
            c = _pairs(c)
            del c[b"seen-time"]
            c[b"pending"] = [[p[0], p[2]] for p in c[b"pending"]]
            consumers.append(c)
        group[b"consumers"] = consumers
        groups.append(group)
    info[b"groups"] = groups
    return info


def _random_command(rng, ids: list) -> list:
    group = rng.choice(["g1", "g2"])
    consumer = rng.choice(["c1", "c2", "c3"])

    def some_id():
        if ids and rng.random() < 0.8:
            return rng.choice(ids)
        return "%d-%d" % (rng.randint(0, 60), rng.randint(0, 3))
    roll = rng.random()
    if roll < 0.22:
        return ["XADD", "s", "%d-%d" % (len(ids) + 1, rng.randint(0, 2)),
                "f", str(rng.randint(0, 9))]
    if roll < 0.40:
        cmd = ["XREADGROUP", "GROUP", group, consumer]
        if rng.random() < 0.5:
            cmd += ["COUNT", str(rng.randint(0, 4))]
        if rng.random() < 0.15:
            cmd.append("NOACK")
        return cmd + ["STREAMS", "s", ">" if rng.random() < 0.7 else rng.choice(["0", some_id()])]
    if roll < 0.52:
        return ["XACK", "s", group] + [some_id() for _ in range(rng.randint(1, 3))]
    if roll < 0.60:
        cmd = ["XCLAIM", "s", group, consumer, "0"] + [some_id() for _ in range(rng.randint(1, 3))]
        cmd += rng.choice([[], ["JUSTID"], ["FORCE", "JUSTID"], ["RETRYCOUNT", "3"]])
        return cmd
    if roll < 0.66:
        cmd = ["XAUTOCLAIM", "s", group, consumer, "0", rng.choice(["0", "-", some_id()]),
               "COUNT", str(rng.randint(1, 5))]
        return cmd + (["JUSTID"] if rng.random() < 0.5 else [])
    if roll < 0.74:
        if rng.random() < 0.5:
            return ["XPENDING", "s", group]
        cmd = ["XPENDING", "s", group, "-", "+", str(rng.randint(1, 10))]
        return cmd + ([consumer] if rng.random() < 0.4 else [])
    if roll < 0.80:
        if rng.random() < 0.3:
            return ["XINFO", "STREAM", "s", "FULL", "COUNT", str(rng.randint(0, 3))]
        return ["XINFO", rng.choice(["GROUPS", "CONSUMERS"]), "s"] + (
            [group] if rng.random() < 0.5 else [])
    if roll < 0.85:
        return ["XDEL", "s", some_id()]
    if roll < 0.89:
        return ["XGROUP", "SETID", "s", group, rng.choice(["0", "$", some_id()])] + (
            ["ENTRIESREAD", str(rng.randint(-1, 5))] if rng.random() < 0.3 else [])
    if roll < 0.93:
        return ["XGROUP", rng.choice(["CREATECONSUMER", "DELCONSUMER"]), "s", group, consumer]
    if roll < 0.96:
        return ["XGROUP", rng.choice(["CREATE", "DESTROY"]), "s", group, "0"][:5 if rng.random() < 0.5 else 4]
    return ["XTRIM", "s", "MAXLEN", str(rng.randint(0, 10))]


def _run(client, command):
    try:
        return client.execute_command(*command)
    except redis.ResponseError as exc:
        return "error: %s" % exc


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_group_operations_as_redis(server, redis_server, seed):
    rng = random.Random(seed)
    ours = server.client(protocol=2)
    theirs = redis.Redis(port=redis_server.port, protocol=2)
    for c in (ours, theirs):
        c.response_callbacks.clear()   # the replies as sent
        c.flushall()
        c.xgroup_create("s", "g1", id="$", mkstream=True)
        c.xgroup_create("s", "g2", id="0")
    ids: list = []
    for step in range(600):
        command = _random_command(rng, ids)
        expected = _normalize(command, _run(theirs, command))
        actual = _normalize(command, _run(ours, command))
        assert actual == expected, (step, command)
        if command[0] == "XADD" and not str(expected).startswith("error"):
            ids.append(expected.decode())
    for c in (ours, theirs):
        c.close()


@pytest.mark.slow
def test_big_pel_in_slices_and_bounded_deliveries(server):
    """A PEL past slices.BIG: XPENDING and XINFO STREAM FULL run as sliced
    jobs (answers whole and right), XREADGROUP delivers MAX_DELIVERED at
    most a call and XAUTOCLAIM claims as many at most, the cursor going on."""
    from tenantkv.commands.streamgroups import MAX_DELIVERED
    from tenantkv.dispatch.slices import BIG
    c = server.client(protocol=2)
    c.flushall()
    total = BIG + 5000
    for start in range(1, total + 1, 10000):
        pipe = c.pipeline(transaction=False)
        for i in range(start, min(start + 10000, total + 1)):
            pipe.execute_command("XADD", "big", "%d-0" % i, "f", "v")
        pipe.execute()
    c.xgroup_create("big", "g", id="0")
    calls = 0
    while True:
        reply = c.xreadgroup("g", "c1", {"big": ">"})
        if not reply:
            break
        assert len(reply[0][1]) == min(MAX_DELIVERED, total - calls * MAX_DELIVERED)
        calls += 1
    assert calls == -(-total // MAX_DELIVERED)
    assert c.xpending("big", "g")["pending"] == total
    rows = raw_command(c, "XPENDING", "big", "g", "-", "+", total + 10)
    assert len(rows) == total and rows[0][0] == b"1-0" and rows[-1][0] == b"%d-0" % total
    assert raw_command(c, "XPENDING", "big", "g", "IDLE", 10**9, "-", "+", 10) == []
    full = raw_command(c, "XINFO", "STREAM", "big", "FULL", "COUNT", 0)
    group = full[full.index(b"groups") + 1][0]
    assert group[group.index(b"pel-count") + 1] == total
    assert len(group[group.index(b"pending") + 1]) == total
    cursor, claimed, deleted = raw_command(c, "XAUTOCLAIM", "big", "g", "c2", 0, "0-0",
                                           "COUNT", total, "JUSTID")
    assert len(claimed) == MAX_DELIVERED and cursor == b"%d-0" % (MAX_DELIVERED + 1)
    # the bound is per call, all streams together: the second waits
    c.xadd("small", {"f": "v"}, id="1-0")
    c.xgroup_create("small", "g", id="0")
    c.xgroup_create("big", "g3", id="0")
    c.xgroup_create("small", "g3", id="0")
    reply = c.xreadgroup("g3", "c", {"big": ">", "small": ">"})
    assert [(key, len(entries)) for key, entries in reply] == [(b"big", MAX_DELIVERED)]
    # a big group and a stream with one are freed in slices (dispatch/lazyfree.py)
    c.xgroup_create("big", "g2", id="0")
    c.xreadgroup("g2", "c", {"big": ">"})
    assert c.xgroup_destroy("big", "g") == 1
    assert c.ping()
    assert c.delete("big") == 1
    deadline = time.monotonic() + 10
    while c.info("memory").get("lazyfree_pending_objects", 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.info("memory").get("lazyfree_pending_objects", 0) == 0


GROUP_EVENTS_SCRIPT = [
    ["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"], ["XGROUP", "CREATE", "s", "g", "$"],
    ["XADD", "s", "1-1", "a", "1"], ["XADD", "s", "2-1", "b", "2"],
    ["XGROUP", "CREATECONSUMER", "s", "g", "c0"], ["XGROUP", "CREATECONSUMER", "s", "g", "c0"],
    ["XGROUP", "SETID", "s", "g", "0"],
    ["XREADGROUP", "GROUP", "g", "c1", "COUNT", "1", "STREAMS", "s", ">"],
    ["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "s", ">"],
    ["XREADGROUP", "GROUP", "g", "c9", "STREAMS", "s", ">"],
    ["XACK", "s", "g", "1-1"], ["XCLAIM", "s", "g", "c2", "0", "2-1"],
    ["XCLAIM", "s", "g", "c3", "0", "9-9"], ["XAUTOCLAIM", "s", "g", "c4", "0", "0"],
    ["XGROUP", "DELCONSUMER", "s", "g", "c1"], ["XGROUP", "DELCONSUMER", "s", "g", "nobody"],
    ["XGROUP", "DESTROY", "s", "g"], ["XGROUP", "DESTROY", "s", "g"],
    ["XGROUP", "CREATE", "s2", "g", "0"],
]


def test_group_events_as_redis(server, redis_server):
    """Keyspace notifications of the group commands, byte for byte."""
    from test_notifications import compare
    got = compare(redis_server, server, "KEA", GROUP_EVENTS_SCRIPT)
    assert (b"__keyevent@0__:xgroup-createconsumer", b"s") in got
    assert (b"__keyevent@0__:xgroup-delconsumer", b"s") in got


def test_parked_delivery_is_logged(make_server):
    """A parked XREADGROUP served by an XADD: its delivery reaches the log
    (no handler ran for it) and survives kill -9."""
    server = make_server(*AOF_ALWAYS)
    c = server.client()
    c.xgroup_create("s", "g", id="$", mkstream=True)
    reader = _raw(server.port)
    reader.send([b"XREADGROUP", b"GROUP", b"g", b"late", b"BLOCK", b"0", b"STREAMS", b"s", b">"])
    time.sleep(0.1)
    c.xadd("s", {"f": "v"}, id="5-0")
    assert b"5-0" in reader.read_reply()
    before = _group_state(c)
    assert before[1][0][4] == [(b"5-0", b"late", 1)]
    server.kill()
    server = make_server(*AOF_ALWAYS, port=server.port)
    assert _group_state(server.client()) == before


def test_groups_count_in_the_memory_quota(tmp_path):
    """A tenant's consumers and pending entries count in its memory quota:
    XGROUP CREATECONSUMER past it is refused, and the accounting comes back
    down when the stream goes."""
    with locked_server(tmp_path, {"alice": "alice-pw"}, "root-pw") as server:
        root, alice = login(server, "root"), login(server, "alice")
        root.config_set("tenant-quota-memory", "2mb")
        def used() -> int:
            info = raw_command(root, "TENANT", "INFO", "alice")
            if isinstance(info, list):
                info = dict(zip(info[::2], info[1::2]))
            return info[b"used_memory"]
        empty = used()
        alice.xgroup_create("s", "g", id="$", mkstream=True)
        name = b"c" * 1000
        with pytest.raises(redis.ResponseError, match="'memory' quota"):
            for i in range(5000):   # ~7 MB of consumer names and objects
                alice.execute_command("XGROUP", "CREATECONSUMER", "s", "g", name + b"%d" % i)
        created = len(alice.xinfo_consumers("s", "g"))
        assert 500 < created < 5000
        assert alice.ping()
        assert used() - empty > created * 1000
        alice.delete("s")
        assert used() - empty < 50_000
        alice.xgroup_create("s", "g", id="$", mkstream=True)   # room again
        root.config_set("tenant-quota-memory", "0")
