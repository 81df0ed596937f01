"""Sliced execution: a long command runs in slices across loop turns.

The tenant is the unit of atomicity (DESIGN.md): while a long command of
tenant A runs, A's other clients wait (server/connection.py holds their
requests, as it holds a blocked client's backlog) and tenants B, C... are
served between the slices. No client of A can see a state between two
slices, so A cannot tell the difference from Redis's atomicity.

A long command's handler writes its work as a generator: it does a bounded
piece of work, `yield`s, and at the end `return`s the reply. `run(client,
job)` drives it:

- the first slice runs at once; a job done within it (the common case: a
  KEYS over a small database) answers as any command does, with no cost
  beyond the generator;
- otherwise the tenant is marked busy and the rest runs one slice (SLICE
  seconds) per loop turn, through loop.call_soon; the handler's reply is a
  Deferred whose future gets the reply at the end;
- inside EXEC (and on the log's internal client) nothing may wait, so the
  job runs whole there. For a non-root client that costs at most
  EXEC_SLICES slices of work: more is refused with a clear error (the jobs
  that slice do their writes only at the very end, so a refused job has
  changed nothing). Root's jobs run whole inside EXEC, as in Redis;
- called from a script (redis.call), the job is handed to the script,
  which runs it as its own work: a slice at a time between its own pauses
  (scripting/engine.py); inside EXEC, whole as above;
- a job whose client went away stops at its next slice; while the server is
  frozen (a shutdown saving) a job does not advance, as no command runs then.

A job walks a list() snapshot of whatever it iterates (taken in one C call),
so the expiry cycle or eviction removing keys of a busy tenant between two
slices cannot break it.
"""

from bisect import bisect_right
from itertools import chain
from time import monotonic

from hiredis import pack_command

from tenantkv import errors
from tenantkv.dispatch.replies import Deferred
from tenantkv.errors import CommandError
from tenantkv.protocol.encoder import Raw, encode

SLICE = 0.005       # seconds of work per loop turn
EXEC_SLICES = 50    # slices of work a non-root job may take inside EXEC (250 ms)

# What a job does between two checks of the clock: one `yield` per STEP
# units of work (keys matched, rows of a table...). The clock is read only
# at a yield.
STEP = 2048

# Replies and set algebra: a command whose reply or inputs hold more than BIG
# elements runs as a job (below that it runs whole: ~10 ms at most). Its
# reply is encoded a chunk of STEP elements at a time (~0.2 ms each with
# pack_command, measured) and sent as one Raw, byte for byte what the
# encoder would send for the whole list.
BIG = 1 << 16


class Piece(bytes):
    """A part of a job's reply, yielded to be sent before the job ends: a big
    reply goes out as it is encoded, at the pace the client reads it (a
    paused transport pauses the job), so the server holds a slice of it, not
    the whole (an LRANGE of 2M elements held ~80 MB: its parts, their join,
    the transport's copy). Only a job that cannot fail once it has begun
    its reply may yield one, and it returns the reply's last part (a Raw).
    Parts yielded before the job leaves its first slice, or inside EXEC,
    are joined to the reply as usual."""
    __slots__ = ()


def _collect(job, pending: list, deadline: float) -> None:
    """Run `job` until `deadline`, its Pieces into `pending` (StopIteration
    at its end)."""
    while True:
        piece = next(job)
        if piece is not None:
            pending.append(piece)
        if monotonic() > deadline:
            return


def _joined(pending: list, value):
    return Raw(b"".join(pending) + value) if pending else value


def run(client, job, finish=None):
    """Drive the generator `job` for `client`: its reply (the value it
    returns, through `finish` if given), or a Deferred."""
    pending: list = []
    try:
        _collect(job, pending, monotonic() + SLICE)
    except StopIteration as done:
        value = _joined(pending, done.value)
        return value if finish is None else finish(value)
    server = client.server
    if client.transport is None or server.events.in_exec:
        reply = _joined(pending, _whole(client, job, pending))
        return reply if finish is None else finish(reply)
    future = server.loop.create_future()
    scripts = client.tenant.scripts
    if scripts is not None:
        run_ = scripts.running
        if run_ is not None and run_.conn is client:
            # A script's redis.call: the script drives the rest within its
            # own slicing (scripting/engine.py, Scripts._job), its tenant
            # already held; the Deferred's future is done at the job's end.
            run_.job = (job, pending)
            return Deferred(future, finish or _same)
    tenant = client.tenant
    tenant.busy = client
    server.loop.call_soon(_step, client, tenant, job, future, pending)
    return Deferred(future, finish or _same)


def _same(reply):
    return reply


def _whole(client, job, pending: list):
    slices = 0
    deadline = monotonic() + SLICE
    try:
        while True:
            piece = next(job)
            if piece is not None:
                pending.append(piece)
            if monotonic() > deadline:
                slices += 1
                deadline = monotonic() + SLICE
                if slices >= EXEC_SLICES and not client.root:
                    job.close()
                    raise CommandError(errors.too_long_in_multi(int(EXEC_SLICES * SLICE * 1000)))
    except StopIteration as done:
        return done.value


def _step(client, tenant, job, future, pending: list) -> None:
    server = client.server
    if client.closing or future.cancelled():
        job.close()
        _release(tenant)
        return
    if server.frozen or client.paused:
        # A shutdown is saving: nothing runs (a thaw resumes us); or the
        # client does not read the parts sent so far: wait for it.
        server.loop.call_later(0.01, _step, client, tenant, job, future, pending)
        return
    if pending:   # the parts of the slices before: out now, in order
        client.write(b"".join(pending))
        pending = []
    try:
        _collect(job, pending, monotonic() + SLICE)
    except StopIteration as done:
        _release(tenant)
        future.set_result(_joined(pending, done.value))
        return
    except BaseException as exc:   # CommandError, or a bug: the connection reports it
        _release(tenant)
        if isinstance(exc, CommandError):
            # A refusal needs no traceback; kept, it would hold this frame
            # and this frame the future holding it: a cycle that kept a
            # refused KDB IMPORT's payload (40+ MB) until a full collection.
            exc.__traceback__ = None
        future.set_exception(exc)
        return
    server.loop.call_soon(_step, client, tenant, job, future, pending)


def _release(tenant) -> None:
    """The tenant's job is over: its held connections run their requests, on
    the next loop turn (after the job's own client has its reply)."""
    tenant.busy = None
    held = tenant.held
    if held:
        tenant.held = []
        for conn in held:
            conn.server.loop.call_soon(conn._run_backlog)


# -- the tenant's share of a loop turn ---------------------------------------------------
# The connection's own share (server/connection.py: TURN_REQUESTS, TURN_SECONDS)
# bounds what one connection runs per turn; a tenant with N connections got N
# shares: 4 clients each pipelining SRANDMEMBER s -100000 (~25 ms a reply)
# held every other tenant 100-260 ms per turn. So a tenant's work is added
# up over the turn too (`charge`): past TENANT_SHARE seconds, the tenant is
# marked busy with OVER_SHARE and its connections wait for the next turn
# exactly as they wait for a sliced job (they are `held`), while the other
# tenants' reads of this turn run. A turn is counted by the server's
# end-of-turn flush (server.turn), so a tenant alone on the server is not
# held at all until it passes its share within one turn.

TENANT_SHARE = SLICE


class _OverShare:
    """tenant.busy while the tenant waits for the next turn: not a client,
    so every client of the tenant waits."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "OVER_SHARE"


OVER_SHARE = _OverShare()
_over: list = []   # the tenants held until the next turn


def charge(server, tenant, seconds: float) -> None:
    """`tenant` ran `seconds` of commands in this turn of the loop."""
    turn = server.turn
    if tenant.turn != turn:
        tenant.turn = turn
        tenant.turn_used = seconds
    else:
        tenant.turn_used += seconds
    if tenant.turn_used > TENANT_SHARE and tenant.busy is None:
        tenant.busy = OVER_SHARE
        if not _over:
            server.loop.call_soon(_next_turn)
        _over.append(tenant)


def _next_turn() -> None:
    over = _over[:]
    _over.clear()
    for tenant in over:
        if tenant.busy is OVER_SHARE:
            tenant.turn_used = 0.0
            _release(tenant)


# -- building blocks of the reply and algebra jobs --------------------------------------

def array_job(items: list, resp3: bool, head: bytes = b"*", values: list | None = None):
    """Job: the RESP array of `items` (a list of bytes, else anything the
    encoder takes) as a Raw, `head` its type byte (b"~" a RESP3 set). With
    `values`: a map of keys `items` (RESP3's map when `head` is b"%", else
    the flat array of keys and values, as RESP2 sends a map). Exactly the
    encoder's bytes for the whole reply (pack_command for chunks of exact
    bytes, as the encoder does, else the encoder)."""
    n = len(items)
    yield Piece(b"%s%d\r\n" % (head, 2 * n if values is not None and head == b"*" else n))
    for start in range(0, n, STEP):
        chunk = items[start:start + STEP]
        if values is not None:
            chunk = list(_flatten(zip(chunk, values[start:start + STEP])))
        if {*map(type, chunk)} <= _BYTES_ONLY:
            packed = pack_command(tuple(chunk))
        else:
            packed = encode(chunk, resp3)
        yield Piece(packed[packed.index(b"\n") + 1:])   # without its own *N header
    return Raw(b"")


_flatten = chain.from_iterable

# sort_job's first runs: ~3 ms to sort 8,192 index keys of a zset; fewer
# merge levels than runs of STEP (1M keys: ~0.8 s in all instead of ~0.85-0.95,
# a plain sorted() 0.57 s; worst step ~10 ms instead of ~20, measured).
RUN = 4 * STEP
_BYTES_ONLY = frozenset((bytes,))


def sort_job(items: list):
    """Job: `items` sorted, without one long sort: runs of RUN sorted one at
    a time, then merged two by two a bounded piece at a time (each piece is
    the next elements of both runs up to the smaller of their next STEP-th
    elements, sorted together: timsort merges the two sorted halves in
    linear time). Equal items keep no particular order among themselves."""
    runs = []
    for start in range(0, len(items), RUN):
        runs.append(sorted(items[start:start + RUN]))
        yield
    while len(runs) > 1:
        merged = []
        for i in range(0, len(runs) - 1, 2):
            merged.append((yield from _merge(runs[i], runs[i + 1])))
        if len(runs) % 2:
            merged.append(runs[-1])
        runs = merged
    return runs[0] if runs else []


def _merge(a: list, b: list):
    out = []
    i = j = 0
    na, nb = len(a), len(b)
    while i < na and j < nb:
        pivot = min(a[min(i + STEP, na) - 1], b[min(j + STEP, nb) - 1])
        ie = bisect_right(a, pivot, i)
        je = bisect_right(b, pivot, j)
        piece = a[i:ie] + b[j:je]
        piece.sort()
        out += piece
        i, j = ie, je
        yield
    out += a[i:]
    out += b[j:]
    return out
