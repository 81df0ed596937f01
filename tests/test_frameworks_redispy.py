"""redis-py's own Lua users against tenantkv (issue 17): `Lock` (acquire with
SET NX PX; extend, reacquire and release are Lua scripts run by EVALSHA, EVAL
after a NOSCRIPT), `register_script`, and python-redis-lock (its unlock,
extend and reset are scripts too). Logged in as non-root users; a second
tenant with the same lock and script sees nothing of the first.

TENANTKV_FW_TARGET=redis-server runs the same tests against redis-server
(tests/frameworks.py).
"""

import pytest
import redis
from redis.exceptions import LockError, LockNotOwnedError

from conftest import login
from frameworks import needs_tenants, target_fixture

USERS = {"alice": "alice-lua-pw", "bob": "bob-lua-pw"}

srv = target_fixture(USERS, "root-lua-pw")


@pytest.fixture
def alice(srv):
    client = login(srv, "alice")
    client.flushall()
    client.script_flush()
    yield client
    client.close()


def test_lock_across_two_clients(srv, alice):
    other = login(srv, "alice")
    held = alice.lock("job:7", timeout=10)
    assert held.acquire(blocking=False)
    # The other client of the same user waits in vain for it...
    contender = other.lock("job:7", timeout=10, blocking_timeout=0.3)
    assert not contender.acquire()
    # ...cannot release or extend what it does not hold (the scripts compare
    # the token and answer 0)...
    contender.local.token = b"not-the-owner"
    with pytest.raises(LockNotOwnedError):
        contender.release()
    contender.local.token = b"not-the-owner"     # release() forgot it
    with pytest.raises(LockNotOwnedError):
        contender.extend(5)
    assert alice.exists("job:7") == 1
    # ...while the owner extends it (added to the TTL, then replacing it)...
    assert held.extend(20)
    assert 25_000 < alice.pttl("job:7") <= 30_000
    assert held.extend(5, replace_ttl=True)
    assert 3_000 < alice.pttl("job:7") <= 5_000
    assert held.reacquire()
    assert 8_000 < alice.pttl("job:7") <= 10_000
    assert held.locked() and held.owned()
    # ...and releases it, and then the other one gets it.
    held.release()
    assert alice.exists("job:7") == 0
    with pytest.raises(LockError):
        held.release()
    winner = other.lock("job:7", timeout=10)
    assert winner.acquire(blocking=False)
    assert not held.owned() and winner.owned()
    winner.release()
    other.close()


def test_lock_of_another_tenant(srv, alice):
    """Bob takes a lock of the same name that alice holds: his own."""
    needs_tenants(srv)
    bob = login(srv, "bob")
    bob.flushall()
    mine = alice.lock("shared-name", timeout=10)
    assert mine.acquire(blocking=False)
    his = bob.lock("shared-name", timeout=10)
    assert his.acquire(blocking=False)
    his.release()
    assert alice.exists("shared-name") == 1 and mine.owned()
    mine.release()
    bob.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_register_script(srv, protocol):
    alice = login(srv, "alice", protocol=protocol)
    alice.flushall()
    alice.script_flush()
    source = "return {redis.call('INCRBY', KEYS[1], ARGV[1]), ARGV[2], #KEYS}"
    incr = alice.register_script(source)
    assert incr(keys=["counter"], args=[5, "five"]) == [5, b"five", 1]
    assert incr(keys=["counter"], args=[-2, "x"]) == [3, b"x", 1]
    assert alice.script_exists(incr.sha) == [True]
    # After SCRIPT FLUSH, EVALSHA answers NOSCRIPT and the Script loads itself
    # again (EVAL), as redis-py does.
    alice.script_flush()
    assert alice.script_exists(incr.sha) == [False]
    assert incr(keys=["counter"], args=[1, "y"]) == [4, b"y", 1]
    assert alice.get("counter") == b"4"
    # An error of the script comes back as the library's error.
    failing = alice.register_script("return redis.call('INCR', KEYS[1])")
    alice.set("text", "abc")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        failing(keys=["text"])
    # In a pipeline too (redis-py loads the scripts first).
    pipe = alice.pipeline()
    incr(keys=["counter"], args=[10, "p"], client=pipe)
    pipe.get("counter")
    assert pipe.execute() == [[14, b"p", 1], b"14"]
    # A float truncates, false is a nil, a table stops at its first nil,
    # {ok=} is a status and {err=} an error: the same in RESP2 and RESP3 (no
    # redis.setresp(3) here).
    shapes = alice.register_script("return {3.99, 'a', false, 'x', nil, 'after-nil'}")
    assert shapes() == [3, b"a", None, b"x"]
    assert alice.register_script("return false")() is None
    assert alice.register_script("return {ok='FINE'}")() == b"FINE"
    with pytest.raises(redis.ResponseError, match="^my failure$"):
        alice.register_script("return {err='my failure'}")()
    alice.close()


def test_script_of_another_tenant(srv, alice):
    """Bob's server does not know alice's script, nor her keys from his."""
    needs_tenants(srv)
    bob = login(srv, "bob")
    bob.flushall()
    incr = alice.register_script("return redis.call('INCR', KEYS[1])")
    assert incr(keys=["n"]) == 1
    assert bob.script_exists(incr.sha) == [False]
    with pytest.raises(redis.exceptions.NoScriptError):
        bob.evalsha(incr.sha, 1, "n")
    assert incr(keys=["n"], client=bob) == 1      # his own n, loaded for him
    assert alice.get("n") == b"1" and bob.get("n") == b"1"
    bob.close()


def test_python_redis_lock(srv, alice):
    redis_lock = pytest.importorskip("redis_lock", reason="python-redis-lock is optional")
    other = login(srv, "alice")
    first = redis_lock.Lock(alice, "report", expire=10, auto_renewal=False)
    second = redis_lock.Lock(other, "report", expire=10)
    assert first.acquire(blocking=False)
    assert not second.acquire(blocking=False)
    first.extend(30)
    assert 25 < alice.ttl("lock:report") <= 30
    with pytest.raises(redis_lock.NotAcquired):
        second.release()
    first.release()
    # The release signals a waiter through its list: the second one, blocking,
    # gets it at once.
    assert second.acquire(timeout=5)
    second.release()
    assert alice.exists("lock:report") == 0
    other.close()
