"""Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.

MULTI starts queuing: the connection (server/connection.py, `execute`)
answers +QUEUED for every later request but EXEC, DISCARD, MULTI, WATCH,
QUIT and RESET, and remembers a request it refused while queuing (unknown
command, wrong arity, NOPERM, a command not allowed in a transaction, or
one that waits for a worker thread: AUTH, ACL SETUSER...): EXEC then aborts
with EXECABORT, as Redis does.

EXEC checks each queued command against the user's rules of the moment
(dispatch/call.py, `run_queued`): one the rules no longer allow gets Redis
7's "ACLs rules changed ..." NOPERM in its place in the reply.

EXEC runs the queue in one go on the event loop, so nothing of another client
runs in between. A command that elsewhere runs in slices (KEYS, DEBUG DIGEST,
KDB IMPORT, LCS: dispatch/slices.py) runs whole here, as in Redis; for a
non-root user past 50 ms of work it answers an error instead (in its place
in the reply; the others run). A non-root user's queue is bounded (Queue). Blocking commands inside it do not block (they answer as if
their timeout had passed), and clients blocked on keys it fills are served
once it is over (dispatch/observers.py, `in_exec`).

WATCH: see dispatch/observers.py. A watched key written by any client of the
same tenant, flushed, or expired makes EXEC answer a null array.
"""

from tenantkv import errors
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.protocol.encoder import NULL_ARRAY, OK, Raw
from tenantkv.dispatch.call import run_queued


class Queue(list):
    """A transaction's queued (command, args), with the bytes of their
    arguments: both are bounded for a non-root user (dispatch/call.py,
    _queue). Redis has no bound; 1M queued commands took 335 MB here."""
    __slots__ = ("size",)
    MAX_COMMANDS = 100_000
    MAX_BYTES = 128 << 20

    def __init__(self) -> None:
        super().__init__()
        self.size = 0


@command("multi")
def multi(conn, args):
    if conn.multi is not None:
        raise CommandError(errors.MULTI_NESTED)
    conn.multi = Queue()
    conn.multi_error = False
    return OK


@command("discard")
def discard(conn, args):
    if conn.multi is None:
        raise CommandError(errors.DISCARD_WITHOUT_MULTI)
    end_transaction(conn)
    return OK


def end_transaction(conn) -> None:
    """Leave MULTI (if in it) and forget every watched key (DISCARD, EXEC, RESET)."""
    conn.server.events.end_transaction(conn)


@command("exec")
def exec_(conn, args):
    queued = conn.multi
    if queued is None:
        raise CommandError(errors.EXEC_WITHOUT_MULTI)
    events = conn.server.events
    aborted = conn.multi_error
    failed = not aborted and events.watch_failed(conn)
    end_transaction(conn)   # unwatch before running: our own writes must not count
    if aborted:
        raise CommandError(errors.EXECABORT)
    if failed:
        return NULL_ARRAY
    replies = []
    events.in_exec = True
    journal = events.journal
    if journal is not None:
        journal.multi_begin()   # its records go to the log as MULTI ... EXEC
    try:
        for cmd, cmd_args in queued:
            replies.append(run_queued(conn, cmd, cmd_args))   # dispatch's one path
    finally:
        events.in_exec = False
        if conn.tracking is not None:
            conn.tracking.caching = False   # CLIENT CACHING spoke of this transaction
        if journal is not None:
            journal.multi_end()
    events.serve_ready()   # clients blocked on keys the transaction filled
    return Raw(b"*%d\r\n%s" % (len(replies), b"".join(replies)))


@command("watch")
def watch(conn, args):
    if conn.multi is not None:
        raise CommandError(errors.WATCH_IN_MULTI)
    events = conn.server.events
    db = conn.db
    for key in args[1:]:
        events.watch(conn, db, key)
    return OK


@command("unwatch")
def unwatch(conn, args):
    conn.server.events.unwatch_all(conn)
    return OK
