"""DUMP and RESTORE: a value in Redis's own DUMP payload (persistence/rdb.py).

A payload DUMPed by redis-server RESTOREs here and the other way round.
RESTORE reads and writes the caller's tenant and database only, like any
write command. Every payload is checked whole (CRC64, then every structure
and every semantic rule of a value) before anything changes: garbage is
"ERR Bad data format" or Redis's version/checksum error, never a half-made key.

A big value is encoded / decoded as a sliced job (dispatch/slices.py): the
tenant's other clients wait, other tenants are served between slices. Since
the write observers (the log, WATCH, blocked clients, the memory accounting)
see a sliced command when its handler returns, before the job has written
anything, a sliced RESTORE reports its own write at its end (`_install`).
"""

from time import monotonic

from tenantkv import errors
from tenantkv.dispatch import slices
from tenantkv.dispatch.replies import Deferred
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.keyspace.database import now_ms
from tenantkv.persistence import rdb
from tenantkv.persistence.aof.recorders import restore_records
from tenantkv.protocol.encoder import OK
from tenantkv.util.numbers import parse_int

# Up to this a string's DUMP or a payload's RESTORE runs whole, inline (a
# few ms at most: the CRC64 runs at ~20 MB/s in Python, LZF at ~1 MB/s up
# to 8 KB); above, as a sliced job.
INLINE_PAYLOAD = 32 << 10

_BULK_LEN = "limits.proto_max_bulk_len"


@command("dump")
def dump(conn, args):
    value = conn.db.read(args[1])
    if value is None:
        return None
    steps = rdb.dump_steps(value)
    if type(value) is bytes and len(value) <= INLINE_PAYLOAD:
        return rdb.run_whole(steps)
    # A container's job yields by its work (elements, LZF bytes): a small
    # one ends within slices.run's first slice, answered as inline.
    return slices.run(conn, steps)


def _parse_options(args: list) -> tuple:
    """RESTORE's options after the payload, in Redis's order of checks."""
    replace = absttl = False
    idle = freq = None
    j = 4
    n = len(args)
    while j < n:
        option = args[j].lower()
        more = n - j - 1
        if option == b"replace":
            replace = True
        elif option == b"absttl":
            absttl = True
        elif option == b"idletime" and more >= 1 and freq is None:
            idle = parse_int(args[j + 1])
            if idle is None:
                raise CommandError(errors.NOT_INTEGER)
            if idle < 0:
                raise CommandError(errors.RESTORE_INVALID_IDLETIME)
            j += 1
        elif option == b"freq" and more >= 1 and idle is None:
            freq = parse_int(args[j + 1])
            if freq is None:
                raise CommandError(errors.NOT_INTEGER)
            if not 0 <= freq <= 255:
                raise CommandError(errors.RESTORE_INVALID_FREQ)
            j += 1
        else:
            raise CommandError(errors.SYNTAX)
        j += 1
    return replace, absttl, idle, freq


@command("restore")
def restore(conn, args):
    replace, absttl, idle, freq = _parse_options(args)
    db = conn.db
    key = args[1]
    if not replace and db.get(key) is not None:
        raise CommandError(errors.BUSYKEY)
    ttl = parse_int(args[2])
    if ttl is None:
        raise CommandError(errors.NOT_INTEGER)
    if ttl < 0:
        raise CommandError(errors.RESTORE_INVALID_TTL)
    payload = args[3]
    server = conn.server
    room, refusal = server.memory.import_room(conn)
    # deferred[0]: set once slices.run has answered with a Deferred, i.e. the
    # job ends after this handler returned (a job done in its first slice,
    # or run whole inside EXEC, ends before: the observers see its write).
    deferred = [False]
    job = _restore_job(conn, db, key, ttl, absttl, replace, idle, freq, payload, room, refusal,
                       deferred)
    if len(payload) <= INLINE_PAYLOAD:
        return rdb.run_whole(job)
    reply = slices.run(conn, job)
    if type(reply) is Deferred:
        deferred[0] = True
    return reply


def _restore_job(conn, db, key, ttl, absttl, replace, idle, freq, payload, room, refusal,
                 deferred):
    values = conn.server.config.values
    try:
        yield from rdb.verify_steps(payload)
        value = yield from rdb.load_steps(payload, values, room, conn.server.config[_BULK_LEN])
    except rdb.VersionError:
        raise CommandError(errors.DUMP_PAYLOAD_WRONG) from None
    except rdb.RdbError:
        raise CommandError(errors.BAD_DATA_FORMAT) from None
    except rdb.RoomExceeded:
        raise CommandError(refusal) from None
    return _install(conn, db, key, value, ttl, absttl, replace, idle, freq, payload,
                    not deferred[0])


def _install(conn, db, key, value, ttl, absttl, replace, idle, freq, payload, inline):
    """Write the restored value (restoreCommand's second half). Inline, the
    write observers do the rest; at the end of a job, this reports to them."""
    server = conn.server
    memory = server.memory if server.memory.on and not inline else None
    before = memory.footprints(db, (key,)) if memory is not None else 0
    deleted = replace and db.delete(key)
    if ttl and not absttl:
        ttl += now_ms()
    # Already expired: nothing is added (but REPLACE deleted). The log's
    # replay (no transport) runs with expiry suspended: it adds the key as
    # it was when logged, and the expiry that followed is in the log too.
    if ttl and ttl <= now_ms() and conn.transport is not None:
        added = False
    else:
        added = True
        db.data[key] = value
        if db.encodings:
            db.encodings.pop(key, None)
        if ttl:
            db.expires[key] = ttl
        _set_access(server.memory, db, key, idle, freq, keep=inline)
    if inline:
        return OK
    # -- a job's end: what the observers did not see
    if memory is not None:
        memory.charge(db, memory.footprints(db, (key,)) - before, conn.tenant)
    events = server.events
    journal = events.journal
    if journal is not None:
        for argv in restore_records(db, key, payload, added or deleted):
            journal.emit(conn.tenant.name, db.index, argv)
    if added or deleted:
        events.written([(db, key)], conn)
    return OK


def _set_access(memory, db, key, idle, freq, keep: bool) -> None:
    """IDLETIME / FREQ (objectSetLRUOrLFU), while the policy tracks access."""
    tracking = memory.tracking
    if tracking is None or (idle is None and freq is None):
        return
    access = db.access
    if access is None:
        access = db.access = {}
    if tracking == "lru" and idle is not None:
        access[key] = monotonic() - idle
    elif tracking == "lfu" and freq is not None:
        access[key] = (int(monotonic() // 60) << 8) | freq
    else:
        return
    if keep:   # the metered wrapper's touch after this handler must not undo it
        memory.keep = (db, key)


__all__ = ["dump", "restore"]
