"""RQ's Lua (issue 17): jobs enqueued, then a real `rq worker --burst --with-scheduler` (a subprocess,
logged in as a non-root user) runs 100 jobs and stores their results. The
scheduler takes and releases its per-queue locks with Lua scripts and moves
a job scheduled in the past onto the queue.

RQ 3 stores a job's result with XADD (streams, issue 18) and reads it back
with XREVRANGE. TENANTKV_FW_TARGET=redis-server runs the same tests
against redis-server, where they must pass too.
"""

from datetime import datetime, timedelta, timezone

import pytest
from rq import Queue
from rq.job import Job

from conftest import login
from frameworks import Worker, needs_tenants, redis_url, target_fixture

USERS = {"alice": "alice-rqlua-pw", "bob": "bob-rqlua-pw"}

JOBS = '''
def square(x):
    return x * x
'''

srv = target_fixture(USERS, "root-rqlua-pw")


def burst_worker(srv, tmp_path, name: str, user: str) -> Worker:
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir(exist_ok=True)
    (jobs_dir / "rqlua.py").write_text(JOBS)
    return Worker(["-m", "rq.cli", "worker", "--url", redis_url(srv, user), "--name", name,
                   "--burst", "--with-scheduler", "--logging_level", "DEBUG", "default"],
                  tmp_path / ("%s.log" % name), cwd=jobs_dir, path=[jobs_dir])


def run_burst(srv, tmp_path, name: str, user: str) -> str:
    """Run a burst worker to its end; its output."""
    with burst_worker(srv, tmp_path, name, user) as worker:
        code = worker.wait(120)
        output = worker.output()
    assert code == 0, output[-4000:]
    return output


@pytest.mark.slow        # 100 forked work horses: 5-10 s on the loaded 2-core machine
def test_burst_worker_runs_100_jobs_with_results(srv, tmp_path):
    alice = login(srv, "alice")
    alice.flushall()
    queue = Queue("default", connection=alice)
    jobs = [queue.enqueue("rqlua.square", i) for i in range(99)]
    # One more, scheduled in the past: the scheduler (its locks are Lua)
    # moves it onto the queue before the burst.
    jobs.append(queue.enqueue_at(datetime.now(timezone.utc) - timedelta(seconds=1),
                                 "rqlua.square", 99))
    assert len(queue) == 99
    output = run_burst(srv, tmp_path, "w-burst", "alice")
    assert "unknown command 'EVAL" not in output, output[-4000:]
    assert "Acquired scheduler lock for default" in output, output[-4000:]
    statuses = [job.get_status(refresh=True) for job in Job.fetch_many(
        [job.id for job in jobs], connection=alice)]
    assert "unknown command" not in output, output[-4000:]
    assert statuses == ["finished"] * 100, output[-4000:]
    assert [job.return_value() for job in jobs] == [i * i for i in range(100)]
    assert len(queue) == 0
    alice.close()


def test_second_tenant_burst_worker_finds_nothing(srv, tmp_path):
    needs_tenants(srv)
    alice = login(srv, "alice")
    bob = login(srv, "bob")
    alice.flushall()
    bob.flushall()
    queue = Queue("default", connection=alice)
    jobs = [queue.enqueue("rqlua.square", i) for i in range(3)]
    queue.enqueue_at(datetime.now(timezone.utc) - timedelta(seconds=1), "rqlua.square", 3)
    output = run_burst(srv, tmp_path, "w-bob", "bob")
    assert "unknown command" not in output, output[-4000:]
    # Bob's worker and scheduler, same queue names: nothing of alice's ran
    # or moved, and his scheduler's locks were his own.
    assert [job.get_status(refresh=True) for job in jobs] == ["queued"] * 3
    assert len(queue) == 3
    assert len(queue.scheduled_job_registry) == 1
    assert Queue("default", connection=bob).count == 0
    alice.close()
    bob.close()
