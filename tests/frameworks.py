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


# --- Where the framework tests run: tenantkv, or redis-server as the reference.
#
# TENANTKV_FW_TARGET=redis-server runs the same tests against Debian's
# redis-server 7.0, its users made with ACL SETUSER (all keys, all commands):
# a test that fails there is wrong, not tenantkv. The isolation checks need
# tenants, which redis-server has not: there they skip, saying why.
# TENANTKV_FW_MONITOR=<file> (redis-server only) appends every command the
# frameworks send, and those their scripts call, to <file> (MONITOR's
# client type, a tab, the command): what a framework needs of a server.

TARGET = os.environ.get("TENANTKV_FW_TARGET", "tenantkv")
if TARGET not in ("tenantkv", "redis-server"):
    raise RuntimeError("TENANTKV_FW_TARGET: tenantkv or redis-server, not %r" % TARGET)


class RedisTarget:
    """redis-server with ACL users: `port` and `passwords` as ServerProcess."""

    tenants = False

    def __init__(self, directory, users: dict) -> None:
        import threading

        import redis
        from compat import harness
        from conftest import free_port

        if harness.redis_server_path() is None:
            raise RuntimeError("TENANTKV_FW_TARGET=redis-server: redis-server is not installed")
        self.server = harness.RedisServer(free_port(), str(directory))
        self.port = self.server.port
        self.passwords = dict(users)
        admin = redis.Redis(port=self.port)
        for name, password in users.items():
            admin.acl_setuser(name, enabled=True, passwords=["+" + password],
                              keys=["~*"], channels=["*"], commands=["+@all"])
        admin.close()
        self.monitor = None
        path = os.environ.get("TENANTKV_FW_MONITOR")
        if path:
            self.monitor = redis.Redis(port=self.port).monitor()
            self.monitor.__enter__()   # sends MONITOR and reads its OK

            def copy() -> None:
                with open(path, "a") as out:
                    try:
                        while True:
                            seen = self.monitor.next_command()
                            # "lua" for a script's redis.call, else "tcp"/"unix"
                            out.write("%s\t%s\n" % (seen["client_type"], seen["command"]))
                            out.flush()
                    except Exception:
                        return     # the server stopped

            threading.Thread(target=copy, daemon=True).start()

    def client(self, **kwargs):
        import redis

        return redis.Redis(port=self.port, **kwargs)

    def stop(self) -> None:
        self.server.stop()


def target_fixture(users: dict, root_password: str):
    """A module-scoped fixture: the server the framework tests of a module
    talk to, with the non-root `users` (name -> password). Its `tenants`
    says whether each user is a tenant of its own (tenantkv)."""
    import pytest

    from conftest import locked_server

    @pytest.fixture(scope="module")
    def fixture(request, tmp_path_factory):
        data_dir = tmp_path_factory.mktemp(request.module.__name__.removeprefix("test_"))
        if TARGET == "redis-server":
            target = RedisTarget(data_dir, users)
            try:
                yield target
            finally:
                target.stop()
            return
        with locked_server(data_dir, users, root_password) as proc:
            proc.tenants = True
            yield proc

    return fixture


def needs_tenants(target) -> None:
    """Skip an isolation check, loudly, where users are not tenants."""
    import pytest

    if not getattr(target, "tenants", True):
        pytest.skip("isolation check: %s has no tenants (TENANTKV_FW_TARGET)" % TARGET)


def redis_url(target, name: str, db: int = 0) -> str:
    return "redis://%s:%s@127.0.0.1:%d/%d" % (name, target.passwords[name], target.port, db)
