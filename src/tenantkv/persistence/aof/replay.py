"""Reading a log file back.

`scan` parses a file's records: a torn tail (an incomplete last record, a
MULTI without its EXEC) is reported, anything else malformed raises AofError
with its offset. `record_problem` is what the server checks before running a
record (tenantkv check-aof runs the same checks, `Checker`), and `Replayer`
runs the records through dispatch's one path (dispatch/call.py, `replay`) on
an internal connection, with expiry suspended as Redis does while loading.
"""

import logging
import sys
from contextlib import contextmanager

import hiredis

from tenantkv.dispatch.call import replay
from tenantkv.dispatch.table import COMMANDS
from tenantkv.errors import CommandError
from tenantkv.keyspace import database as database_module
from tenantkv.persistence.aof.format import CONTEXT, READ_CHUNK, encode_command

log = logging.getLogger("tenantkv.aof")


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
    checked = cmd
    if cmd.subcommands and len(args) > 1:   # FUNCTION LOAD: the subcommand is the write
        checked = cmd.subcommands.get(args[1].lower())
        if checked is None:
            return "unknown subcommand '%s %s'" % (text, args[1].decode("latin-1"))
        text = "%s %s" % (text, args[1].decode("latin-1"))
    if "write" not in checked.flags:
        return "'%s' is not a write command (the log holds only writes)" % text
    if not checked.arity_ok(len(args)) or not cmd.arity_ok(len(args)):
        return "wrong number of arguments for '%s' (%d)" % (text, len(args) - 1)
    if checked is cmd:   # a container is checked again for each record's subcommand
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
                cmd = known.get(name) or COMMANDS[name.decode("latin-1").lower()]
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
