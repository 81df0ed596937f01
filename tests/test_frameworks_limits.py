"""limits (the library behind Flask-Limiter) with tenantkv as its Redis
storage (issue 17): every strategy runs Lua scripts (register_script:
EVALSHA, EVAL after NOSCRIPT) — the moving window a list searched with
LINDEX from Lua, the fixed window INCRBY + EXPIRE in one script, the
sliding window two counters; `reset()` deletes with KEYS from Lua. Logged
in as a non-root user; a second tenant with the same limits is counted apart,
and its `reset()` (KEYS inside a script) does not reach the first's keys.

TENANTKV_FW_TARGET=redis-server runs the same tests against redis-server.
"""

import pytest
from limits import parse, storage, strategies

from conftest import login
from frameworks import needs_tenants, redis_url, target_fixture

USERS = {"alice": "alice-limits-pw", "bob": "bob-limits-pw"}

srv = target_fixture(USERS, "root-limits-pw")


@pytest.fixture
def store(srv):
    """alice's limits storage, on an empty keyspace."""
    admin = login(srv, "alice")
    admin.flushall()
    admin.close()
    return storage.storage_from_string(redis_url(srv, "alice"))


def exhaust(limiter, item, who: str, allowed: int) -> None:
    """`allowed` hits pass, the next one is refused, and test() agrees."""
    assert [limiter.hit(item, who) for _ in range(allowed)] == [True] * allowed
    assert limiter.hit(item, who) is False
    assert limiter.test(item, who) is False


@pytest.mark.parametrize("strategy", [strategies.MovingWindowRateLimiter,
                                      strategies.FixedWindowRateLimiter,
                                      strategies.SlidingWindowCounterRateLimiter])
def test_strategy(srv, store, strategy):
    assert store.check()
    limiter = strategy(store)
    item = parse("5/minute")
    exhaust(limiter, item, "user-1", 5)
    stats = limiter.get_window_stats(item, "user-1")
    assert stats.remaining == 0
    # Another identifier has its own count; a cost takes several at once.
    assert limiter.hit(item, "user-2", cost=3) is True
    assert limiter.get_window_stats(item, "user-2").remaining == 2
    assert limiter.hit(item, "user-2", cost=2) is True
    assert limiter.hit(item, "user-2") is False
    limiter.clear(item, "user-1")
    assert limiter.test(item, "user-1") is True
    assert limiter.get_window_stats(item, "user-1").remaining == 5


@pytest.mark.parametrize("strategy", [strategies.MovingWindowRateLimiter,
                                      strategies.FixedWindowRateLimiter])
def test_window_passes(srv, store, strategy):
    """A 1-second window: refused inside it, allowed again after it."""
    import time

    limiter = strategy(store)
    item = parse("2/second")
    exhaust(limiter, item, "burst", 2)
    deadline = time.monotonic() + 5
    while not limiter.test(item, "burst"):
        assert time.monotonic() < deadline, "the window never passed"
        time.sleep(0.1)
    assert limiter.hit(item, "burst") is True


def test_reset(srv, store):
    limiter = strategies.MovingWindowRateLimiter(store)
    for who in ("a", "b", "c"):
        limiter.hit(parse("1/hour"), who)
    alice = login(srv, "alice")
    alice.set("not-a-limit", "kept")
    assert store.reset() == 3
    assert alice.keys("*") == [b"not-a-limit"]
    alice.close()


def test_second_tenant_counts_apart(srv, store):
    needs_tenants(srv)
    bob_store = storage.storage_from_string(redis_url(srv, "bob"))
    bob_admin = login(srv, "bob")
    bob_admin.flushall()
    item = parse("3/minute")
    # (Each strategy its own identifier: a moving window's key is a list, a
    # fixed window's a counter.)
    for strategy, who in ((strategies.MovingWindowRateLimiter, "moving"),
                          (strategies.FixedWindowRateLimiter, "fixed")):
        exhaust(strategy(store), item, who, 3)
        # Same limit, same identifier, same key names: bob's are his own.
        exhaust(strategy(bob_store), item, who, 3)
    alice = login(srv, "alice")
    before = sorted(alice.keys("*"))
    assert len(before) == 2
    # bob's reset runs KEYS LIMITS:* inside a script: his keys only.
    assert bob_store.reset() == 2
    assert bob_admin.keys("*") == []
    assert sorted(alice.keys("*")) == before
    alice.close()
    bob_admin.close()
