"""dramatiq with tenantkv as its Redis broker (issue 17): every queue
operation of dramatiq's RedisBroker — enqueue, fetch, ack, nack, requeue,
the heartbeats and the maintenance of dead workers — is one Lua script
(dramatiq/brokers/redis/dispatch.lua, EVALSHA). A real dramatiq Worker
(threads in the test process) processes messages logged in as a non-root
user, results stored through dramatiq's Redis result backend, a failing
message retried and then dead-lettered. A second tenant with the same
namespace and queue names shares nothing with the first.

TENANTKV_FW_TARGET=redis-server runs the same tests against redis-server.
"""

import time

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, TimeLimit
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from conftest import login
from frameworks import needs_tenants, redis_url, target_fixture

USERS = {"alice": "alice-dramatiq-pw", "bob": "bob-dramatiq-pw"}

srv = target_fixture(USERS, "root-dramatiq-pw")


def make_broker(srv, name: str):
    """A broker and result backend logged in as `name`, with its actors:
    `add` (its result stored), `count` (INCR of a key of the tenant) and
    `flaky` (fails; retried twice, then dead)."""
    backend = RedisBackend(url=redis_url(srv, name))
    broker = RedisBroker(url=redis_url(srv, name), middleware=[
        AgeLimit(), TimeLimit(), Callbacks(), Pipelines(),
        Retries(min_backoff=10, max_backoff=50), Results(backend=backend)])
    client = login(srv, name)
    actors = {}

    @dramatiq.actor(broker=broker, actor_name="add", store_results=True)
    def add(x, y):
        return x + y

    @dramatiq.actor(broker=broker, actor_name="count")
    def count(tag):
        client.incr("ran:" + tag)

    @dramatiq.actor(broker=broker, actor_name="flaky", max_retries=2)
    def flaky():
        client.incr("flaky-tries")
        raise RuntimeError("always fails")

    actors.update(add=add, count=count, flaky=flaky, backend=backend)
    return broker, actors, client


def worker(broker):
    return dramatiq.Worker(broker, worker_timeout=100, worker_threads=2)


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_worker_processes_messages(srv):
    broker, actors, client = make_broker(srv, "alice")
    client.flushall()
    messages = [actors["add"].send(i, 100) for i in range(20)]
    for i in range(10):
        actors["count"].send("alice")
    assert client.exists("dramatiq:default.msgs") == 1
    w = worker(broker)
    w.start()
    try:
        # (message.get_result() would ask dramatiq's global broker.)
        results = [actors["backend"].get_result(m, block=True, timeout=30_000)
                   for m in messages]
        assert results == [i + 100 for i in range(20)]
        broker.join("default", timeout=30_000)
        assert client.get("ran:alice") == b"10"
        # A failing message: tried three times (two retries through the
        # delay queue), then in the dead-letter queue.
        actors["flaky"].send()
        assert wait_until(lambda: client.zcard("dramatiq:default.XQ") == 1, 30)
        assert client.get("flaky-tries") == b"3"
    finally:
        w.stop()
        broker.close()
    client.close()


def test_second_tenant_shares_no_queue(srv):
    needs_tenants(srv)
    alice_broker, alice_actors, alice = make_broker(srv, "alice")
    bob_broker, bob_actors, bob = make_broker(srv, "bob")
    alice.flushall()
    bob.flushall()
    for _ in range(5):
        alice_actors["count"].send("alice")
    # Bob's worker, same namespace and queue: it sees none of alice's
    # messages, only his own.
    w = worker(bob_broker)
    w.start()
    try:
        bob_actors["count"].send("bob")
        assert wait_until(lambda: bob.get("ran:bob") == b"1", 30)
        time.sleep(0.5)
        assert alice.get("ran:alice") is None
        assert bob.keys("ran:*") == [b"ran:bob"]
    finally:
        w.stop()
        bob_broker.close()
    assert alice.hlen("dramatiq:default.msgs") == 5
    # And alice's own worker then runs hers.
    w = worker(alice_broker)
    w.start()
    try:
        alice_broker.join("default", timeout=30_000)
        assert alice.get("ran:alice") == b"5"
    finally:
        w.stop()
        alice_broker.close()
    assert bob.get("ran:alice") is None
    alice.close()
    bob.close()
