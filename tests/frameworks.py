"""Helpers for the real-framework tests (Celery, RQ): their workers run as
subprocesses, each in its own process group so that teardown can end the
worker and anything it forked, whatever the test did.

A worker's output goes to a log file that a failing test prints: what a
framework sends that tenantkv refuses shows up there first.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies, even
    without its teardown (a killed pytest), so no worker is left polling."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Worker:
    """A framework's worker process (`python -m <module> ...`), its output in
    `log_path`, its environment the test's plus PYTHONPATH += `path`."""

    def __init__(self, args, log_path, cwd, path=(), env=None) -> None:
        self.log_path = str(log_path)
        self.log = open(self.log_path, "wb")
        full_env = {**os.environ, **(env or {})}
        full_env["PYTHONPATH"] = os.pathsep.join(
            [*map(str, path), *filter(None, [full_env.get("PYTHONPATH")])])
        self.process = subprocess.Popen(
            [sys.executable, *args], cwd=str(cwd), env=full_env, stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent)

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> bool:
        """True once `text` is in the worker's output; False if it exits or
        `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if not self.alive():
                return text in self.output()
            time.sleep(0.1)
        return False

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if still running after `timeout`."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 10) -> None:
        """SIGTERM (a warm shutdown), `grace` seconds later SIGKILL to the
        whole group: the worker and whatever it forked (RQ's work horse)
        never outlive the test. Once only: the group is not signalled again
        after the worker was reaped."""
        if self.log.closed:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process.poll() is None:
            self.process.wait()
        self.log.close()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
