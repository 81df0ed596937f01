"""Process faults (issue 11, points 3, 4 and 8): a parent killed during a
background save, a shutdown under write load, memory and file-descriptor
limits. Real server processes on loopback, real clients; every wait bounded."""

import os
import random
import resource
import signal
import socket
import threading
import time

import pytest
import redis

from conftest import ServerProcess


def children_of(pid: int) -> list:
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def wait_for_child(pid: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children_of(pid)
        if kids:
            return kids[0]
        time.sleep(0.01)
    raise AssertionError("no background child appeared")


def gone(pid: int) -> bool:
    """Exited (a zombie nobody has reaped yet counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def open_files(pid: int) -> list:
    out = []
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append(os.readlink("/proc/%d/fd/%s" % (pid, name)))
        except OSError:
            pass
    return out


def port_bindable(port: int) -> bool:
    """What a restarted server does first: bind and listen on the port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


def fill(client, count: int, prefix: str = "k") -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set("%s%d" % (prefix, i), "v%d" % i)
    pipe.execute()


# -- point 3: the parent killed while its child writes --------------------------------

@pytest.mark.parametrize("job", ["bgsave", "bgrewriteaof"])
def test_parent_killed_during_background_job_frees_port_and_child(tmp_path, job):
    # 3,000 keys at 2 ms each: the child would write for 6 s.
    extra = ["--save", "", "--rdb-key-save-delay", "2000"]
    if job == "bgrewriteaof":
        extra += ["--appendonly", "yes"]
    server = ServerProcess(tmp_path, *extra)
    try:
        r = server.client()
        fill(r, 3000)
        r.execute_command(job.upper())
        child = wait_for_child(server.process.pid)
        # The child let go of the sockets (listener, clients, the loop's),
        # the user store and the log right after the fork, while its parent lives.
        deadline = time.monotonic() + 1.0
        while True:
            files = open_files(child)
            held = [f for f in files if f.startswith(("socket:", "anon_inode:"))
                    or "users.db" in f or f.endswith(".incr.aof")]
            if not held:
                break
            assert time.monotonic() < deadline, "the child still holds %s" % held
            time.sleep(0.01)
        assert server.alive()
        watcher = server.raw()   # a client connected when the parent dies
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(5)
        killed = time.monotonic()
        # The client sees the connection end, instead of hanging on the child's copy.
        watcher.settimeout(1.0)
        try:
            assert watcher.recv(16) == b""
        except ConnectionResetError:
            pass
        watcher.close()
        # The port is free at once, and the child is gone with its parent.
        while not (port_bindable(server.port) and gone(child)):
            assert time.monotonic() - killed < 1.0, (
                "port %d still taken or child %d alive 1 s after the parent's SIGKILL"
                % (server.port, child))
            time.sleep(0.01)
    finally:
        server.stop()
        if not gone(child):
            os.kill(child, signal.SIGKILL)
    # A supervisor's restart on the same port succeeds (and it is the new process
    # that answers, not a listener left in an orphan).
    (tmp_path / "restart").mkdir()
    with ServerProcess(tmp_path / "restart", "--save", "", port=server.port) as again:
        assert again.client().info("server")["process_id"] == again.process.pid
