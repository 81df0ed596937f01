"""Streams (XADD ... XREAD, XINFO STREAM) beyond what a compat session shows:
the same random operations against redis-server and tenantkv, restarts
(.kdb, the log with either base, BGREWRITEAOF), tenants, blocked XREAD,
keyspace events, big replies. Real server processes, real clients."""

import random
import threading
import time

import pytest
import redis

from compat import harness
from conftest import locked_server, login


def stream_state(c: redis.Redis, key) -> tuple:
    """What a restart must keep of a stream: its entries and the figures
    XINFO STREAM shows (but the rax's node counts, which follow its layout)."""
    info = c.xinfo_stream(key)
    figures = {name: info[name] for name in ("length", "last-generated-id", "max-deleted-entry-id",
                                            "entries-added", "recorded-first-entry-id")}
    return c.xrange(key), figures


def fill_streams(c: redis.Redis) -> None:
    c.xadd("s", {"a": "1"}, id="1-1")
    c.xadd("s", {"b": "2", "c": "3"}, id="1-*")
    c.xadd("s", {"bin": bytes(range(256)) + b"\r\n*3\r\n"})   # an id from the clock
    c.xdel("s", "1-2")
    c.xadd("empty", {"x": "y"}, id="5-5", maxlen=0)
    c.execute_command("XSETID", "empty", "9-9", "ENTRIESADDED", "12", "MAXDELETEDID", "7-0")
    pipe = c.pipeline(transaction=False)
    for i in range(1, 1201):
        pipe.xadd("big", {"f": str(i), "g": "x" * (i % 17)}, id="%d-%d" % (i // 3 + 1, i % 3))
    pipe.execute()
    c.xtrim("big", maxlen=1000, approximate=True)   # whole blocks only
    c.xdel("big", "100-1", "200-2", "300-0")
    c.xadd("ttl", {"k": "v"}, id="1-1")
    c.pexpire("ttl", 500000)
    c.execute_command("SELECT", 5)
    c.xadd("s", {"db": "5"}, id="3-3")
    c.execute_command("SELECT", 0)


def all_streams(c: redis.Redis) -> dict:
    out = {}
    for db in (0, 5):
        c.execute_command("SELECT", db)
        for key in c.scan_iter(_type="stream"):
            out[(db, key)] = stream_state(c, key)
    c.execute_command("SELECT", 0)
    return out


def test_restart_from_kdb_keeps_streams(make_server, tmp_path):
    server = make_server("--save", "")
    c = server.client()
    fill_streams(c)
    before = all_streams(c)
    assert len(before) == 5 and before[(0, b"big")][1]["length"] == 997
    assert c.save()
    server.stop()
    server = make_server("--save", "")
    c = server.client()
    assert all_streams(c) == before
    assert 0 < c.pttl("ttl") <= 500000
    assert c.type("s") == b"stream" and c.object("encoding", "s") == b"stream"
    # a reloaded stream takes new ids after its last one, as before
    assert c.xadd("empty", {"a": "b"}, id="9-*") == b"9-10"


@pytest.mark.parametrize("kdb_base", [True, False])
def test_log_replays_streams_with_their_effects(make_server, kdb_base):
    """XADD * and MAXLEN ~ replay as they ran (the log holds the id and
    the length left); BGREWRITEAOF's base (kdb or XADD/XSETID records)
    rebuilds every figure."""
    aof = ("--appendonly", "yes", "--save", "", "--appendfsync", "always",
           "--aof-use-rdb-preamble", "yes" if kdb_base else "no")
    server = make_server(*aof)
    c = server.client()
    fill_streams(c)
    assert c.bgrewriteaof()
    deadline = time.time() + 20
    while c.info("persistence")["aof_rewrite_in_progress"] and time.time() < deadline:
        time.sleep(0.05)
    assert c.info("persistence")["aof_last_bgrewrite_status"] == "ok"
    for i in range(300):   # logged after the rewrite: ~ trims whole blocks only
        c.xadd("after", {"i": str(i)}, maxlen=120, approximate=True)
    c.xadd("after", {"i": "minid"}, minid="0-1", approximate=True, limit=100)
    c.xtrim("big", maxlen=500, approximate=True, limit=200)
    c.execute_command("XSETID", "s", "99999999999999-0")
    before = all_streams(c)
    assert 120 <= before[(0, b"after")][1]["length"] < 300
    server.kill()
    server = make_server(*aof)
    assert all_streams(server.client()) == before


def test_two_tenants_same_stream_name(tmp_path):
    with locked_server(tmp_path, {"alice": "alice-pw", "bob": "bob-pw"}, "root-pw") as server:
        alice, bob = login(server, "alice"), login(server, "bob")
        alice.xadd("events", {"who": "alice"}, id="1-1")
        bob.xadd("events", {"who": "bob"}, id="5-5")
        assert alice.xrange("events") == [(b"1-1", {b"who": b"alice"})]
        assert bob.xrange("events") == [(b"5-5", {b"who": b"bob"})]
        assert alice.xadd("events", {"who": "alice"}, id="2-1") == b"2-1"   # bob's 5-5 is not its top

        # alice blocks on her stream: bob's XADD to his must not wake her
        result = {}
        waiter = login(server, "alice")
        thread = threading.Thread(target=lambda: result.setdefault(
            "reply", waiter.xread({"events": "$"}, block=1500)))
        thread.start()
        time.sleep(0.3)
        bob.xadd("events", {"who": "bob"}, id="6-6")
        thread.join(5)
        assert result["reply"] in (None, [], {})
        assert alice.xlen("events") == 2 and bob.xlen("events") == 2


# -- blocked XREAD --------------------------------------------------------------------

class Reader(threading.Thread):
    """An XREAD BLOCK on its own connection; `reply` once it returned."""

    def __init__(self, server, streams: dict, block: int = 0, **kwargs) -> None:
        super().__init__(daemon=True)
        self.client = server.client(single_connection_client=True, **kwargs)
        self.client.ping()
        self.streams, self.block = streams, block
        self.reply = "pending"
        self.start()

    def run(self) -> None:
        try:
            self.reply = self.client.xread(self.streams, block=self.block)
        except redis.ResponseError as exc:
            self.reply = exc

    def parked(self, c: redis.Redis, count: int = 1) -> None:
        deadline = time.time() + 5
        while c.info("clients")["blocked_clients"] < count:
            assert time.time() < deadline, "the reader never blocked"
            time.sleep(0.01)


def test_xadd_wakes_every_reader_with_what_it_has_not_seen(server):
    c = server.client()
    c.flushall()
    c.xadd("w", {"old": "1"}, id="1-0")
    from_dollar = Reader(server, {"w": "$"})
    from_zero_missing = Reader(server, {"other": "0", "w": "1-0"})
    from_dollar.parked(c, 2)
    c.xadd("w", {"new": "2"}, id="2-0")
    from_dollar.join(5)
    from_zero_missing.join(5)
    assert from_dollar.reply == [[b"w", [(b"2-0", {b"new": b"2"})]]]
    assert from_zero_missing.reply == [[b"w", [(b"2-0", {b"new": b"2"})]]]


def test_dollar_is_resolved_when_the_reader_blocks(server):
    c = server.client()
    c.flushall()
    c.xadd("d", {"a": "1"}, id="5-0")
    reader = Reader(server, {"d": "$"})
    reader.parked(c)
    # DEL and a new stream with smaller ids: Redis 7.0 keeps the reader
    # blocked (its $ was 5-0) until an id above 5-0 arrives
    c.delete("d")
    c.xadd("d", {"b": "2"}, id="1-0")
    time.sleep(0.2)
    assert reader.reply == "pending"
    c.set("d", "a string now")   # a type change leaves it blocked too (7.0)
    time.sleep(0.2)
    assert reader.reply == "pending"
    c.delete("d")
    c.xadd("d", {"c": "3"}, id="4-0")
    c.xadd("d", {"e": "5"}, id="6-0")
    reader.join(5)
    assert reader.reply == [[b"d", [(b"6-0", {b"e": b"5"})]]]


def test_rename_onto_the_key_wakes_the_reader(server):
    c = server.client()
    c.flushall()
    reader = Reader(server, {"target": "0"})
    reader.parked(c)
    c.xadd("source", {"m": "1"}, id="7-7")
    time.sleep(0.1)
    assert reader.reply == "pending"
    c.rename("source", "target")
    reader.join(5)
    assert reader.reply == [[b"target", [(b"7-7", {b"m": b"1"})]]]


def test_timeout_count_and_resp3(server):
    c = server.client()
    c.flushall()
    started = time.monotonic()
    reader = Reader(server, {"t": "$"}, block=200)
    reader.join(5)
    assert reader.reply in (None, []) and time.monotonic() - started >= 0.19   # redis-py: nil -> []
    # served later: at most the COUNT asked (default 1000), in RESP3 a map
    c.xadd("t", {"a": "0"}, id="1-0")
    reader3 = Reader(server, {"t": "1-0"}, protocol=3)
    reader3.parked(c)
    pipe = c.pipeline(transaction=True)
    for i in range(1, 1500):
        pipe.xadd("t", {"a": str(i)}, id="2-%d" % i)
    pipe.execute()
    reader3.join(5)
    assert list(reader3.reply) == [b"t"]
    assert len(reader3.reply[b"t"][0]) == 1000


def test_xread_in_multi_never_blocks(server):
    c = server.client()
    c.flushall()
    pipe = c.pipeline(transaction=True)
    pipe.xread({"m": "$"}, block=0)
    pipe.xadd("m", {"a": "1"}, id="1-1")
    assert pipe.execute() == [[], b"1-1"]   # a nil at once (redis-py: [])


# -- notifications, memory, big replies ----------------------------------------------------

def test_keyspace_events_of_streams(server):
    c = server.client()
    c.flushall()
    c.config_set("notify-keyspace-events", "KEt")
    try:
        sub = c.pubsub()
        sub.psubscribe("__keyevent@0__:*")
        assert sub.get_message(timeout=2)["type"] == "psubscribe"
        c.xadd("n", {"a": "1"}, id="1-1")
        c.xadd("n", {"a": "2"}, id="2-1", maxlen=1, approximate=False)
        c.xdel("n", "9-9")          # nothing deleted: no event
        c.xdel("n", "2-1")
        c.xtrim("n", maxlen=5)      # nothing trimmed: no event
        c.execute_command("XSETID", "n", "5-5")
        c.xadd("nomk", {"a": "1"}, nomkstream=True)
        events = []
        while True:
            message = sub.get_message(timeout=0.5)
            if message is None:
                break
            events.append(message["channel"].split(b":", 1)[1])
        assert events == [b"xadd", b"xadd", b"xtrim", b"xdel", b"xsetid"]
    finally:
        c.config_set("notify-keyspace-events", "")


def test_memory_usage_grows_with_the_stream(server):
    c = server.client()
    c.flushall()
    c.xadd("mem", {"f": "v"}, id="1-1")
    small = c.memory_usage("mem")
    pipe = c.pipeline(transaction=False)
    for i in range(2, 5002):
        pipe.xadd("mem", {"field": "value-%d" % i}, id="1-%d" % i)
    pipe.execute()
    big = c.memory_usage("mem")
    assert 0 < small < 1000
    # ~40 B of entry bytes and 20 B of ids each: neither a Python object per field nor nothing
    assert 5000 * 40 < big < 5000 * 200


@pytest.mark.slow
def test_big_range_replies_come_whole_while_others_are_served(server):
    c = server.client()
    c.flushall()
    pipe = c.pipeline(transaction=False)
    n = 70_000   # past dispatch/slices.py's BIG: sent as a sliced job
    for i in range(n):
        pipe.xadd("huge", {"i": str(i)}, id="%d-1" % (i + 1))
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    entries = c.xrange("huge")
    assert len(entries) == n and entries[0][0] == b"1-1" and entries[-1][0] == b"%d-1" % n
    assert [e[0] for e in c.xrevrange("huge", count=n - 1)][-1] == b"2-1"
    assert c.xrange("huge", "(69990-1", "+") == [(b"%d-1" % i, {b"i": b"%d" % (i - 1)})
                                                 for i in range(69991, n + 1)]
    read = c.xread({"huge": "0", "nokey": "0"})
    assert len(read[0][1]) == n and read[0][1][n // 2][0] == b"%d-1" % (n // 2 + 1)


# -- the same random operations against redis-server ---------------------------------------

def test_random_operations_match_redis(redis_server, server):
    """XADD (explicit, ms-*, MAXLEN/MINID = and ~ with LIMIT), XDEL, XTRIM,
    XRANGE/XREVRANGE (exclusive, COUNT), XREAD, XLEN, XINFO STREAM's
    figures: byte-identical replies. Small nodes (stream-node-max-entries 7)
    so that ~ trims and ranges cross many of them."""
    rng = random.Random(18)
    ours = harness.RawConnection(server.port)
    ref = harness.RawConnection(redis_server.port)
    for conn in (ours, ref):
        assert conn.call([b"FLUSHALL"]) == b"+OK\r\n"
        assert conn.call([b"CONFIG", b"SET", b"stream-node-max-entries", b"7"]) == b"+OK\r\n"
    try:
        ms = [1] * 3
        compared = 0
        for step in range(4000):
            k = rng.randrange(3)
            key = b"rs%d" % k
            op = rng.random()

            def rid():
                return b"%d-%d" % (rng.randrange(ms[k] + 2), rng.randrange(4)) if rng.random() < 0.8 \
                    else rng.choice([b"-", b"+", b"%d" % rng.randrange(ms[k] + 2)])
            if op < 0.45:
                ms[k] += rng.randrange(3)
                args = [b"XADD", key]
                r = rng.random()
                if r < 0.15:
                    args += [b"MAXLEN", rng.choice([b"=", b"~"]), b"%d" % rng.randrange(40)]
                elif r < 0.25:
                    args += [b"MINID", rng.choice([b"=", b"~"]), b"%d" % rng.randrange(ms[k])]
                if r < 0.25 and args[3] == b"~" and rng.random() < 0.5:
                    args += [b"LIMIT", b"%d" % rng.randrange(30)]
                args.append(rng.choice([b"%d-*" % ms[k], b"%d-%d" % (ms[k], rng.randrange(5)),
                                        b"%d" % ms[k]]))
                for _ in range(rng.randrange(1, 4)):
                    args += [rng.choice([b"a", b"b", b"field"]), b"%d" % rng.randrange(1000)]
            elif op < 0.55:
                args = [b"XDEL", key] + [b"%d-%d" % (rng.randrange(ms[k] + 1), rng.randrange(4))
                                         for _ in range(rng.randrange(1, 6))]
            elif op < 0.62:
                strategy = rng.choice([[b"MAXLEN", b"%d" % rng.randrange(60)],
                                       [b"MINID", b"%d-%d" % (rng.randrange(ms[k] + 1), rng.randrange(3))]])
                approx = rng.choice([[], [b"="], [b"~"]])
                args = [b"XTRIM", key, strategy[0], *approx, strategy[1]]
                if approx == [b"~"] and rng.random() < 0.5:
                    args += [b"LIMIT", b"%d" % rng.randrange(25)]
            elif op < 0.85:
                lo, hi = rid(), rid()
                if rng.random() < 0.3:
                    lo = b"(" + lo
                if rng.random() < 0.3:
                    hi = b"(" + hi
                name = rng.choice([b"XRANGE", b"XREVRANGE"])
                args = [name, key, lo, hi] if name == b"XRANGE" else [name, key, hi, lo]
                if rng.random() < 0.5:
                    args += [b"COUNT", b"%d" % rng.randrange(-1, 12)]
            elif op < 0.95:
                keys = rng.sample([b"rs0", b"rs1", b"rs2", b"none"], rng.randrange(1, 4))
                args = [b"XREAD"]
                if rng.random() < 0.5:
                    args += [b"COUNT", b"%d" % rng.randrange(6)]
                args += [b"STREAMS", *keys] + [rng.choice([b"$", b"%d-%d" % (rng.randrange(ms[k] + 1), 0)])
                                               for _ in keys]
            elif op < 0.98:
                args = [b"XLEN", key]
            else:
                args = [b"XINFO", b"STREAM", key]
            expected, got = ref.call(args), ours.call(args)
            if args[0] == b"XINFO" and expected.startswith(b"*"):
                # radix-tree-nodes is Redis's rax layout: compare the rest
                cut = lambda reply: reply.split(b"radix-tree-nodes\r\n", 1)[0] + \
                    reply.split(b"radix-tree-nodes\r\n", 1)[1].split(b"\r\n", 1)[1]
                expected, got = cut(expected), cut(got)
            assert got == expected, "step %d: %r\nredis:    %r\ntenantkv: %r" % (step, args, expected, got)
            compared += 1
        for k in range(3):   # and the same data in the end, digest included
            args = [b"DEBUG", b"DIGEST-VALUE", b"rs%d" % k]
            assert ours.call(args) == ref.call(args)
        assert compared == 4000
    finally:
        for conn in (ours, ref):
            conn.call([b"CONFIG", b"SET", b"stream-node-max-entries", b"100"])


def test_big_xdel_and_trims(server):
    """An XDEL of more ids than a slice takes (dispatch/slices.py) removes
    exactly the ones there, inside MULTI too; exact trims drop whole blocks
    at once and cut the first one."""
    c = server.client()
    c.flushall()
    pipe = c.pipeline(transaction=False)
    for i in range(1, 20001):
        pipe.xadd("del", {"i": str(i)}, id="%d-0" % i)
    pipe.execute()
    ids = ["%d-0" % i for i in range(1, 12001, 2)] + ["99999-0", "1-0"]
    assert c.xdel("del", *ids) == 6000
    assert c.xlen("del") == 14000
    assert c.xinfo_stream("del")["max-deleted-entry-id"] == b"11999-0"
    assert c.xrange("del", count=3) == [(b"%d-0" % i, {b"i": b"%d" % i}) for i in (2, 4, 6)]
    pipe = c.pipeline(transaction=True)
    pipe.xdel("del", *["%d-0" % i for i in range(2, 12001, 2)])
    pipe.xlen("del")
    assert pipe.execute() == [6000, 8000]
    assert c.xtrim("del", maxlen=2500, approximate=False) == 5500
    assert c.xrange("del", count=1) == [(b"17501-0", {b"i": b"17501"})]
    assert c.xtrim("del", minid="19000-5", approximate=False) == 1500
    assert c.xrange("del", count=1) == [(b"19001-0", {b"i": b"19001"})]
    assert c.xlen("del") == 1000


def test_a_growing_stream_counts_against_the_tenant_quota(tmp_path):
    """XADD is denyoom: past its tenant's memory quota a tenant's stream
    stops growing (Redis's OOM text, with the quota), another tenant's
    does not, and XTRIM / DEL give the room back."""
    with locked_server(tmp_path, {"alice": "alice-pw", "bob": "bob-pw"}, "root-pw") as server:
        root, alice, bob = login(server, "root"), login(server, "alice"), login(server, "bob")
        root.config_set("tenant-quota-memory", "1mb")
        value = b"x" * 1000
        with pytest.raises(redis.ResponseError) as refused:
            for i in range(5000):   # 5 MB of entries
                alice.xadd("feed", {"v": value})
        assert "'memory' quota (1048576 bytes)" in str(refused.value)
        assert 700 <= alice.xlen("feed") <= 1100
        assert alice.xrange("feed", count=1)[0][1] == {b"v": value}
        for i in range(300):
            bob.xadd("feed", {"v": value})   # bob: under his own quota
        assert alice.xtrim("feed", maxlen=10, approximate=False) > 600
        alice.xadd("feed", {"v": value})   # room again
        assert alice.delete("feed") == 1
        root.config_set("tenant-quota-memory", "0")


# -- the .kdb stream block refuses what no command could make --------------------------------

def _stream_payload(entries, meta=(9, 9, 5, 0, 0), groups=0, version=None):
    """A one-tenant .kdb file holding key b"st": `entries` [(ms, seq, items)]."""
    import struct
    import zlib
    from array import array
    from tenantkv.persistence.kdb import format as kdb

    def strs(items):
        return b"\x04" + array("I", map(len, items)).tobytes() + b"".join(items)
    ids = [x for ms, seq, _ in entries for x in (ms, seq)]
    items = [i for _, _, its in entries for i in its]
    body = (strs([b"st"]) + array("Q", meta).tobytes() + array("I", [len(entries)]).tobytes()
            + array("I", [groups]).tobytes() + array("Q", ids).tobytes()
            + array("I", [len(its) for _, _, its in entries]).tobytes() + strs(items))
    block = kdb.BLOCK.pack(kdb.STREAM, 0, 1, len(body)) + body
    head = kdb.HEADER.pack(kdb.MAGIC, version or kdb.VERSION_STREAMS, 0, 16, 0, 1)
    out = head + struct.pack("<I", zlib.crc32(head))
    section = kdb.SECTION.pack(b"TSEC", 1) + b"t" + block + kdb.BLOCK.pack(kdb.END, 0, 0, 0)
    out += section + struct.pack("<I", zlib.crc32(section))
    out += kdb.TRAILER.pack(b"KEND", 1, 0)[:-4]
    return out + struct.pack("<I", zlib.crc32(out))


@pytest.mark.parametrize("entries, meta, groups, version, message", [
    ([(1, 0, [b"f", b"v"]), (1, 0, [b"f", b"v"])], (9, 9, 5, 0, 0), 0, None, "ids out of order"),
    ([(0, 0, [b"f", b"v"])], (9, 9, 5, 0, 0), 0, None, "ids out of order"),
    ([(1, 0, [b"f"])], (9, 9, 5, 0, 0), 0, None, "an entry of 1 items"),
    ([(1, 0, [])], (9, 9, 5, 0, 0), 0, None, "an entry of 0 items"),
    ([(10, 0, [b"f", b"v"])], (9, 9, 5, 0, 0), 0, None, "last id or entries-added"),
    ([(1, 0, [b"f", b"v"]), (2, 0, [b"f", b"v"])], (9, 9, 1, 0, 0), 0, None,
     "last id or entries-added"),
    ([(1, 0, [b"f", b"v"])], (9, 9, 5, 0, 0), 1, None, "consumer groups are not supported"),
    ([(1, 0, [b"f", b"v"])], (9, 9, 5, 0, 0), 0, 1, "a stream block in a version 1 file"),
])
def test_kdb_refuses_impossible_streams(entries, meta, groups, version, message):
    from tenantkv.persistence.kdb import format as kdb
    good = kdb.load(_stream_payload([(1, 0, [b"f", b"v"]), (1, 1, [b"a", b"b", b"c", b"d"])]))
    stream = good["t"][0][0][b"st"]
    assert stream.range(0, 1 << 128) == [(1 << 64, [b"f", b"v"]), ((1 << 64) | 1, [b"a", b"b", b"c", b"d"])]
    assert (stream.last_id, stream.entries_added) == ((9 << 64) | 9, 5)
    if groups and kdb.STREAM_GROUP_CODEC[1] is not None:
        pytest.skip("consumer groups are decoded (keyspace/streamgroups.py tests them)")
    with pytest.raises(kdb.KdbError) as refused:
        kdb.load(_stream_payload(entries, meta, groups, version))
    assert message in str(refused.value)


@pytest.mark.parametrize("resp3", [False, True])
def test_blocked_readers_match_redis(redis_server, server, resp3):
    """The same blocked XREADs and the same writes on both servers: each
    reader's reply (or still no reply) is byte-identical."""
    script = [
        # (readers to park: [args]), writes, then which readers must have answered
        ([[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"b1", b"$"],
          [b"XREAD", b"BLOCK", b"0", b"COUNT", b"1", b"STREAMS", b"b2", b"b1", b"0", b"5-0"]],
         [[b"XADD", b"b1", b"3-0", b"a", b"1"], [b"XADD", b"b1", b"6-0", b"a", b"2"]]),
        ([[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"b3", b"$"]],
         [[b"DEL", b"b3"], [b"SET", b"b3", b"x"], [b"DEL", b"b3"], [b"XADD", b"b3", b"1-1", b"k", b"v"]]),
        ([[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"b4", b"0"]],
         [[b"XADD", b"src", b"2-2", b"f", b"v"], [b"RENAME", b"src", b"b4"]]),
        ([[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"b5", b"$"]],
         [[b"XADD", b"b5", b"1-0", b"f", b"v"]]),   # $ of a missing key is 0-0
        ([[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"b6", b"9-0"]],
         [[b"XADD", b"b6", b"1-0", b"f", b"v"], [b"XSETID", b"b6", b"10-0"]]),   # not served
        ([[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"b7", b"$"],
          [b"XREAD", b"BLOCK", b"100", b"STREAMS", b"b8", b"$"]],   # times out: a null
         [[b"MULTI"], [b"XADD", b"b7", b"1-0", b"f", b"v"], [b"XADD", b"b7", b"2-0", b"g", b"w"],
          [b"EXEC"]]),   # served after EXEC, both entries
    ]
    for conn in (harness.RawConnection(redis_server.port), harness.RawConnection(server.port)):
        assert conn.call([b"FLUSHALL"]) == b"+OK\r\n"
    for readers, writes in script:
        outcome = []
        for port in (redis_server.port, server.port):
            conns = []
            for args in readers:
                reader = harness.RawConnection(port)
                if resp3:
                    reader.call([b"HELLO", b"3"])
                reader.send(args)
                conns.append(reader)
            writer = harness.RawConnection(port)
            time.sleep(0.2)
            replies = [writer.call(args) for args in writes]
            time.sleep(0.3)
            got = []
            for reader in conns:
                reader.sock.settimeout(0.5)
                try:
                    got.append(reader.read_reply())
                except (TimeoutError, OSError):
                    got.append(None)
                reader.sock.close()
            writer.sock.close()
            outcome.append((replies, got))
        assert outcome[0] == outcome[1], (readers, writes)
