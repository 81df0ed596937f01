"""The append-only log: every successful write, as RESP, replayed at start-up.

Layout (Redis 7's multi-part AOF, see docs/aof-format.md): a directory
<dir>/<appenddirname> holding one base file (the data set at some moment,
written by a rewrite), the incremental logs written since, and a manifest
naming them in order. The manifest is replaced atomically (temp file, fsync,
rename, directory fsync); the files it names are the truth.

Records are RESP arrays of bulk strings, exactly as clients send commands,
plus one pseudo-command clients cannot send (it is in no command table):
`@context <tenant key> <db index>`, written whenever the tenant or database of
the next record differs from the previous record's. A MULTI ... EXEC pair
around the records of one EXEC makes the transaction all-or-nothing at load.

Determinism: a record must do at replay exactly what the command did live.
Commands whose effect depends on the clock or on chance are logged as their
effect (`recorders` below, and docs/aof-format.md for the list and reasons):
relative expiries become absolute, SPOP becomes SREM of what it popped,
INCRBYFLOAT the SET of its result, a blocking pop its non-blocking form. Keys
that expire (lazily or by the active cycle) are logged as DEL, as Redis
propagates them: replay runs with expiry suspended, so that
`SET k v PXAT t` followed by `APPEND k x` at any later time loads as it ran.

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
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager

import hiredis

from tenantkv.dispatch.call import replay
from tenantkv.dispatch.table import COMMANDS
from tenantkv.errors import CommandError
from tenantkv.keyspace import database as database_module
from tenantkv.keyspace.zset import ZSet
from tenantkv.persistence import diskerror
from tenantkv.persistence.kdb.format import MAGIC as KDB_MAGIC
from tenantkv.protocol.encoder import EMPTY_ARRAY, NULL_ARRAY

log = logging.getLogger("tenantkv.aof")

CONTEXT = b"@context"
ITEMS_PER_COMMAND = 64     # as Redis's AOF_REWRITE_ITEMS_PER_CMD
READ_CHUNK = 1 << 20
RETRY_INTERVAL = 1.0       # seconds between retries of a failed write (Redis: every second)
ERROR_LOG_INTERVAL = 30    # seconds between repeated error lines (AOF_WRITE_LOG_ERROR_RATE)


class AofError(Exception):
    """A log that cannot be loaded: `path`, `offset` (or None) and why.

    `kind` says what a repair could do: "format" (bytes that are not a
    well-formed record, or a torn tail: truncating at `good`, the end of the
    last good record, makes the file loadable, losing what follows) or
    "record" (a well-formed record this server cannot replay: an unknown
    command, a bad @context...; truncating would throw good data away, so
    nothing repairs it automatically)."""

    good = 0        # scan(): where the last good record (or MULTI block) ended
    good_line = 1   # and its line, counted as redis-check-aof does

    def __init__(self, path: str, offset, reason: str, kind: str = "format") -> None:
        super().__init__(path, offset, reason)
        self.path, self.offset, self.reason, self.kind = path, offset, reason, kind
        self.index = 0   # from Replayer.apply: which command of the batch failed

    def __str__(self) -> str:
        where = " at offset %d" % self.offset if self.offset is not None else ""
        if self.kind == "record":   # as Redis: "Unknown command 'x' reading the append only file"
            return ("%s%s reading the append only file %s%s"
                    % (self.reason[:1].upper(), self.reason[1:], self.path, where))
        return ("Bad file format reading the append only file %s%s: %s"
                % (self.path, where, self.reason))


def encode_command(args) -> bytes:
    n = len(args)
    if n == 3:   # SET, INCRBY, LPUSH one element...: the most common shapes, one format
        a, b, c = args
        return b"*3\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(a), a, len(b), b, len(c), c)
    if n == 2:
        a, b = args
        return b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(a), a, len(b), b)
    return b"*%d\r\n%s" % (n, b"".join([b"$%d\r\n%s\r\n" % (len(a), a) for a in args]))


MULTI_RECORD = encode_command([b"MULTI"])
EXEC_RECORD = encode_command([b"EXEC"])


# -- what to log for each write command -----------------------------------------
#
# recorder(conn, db, args, reply) -> list of argument lists to log. Commands
# without one are logged as sent, unless they are in UNCHANGED_ON_ZERO and
# replied 0 / null (they changed nothing). State-based recorders read the key
# after the command ran and log what it is now: always right whatever the
# options (NX, XX, GET, GT, LT...) did.

def _nothing(reply) -> bool:
    return (reply is None or reply is NULL_ARRAY or reply is EMPTY_ARRAY
            or (type(reply) is int and reply == 0) or (type(reply) is list and not reply))


def _key_state(db, key: bytes) -> list:
    """The string under `key` now, with its expiry: SET [PXAT], or DEL."""
    value = db.data.get(key)
    if value is None:
        return [[b"DEL", key]]
    when = db.expires.get(key)
    if type(value) is not bytes:   # not a string (cannot happen after SET): its TTL only
        return [[b"PEXPIREAT", key, b"%d" % when]] if when is not None else [[b"PERSIST", key]]
    if when is None:
        return [[b"SET", key, value]]
    return [[b"SET", key, value, b"PXAT", b"%d" % when]]


def _set_state(conn, db, args, reply):
    if len(args) == 3:   # plain SET k v (SETEX and PSETEX have 4): as sent
        return (args,)
    return _key_state(db, args[1])


def _expire_state(conn, db, args, reply):
    """EXPIRE & co., GETEX with an option: the key's expiry now, absolute."""
    if _nothing(reply):
        return ()
    key = args[1]
    if key not in db.data:
        return [[b"DEL", key]]   # a time in the past deleted it
    when = db.expires.get(key)
    return [[b"PEXPIREAT", key, b"%d" % when]] if when is not None else [[b"PERSIST", key]]


def _getex(conn, db, args, reply):
    if reply is None or len(args) == 2:
        return ()   # a missing key, or no option: nothing changed
    return _expire_state(conn, db, args, 1)


def _spop(conn, db, args, reply):
    if _nothing(reply):
        return ()
    members = [reply] if type(reply) is bytes else list(reply)
    return [[b"SREM", args[1], *members[i:i + ITEMS_PER_COMMAND]]
            for i in range(0, len(members), ITEMS_PER_COMMAND)]


def _incrbyfloat(conn, db, args, reply):
    return [[b"SET", args[1], reply, b"KEEPTTL"]]


def _hincrbyfloat(conn, db, args, reply):
    return [[b"HSET", args[1], args[2], reply]]


def _blpop(name: bytes):
    def record(conn, db, args, reply):
        return () if _nothing(reply) else [[name, reply[0]]]
    return record


def _blmove(conn, db, args, reply):
    return () if reply is None else [[b"LMOVE", args[1], args[2], args[3], args[4]]]


def _brpoplpush(conn, db, args, reply):
    return () if reply is None else [[b"LMOVE", args[1], args[2], b"RIGHT", b"LEFT"]]


def _mpop(name: bytes):
    # BLMPOP timeout numkeys key... side [COUNT n] -> LMPOP 1 key side COUNT popped
    def record(conn, db, args, reply):
        if _nothing(reply):
            return ()
        numkeys = int(args[2])
        side = args[3 + numkeys]
        return [[name, b"1", reply[0], side, b"COUNT", b"%d" % len(reply[1])]]
    return record


RECORDERS = {
    "set": _set_state, "setex": _set_state, "psetex": _set_state,
    "expire": _expire_state, "pexpire": _expire_state,
    "expireat": _expire_state, "pexpireat": _expire_state,
    "getex": _getex,
    "spop": _spop,
    "incrbyfloat": _incrbyfloat, "hincrbyfloat": _hincrbyfloat,
    "blpop": _blpop(b"LPOP"), "brpop": _blpop(b"RPOP"),
    "bzpopmin": _blpop(b"ZPOPMIN"), "bzpopmax": _blpop(b"ZPOPMAX"),
    "blmove": _blmove, "brpoplpush": _brpoplpush,
    "blmpop": _mpop(b"LMPOP"), "bzmpop": _mpop(b"ZMPOP"),
}


def _unchanged_on_zero():
    from tenantkv.dispatch.observers import UNCHANGED_ON_ZERO
    return UNCHANGED_ON_ZERO


# -- the log being written ----------------------------------------------------------

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
        self.noop_on_zero = _unchanged_on_zero()
        self.start_fsync_thread()

    # -- recording --------------------------------------------------------------

    def record(self, conn, db, cmd, args, reply) -> None:
        """A write command succeeded (dispatch/observers.py calls this)."""
        name = cmd.name
        recorder = RECORDERS.get(name)
        if recorder is None:
            if name in self.noop_on_zero and _nothing(reply):
                return
            self.emit(conn.tenant.name, db.index, args)
            return
        for argv in recorder(conn, db, args, reply):
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

    def replaced(self, tenants) -> None:
        """The data of these tenants was replaced wholesale, not by write
        commands (KDB LOAD, DEBUG RELOAD): log each one's data as it is now."""
        for tenant in tenants:
            self.emit(tenant.name, 0, [b"FLUSHALL"])
            self._raw(dataset_records({tenant.name: tenant}))

    def keys_set(self, tenant, keys) -> None:
        """These (db, key) of `tenant` were set wholesale (KDB IMPORT): log
        each one's value as it is now."""
        for db, key in keys:
            self.emit(tenant.name, db.index, [b"DEL", key])
            value = db.data.get(key)
            if value is not None:
                self._raw(key_records(key, value, db.expires.get(key)))

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
                    os.fdatasync(self.fd)
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


# -- reading ---------------------------------------------------------------------

class ScanResult:
    __slots__ = ("path", "size", "good", "good_line", "torn", "records", "commands")

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = 0
        self.good = 0        # offset after the last complete record (or MULTI block)
        self.good_line = 1   # the line there, counted as redis-check-aof does (CRLFs + 1)
        self.torn = None     # why the part after `good` is unusable, or None
        self.records = 0
        self.commands = 0


def scan(path: str, apply=None) -> ScanResult:
    """Read a log file. `apply(batch)` gets each complete command, or each
    complete MULTI block's commands, as a list of argument lists (with the
    @context records in place). A torn tail (an incomplete last record, or a
    MULTI without its EXEC at the end) is reported in the result; anything
    else that is not a well-formed record raises AofError with its offset, and
    so does an AofError that `apply` raises (Replayer, Checker: a record that
    cannot be replayed), with the offset of the record it names."""
    result = ScanResult(path)
    try:
        _scan(path, apply, result)
    except AofError as exc:
        exc.good, exc.good_line = result.good, result.good_line
        raise
    return result


def _scan(path: str, apply, result: ScanResult) -> None:
    reader = hiredis.Reader()
    pending = b""    # read, not yet matched against records
    pos = 0          # in pending
    base = 0         # file offset of pending[0]
    block = None     # the commands of a MULTI not yet closed
    offsets = []     # the file offset of each command of `block`
    block_start = 0
    lines = 1        # redis-check-aof's line count: CRLFs read + 1
    with open(path, "rb") as f:
        while True:
            chunk = f.read(READ_CHUNK)
            if not chunk:
                break
            result.size += len(chunk)
            reader.feed(chunk)
            pending = pending[pos:] + chunk if pos else pending + chunk
            base += pos
            pos = 0
            while True:
                try:
                    args = reader.gets()
                except hiredis.ProtocolError as exc:
                    raise AofError(path, base + pos, "not a RESP record (%s)" % exc) from None
                if args is False:
                    break
                if type(args) is not list or not args or any(type(a) is not bytes for a in args):
                    raise AofError(path, base + pos, "not an array of bulk strings")
                record = encode_command(args)
                end = pos + len(record)
                if pending[pos:end] != record:
                    raise AofError(path, base + pos, "malformed record")
                offset = base + pos
                pos = end
                lines += 1 + 2 * len(args)
                result.records += 1
                name = args[0].upper()
                if name == b"MULTI":
                    if block is not None:
                        raise AofError(path, offset, "MULTI inside MULTI")
                    block, offsets, block_start = [], [], offset
                elif name == b"EXEC":
                    if block is None:
                        raise AofError(path, offset, "EXEC without MULTI")
                    if apply is not None and block:
                        _apply(apply, block, offsets, path)
                    result.commands += sum(1 for a in block if a[0] != CONTEXT)
                    block = None
                    result.good, result.good_line = base + pos, lines
                elif block is not None:
                    block.append(args)
                    offsets.append(offset)
                else:
                    if apply is not None:
                        _apply(apply, [args], [offset], path)
                    if name != CONTEXT:
                        result.commands += 1
                    result.good, result.good_line = base + pos, lines
    if block is not None:
        result.torn = "a MULTI block without EXEC at offset %d" % block_start
    elif result.good < result.size:
        result.torn = "an incomplete record at offset %d" % result.good


def _apply(apply, batch: list, offsets: list, path: str) -> None:
    try:
        apply(batch)
    except AofError as exc:
        if exc.offset is None:
            exc.offset = offsets[min(exc.index, len(offsets) - 1)]
        exc.path = path
        raise


def record_problem(args: list, databases: int | None = None):
    """Why this record (not MULTI/EXEC) cannot be replayed, or None: an
    @context that is not `@context <tenant> <db index>`, a command this server
    does not know, one that is not a write (the log holds only writes), or
    the wrong number of arguments (the handlers trust call()'s arity check)."""
    name = args[0]
    if name == CONTEXT:
        if len(args) != 3 or not args[2].isdigit():
            return "bad @context record (expected @context <tenant> <db index>)"
        if databases is not None and int(args[2]) >= databases:
            return ("@context names database %s; this server has %d databases "
                    "(limits.databases)" % (args[2].decode(), databases))
        return None
    text = name.decode("latin-1")
    cmd = COMMANDS.get(text.lower())
    if cmd is None:
        return "unknown command '%s'" % text
    if "write" not in cmd.flags:
        return "'%s' is not a write command (the log holds only writes)" % text
    if not cmd.arity_ok(len(args)):
        return "wrong number of arguments for '%s' (%d)" % (text, len(args) - 1)
    WRITE_COMMANDS[name] = cmd
    return None


# Raw record name (bytes, any case seen) -> its write Command: the replay
# looks a name up once, as dispatch's LOOKUP does; record_problem fills it.
WRITE_COMMANDS: dict = {}


class Checker:
    """scan()'s `apply` for tenantkv check-aof: every record is checked as
    Replayer checks it before running it, and nothing runs."""

    def __init__(self, databases: int | None = None) -> None:
        self.databases = databases

    def apply(self, batch: list) -> None:
        for index, args in enumerate(batch):
            problem = record_problem(args, self.databases)
            if problem is not None:
                exc = AofError("", None, problem, "record")
                exc.index = index
                raise exc


# -- replay ---------------------------------------------------------------------------

def _load_clock() -> int:
    return 0   # no absolute expiry (ms since 1970, > 0) is ever reached


@contextmanager
def expiry_suspended():
    """As Redis while loading: no key expires. Every module reads the clock
    through its own `now_ms` name; while loading they all read a clock stopped
    at 0. Costs nothing outside loading (no flag tested on any hot path)."""
    original = database_module.now_ms
    patched = []
    for name, module in list(sys.modules.items()):
        if name.startswith("tenantkv") and getattr(module, "now_ms", None) is original:
            module.now_ms = _load_clock
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            module.now_ms = original


class Replayer:
    """Runs records through the real command handlers, on an internal
    connection that moves between tenants and databases as @context says."""

    def __init__(self, server) -> None:
        self.server = server
        self.conn = server.internal_client()
        self.errors = 0
        self.commands = 0
        self.path = ""

    def apply(self, batch: list) -> None:
        conn = self.conn
        server = self.server
        # Replayed commands are not counted as calls: their no-ops (SETBIT
        # of a bit to its value) must not count against the changes either.
        stats = server.stats
        unchanged = stats.unchanged_writes
        try:
            self._apply(conn, server, batch)
        finally:
            stats.unchanged_writes = unchanged

    def _apply(self, conn, server, batch: list) -> None:
        known = WRITE_COMMANDS
        index = -1
        for args in batch:
            index += 1
            name = args[0]
            cmd = known.get(name)
            if cmd is None or not cmd.arity_ok(len(args)):
                problem = record_problem(args, self.server.config["limits.databases"])
                if problem is not None:
                    exc = AofError(self.path, None, problem, "record")
                    exc.index = index
                    raise exc
                if name == CONTEXT:
                    tenant = server.tenant_for(args[1].decode("utf-8", "surrogateescape"))
                    conn.tenant = tenant
                    conn.db = tenant.dbs[int(args[2])]
                    continue
                cmd = known[name]
            self.commands += 1
            try:
                replay(conn, cmd, args)   # dispatch's one path, not counted as traffic
            except CommandError as exc:
                self.errors += 1
                if self.errors <= 10:
                    log.warning("AOF replay: %s %s: %s", name.decode("latin-1"),
                                args[1:2], exc.message)
            except Exception as exc:   # a handler's bug: refuse, not a traceback
                error = AofError(self.path, None, "%s could not be replayed (%s: %s)"
                                 % (name.decode("latin-1"), type(exc).__name__, exc), "record")
                error.index = index
                raise error from exc


# -- the directory, the manifest --------------------------------------------------

MANIFEST_MAX_LINE = 1024   # bytes, the newline included (Redis's MANIFEST_MAX_LINE)
INVALID = "Invalid AOF manifest file format"


class ManifestError(Exception):
    """A manifest that cannot be used: `path`, the `problem` (Redis's wording
    where Redis has one), and the line (number and text) where it was found."""

    # What to do about it: a manifest is never repaired automatically.
    advice = ("The manifest cannot be repaired automatically: restore it (from a backup), or "
              "correct it by hand (docs/aof-format.md gives its rules)")

    def __init__(self, path: str, problem: str, number: int = 0, line: bytes = b"",
                 advice: str = "") -> None:
        super().__init__(path, problem, number)
        self.path, self.problem, self.number, self.line = path, problem, number, line
        if advice:
            self.advice = advice

    def __str__(self) -> str:
        where = ", line %d" % self.number if self.number else ""
        return "%s (AOF manifest %s%s)" % (self.problem, self.path, where)

    def report(self) -> list:
        """The lines to print or log, as Redis logs a bad manifest."""
        lines = ["*** FATAL AOF MANIFEST FILE ERROR ***"]
        if self.number:
            lines.append("Reading the manifest file %s, at line %d" % (self.path, self.number))
            if self.line:   # as Redis's sdscatrepr: binary stays one readable line
                shown = "".join(chr(c) if 0x20 <= c < 0x7F and c != 0x5C else "\\x%02x" % c
                                for c in self.line[:160])
                lines.append(">>> '%s'%s" % (shown, "..." if len(self.line) > 160 else ""))
        lines.append("%s: %s" % (self.path, self.problem))
        return lines


def _split_args(line: bytes):
    """Redis's sdssplitargs for a manifest line: words separated by
    whitespace, "double quoted" with \\xHH \\n \\r \\t \\b \\a \\" \\\\
    escapes, or 'single quoted' with \\'. None when the quoting is broken."""
    words, i, n = [], 0, len(line)
    escapes = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
    while True:
        while i < n and line[i] in b" \t\r\n\v\f":
            i += 1
        if i == n:
            return words
        word = bytearray()
        quote = line[i]
        if quote in b"\"'":
            i += 1
            while True:
                if i >= n:
                    return None   # no closing quote
                c = line[i]
                if c == quote:
                    i += 1
                    break
                if c == 0x5C and i + 1 < n:   # backslash
                    nxt = line[i + 1]
                    if quote == 0x22 and nxt == ord("x") and i + 3 < n:
                        try:
                            word.append(int(line[i + 2:i + 4], 16))
                            i += 4
                            continue
                        except ValueError:
                            pass
                    if quote == 0x22:
                        word += escapes.get(nxt, bytes([nxt]))
                        i += 2
                        continue
                    if nxt == 0x27:
                        word.append(0x27)
                        i += 2
                        continue
                word.append(c)
                i += 1
            if i < n and line[i] not in b" \t\r\n\v\f":
                return None   # a closing quote must end the word
        else:
            while i < n and line[i] not in b" \t\r\n\v\f":
                if line[i] in b"\"'":
                    return None
                word.append(line[i])
                i += 1
        words.append(bytes(word))


def _needs_quotes(name: str) -> bool:
    return not name or any(not (c.isprintable() and c.isascii()) or c in " \"'\\" for c in name)


def _quote(name: str) -> str:
    out = ['"']
    for byte in name.encode("utf-8", "surrogateescape"):
        c = chr(byte)
        if c in "\\\"":
            out.append("\\" + c)
        elif c in "\n\r\t\a\b":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\a": "\\a", "\b": "\\b"}[c])
        elif 0x20 <= byte < 0x7F:
            out.append(c)
        else:
            out.append("\\x%02x" % byte)
    out.append('"')
    return "".join(out)


class Manifest:
    """Redis 7's manifest: `file <name> seq <n> type b|h|i` lines.

    Read as strictly as Redis reads it at start-up (aofLoadManifestFromFile),
    plus a few checks of tenantkv's own; anything else raises ManifestError:
    every line ends with a newline and is at most 1024 bytes with it; '#'
    starts a comment line; no empty line; valid UTF-8; each line is key/value
    pairs (keys case-insensitive, unknown keys ignored for forward
    compatibility, as Redis), with `file`, `seq` and `type` present once; a
    file is a name in the log's directory, never a path; seq is a positive
    integer; type is b (base), h (history: a file a rewrite replaced, ignored)
    or i (incremental); at most one base; incremental seqs strictly increase;
    no file named twice; at least one base or incremental file."""

    def __init__(self, base=None, incrs=None) -> None:
        self.base = base            # (name, seq) or None
        self.incrs = incrs or []    # [(name, seq)], oldest first
        self.lines = {}             # name -> line number in the file read

    @classmethod
    def read(cls, path: str) -> "Manifest":
        with open(path, "rb") as f:
            return cls.parse(f, path)

    @classmethod
    def parse(cls, f, path: str) -> "Manifest":
        manifest = cls()
        number = 0
        maxseq = 0
        names = {}
        while True:
            raw = f.readline(MANIFEST_MAX_LINE)
            if not raw:
                if number == 0:
                    raise ManifestError(path, "Found an empty AOF manifest")
                break
            number += 1

            def fail(problem: str) -> None:
                raise ManifestError(path, problem, number, raw.rstrip(b"\r\n"))

            comment = raw.startswith(b"#")
            line = raw.strip(b" \t\r\n")
            if not comment:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    fail("%s: not valid UTF-8 (binary data?)" % INVALID)
                if any(c < 0x20 and c != 0x09 or c == 0x7F for c in line):
                    fail("%s: control characters in the line (binary data?)" % INVALID)
            if not raw.endswith(b"\n"):
                if len(raw) >= MANIFEST_MAX_LINE:
                    fail("The AOF manifest file contains too long line (over %d bytes)"
                         % MANIFEST_MAX_LINE)
                fail("%s: the last line does not end with a newline (a truncated "
                     "manifest?)" % INVALID)
            if comment:
                continue
            if not line:
                fail("%s: an empty line" % INVALID)
            words = _split_args(line)
            if words is None:
                fail("%s: unbalanced quotes" % INVALID)
            if len(words) < 6 or len(words) % 2:
                fail("%s: expected 'file <name> seq <n> type b|h|i'" % INVALID)
            fields = {}
            for key, value in zip(words[0::2], words[1::2]):
                key = key.decode("utf-8", "replace").lower()
                if key in fields:
                    fail("%s: '%s' appears twice" % (INVALID, key))
                fields[key] = value
            for key in ("file", "seq", "type"):
                if key not in fields:
                    fail("%s: no '%s'" % (INVALID, key))
            try:
                name = fields["file"].decode("utf-8")
            except UnicodeDecodeError:
                fail("%s: the file name is not valid UTF-8" % INVALID)
            if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
                fail("File can't be a path, just a filename: '%s'" % name)
            if any(not c.isprintable() for c in name):
                fail("%s: the file name holds control characters" % INVALID)
            seq = fields["seq"]
            if not seq.isdigit() or not 0 < int(seq) < 1 << 63:
                fail("%s: seq must be a positive integer, not '%s'"
                     % (INVALID, seq.decode("utf-8", "replace")))
            seq = int(seq)
            kind = fields["type"]
            if kind == b"h":
                continue   # history: a file a rewrite replaced, not part of the log
            if kind not in (b"b", b"i"):
                fail("Unknown AOF file type '%s' (b: base, i: incremental, h: history)"
                     % kind.decode("utf-8", "replace"))
            if name in names:
                fail("Found duplicate file name '%s' (line %d names it too)" % (name, names[name]))
            names[name] = number
            if kind == b"b":
                if manifest.base is not None:
                    fail("Found duplicate base file information (line %d names the base %s)"
                         % (names[manifest.base[0]], manifest.base[0]))
                manifest.base = (name, seq)
            else:
                if seq <= maxseq:
                    fail("Found a non-monotonic sequence number (%d after %d)" % (seq, maxseq))
                manifest.incrs.append((name, seq))
                maxseq = seq
        if manifest.base is None and not manifest.incrs:
            raise ManifestError(path, "The AOF manifest names no base or incremental file "
                                "(only comments or history lines)")
        manifest.lines = names
        return manifest

    def text(self) -> str:
        def name(entry) -> str:
            return _quote(entry[0]) if _needs_quotes(entry[0]) else entry[0]
        lines = []
        if self.base:
            lines.append("file %s seq %d type b\n" % (name(self.base), self.base[1]))
        lines.extend("file %s seq %d type i\n" % (name(entry), entry[1]) for entry in self.incrs)
        return "".join(lines)

    def write(self, path: str) -> None:
        temp = path + ".tmp"
        with open(temp, "w", encoding="utf-8") as f:
            f.write(self.text())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        fsync_dir(os.path.dirname(path))

    def files(self) -> list:
        return ([self.base[0]] if self.base else []) + [name for name, _ in self.incrs]


def log_files(directory: str, appendfilename: str) -> list:
    """The non-empty files in `directory` named as parts of a log are
    (`<appendfilename>.<n>.base.<ext>`, `<appendfilename>.<n>.incr.aof`):
    with no manifest naming them, their data is out of view. Empty ones hold
    nothing (a failed first rewrite leaves one) and are left out."""
    prefix = appendfilename + "."
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        rest = name[len(prefix):].split(".") if name.startswith(prefix) else ()
        if (len(rest) == 3 and rest[0].isdigit()
                and (rest[1:] == ["incr", "aof"] or rest[1] == "base")):
            try:
                if os.path.getsize(os.path.join(directory, name)) > 0:
                    found.append(name)
            except OSError:
                pass
    return found


def is_kdb(path: str) -> bool:
    """A base file written as a .kdb snapshot (aof-use-rdb-preamble yes): by
    its name, or by its first bytes (as Redis finds an RDB preamble)."""
    if path.endswith(".kdb"):
        return True
    with open(path, "rb") as f:
        return f.read(len(KDB_MAGIC)) == KDB_MAGIC


def fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- base files: the data set as commands --------------------------------------------

def _score(value: float) -> bytes:
    if value == float("inf"):
        return b"inf"
    if value == float("-inf"):
        return b"-inf"
    return repr(value).encode()


def key_records(key: bytes, value, when):
    """Yield the encoded records that create `key` holding `value` (expiring at `when`)."""
    kind = type(value)
    if kind is bytes:
        yield encode_command([b"SET", key, value])
    elif kind is dict:
        items = [x for pair in value.items() for x in pair]
        step = 2 * ITEMS_PER_COMMAND
        for i in range(0, len(items), step):
            yield encode_command([b"HSET", key, *items[i:i + step]])
    elif kind is deque:
        items = list(value)
        for i in range(0, len(items), ITEMS_PER_COMMAND):
            yield encode_command([b"RPUSH", key, *items[i:i + ITEMS_PER_COMMAND]])
    elif kind is set:
        items = list(value)
        for i in range(0, len(items), ITEMS_PER_COMMAND):
            yield encode_command([b"SADD", key, *items[i:i + ITEMS_PER_COMMAND]])
    elif kind is ZSet:
        items = [x for score, member in value.order for x in (_score(score), member)]
        step = 2 * ITEMS_PER_COMMAND
        for i in range(0, len(items), step):
            yield encode_command([b"ZADD", key, *items[i:i + step]])
    else:
        raise TypeError("cannot write a %s value to the AOF" % kind.__name__)
    if when is not None:
        yield encode_command([b"PEXPIREAT", key, b"%d" % when])


def dataset_records(tenants: dict):
    """Yield the encoded records that rebuild every tenant's data (a base file)."""
    now = database_module.now_ms()
    for name, tenant in tenants.items():
        for db in tenant.dbs:
            if not db.data:
                continue
            yield encode_command([CONTEXT, name.encode("utf-8", "surrogateescape"),
                                  b"%d" % db.index])
            expires = db.expires
            for key, value in list(db.data.items()):
                when = expires.get(key)
                if when is not None and when <= now:
                    continue   # expired: left out (Redis's rewrite does the same)
                yield from key_records(key, value, when)


def write_base(tenants: dict, path: str) -> int:
    """Write a base file (temp name, fsync, rename); returns its size."""
    temp = path + ".tmp"
    size = 0
    with open(temp, "wb", buffering=0) as f:
        parts, pending = [], 0
        for record in dataset_records(tenants):
            parts.append(record)
            pending += len(record)
            if pending >= READ_CHUNK:
                f.write(b"".join(parts))
                size += pending
                parts, pending = [], 0
        if parts:
            f.write(b"".join(parts))
            size += pending
        os.fsync(f.fileno())
    os.replace(temp, path)
    return size
