"""GEO commands beyond the compat session (tests/compat/sessions/geo.txt):

- a randomized differential test: the same random points and random
  searches (radius, box, member, units, sorting, COUNT [ANY], WITH*, STORE)
  against redis-server and tenantkv, every reply compared byte for byte, in
  RESP2 and RESP3, on a small (listpack) and a big (skiplist) geo set;
- a search's STORE writes in the caller's tenant only;
- geo sets survive a restart (the log and a snapshot);
- a search over many points runs in slices: another tenant is served
  meanwhile, the tenant's next request waits for it.
"""

import math
import random

import pytest
import redis

from compat.harness import RawConnection
from conftest import locked_fixture, login
from test_bounded import Neighbours, assert_sliced

ROOT_PASSWORD = "geo-root-secret"
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
locked = locked_fixture(USERS, ROOT_PASSWORD)

UNITS = [b"m", b"km", b"ft", b"mi", b"KM"]


def _num(rng: random.Random, value: float) -> bytes:
    return repr(value).encode() if rng.random() < 0.8 else b"%.3f" % value


def _points(rng: random.Random, n: int) -> list:
    """[lon, lat, member] triples: clusters (so that searches find many),
    some points far away, near the poles' limits and the antimeridian, and
    repeated positions (equal distances: the sort's order among ties)."""
    centers = [(rng.uniform(-180, 180), rng.uniform(-85, 85)) for _ in range(6)]
    centers += [(179.9, 0.0), (-179.9, 84.9), (0.0, -84.9)]
    out = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.7:
            cx, cy = rng.choice(centers)
            spread = rng.choice([0.01, 0.1, 1.0, 5.0])
            lon = max(-180.0, min(180.0, cx + rng.gauss(0, spread)))
            lat = max(-85.05112878, min(85.05112878, cy + rng.gauss(0, spread)))
        elif kind < 0.85 and out:
            lon, lat = float(out[-1][0]), float(out[-1][1])   # a tie
        else:
            lon, lat = rng.uniform(-180, 180), rng.uniform(-85.05112878, 85.05112878)
        out.append([_num(rng, lon), _num(rng, lat), b"m%d" % i])
    return out


# The dense squares: 1 x 1 degree near Palermo, and 1 x 1 degree across the
# antimeridian at 60 N (cells on both sides of it are neighbours).
_SQUARES = [((13.0, 14.0), (38.0, 39.0)), ((179.5, 180.5), (60.0, 61.0))]


def _wrap(lon: float) -> float:
    return lon - 360.0 if lon > 180.0 else lon


def _dense_points(rng: random.Random, n: int) -> list:
    """`n` points over the dense squares (as bench/geo.py's): searches below
    300 km read big boxes, whose quarters tenantkv may leave out."""
    out = []
    for i in range(n):
        (x0, x1), (y0, y1) = _SQUARES[i % 2]
        out.append([_num(rng, _wrap(rng.uniform(x0, x1))), _num(rng, rng.uniform(y0, y1)),
                    b"d%d" % i])
    return out


def _search_args(rng: random.Random, key: bytes, members: list) -> list:
    """A random GEOSEARCH, GEOSEARCHSTORE, GEORADIUS[BYMEMBER][_RO] command."""
    kind = rng.choice(["search", "search", "store", "radius", "radius_ro", "bymember",
                       "bymember_ro", "radius_store"])
    unit = rng.choice(UNITS)
    scale = {b"m": 1, b"km": 1000, b"KM": 1000, b"ft": 0.3048, b"mi": 1609.34}[unit]
    # dense: 300 m to 50 km, where boxes hold many candidates and quarters are left out
    bottom, top = (300, 5e4) if members[0][2].startswith(b"d") else (1, 2.5e7)
    meters = math.exp(rng.uniform(math.log(bottom), math.log(top)))
    radius = b"%.6g" % (meters / scale)
    lon, lat = rng.uniform(-180, 180), rng.uniform(-85.05, 85.05)
    if rng.random() < 0.3 and members:   # around a cluster
        lon, lat = float(members[0][0]), float(members[0][1])
    if members[0][2].startswith(b"d"):   # in or near a square
        (x0, x1), (y0, y1) = rng.choice(_SQUARES)
        lon, lat = _wrap(rng.uniform(x0 - 0.5, x1 + 0.5)), rng.uniform(y0 - 0.5, y1 + 0.5)
    member = rng.choice(members)[2] if members and rng.random() < 0.9 else b"nosuchmember"
    opts = []
    if rng.random() < 0.5:
        opts.append(rng.choice([b"ASC", b"DESC"]))
    if rng.random() < 0.5:
        opts += [b"COUNT", b"%d" % rng.choice([1, 2, 3, 5, 10, 50, 1000])]
        if rng.random() < 0.3:
            opts.append(b"ANY")
    with_ = [w for w in (b"WITHDIST", b"WITHHASH", b"WITHCOORD") if rng.random() < 0.4]
    if kind in ("search", "store"):
        if rng.random() < 0.5:
            origin = [b"FROMMEMBER", member]
        else:
            origin = [b"FROMLONLAT", b"%r" % lon, b"%r" % lat]
        if rng.random() < 0.5:
            shape = [b"BYRADIUS", radius, unit]
        else:
            w = math.exp(rng.uniform(math.log(bottom), math.log(top * 1.6))) / scale
            h = math.exp(rng.uniform(math.log(bottom), math.log(top * 1.6))) / scale
            shape = [b"BYBOX", b"%.6g" % w, b"%.6g" % h, unit]
        if kind == "search":
            return [b"GEOSEARCH", key, *origin, *shape, *opts, *with_]
        return [b"GEOSEARCHSTORE", b"dst", key, *origin, *shape, *opts] + \
            ([b"STOREDIST"] if rng.random() < 0.5 else [])
    name = {"radius": b"GEORADIUS", "radius_ro": b"GEORADIUS_RO", "bymember": b"GEORADIUSBYMEMBER",
            "bymember_ro": b"GEORADIUSBYMEMBER_RO", "radius_store": b"GEORADIUS"}[kind]
    where = [member] if b"MEMBER" in name else [b"%r" % lon, b"%r" % lat]
    if kind == "radius_store":
        return [name, key, *where, radius, unit, *opts, rng.choice([b"STORE", b"STOREDIST"]), b"dst"]
    return [name, key, *where, radius, unit, *opts, *with_]


@pytest.mark.parametrize("size", [100, 3000, "dense"])
def test_random_searches_match_redis_byte_for_byte(server, redis_server, size):
    rng = random.Random(size)
    points = _dense_points(rng, 5000) if size == "dense" else _points(rng, size)
    compared = 0
    for protocol in (2, 3):
        ours, theirs = RawConnection(server.port), RawConnection(redis_server.port)
        try:
            for conn in (ours, theirs):
                conn.call([b"HELLO", b"%d" % protocol])
                conn.call([b"FLUSHALL"])
            for start in range(0, len(points), 500):
                args = [b"GEOADD", b"g"] + [x for p in points[start:start + 500] for x in p]
                assert ours.call(args) == theirs.call(args)
            assert ours.call([b"OBJECT", b"ENCODING", b"g"]) == \
                theirs.call([b"OBJECT", b"ENCODING", b"g"])
            for _ in range(600 if protocol == 2 else 200):
                roll = rng.random()
                if roll < 0.1:
                    a, b = rng.choice(points)[2], rng.choice(points)[2]
                    args = [b"GEODIST", b"g", a, b] + ([rng.choice(UNITS)] if rng.random() < 0.7 else [])
                elif roll < 0.15:
                    args = [b"GEOPOS", b"g"] + [rng.choice(points)[2] for _ in range(5)] + [b"nope"]
                elif roll < 0.2:
                    args = [b"GEOHASH", b"g"] + [rng.choice(points)[2] for _ in range(5)] + [b"nope"]
                else:
                    args = _search_args(rng, b"g", points)
                expected = theirs.call(args)
                assert ours.call(args) == expected, args
                if args[0] == b"GEOSEARCHSTORE" or b"STORE" in args or b"STOREDIST" in args:
                    dump = [b"ZRANGE", b"dst", b"0", b"-1", b"WITHSCORES"]
                    assert ours.call(dump) == theirs.call(dump), args
                compared += 1
        finally:
            ours.close()
            theirs.close()
    assert compared == 800


def test_store_writes_in_the_callers_tenant_only(locked):
    alice, bob = login(locked, "alice"), login(locked, "bob")
    try:
        for client in (alice, bob):
            client.flushall()
        alice.geoadd("places", [13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania"])
        bob.geoadd("places", [2.3522, 48.8566, "Paris"])
        assert alice.execute_command("GEOSEARCHSTORE", "near", "places", "FROMLONLAT", "15", "37",
                                     "BYRADIUS", "200", "km") == 2
        assert alice.execute_command("GEORADIUS", "places", "15", "37", "200", "km",
                                     "STORE", "near2") == 2
        assert bob.exists("near", "near2") == 0
        assert sorted(alice.zrange("near", 0, -1)) == [b"Catania", b"Palermo"]
        # bob's "places" is his own: no Palermo there, and his search stores nothing of alice's
        with pytest.raises(redis.ResponseError, match="could not decode requested zset member"):
            bob.execute_command("GEOSEARCH", "places", "FROMMEMBER", "Palermo", "BYRADIUS", "1", "km")
        assert bob.execute_command("GEOSEARCHSTORE", "near", "places", "FROMLONLAT", "15", "37",
                                   "BYRADIUS", "200", "km") == 0
        assert bob.exists("near") == 0
        assert alice.zcard("near") == 2
        assert bob.zrange("places", 0, -1) == [b"Paris"]
    finally:
        alice.close()
        bob.close()


@pytest.mark.parametrize("how", ["aof", "kdb"])
def test_geo_sets_survive_a_restart(make_server, tmp_path, how):
    flags = ("--appendonly", "yes") if how == "aof" else ("--appendonly", "no")
    srv = make_server(*flags)
    client = srv.client()
    client.geoadd("g", [13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania"])
    client.execute_command("GEOSEARCHSTORE", "d", "g", "FROMLONLAT", "15", "37", "BYRADIUS",
                           "200", "km", "STOREDIST")
    client.execute_command("GEORADIUS", "g", "15", "37", "200", "km")   # writes nothing
    client.execute_command("GEORADIUS", "g", "15", "37", "200", "km", "STORE", "d2")
    before = (client.geopos("g", "Palermo", "Catania"), client.zrange("d", 0, -1, withscores=True),
              client.execute_command("GEOHASH", "g", "Palermo"), client.zrange("d2", 0, -1))
    if how == "kdb":
        client.save()
    else:   # the log holds the GEORADIUS that stored, not the one that only read
        logged = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
                          and "aof" in p.name)
        assert logged.count(b"GEORADIUS") == 1
    client.close()
    port = srv.port
    srv.stop()
    srv = make_server(*flags, port=port)
    client = srv.client()
    after = (client.geopos("g", "Palermo", "Catania"), client.zrange("d", 0, -1, withscores=True),
             client.execute_command("GEOHASH", "g", "Palermo"), client.zrange("d2", 0, -1))
    assert after == before
    assert client.geodist("g", "Palermo", "Catania", "km") == 166.2742
    client.close()


def _fill_points(client, count: int, key: str = "big") -> None:
    """`count` points spread over the whole map (one pipeline of GEOADDs)."""
    rng = random.Random(5)
    pipe = client.pipeline(transaction=False)
    for start in range(0, count, 10000):
        values = []
        for i in range(start, min(count, start + 10000)):
            values += [rng.uniform(-180, 180), rng.uniform(-85, 85), "p%d" % i]
        pipe.geoadd(key, values)
    pipe.execute()


@pytest.mark.slow
def test_a_huge_search_is_sliced(locked):
    hood = Neighbours(locked)
    try:
        hood.a.flushall()
        _fill_points(hood.a, 200_000)
        # every point is a candidate and in the radius (past half the Earth's
        # circumference), all sorted for the 10 nearest: ~1 s of work in slices
        result = hood.run(("GEOSEARCH", "big", "FROMLONLAT", "0", "0", "BYRADIUS", "25000", "km",
                           "ASC", "COUNT", "10", "WITHDIST"),
                          follow=("GEOADD", "big", "0", "0", "newpoint"))
        assert len(result["reply"]) == 10
        assert result["reply"][0][0] != b"newpoint"   # A2's GEOADD waited for the search
        assert result["follow"] == 1
        assert_sliced(result)
        # the same search, stored, also in slices; the stored set has every point
        result = hood.run(("GEOSEARCHSTORE", "dst", "big", "FROMLONLAT", "0", "0", "BYRADIUS",
                           "25000", "km", "STOREDIST"), follow=("ZCARD", "dst"))
        assert result["reply"] == 200_001
        assert result["follow"] == 200_001
        assert_sliced(result)
        assert hood.a.zscore("dst", "newpoint") < 1.0   # meters: (0, 0) is its cell's center
        # a reply of every point: sent in parts as it is encoded, whole and in order
        reply = hood.a.execute_command("GEOSEARCH", "big", "FROMLONLAT", "0", "0", "BYRADIUS",
                                       "25000", "km", "ASC", "WITHDIST")
        assert len(reply) == 200_001 and reply[0][0] == b"newpoint"
        distances = [float(d) for _, d in reply]
        assert distances == sorted(distances)
        assert sorted(m for m, _ in reply) == sorted(hood.a.zrange("dst", 0, -1))
    finally:
        hood.a.flushall()
        hood.close()


def _events(port: int, commands: list) -> list:
    """The keyspace events (pattern __key*) the `commands` cause, in order."""
    admin = redis.Redis(port=port)
    admin.flushall()
    admin.config_set("notify-keyspace-events", "KEA")
    pubsub = admin.pubsub()
    pubsub.psubscribe("__key*")
    pubsub.get_message(timeout=1)
    for args in commands:
        try:
            admin.execute_command(*args)
        except redis.ResponseError:
            pass
    events = []
    while True:
        message = pubsub.get_message(timeout=0.5)
        if message is None:
            break
        events.append((message["channel"], message["data"]))
    pubsub.close()
    admin.config_set("notify-keyspace-events", "")
    admin.close()
    return events


def test_keyspace_events_are_redis_s(server, redis_server):
    commands = [
        ("GEOADD", "g", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"),
        ("GEOADD", "g", "13.361389", "38.115556", "Palermo"),          # no change: no event
        ("GEOADD", "g", "XX", "CH", "13.4", "38.1", "Palermo"),
        ("GEOADD", "g", "200", "0", "bad"),                            # an error: no event
        ("GEOSEARCHSTORE", "d", "g", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km"),
        ("GEOSEARCHSTORE", "d", "g", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "m"),   # del
        ("GEORADIUS", "g", "15", "37", "200", "km", "STORE", "d2"),
        ("GEORADIUS", "g", "15", "37", "200", "km"),                   # reads only
        ("GEORADIUSBYMEMBER", "g", "Palermo", "200", "km", "STOREDIST", "d3"),
        ("GEORADIUSBYMEMBER", "g", "Palermo", "1", "m", "STOREDIST", "d3"),            # del
        ("GEOSEARCH", "g", "FROMMEMBER", "Palermo", "BYRADIUS", "1", "km"),
    ]
    assert _events(server.port, commands) == _events(redis_server.port, commands)


def test_watch_sees_stores_not_reads(r):
    r.geoadd("g", [13.361389, 38.115556, "Palermo"])
    for store, dirty in ((None, False), ("STORE", True), ("STOREDIST", True)):
        pipe = r.pipeline(transaction=True)
        pipe.watch("g", "dst")
        args = ["GEORADIUS", "g", "13", "38", "100", "km"] + ([store, "dst"] if store else [])
        r.execute_command(*args)   # another client would do the same: WATCH is per key
        pipe.multi()
        pipe.ping()
        if dirty:
            with pytest.raises(redis.WatchError):
                pipe.execute()
        else:
            assert pipe.execute() == [True]
        pipe.reset()
