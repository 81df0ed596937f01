"""Forking a background writer (BGSAVE, BGREWRITEAOF) the way Redis does.

The child gets a copy-on-write image of the whole process at the moment of the
fork: it sees the dataset as it was, and the parent goes on serving. The child
must never touch what the parent owns — the event loop, client sockets, the
SQLite user store, the append-only log's file: it writes its file and leaves
with os._exit (no atexit handlers, no flushing of inherited buffers, no loop
teardown).

CPython touches an object's header whenever it counts a reference to it, so
the pages the child reads get copied anyway; what can be avoided is the
garbage collector walking (and so writing to) every tracked object, in the
child and in the parent while the child runs: gc.freeze() before the fork
moves every object to the permanent generation. The parent calls
`child_done()` (gc.unfreeze) after reaping the child.
"""

import gc
import logging
import os
import signal

log = logging.getLogger("tenantkv.persistence")


def fork_child(work) -> int:
    """Fork; the child runs `work()` (-> exit status, 0 = success) and exits.
    Returns the child's pid in the parent. Raises OSError if fork fails."""
    gc.freeze()
    try:
        pid = os.fork()
    except OSError:
        gc.unfreeze()
        raise
    if pid:
        return pid
    status = 1
    try:
        gc.disable()
        # The parent's signal handlers (uvloop's) write to a wakeup fd shared
        # with the parent: a signal sent to the child must not reach the
        # parent's loop. SIGTERM/SIGINT simply end the child.
        try:
            signal.set_wakeup_fd(-1)
        except (ValueError, OSError):
            pass
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        status = work()
    except BaseException:
        try:
            log.exception("background child %d failed", os.getpid())
        except BaseException:
            pass
        status = 1
    finally:
        os._exit(status if isinstance(status, int) else 1)


def child_done() -> None:
    """In the parent, once the child is reaped: let the collector see everything again."""
    gc.unfreeze()


def poll(pid: int):
    """Non-blocking reap: None while `pid` runs, else (exited ok?, description)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False, "child %d vanished" % pid
    if done == 0:
        return None
    return describe(status)


def describe(status: int):
    if os.WIFSIGNALED(status):
        return False, "terminated by signal %d" % os.WTERMSIG(status)
    code = os.waitstatus_to_exitcode(status)
    return code == 0, "exit code %d" % code


def kill_and_reap(pid: int) -> None:
    """Stop a child now (SIGUSR1, as Redis) and wait for it."""
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
