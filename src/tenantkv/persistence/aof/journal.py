"""The append-only log being written: the incremental file, this turn's records.

Group commit: records accumulate in `buf` during one loop turn; they are
written (and with appendfsync always, fdatasync'ed) before any reply of that
turn goes out (server/connection.py, flush_connections), one write and one
fsync per turn. everysec: written at the end of the turn, fsynced once a
second by a background thread. no: written only.

A write that fails (a full disk): as Redis 7 (aof.c, flushAppendOnlyFile),
a short write is cut off again (ftruncate to where it began, else only the
unwritten tail is kept), so the file never holds a torn record followed by its
own retry; the records stay in memory (`unwritten`) and go first at the next
write; `aof_last_write_status` turns `err` and write commands are refused with
-MISCONF (persistence/diskerror.py), so the buffer stops growing; the cron
retries every second (`retry`) with or without traffic, and the first write
that succeeds accepts writes again. A failed background fsync (everysec)
refuses writes the same way until an fsync succeeds.

appendfsync always: Redis exits on such an error, because the replies of the
failed write are already in its output buffers. Here replies leave only after
the group commit, so we can stop short of that: after a failed write, no
output that could show a write the log does not hold leaves the server (the
replies queued when the write failed, and any later reply that depends on the
data: a read could show the un-logged write; MISCONF refusals and replies
that show no data go out), and the connections holding such output stop being
read (`hold`). When the retry succeeds, the held output goes out and
reading resumes (`_release`). Nothing is acknowledged, or seen, before it is
on disk, and freeing space is all the recovery needed: no exit, no restart.
"""

import errno
import logging
import os
import threading
import time

from tenantkv.dispatch.observers import UNCHANGED_ON_ZERO
from tenantkv.persistence import diskerror
from tenantkv.persistence.aof.format import (
    CONTEXT, EXEC_RECORD, MULTI_RECORD, dataset_records, encode_command, key_records,
)
from tenantkv.persistence.aof.recorders import RECORDERS, nothing

log = logging.getLogger("tenantkv.aof")

RETRY_INTERVAL = 1.0       # seconds between retries of a failed write (Redis: every second)
ERROR_LOG_INTERVAL = 30    # seconds between repeated error lines (AOF_WRITE_LOG_ERROR_RATE)


class Journal:
    """The incremental file being appended to, and the records of this turn."""

    def __init__(self, server, fd: int, path: str, size: int, fsync: str) -> None:
        self.server = server
        self.loop = server.loop
        self.fd = fd
        self.path = path
        self.size = size          # bytes in the current incremental file
        self.fsync_mode = fsync
        self.buf: list = []
        self.tenant = None        # the context of the last record written
        self.index = -1
        self.multi_mark = None    # inside EXEC: where its records start in buf
        self.unsynced = False
        # Failures (see the module docstring): what a failed write left, to be
        # written before anything newer; the errno of the failed write (or,
        # with always, fdatasync) and of the background fsync; their text,
        # None when both are fine (writes are refused while it is set).
        self.unwritten = b""
        self.write_errno = 0
        self.fsync_errno = 0
        self.error = None
        self.last_write_ok = True
        # appendfsync always after a failed write: output waits (hold()).
        self.holding = False
        self.held: dict = {}      # connection -> whether hold() paused its reading
        self.hold_all = False     # the write just failed: hold all queued output
        self.last_retry = 0.0
        self.last_error_log = 0.0
        self.last_fsync = time.monotonic()
        self.lock = threading.Lock()   # fd swaps vs the everysec fsync thread
        self.stop = threading.Event()
        self.thread = None
        self.noop_on_zero = UNCHANGED_ON_ZERO
        # The replication stream (replication/core.py): feed(data) gets each
        # turn's records as they leave for the file, so replicas receive
        # exactly what the log holds, in the same order. None: no replicas.
        self.feed = None
        # The clients whose writes are in `buf`, while there is a feed: each
        # gets the offset its writes end at once they are fed (conn.woff,
        # what WAIT waits for).
        self.writers: list = []
        self.start_fsync_thread()

    # -- recording --------------------------------------------------------------

    def record(self, conn, db, cmd, args, reply) -> None:
        """A write command succeeded (dispatch/observers.py calls this)."""
        name = cmd.name
        recorder = RECORDERS.get(name)
        if recorder is None:
            if name in self.noop_on_zero and nothing(reply):
                return
            if self.feed is not None:
                self.writers.append(conn)
            self.emit(conn.tenant.name, db.index, args)
            return
        records = recorder(conn, db, args, reply)
        if records and self.feed is not None:
            self.writers.append(conn)
        for argv in records:
            self.emit(conn.tenant.name, db.index, argv)

    def emit(self, tenant: str, index: int, args) -> None:
        buf = self.buf
        if not buf:
            self.loop.call_soon(self.flush)   # records with no reply (expiry) go out too
        if index != self.index or tenant != self.tenant:
            self.tenant, self.index = tenant, index
            buf.append(encode_command([CONTEXT, tenant.encode("utf-8", "surrogateescape"),
                                       b"%d" % index]))
        buf.append(encode_command(args))

    def expired(self, db, key: bytes) -> None:
        """A key expired (Database._expire / active_expire): log its DEL."""
        owner = db.owner
        if owner is None:
            return
        self.emit(owner, db.index, [b"DEL", key])

    def dropped_tenant(self, name: str) -> None:
        """ACL DELUSER removed a tenant and its data."""
        self.emit(name, 0, [b"FLUSHALL"])
        self.emit(name, 0, [b"FUNCTION", b"FLUSH"])   # its libraries too

    def replaced(self, tenants) -> None:
        """The data of these tenants was replaced wholesale, not by write
        commands (KDB LOAD, DEBUG RELOAD): log each one's data as it is now."""
        for tenant in tenants:
            self.emit(tenant.name, 0, [b"FLUSHALL"])
            self.emit(tenant.name, 0, [b"FUNCTION", b"FLUSH"])   # FLUSHALL keeps them
            self._raw(dataset_records({tenant.name: tenant}))

    def keys_set(self, tenant, keys) -> None:
        """These (db, key) of `tenant` were set wholesale (KDB IMPORT): log
        each one's value as it is now."""
        for db, key in keys:
            self.emit(tenant.name, db.index, [b"DEL", key])
            value = db.data.get(key)
            if value is not None:
                self._raw(key_records(key, value, db.expires.get(key)))

    def append(self, records) -> None:
        """Records made elsewhere (a script's effects, scripting/engine.py),
        as they are."""
        self._raw(records)

    def _raw(self, records) -> None:
        buf = self.buf
        if not buf:
            self.loop.call_soon(self.flush)
        buf.extend(records)
        self.tenant, self.index = None, -1   # the records may have switched context

    def multi_begin(self) -> None:
        self.multi_mark = len(self.buf)

    def multi_end(self) -> None:
        mark, self.multi_mark = self.multi_mark, None
        if mark is None:
            return
        buf = self.buf
        if len(buf) > mark:   # the transaction wrote: all of it or nothing at load
            buf.insert(mark, MULTI_RECORD)
            buf.append(EXEC_RECORD)

    # -- writing ----------------------------------------------------------------

    def flush(self) -> None:
        """Write this turn's records (and fsync them with appendfsync always).
        Called before any reply of the turn is handed to a socket."""
        buf = self.buf
        mark = self.multi_mark
        if mark is None:
            if buf:
                data = buf[0] if len(buf) == 1 else b"".join(buf)
                buf.clear()
            elif self.unwritten:
                data = b""
            else:
                return
        elif mark:
            # Inside EXEC (a handler flushed a client): only what precedes the
            # transaction, whose records must stay together.
            data = b"".join(buf[:mark])
            del buf[:mark]
            self.multi_mark = 0
        elif self.unwritten:
            data = b""
        else:
            return
        feed = self.feed
        if feed is not None and data:
            feed(data)
            writers = self.writers
            if writers and self.multi_mark is None:   # (inside EXEC: theirs are still to come)
                offset = self.server.replication.offset
                for conn in writers:
                    conn.woff = offset
                writers.clear()
        if self.unwritten:   # a failed write's records go first
            data = self.unwritten + data
            self.unwritten = b""
        self._write(data)

    def _write(self, data: bytes) -> None:
        start = self.size
        written, error = _write_all(self.fd, data)
        if error == 0:
            if self.fsync_mode == "always":
                try:
                    synced = time.monotonic()
                    os.fdatasync(self.fd)
                    # LATENCY's aof-fsync-always event (root's: every tenant's writes)
                    self.server.latency.add("aof-fsync-always", time.monotonic() - synced)
                except OSError as exc:
                    # Written but not known to be on disk (and after a failed
                    # fsync the kernel may have dropped the pages): undone and
                    # written again below, as a short write.
                    error = exc.errno or errno.EIO
            else:
                self.unsynced = True
        if error == 0:
            self.size = start + written
            if self.write_errno:
                self._recovered()
            return
        if written:
            # A record cut in the middle (or, retried, written twice) would stop
            # the next start: cut the file back to where this write began.
            try:
                os.ftruncate(self.fd, start)
                written = 0
            except OSError as exc:
                # Keep the part that is in the file; only the rest is retried.
                self._log_error("Could not remove short write from the append-only file %s "
                                "(ftruncate: %s); the rest is kept for the retry",
                                self.path, exc.strerror)
        self.size = start + written
        self.unwritten = data[written:]
        self._failed(error)

    def _failed(self, number: int) -> None:
        self._log_error("Error writing to the AOF file %s: %s (%d bytes kept in memory, "
                        "retried every second; write commands are refused meanwhile)",
                        self.path, os.strerror(number), len(self.unwritten))
        if number != self.write_errno:
            self.write_errno = number
            self._status_changed()

    def _log_error(self, message: str, *args) -> None:
        # As Redis: one line per ERROR_LOG_INTERVAL while the error lasts.
        now = time.monotonic()
        if not self.write_errno or now - self.last_error_log > ERROR_LOG_INTERVAL:
            self.last_error_log = now
            log.warning(message, *args)

    def _recovered(self) -> None:
        log.warning("AOF write error looks solved, tenantkv can write again.")
        self.write_errno = 0
        self._status_changed()

    def _status_changed(self) -> None:
        """On the loop thread, after write_errno or fsync_errno changed."""
        number = self.write_errno or self.fsync_errno
        self.error = os.strerror(number) if number else None
        self.last_write_ok = not number
        holding = bool(self.write_errno) and self.fsync_mode == "always"
        if holding != self.holding:
            self.hold_all = holding
            self.server.events.mark_readers(self._taint if holding else None)
        self.holding = holding
        diskerror.update(self.server)
        if self.held and not self.holding:
            self._release()

    def retry(self) -> None:
        """The server cron: while a write (or fsync) failed, try again once a
        second, traffic or not (Redis's serverCron does the same)."""
        if not self.write_errno:
            return
        now = time.monotonic()
        if now - self.last_retry < RETRY_INTERVAL:
            return
        self.last_retry = now
        if self.unwritten or self.buf:
            self.flush()
            return
        try:   # always: written, but the fdatasync failed and could not be undone
            os.fdatasync(self.fd)
        except OSError as exc:
            self._failed(exc.errno or errno.EIO)
        else:
            self._recovered()

    # -- appendfsync always, while a write fails --------------------------------

    def hold(self, conns) -> list:
        """Of `conns` (connections with output to send), those whose output may
        leave now; the others keep it queued and stop being read until
        `_release` (a client waiting for a reply sends no more, and a
        pipelining one cannot make the server buffer without end).

        Held: every connection that had output queued when the write failed
        (the replies of the failed turn acknowledge writes the log does not
        hold), and every connection that ran a command that may show data
        since (`_taint`, called by dispatch/observers.py's mark_readers: a read
        could show an un-logged write). The others' output goes out: MISCONF
        refusals, and replies that show no data (HELLO, CLIENT, SELECT,
        MULTI...), so that clients can still connect and see the error."""
        held = self.held
        if self.hold_all:
            self.hold_all = False
            for conn in (*conns, *self.server.pending_writes):
                if conn.unsent and conn not in held and not conn.closing:
                    self._hold(conn)
        return [conn for conn in conns if conn not in held]

    def _taint(self, conn) -> None:
        if conn not in self.held and not conn.closing:
            self._hold(conn)

    def _hold(self, conn) -> None:
        transport = conn.transport
        paused = transport is not None and transport.is_reading()
        if paused:
            transport.pause_reading()
        self.held[conn] = paused

    def _release(self) -> None:
        """The log caught up: the held output goes out, reading resumes."""
        held, self.held = self.held, {}
        self.server.flush_now([conn for conn in held if not conn.closing])
        for conn, paused in held.items():
            if (paused and not conn.closing and not conn.paused and conn.waiting is None
                    and conn.backlog is None):
                conn.transport.resume_reading()
        log.info("Released the output of %d client(s) held while the AOF could not be written",
                 len(held))

    # -- fsync ------------------------------------------------------------------

    def start_fsync_thread(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._fsync_loop, name="aof-fsync", daemon=True)
            self.thread.start()

    def _fsync_loop(self) -> None:
        while not self.stop.wait(1.0):
            if self.fsync_mode == "everysec" and self.unsynced:
                self.unsynced = False
                failed = 0
                with self.lock:
                    try:
                        os.fdatasync(self.fd)
                        self.last_fsync = time.monotonic()
                    except OSError as exc:
                        # EBADF/EINVAL: the file was closed meanwhile (as Redis, not a failure).
                        if exc.errno not in (errno.EBADF, errno.EINVAL):
                            failed = exc.errno or errno.EIO
                            self.unsynced = True   # retried in a second
                if failed != self.fsync_errno:
                    if failed:
                        log.warning("Fail to fsync the AOF file %s: %s", self.path,
                                    os.strerror(failed))
                    try:
                        self.loop.call_soon_threadsafe(self._fsync_status, failed)
                    except RuntimeError:   # the loop is closed: the server is exiting
                        return

    def _fsync_status(self, number: int) -> None:
        if number != self.fsync_errno:
            self.fsync_errno = number
            self._status_changed()

    def switch(self, fd: int, path: str) -> None:
        """Go on in a new incremental file (a rewrite started). Raises OSError
        (and closes `fd`) if the records so far cannot be written to the old
        file: they precede the rewrite's starting point, so neither the new
        incremental file nor the lost records may be left to the rewrite."""
        self.flush()
        if self.unwritten:
            os.close(fd)
            raise OSError(self.write_errno, "cannot switch the AOF to %s: %s"
                          % (path, os.strerror(self.write_errno)))
        with self.lock:
            os.fdatasync(self.fd)
            os.close(self.fd)
            self.fd, self.path, self.size = fd, path, 0
        self.tenant, self.index = None, -1   # a new file starts without context
        self.unsynced = False

    def set_fsync_mode(self, mode: str) -> None:
        """CONFIG SET appendfsync."""
        self.fsync_mode = mode
        if mode == "always":
            self.sync()
        self._status_changed()   # holding output depends on the mode

    def sync(self) -> None:
        self.flush()
        with self.lock:
            os.fdatasync(self.fd)
        self.unsynced = False
        if self.fsync_errno:
            self._fsync_status(0)

    def close(self) -> None:
        self.flush()
        if self.unwritten:
            log.error("Closing the AOF file %s with %d bytes that could not be written (%s): "
                      "they are lost", self.path, len(self.unwritten),
                      os.strerror(self.write_errno))
        if self.holding:   # the log is being turned off: nothing left to wait for
            self.holding = False
            self.server.events.mark_readers(None)
            self._release()
        self.stop.set()
        with self.lock:
            try:
                os.fdatasync(self.fd)
            finally:
                os.close(self.fd)
                self.fd = -1


def _write_all(fd: int, data: bytes):
    """(bytes written, 0) or, when a write fails, (bytes written before it,
    errno); a write that writes nothing counts as a full disk (ENOSPC)."""
    view = memoryview(data)
    total = 0
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError as exc:
            return total, exc.errno or errno.EIO
        if written <= 0:
            return total, errno.ENOSPC
        total += written
        view = view[written:]
    return total, 0


class StreamJournal(Journal):
    """The records of every write with no file behind them: what the server
    uses while it has replicas to feed (`feed`) and the append-only log is
    off. The log's own journal takes its place (and its feed) when the log
    is turned on (persistence/aof/appendonly.py)."""

    def __init__(self, server, feed) -> None:
        super().__init__(server, -1, "", 0, "no")
        self.feed = feed

    def start_fsync_thread(self) -> None:
        pass   # nothing to fsync

    def _write(self, data: bytes) -> None:
        pass   # flush() fed it to the replicas already

    def sync(self) -> None:
        self.flush()

    def close(self) -> None:
        self.flush()
