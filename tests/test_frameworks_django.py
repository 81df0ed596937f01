"""Django's Redis caches against tenantkv (issue 17), logged in as a non-root
user. Django's built-in backend (django.core.cache.backends.redis.RedisCache)
has no lock() of its own: the way to lock with it is its redis-py client's
`lock()` (`cache._cache.get_client(write=True)`), whose extend and release
are Lua scripts. django-redis's `cache.lock()` is the same Lock through its
pool, and its `incr` is an EVAL that silently falls back to a non-atomic
GET + SET when the server refuses it, so that test counts the EVALs (INFO
commandstats). A second tenant with the same cache keys sees nothing.

TENANTKV_FW_TARGET=redis-server runs the same tests against redis-server.
"""

import threading

import django
import pytest
from django.conf import settings
from redis.exceptions import LockNotOwnedError

from conftest import login
from frameworks import needs_tenants, redis_url, target_fixture

if not settings.configured:
    settings.configure()
    django.setup()

from django.core.cache.backends.redis import RedisCache  # noqa: E402 (needs settings)

USERS = {"alice": "alice-django-pw", "bob": "bob-django-pw"}

srv = target_fixture(USERS, "root-django-pw")


def builtin_cache(srv, name: str) -> RedisCache:
    return RedisCache(redis_url(srv, name), {"KEY_PREFIX": "site"})


@pytest.fixture
def alice(srv):
    client = login(srv, "alice")
    client.flushall()
    yield client
    client.close()


def calls(client, command: str) -> int:
    return client.info("commandstats").get("cmdstat_" + command, {}).get("calls", 0)


def test_builtin_cache_lock(srv, alice):
    cache = builtin_cache(srv, "alice")
    other = builtin_cache(srv, "alice")
    cache.set("page", {"html": "<p>hi</p>"}, 30)
    assert cache.get("page") == {"html": "<p>hi</p>"}
    key = cache.make_and_validate_key("rebuild")
    held = cache._cache.get_client(key, write=True).lock(key, timeout=10)
    contender = other._cache.get_client(key, write=True).lock(key, timeout=10, blocking_timeout=0.3)
    assert held.acquire(blocking=False)
    assert not contender.acquire()
    contender.local.token = b"someone-else"
    with pytest.raises(LockNotOwnedError):
        contender.release()
    assert held.extend(20)
    assert 25_000 < alice.pttl(key) <= 30_000
    held.release()
    assert contender.acquire()
    contender.release()
    assert alice.exists(key) == 0
    assert cache.add("hits", 0)
    assert cache.incr("hits") == 1


def test_django_redis_lock_and_atomic_incr(srv, alice):
    import django_redis.cache

    cache = django_redis.cache.RedisCache(redis_url(srv, "alice"), {})
    other = django_redis.cache.RedisCache(redis_url(srv, "alice"), {})
    with cache.lock("import", timeout=10):
        assert not other.lock("import", timeout=10, blocking_timeout=0.3).acquire()
    held = other.lock("import", timeout=10)
    assert held.acquire(blocking=False)
    held.release()

    cache.set("visits", 0)
    evals = calls(alice, "eval")
    gets = calls(alice, "get")

    def hammer():
        for _ in range(100):
            cache.incr("visits")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("visits") == 400
    # Every incr was the script (no GET + SET fallback).
    assert calls(alice, "eval") - evals == 400
    assert calls(alice, "get") - gets == 1
    with pytest.raises(ValueError):
        cache.incr("no-such-key")


def test_second_tenant_sees_nothing(srv, alice):
    needs_tenants(srv)
    bob_client = login(srv, "bob")
    bob_client.flushall()
    alice_cache = builtin_cache(srv, "alice")
    bob_cache = builtin_cache(srv, "bob")
    alice_cache.set("profile", "alice's")
    assert bob_cache.get("profile") is None
    key = alice_cache.make_and_validate_key("nightly")
    mine = alice_cache._cache.get_client(key, write=True).lock(key, timeout=10)
    his = bob_cache._cache.get_client(key, write=True).lock(key, timeout=10)
    assert mine.acquire(blocking=False)
    assert his.acquire(blocking=False)      # his own lock of that name
    his.release()
    assert mine.owned()
    mine.release()
    bob_cache.clear()                        # FLUSHDB: his database only
    assert alice_cache.get("profile") == "alice's"
    bob_client.close()
