"""Values no command could make are refused wherever a .kdb payload enters
(issue 13, point 5): KDB IMPORT, the snapshot at start-up, KDB LOAD, DEBUG
RELOAD NOSAVE and the append-only log's .kdb base.

The payloads are built here byte by byte (valid structure and checksums, bad
values), so each test names exactly the value that is wrong. Each one also
carries good keys before the bad one, to show that nothing is half-applied.
"""

import math
import struct
import zlib
from array import array

import pytest
import redis

from conftest import ServerProcess, exchange, resp
from tenantkv.persistence.kdb import format as kdb

TENANT = ":default"   # the password-less development user the tests run as
AOF = ("--appendonly", "yes", "--save", "")
FAR = 4102444800000   # 2100-01-01, ms


# -- building payloads ---------------------------------------------------------------

def strs(items) -> bytes:
    return b"\x04" + array("I", map(len, items)).tobytes() + b"".join(items)


def u32s(numbers) -> bytes:
    return array("I", numbers).tobytes()


def block(kind: int, count: int, payload: bytes, db: int = 0) -> bytes:
    return kdb.BLOCK.pack(kind, db, count, len(payload)) + payload


def strings(pairs: dict, db: int = 0) -> bytes:
    return block(kdb.STRING, len(pairs), strs(list(pairs)) + strs(list(pairs.values())), db)


def collections(kind: int, values: dict, db: int = 0) -> bytes:
    """A list or set block: key -> list of elements (repeats kept as given)."""
    elements = [e for items in values.values() for e in items]
    return block(kind, len(values), strs(list(values)) + u32s(map(len, values.values()))
                 + strs(elements), db)


def zsets(values: dict, db: int = 0) -> bytes:
    """key -> list of (member, score)."""
    pairs = [p for items in values.values() for p in items]
    payload = (strs(list(values)) + u32s(map(len, values.values()))
               + strs([m for m, _ in pairs]) + array("d", [s for _, s in pairs]).tobytes())
    return block(kdb.ZSET_, len(values), payload, db)


def hashes(values: dict, db: int = 0) -> bytes:
    """key -> list of (field, value)."""
    pairs = [p for items in values.values() for p in items]
    payload = (strs(list(values)) + u32s(map(len, values.values()))
               + strs([f for f, _ in pairs]) + strs([v for _, v in pairs]))
    return block(kdb.HASH, len(values), payload, db)


def expires(times: dict, db: int = 0) -> bytes:
    return block(kdb.EXPIRES, len(times), strs(list(times)) + array("q", times.values()).tobytes(), db)


def payload(*blocks: bytes, tenant: str = TENANT) -> bytes:
    """A whole one-tenant .kdb file holding `blocks`, every checksum right."""
    keys = sum(kdb.BLOCK.unpack_from(b)[2] for b in blocks
               if kdb.BLOCK.unpack_from(b)[0] != kdb.EXPIRES)
    head = kdb.HEADER.pack(kdb.MAGIC, kdb.VERSION, 0, 16, 0, 1)
    out = head + struct.pack("<I", zlib.crc32(head))
    name = tenant.encode()
    section = (kdb.SECTION.pack(b"TSEC", len(name)) + name + b"".join(blocks)
               + kdb.BLOCK.pack(kdb.END, 0, 0, 0))
    out += section + struct.pack("<I", zlib.crc32(section))
    out += kdb.TRAILER.pack(b"KEND", keys, 0)[:-4]
    return out + struct.pack("<I", zlib.crc32(out))


GOOD = strings({b"good1": b"v1", b"good2": b"v2"})

# name -> (blocks after GOOD, what the refusal must say)
BAD = {
    "nan score": ([zsets({b"z": [(b"a", 1.0), (b"b", math.nan)]})],
                  "the sorted set at key 'z' has a NaN score (member 'b')"),
    "zset member twice": ([zsets({b"z": [(b"a", 1.0), (b"b", 2.0), (b"a", 3.0)]})],
                          "the sorted set at key 'z' holds member 'a' twice"),
    "set member twice": ([collections(kdb.SET, {b"s": [b"x", b"y", b"x"]})],
                         "the set at key 's' holds member 'x' twice"),
    "hash field twice": ([hashes({b"h": [(b"f", b"1"), (b"f", b"2")]})],
                         "the hash at key 'h' holds field 'f' twice"),
    "empty list": ([collections(kdb.LIST, {b"l1": [b"a"], b"l": []})],
                   "the list at key 'l' is empty"),
    "empty set": ([collections(kdb.SET, {b"s": []})], "the set at key 's' is empty"),
    "empty zset": ([zsets({b"z": []})], "the sorted set at key 'z' is empty"),
    "empty hash": ([hashes({b"h": []})], "the hash at key 'h' is empty"),
    "key twice in a block": ([block(kdb.STRING, 2, strs([b"k", b"k"]) + strs([b"1", b"2"]))],
                             "key 'k' appears twice in database 0"),
    "key twice across types": ([collections(kdb.LIST, {b"good1": [b"a"]})],
                               "key 'good1' appears twice in database 0"),
    "negative expiry": ([expires({b"good1": -5})],
                        "negative expiry time -5 for key 'good1'"),
    "two expiry times": ([expires({b"good1": FAR}), expires({b"good1": FAR + 1})],
                         "two expiry times for key 'good1'"),
    "expiry of a missing key": ([expires({b"nope": FAR})],
                                "an expiry time for key 'nope', which is not in database 0"),
    "database out of range": ([strings({b"x": b"1"}, db=16)],
                              "database 16 in tenant"),
    "binary key named safely": ([collections(kdb.LIST, {b"\r\n-ERR x" + b"y" * 100: []})],
                                r"the list at key '\r\n-ERR xyyy"),
}

# What the reporter saw answer "internal error" on the keys such values make.
PROBES = [("ZRANK", "z", "a"), ("ZPOPMIN", "z"), ("ZRANGE", "z", 0, -1), ("LPOP", "l"),
          ("RPOP", "l"), ("LMOVE", "l", "l2", "LEFT", "RIGHT"), ("SPOP", "s"),
          ("SRANDMEMBER", "s"), ("HGETALL", "h"), ("HRANDFIELD", "h"), ("TTL", "good1")]


def no_internal_error(client) -> None:
    for probe in PROBES:
        try:
            client.execute_command(*probe)
        except redis.ResponseError as exc:
            assert "internal error" not in str(exc), (probe, exc)
    assert client.ping() is True


def test_payload_builder_makes_payloads_the_server_accepts(tmp_path):
    """The builder's output is a valid export when its values are: the
    refusals below come from the values, not from a wrong structure."""
    good = payload(GOOD, zsets({b"z": [(b"a", 1.0), (b"b", -0.0), (b"c", math.inf)]}),
                   collections(kdb.LIST, {b"l": [b"x", b"x"]}),
                   collections(kdb.SET, {b"s": [b"m"]}), hashes({b"h": [(b"f", b"v")]}),
                   expires({b"good1": FAR}))
    with ServerProcess(tmp_path) as proc:
        c = proc.client()
        assert c.execute_command("KDB", "IMPORT", good) == 6
        assert c.zrange("z", 0, -1, withscores=True) == [(b"b", 0.0), (b"a", 1.0), (b"c", math.inf)]
        assert c.zscore("z", "b") == 0.0   # -0 is stored as 0, as ZADD does
        with proc.raw() as sock:   # the reply's bytes: "0", not "-0"
            exchange(sock, resp("ZSCORE", "z", "b"), b"$1\r\n0\r\n")
        assert c.lpop("l") == b"x" and c.rpop("l") == b"x" and not c.exists("l")
        assert c.spop("s") == b"m" and c.hgetall("h") == {b"f": b"v"}
        assert c.pexpiretime("good1") == FAR
        no_internal_error(c)


def test_import_refuses_each_bad_value_whole(tmp_path):
    with ServerProcess(tmp_path) as proc:
        c = proc.client()
        c.set("mine", "kept")
        for name, (blocks, message) in BAD.items():
            with pytest.raises(redis.ResponseError) as refused:
                c.execute_command("KDB", "IMPORT", payload(GOOD, *blocks))
            text = str(refused.value)
            assert text.startswith("invalid KDB payload: "), (name, text)
            assert message in text and " at offset " in text, (name, text)
            # all or nothing: not even the good keys before the bad one
            assert c.dbsize() == 1 and c.get("good1") is None, name
            # REPLACE changes nothing about it
            with pytest.raises(redis.ResponseError, match="invalid KDB payload"):
                c.execute_command("KDB", "IMPORT", payload(GOOD, *blocks), "REPLACE")
            assert c.dbsize() == 1, name
            no_internal_error(c)
        assert c.get("mine") == b"kept"
        assert c.execute_command("KDB", "IMPORT", payload(GOOD)) == 2   # still works


def test_kdb_load_and_debug_reload_refuse_bad_values(tmp_path):
    with ServerProcess(tmp_path, "--save", "") as proc:
        c = proc.client()
        c.set("mine", "kept")
        for name, (blocks, message) in BAD.items():
            (tmp_path / "bad.kdb").write_bytes(payload(GOOD, *blocks))
            with pytest.raises(redis.ResponseError, match="KDB LOAD refused bad.kdb: ") as refused:
                c.execute_command("KDB", "LOAD", "bad.kdb")
            assert message in str(refused.value), (name, str(refused.value))
            assert c.dbsize() == 1 and c.get("mine") == b"kept", name
        (tmp_path / "dump.kdb").write_bytes(payload(GOOD, *BAD["nan score"][0]))
        with pytest.raises(redis.ResponseError):
            c.execute_command("DEBUG", "RELOAD", "NOSAVE")
        assert c.dbsize() == 1 and c.get("mine") == b"kept"
        no_internal_error(c)


STARTUP = ["nan score", "zset member twice", "empty list", "key twice across types",
           "negative expiry"]


@pytest.mark.parametrize("name", STARTUP)
def test_a_bad_value_in_the_snapshot_stops_the_start(tmp_path, name):
    blocks, message = BAD[name]
    bad = payload(GOOD, *blocks)
    (tmp_path / "dump.kdb").write_bytes(bad)
    with pytest.raises(RuntimeError, match="exited with 1"):
        ServerProcess(tmp_path)
    text = (tmp_path / "server.log").read_text()
    assert "Refusing to start: the snapshot" in text and "dump.kdb" in text, text
    assert message in text and " at offset " in text, text
    assert (tmp_path / "dump.kdb").read_bytes() == bad   # left untouched


def test_a_bad_value_in_the_logs_kdb_base_stops_the_start(tmp_path):
    with ServerProcess(tmp_path, *AOF) as proc:
        proc.client().set("k", "v")
    base = tmp_path / "appendonlydir" / "appendonly.aof.1.base.kdb"
    assert base.exists()
    bad = payload(GOOD, *BAD["zset member twice"][0])
    base.write_bytes(bad)
    with pytest.raises(RuntimeError, match="exited with 1"):
        ServerProcess(tmp_path, *AOF)
    text = (tmp_path / "server.log").read_text()
    assert "Refusing to start: the append only file's base" in text, text
    assert "the sorted set at key 'z' holds member 'a' twice" in text, text
    assert base.read_bytes() == bad


def test_with_the_log_on_a_refused_import_leaves_nothing_to_replay(tmp_path):
    """The reporter's NaN zset went into the log and was dropped at restart:
    refused now, and what is imported survives the restart whole."""
    with ServerProcess(tmp_path, *AOF) as proc:
        c = proc.client()
        with pytest.raises(redis.ResponseError, match="NaN score"):
            c.execute_command("KDB", "IMPORT", payload(GOOD, *BAD["nan score"][0]))
        good = payload(GOOD, zsets({b"z": [(b"a", 1.5), (b"b", -math.inf)]}))
        assert c.execute_command("KDB", "IMPORT", good) == 3
        digest = c.execute_command("DEBUG", "DIGEST")
    with ServerProcess(tmp_path, *AOF) as proc:
        c = proc.client()
        assert c.execute_command("DEBUG", "DIGEST") == digest
        assert c.zrange("z", 0, -1, withscores=True) == [(b"b", -math.inf), (b"a", 1.5)]
        assert "AOF replay:" not in (tmp_path / "server.log").read_text()   # no failed record
        no_internal_error(c)
