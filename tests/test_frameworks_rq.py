"""RQ against tenantkv (issue 16): a real `rq worker` (a subprocess, logged in
as a non-root user) runs a job the test enqueued, and obeys a command sent on
its pub/sub control channel (`rq:pubsub:<worker name>`, which RQ's worker
SUBSCRIBEs to in a thread and `rq.command` PUBLISHes to). A second tenant
sees neither the worker nor its channel, and its PUBLISH to the same channel
name reaches nobody.

RQ stores every job's result with XADD (streams, issue 18): `XADD
rq:results:<job id> MAXLEN ~ 10 * type 1 ret_val <pickle> ...` in the
worker's MULTI, and reads the latest with `XREVRANGE ... + - COUNT 1`.

Neither test waits for the worker to exit: RQ's worker, on its way out,
sends UNSUBSCRIBE and then stops its pub/sub thread, and when that thread
reads the reply first it waits `sleep_time` (60 s) before seeing the stop
(redis-py's PubSubWorkerThread; seen against redis-server too, 1-2 in 20 with
a 3 s sleep_time). The tests look for the worker's own log lines instead and
then stop it (SIGTERM, SIGKILL 2 s later).
"""

import json
import time

import pytest
from rq import Queue, Worker as RQWorker
from rq.command import send_shutdown_command

from conftest import locked_fixture, login
from frameworks import Worker

USERS = {"alice": "alice-rq-pw", "bob": "bob-rq-pw"}

JOBS = '''
def add(x, y):
    return x + y


def touch(path, text):
    with open(path, "w") as f:
        f.write(text)
    return text
'''

# What RQ's worker logs when a shutdown command reaches its pub/sub thread.
RECEIVED = "Received shutdown command"

srv = locked_fixture(USERS, "root-rq-pw")


def url(server, name: str) -> str:
    return "redis://%s:%s@127.0.0.1:%d/0" % (name, USERS[name], server.port)


def rq_worker(srv, tmp_path, name: str, user: str, *flags: str) -> Worker:
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir(exist_ok=True)
    (jobs_dir / "rqjobs.py").write_text(JOBS)
    return Worker(["-m", "rq.cli", "worker", "--url", url(srv, user), "--name", name,
                   "--logging_level", "DEBUG", *flags, "default"],
                  tmp_path / ("%s.log" % name), cwd=jobs_dir, path=[jobs_dir])


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_worker_runs_a_job_and_obeys_its_control_channel(srv, tmp_path):
    alice = login(srv, "alice")
    bob = login(srv, "bob")
    alice.flushall()
    bob.flushall()
    done = tmp_path / "done.txt"
    Queue("default", connection=alice).enqueue("rqjobs.touch", str(done), "ran")

    with rq_worker(srv, tmp_path, "w-alice", "alice") as worker:
        channel = "rq:pubsub:w-alice"
        # The job runs (its effect: the file), the worker subscribes to its
        # control channel, and its pub/sub thread does not die.
        assert wait_until(done.exists, 60), worker.output()[-4000:]
        assert done.read_text() == "ran"
        assert wait_until(lambda: alice.pubsub_numsub(channel) == [(channel.encode(), 1)], 30), \
            worker.output()[-4000:]
        assert [w.name for w in RQWorker.all(connection=alice)] == ["w-alice"]

        # Bob: same channel name, other tenant. No subscriber, no worker, and
        # his shutdown command reaches nobody.
        assert bob.pubsub_numsub(channel) == [(channel.encode(), 0)]
        assert bob.pubsub_channels() == []
        assert RQWorker.all(connection=bob) == []
        assert bob.publish(channel, json.dumps({"command": "shutdown"})) == 0
        assert worker.wait(1.0) is None, worker.output()[-4000:]
        assert RECEIVED not in worker.output()

        # Alice's shutdown command, a PUBLISH on the control channel, reaches
        # the worker's pub/sub thread, which starts the worker's shutdown.
        send_shutdown_command(alice, "w-alice")
        assert worker.wait_for_output(RECEIVED, 30), worker.output()[-4000:]
        assert worker.wait_for_output("warm shut down requested", 30), worker.output()[-4000:]
        output = worker.output()
        assert "subscribing to channel " + channel in output
        assert "pubsub thread exiting" not in output, output[-4000:]
        assert "unknown command" not in output, output[-4000:]
        worker.stop(grace=2)
    alice.close()
    bob.close()


def test_job_result(srv, tmp_path):
    alice = login(srv, "alice")
    alice.flushall()
    job = Queue("default", connection=alice).enqueue("rqjobs.add", 2, 3)
    with rq_worker(srv, tmp_path, "w-result", "alice") as worker:
        wait_until(lambda: job.get_status(refresh=True) == "finished"
                   or "unknown command" in worker.output(), 60)
        output = worker.output()
        worker.stop(grace=2)
    assert "unknown command" not in output, output[-4000:]
    assert job.get_status(refresh=True) == "finished", output[-4000:]
    assert job.return_value() == 5
    # the result is a stream entry of the job's results key, in alice's tenant
    assert alice.type("rq:results:" + job.id) == b"stream"
    assert alice.xlen("rq:results:" + job.id) == 1
    alice.close()
