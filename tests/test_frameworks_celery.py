"""Celery against tenantkv (issue 16): a real worker (`celery worker
--pool=solo`, a subprocess) runs a task, and the test's `AsyncResult.get()`
receives its result from tenantkv as result backend, logged in as a non-root
user. Celery's Redis result backend waits for a result by SUBSCRIBE to the
task's channel (`celery-task-meta-<id>`) and the worker stores it with SET and
PUBLISH: this is pub/sub as a framework uses it. A second tenant running the
same app, queue and channel names sees none of it.

The broker of the first tests is kombu's filesystem transport; the last two
have tenantkv as broker too: kombu's Redis transport needs Lua (every worker
releases its `unacked_mutex` lock with EVALSHA at start-up, issue 17).
TENANTKV_FW_TARGET=redis-server runs the same tests against redis-server
(tests/frameworks.py).
"""

import json
import time

import pytest
from celery import Celery

from conftest import login
from frameworks import Worker, needs_tenants, target_fixture

USERS = {"alice": "alice-celery-pw", "bob": "bob-celery-pw"}

# The app every worker and client of this module runs: same app name, same
# task names, same default queue ("celery") in every tenant.
APP = '''
import json
import os

from celery import Celery

app = Celery("tkvapp")
app.conf.update(
    broker_url=os.environ["TKV_BROKER"],
    result_backend=os.environ["TKV_BACKEND"],
    broker_transport_options=json.loads(os.environ["TKV_BROKER_OPTIONS"]),
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=2,
)


@app.task(name="tkvapp.add")
def add(x, y):
    return x + y


@app.task(name="tkvapp.whoami")
def whoami():
    return os.environ["TKV_WORKER_TAG"]
'''

# A worker of the filesystem broker checks its folder this often (s).
POLL = 0.1

srv = target_fixture(USERS, "root-celery-pw")


class NeedsLua(Exception):
    """A Celery worker died on the EVALSHA that kombu's Redis transport sends."""


def url(server, name: str, protocol: int | None = None) -> str:
    """A Redis URL logged in as `name`; `protocol`: RESP2 or RESP3 (redis-py's
    default, which Celery passes on, is RESP3)."""
    query = "?protocol=%d" % protocol if protocol else ""
    return "redis://%s:%s@127.0.0.1:%d/0%s" % (name, USERS[name], server.port, query)


def fs_options(folder) -> dict:
    folder.mkdir(exist_ok=True)
    return {"data_folder_in": str(folder), "data_folder_out": str(folder),
            "control_folder": str(folder / "control"), "polling_interval": POLL}


def client_app(broker: str, backend: str, options: dict) -> Celery:
    """The test's own side of the app: it sends tasks and reads results."""
    app = Celery("tkvapp-client")
    app.conf.update(broker_url=broker, result_backend=backend,
                    broker_transport_options=options,
                    broker_connection_retry_on_startup=True)
    return app


def run_tasks(app, calls, timeout: float = 30, log=None) -> list:
    """Send each (task name, args), then wait for every result with
    AsyncResult.get(): [(task id, result)]. The AsyncResults die here, while
    their app is open: one collected after app.close() unsubscribes through a
    closed connection and retries for seconds."""
    results = [app.send_task(name, args=args) for name, args in calls]
    try:
        return [(r.id, r.get(timeout=timeout)) for r in results]
    except Exception as exc:
        output = log.output() if log else ""
        if "unknown command 'EVALSHA'" in output:
            raise NeedsLua(output[-2000:]) from None
        raise AssertionError("%s\n%s" % (exc, output[-4000:])) from None
    finally:
        del results


def start_worker(tmp_path, tag: str, broker: str, backend: str, options: dict) -> Worker:
    """`celery -A tkvapp worker --pool=solo`, ready to take tasks. Without
    mingle, gossip and heartbeats: broadcasts between workers are not what
    this tests, and they would add seconds at start-up."""
    app_dir = tmp_path / ("app-" + tag)
    app_dir.mkdir()
    (app_dir / "tkvapp.py").write_text(APP)
    worker = Worker(["-m", "celery", "-A", "tkvapp", "worker", "--pool=solo",
                     "--loglevel=INFO", "--without-mingle", "--without-gossip",
                     "--without-heartbeat", "-n", "%s@tenantkv-test" % tag],
                    tmp_path / ("worker-%s.log" % tag), cwd=app_dir, path=[app_dir],
                    env={"TKV_BROKER": broker, "TKV_BACKEND": backend,
                         "TKV_BROKER_OPTIONS": json.dumps(options), "TKV_WORKER_TAG": tag})
    try:
        if not worker.wait_for_output(" ready.", timeout=60):
            output = worker.output()
            if "unknown command 'EVALSHA'" in output:
                raise NeedsLua(output[-2000:])
            raise AssertionError("the worker did not start:\n" + output[-4000:])
    except BaseException:
        worker.stop()
        raise
    return worker


@pytest.fixture(scope="module")
def fs_worker(srv, tmp_path_factory):
    """Alice's worker: tasks from a filesystem broker, results to tenantkv as
    alice. Yields (worker, the broker's transport options)."""
    tmp_path = tmp_path_factory.mktemp("celery")
    options = fs_options(tmp_path / "broker")
    with start_worker(tmp_path, "alice", "filesystem://", url(srv, "alice"), options) as worker:
        yield worker, options


@pytest.mark.parametrize("protocol", [2, 3])
def test_async_result_get_through_tenantkv(srv, fs_worker, protocol):
    """The waiting side subscribes over RESP2 (a connection in subscribed
    mode) or RESP3 (push messages); the worker stores and publishes."""
    worker, options = fs_worker
    app = client_app("filesystem://", url(srv, "alice", protocol), options)
    try:
        done = run_tasks(app, [("tkvapp.add", (i, 1000)) for i in range(3)], log=worker)
    finally:
        app.close()
    assert [value for _, value in done] == [1000, 1001, 1002]
    # The result is alice's key, in alice's tenant.
    alice = login(srv, "alice")
    stored = json.loads(alice.get("celery-task-meta-" + done[0][0]))
    assert (stored["status"], stored["result"]) == ("SUCCESS", 1000)
    alice.close()


def test_second_tenant_sees_nothing_of_the_first(srv, fs_worker, tmp_path):
    """Bob runs the same app with the same queue and channel names: alice's
    results, result messages and queued tasks stay in alice's tenant."""
    needs_tenants(srv)
    worker, options = fs_worker
    bob = login(srv, "bob")
    bob.flushall()
    watcher = bob.pubsub()
    watcher.psubscribe("*")              # every channel of bob's tenant
    assert watcher.get_message(timeout=5)["type"] == "psubscribe"

    alice_app = client_app("filesystem://", url(srv, "alice"), options)
    bob_app = client_app("filesystem://", url(srv, "bob"), options)
    try:
        [(task_id, value)] = run_tasks(alice_app, [("tkvapp.add", (20, 22))], log=worker)
        assert value == 42
        # Bob asks for alice's task id: no result in his tenant.
        assert bob_app.AsyncResult(task_id).state == "PENDING"
    finally:
        alice_app.close()
        bob_app.close()
    # The result was published on alice's channel: bob's pattern on every
    # channel got nothing (a publish reaches subscribers within the turn).
    time.sleep(0.2)
    assert watcher.get_message(timeout=1) is None
    assert bob.keys("*") == []
    watcher.close()

    # Both send to the same queue name through tenantkv as broker (sending
    # needs no Lua): each tenant's "celery" list holds its own task only.
    alice = login(srv, "alice")
    alice.delete("celery")
    sent = {}
    for name in ("alice", "bob"):
        app = client_app(url(srv, name), url(srv, name), {})
        try:
            sent[name] = app.send_task("tkvapp.whoami").id
        finally:
            app.close()
    for name, client in (("alice", alice), ("bob", bob)):
        queued = [json.loads(m)["headers"]["id"] for m in client.lrange("celery", 0, -1)]
        assert queued == [sent[name]], name
    alice.close()
    bob.close()


def test_worker_with_tenantkv_as_broker(srv, tmp_path):
    """Alice's worker takes its tasks from tenantkv as broker (kombu's Redis
    transport: LPUSH/BRPOP, its unacked hash and index, the unacked_mutex
    lock released with EVALSHA) and stores results there too."""
    with start_worker(tmp_path, "alice", url(srv, "alice"), url(srv, "alice"), {}) as worker:
        app = client_app(url(srv, "alice"), url(srv, "alice"), {})
        try:
            done = run_tasks(app, [("tkvapp.whoami", ())] * 3 + [("tkvapp.add", (40, 2))],
                             log=worker)
        finally:
            app.close()
        assert [value for _, value in done] == ["alice"] * 3 + [42]
        assert "unknown command" not in worker.output(), worker.output()[-4000:]


def test_two_tenants_as_broker(srv, tmp_path):
    """Alice and bob each run a worker of the same app and queue, tenantkv
    their broker and result backend: each tenant's tasks go to its own
    worker, and each AsyncResult.get() returns its own tenant's result."""
    needs_tenants(srv)
    workers = {}
    try:
        for name in ("alice", "bob"):
            workers[name] = start_worker(tmp_path, name, url(srv, name), url(srv, name), {})
        for name in ("alice", "bob"):
            app = client_app(url(srv, name), url(srv, name), {})
            try:
                done = run_tasks(app, [("tkvapp.whoami", ())] * 3 + [("tkvapp.add", (len(name), 1))],
                                 log=workers[name])
                assert [value for _, value in done] == [name] * 3 + [len(name) + 1]
            finally:
                app.close()
        for name, worker in workers.items():
            assert "unknown command" not in worker.output(), worker.output()[-4000:]
    finally:
        for worker in workers.values():
            worker.stop()
