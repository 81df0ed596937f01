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

The child also lets go of everything it inherited but does not use, at once:
the listening sockets, every client's socket, the event loop's epoll and
wakeup fds, the user store's SQLite files, the append-only log. Otherwise a
parent killed with SIGKILL during a BGSAVE leaves the port taken (a
supervisor's restart fails with "address already in use", and new clients
connect to a listener nobody serves) and its clients hanging until the child
ends, seconds or minutes later. And the child dies with its parent
(PR_SET_PDEATHSIG on Linux): a snapshot nobody will read is no reason to keep
writing.
"""

import ctypes
import gc
import logging
import os
import signal
import sys

log = logging.getLogger("tenantkv.persistence")

PR_SET_PDEATHSIG = 1   # <linux/prctl.h>


def _load_prctl():
    # Looked up once in the parent: the child should do as little as
    # possible between fork and its work (the parent has threads).
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl   # libc's, in the process already
    except (OSError, AttributeError):
        return None
    prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    prctl.restype = ctypes.c_int
    return prctl


_prctl = _load_prctl()


def fork_child(work, keep=()) -> int:
    """Fork; the child runs `work()` (-> exit status, 0 = success) and exits.
    Returns the child's pid in the parent. Raises OSError if fork fails.
    `keep`: inherited file descriptors the work needs (besides stdin, stdout,
    stderr and the log file's); every other inherited one is let go in the
    child before `work` runs. Files `work` opens itself are not concerned."""
    parent = os.getpid()
    keep = set(keep) | {0, 1, 2} | _log_fds()
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
        _die_with_parent(parent)
        release_inherited_fds(keep)
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


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the parent dies. The parent may have died
    between the fork and the prctl, in which case the signal never comes
    (the child was reparented already): check the parent pid after it."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _log_fds() -> set:
    """The fds of the logging handlers' streams (stderr, a log file): the
    child logs its failure through them."""
    fds = set()
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        try:
            fds.add(stream.fileno())
        except (AttributeError, OSError, ValueError):
            pass
    return fds


def _open_fds() -> list:
    try:
        names = os.listdir("/proc/self/fd")   # Linux: exactly the open ones
    except OSError:
        try:
            names = range(os.sysconf("SC_OPEN_MAX"))
        except (OSError, ValueError):
            names = range(1024)
        names = list(names)[:65536]
    return sorted(int(name) for name in names)


def release_inherited_fds(keep: set) -> None:
    """In the child: let go of every inherited fd not in `keep`.

    Each is replaced by a /dev/null descriptor (dup2) rather than closed:
    the socket, file or epoll instance behind it is released just the same,
    but its number stays taken, so a Python object of the parent's image
    that still names it (a socket, a file) can never close or write to a
    file the child opens later and that would reuse the number."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in _open_fds():
        if fd in keep or fd == null:
            continue
        try:
            os.fstat(fd)   # the directory listing's own fd is closed already
        except OSError:
            continue
        try:
            os.dup2(null, fd, inheritable=False)
        except OSError:
            pass
    os.close(null)


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
