"""Sliced commands called from scripts (issue 17): a command that runs as a
job in slices (dispatch/slices.py: KEYS, SORT, a big SMEMBERS...) called
with redis.call runs to its end as the script's own work, with the reply
redis-server gives, while other tenants stay served."""

import threading
import time

import pytest
import redis

from conftest import locked_fixture, login

ROOT_PASSWORD = "slices-root"
USERS = {"alice": "alice-pw", "bob": "bob-pw"}

srv = locked_fixture(USERS, ROOT_PASSWORD)

MEMBERS = 200_000
KEYS = 100_000
SORTED = 100_000

# A word THREADED (scripting/engine.py) matches: the script runs on a worker
# thread from its start, its redis.calls handed to the loop thread.
ON_THREAD = " -- find"


@pytest.fixture
def alice(srv):
    client = login(srv, "alice", socket_timeout=60)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def bob(srv):
    client = login(srv, "bob")
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def reference(redis_server):
    client = redis.Redis(port=redis_server.port, socket_timeout=60)
    client.flushall()
    yield client
    client.close()


def _fill(client, members=0, keys=0, sorted_=0) -> None:
    pipe = client.pipeline(transaction=False)
    for start in range(0, members, 10_000):
        pipe.sadd("big", *range(start, min(start + 10_000, members)))
    for start in range(0, keys, 10_000):
        pipe.mset({"k:%d" % i: i for i in range(start, min(start + 10_000, keys))})
    for start in range(0, sorted_, 10_000):
        # Values in a scrambled order, some repeated: a real sort.
        pipe.rpush("nums", *((i * 7919) % 50_021 for i in range(start, min(start + 10_000, sorted_))))
    pipe.execute()


def _ping_latencies(client, stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        began = time.perf_counter()
        client.ping()
        out.append(time.perf_counter() - began)
        time.sleep(0.002)


def _run_with_pings(client, other, script, *args):
    """`client` runs the script while `other` (another tenant) PINGs: the
    reply, and the PING latencies measured while the script ran (the run
    of up to 3 whose p99 is the lowest: the machine is shared and loaded;
    the reply is checked each time)."""
    best = None
    first = None
    for _ in range(3):
        stop = threading.Event()
        latencies: list = []
        pinger = threading.Thread(target=_ping_latencies, args=(other, stop, latencies))
        pinger.start()
        try:
            reply = client.eval(script, *args)
        finally:
            stop.set()
            pinger.join(10)
        if first is None:
            first = reply
        assert reply == first
        if latencies and (best is None or _p99(latencies) < _p99(best)):
            best = latencies
        if best is not None and _p99(best) < 0.05:
            break
    return first, best or []


def _p99(latencies: list) -> float:
    ordered = sorted(latencies)
    return ordered[int(len(ordered) * 0.99) - 1] if len(ordered) > 1 else ordered[0]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["loop", "thread", "thread-later"])
def test_script_smembers_of_200k(srv, alice, bob, reference, where):
    """SMEMBERS of 200k members from a script (a job past its first slice):
    the whole reply, as redis-server's (a set's order is its own: compared
    sorted), on the loop thread's runner or a worker thread: its first
    call made while the loop thread waits for the thread, or a later one
    (the loop thread no longer waits: the call is handed to it)."""
    _fill(alice, members=MEMBERS)
    _fill(reference, members=MEMBERS)
    script = "return redis.call('smembers', KEYS[1])"
    if where == "thread":
        script += ON_THREAD
    elif where == "thread-later":
        script = ("local n = 0 for i = 1, 3000000 do n = n + 1 end "
                  + script + ON_THREAD)
    ours, latencies = _run_with_pings(alice, bob, script, 1, "big")
    theirs = reference.eval(script, 1, "big")
    assert len(ours) == MEMBERS
    assert sorted(ours) == sorted(theirs)
    assert latencies and _p99(latencies) < 0.05, (_p99(latencies), max(latencies), len(latencies))


@pytest.mark.slow
def test_script_keys_over_100k(srv, alice, bob, reference):
    """KEYS * over 100k keys from a script: every key, as redis-server."""
    _fill(alice, keys=KEYS)
    _fill(reference, keys=KEYS)
    script = "return redis.call('keys', '*')"
    ours, latencies = _run_with_pings(alice, bob, script, 0)
    theirs = reference.eval(script, 0)
    assert len(ours) == KEYS
    assert sorted(ours) == sorted(theirs)
    assert latencies and _p99(latencies) < 0.05, (_p99(latencies), max(latencies), len(latencies))
    # Bob's keys are not Alice's: her KEYS inside a script sees only hers.
    bob.set("k:bob", 1)
    assert alice.eval("return #redis.call('keys', '*')", 0) == KEYS


@pytest.mark.slow
def test_script_sort_of_100k(srv, alice, bob, reference):
    """SORT of 100k elements from a script (its code names `sort`: it runs on
    a worker thread) equals redis-server's, element for element; and the
    same after a write (the script can no longer move: it pauses on the
    loop thread between the job's slices)."""
    _fill(alice, sorted_=SORTED)
    _fill(reference, sorted_=SORTED)
    script = "return redis.call('sort', KEYS[1])"
    ours, latencies = _run_with_pings(alice, bob, script, 1, "nums")
    theirs = reference.eval(script, 1, "nums")
    assert len(ours) == SORTED
    assert ours == theirs
    assert latencies and _p99(latencies) < 0.05, (_p99(latencies), max(latencies), len(latencies))
    wrote = ("redis.call('set', 'marker', 1) local r = redis.call('sort', KEYS[1], 'desc')"
             " return {#r, r[1], r[#r]}")
    assert alice.eval(wrote, 1, "nums") == reference.eval(wrote, 1, "nums")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sort", "SORT"])
def test_script_sort_store_is_logged_with_the_script(tmp_path, name):
    """A script that writes, then SORT ... STORE past its first slice, then
    writes again: another client of the tenant sees all of it or nothing,
    and the log has it as one MULTI/EXEC in the script's order (a restart
    gets the same keys). Its code naming `sort` runs on a worker thread;
    `SORT` (not a name THREADED matches) in its runner on the loop thread."""
    from conftest import ServerProcess
    aof = ("--appendonly", "yes", "--save", "", "--appendfsync", "always")
    script = ("redis.call('set', 'before', 1)"
              " local n = redis.call('%s', KEYS[1], 'store', KEYS[2])" % name
              + " redis.call('rpush', KEYS[2], 'after')"
              " return {n, redis.call('llen', KEYS[2])}")
    with ServerProcess(tmp_path, *aof) as proc:
        runner, other = proc.client(socket_timeout=60), proc.client()
        _fill(runner, sorted_=SORTED)
        runner.rpush("dst", "stale")
        result = {}
        thread = threading.Thread(target=lambda: result.setdefault(
            "r", runner.eval(script, 2, "nums", "dst")))
        thread.start()
        seen = other.llen("dst")   # all of it or nothing of it
        thread.join(60)
        assert seen in (1, SORTED + 1)
        assert result["r"] == [SORTED, SORTED + 1]
        expected = other.lrange("dst", 0, -1)
        assert expected[-1] == b"after" and expected[:3] == [b"0", b"0", b"1"]
        runner.close()
        other.close()
    log = b"".join(open(p, "rb").read() for p in (tmp_path / "appendonlydir").glob("*.incr.aof"))
    assert log.count(b"MULTI") == 1 and log.count(b"EXEC") == 1
    with ServerProcess(tmp_path, *aof) as proc:
        c = proc.client()
        assert c.lrange("dst", 0, -1) == expected
        assert c.get("before") == b"1"
        c.close()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["keys", "sort_ro"])
def test_script_kill_stops_a_long_job(srv, alice, command):
    """A script that has not written, in a long sliced command (KEYS: in
    its runner on the loop thread; SORT_RO: on a worker thread), is
    killable: SCRIPT KILL ends it at the job's next slice. (SORT is a write
    command: after it a script is UNKILLABLE, as in Redis.)"""
    _fill(alice, keys=KEYS if command == "keys" else 0,
          sorted_=SORTED if command == "sort_ro" else 0)
    root = login(srv, "root")
    root.config_set("busy-reply-threshold", "200")
    killer = login(srv, "alice")
    call = "redis.call('keys', '*')" if command == "keys" else (
        "redis.call('sort_ro', KEYS[1])" + ON_THREAD + "\n")
    script = "for i = 1, 10000 do %s end return 1" % call
    errors: list = []

    def run():
        try:
            alice.eval(script, 1, "nums")
        except redis.ResponseError as exc:
            errors.append(str(exc))
    thread = threading.Thread(target=run)
    thread.start()
    try:
        time.sleep(0.5)
        began = time.monotonic()
        assert killer.script_kill() is True
        thread.join(30)
        assert time.monotonic() - began < 5
    finally:
        root.config_set("busy-reply-threshold", "5000")
        root.close()
    assert not thread.is_alive()
    assert errors and errors[0].startswith("Script killed by user with SCRIPT KILL"), errors
    assert killer.ping()
    killer.close()
