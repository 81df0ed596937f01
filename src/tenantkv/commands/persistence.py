"""Persistence commands: SAVE, BGSAVE, LASTSAVE, KDB, and DEBUG RELOAD / DIGEST / DIGEST-VALUE.

The work is in tenantkv/persistence/ (the file format in kdb/format.py, saving and
loading in the server in kdb/snapshot.py); these are the commands' argument
handling and replies.

KDB EXPORT / IMPORT move one tenant's data, and a user may run them on their
own tenant only (they act on `conn.tenant`, nothing else is reachable).
EXPORT replies a complete one-tenant .kdb file as a bulk string (not a bare
section): it carries the magic, version and checksums, so IMPORT verifies it
with the same reader as a snapshot, the file `tenantkv export` writes can be
imported online and vice versa, and a user can keep it as a backup. IMPORT
merges key by key, like RESTORE: a key that already exists refuses the whole
import (BUSYKEY) unless REPLACE is given, and nothing is written unless the
payload verified completely.
"""

import logging
import os
import time

from tenantkv import errors
from tenantkv.dispatch import slices
from tenantkv.dispatch.table import command, container, subcommand
from tenantkv.errors import CommandError
from tenantkv.logs import NOTICE, audit
from tenantkv.keyspace.digest import dataset_steps, key_steps
from tenantkv.persistence.kdb import format as kdb
from tenantkv.persistence.files import UnsafePath, safe_path
from tenantkv.persistence.kdb.snapshot import load_into
from tenantkv.protocol.encoder import OK, Status

log = logging.getLogger("tenantkv.persistence")


def _snapshot(conn):
    return conn.server.snapshot


# -- SAVE / BGSAVE / LASTSAVE -------------------------------------------------------

@command("save")
def save(conn, args):
    snap = _snapshot(conn)
    if snap.in_progress():
        raise CommandError(errors.BGSAVE_IN_PROGRESS)
    try:
        snap.save()
    except Exception:
        raise CommandError(errors.BARE)   # Redis's bare error; the log says why
    return OK


@command("bgsave")
def bgsave(conn, args):
    schedule = False
    if len(args) > 1:
        if len(args) == 2 and args[1].lower() == b"schedule":
            schedule = True
        else:
            raise CommandError(errors.SYNTAX)
    snap = _snapshot(conn)
    if snap.in_progress():
        raise CommandError(errors.BGSAVE_IN_PROGRESS)
    in_exec = conn.server.events.in_exec
    if snap.other_child() or in_exec:
        if schedule or in_exec:   # as Redis: never fork in the middle of a transaction
            snap.scheduled = True
            return Status("Background saving scheduled")
        raise CommandError(errors.BGSAVE_OTHER_CHILD)
    try:
        snap.bgsave("BGSAVE")
    except OSError:
        raise CommandError(errors.BARE)
    return Status("Background saving started")


@command("lastsave")
def lastsave(conn, args):
    return conn.server.last_save


# -- KDB ---------------------------------------------------------------------------

def data_path(conn, raw: bytes) -> str:
    """A path for KDB SAVE/LOAD (files.safe_path): relative to the data
    directory or absolute inside it, no '..', ending in .kdb (so users.db
    cannot be named), its directory resolved and inside the data directory,
    the file itself a regular file or not there yet (a symlink planted there
    is refused, never followed), and not in the append-only log's directory
    (its base file ends in .kdb too)."""
    config = conn.server.config
    base = config["data.dir"]
    try:
        return safe_path(base, raw.decode("utf-8", "surrogateescape"), ".kdb",
                         reserved=(os.path.join(base, config["data.appenddirname"]),))
    except UnsafePath as exc:
        raise CommandError(str(exc))


# tenantkv's own command, so declared in full, in Redis's shape: a container
# whose subcommands carry the flags and categories. SAVE and LOAD are
# root-only ("admin"); EXPORT and IMPORT act on the caller's own tenant and
# run when the user's rules allow them (+kdb|export, +@read for EXPORT,
# +@write for IMPORT, +@all...). EXPORT is @dangerous as KEYS is: the whole
# tenant at once.
KDB_HELP = [
    "SAVE [<path>]", "    Save every tenant's data (default: the configured snapshot file).",
    "LOAD [<path>]", "    Replace every tenant's data with the snapshot file's.",
    "EXPORT", "    Return your tenant's data as a .kdb payload.",
    "IMPORT <payload> [REPLACE]", "    Add the keys of a KDB EXPORT payload to your tenant.",
    "ORPHANS", "    List the tenants holding data that no user owns, with their key counts.",
    "EXPORT-ORPHAN <tenant>", "    Return an orphaned tenant's data as a .kdb payload.",
    "DROP-ORPHAN <tenant>", "    Delete an orphaned tenant and its data.",
]
_KDB_FILE = dict(flags="admin noscript no_async_loading", acl_categories="@admin @slow @dangerous",
                 group="server", since="0.1.0",
                 complexity="O(N) where N is the total number of keys in all tenants",
                 arguments=[{"name": "path", "type": "string", "flags": ["optional"]}])

container("kdb", help=KDB_HELP, arity=-2, flags=(), acl_categories="@slow", group="server",
          since="0.1.0",
          summary="A container for snapshot file commands: save, load, export and import data",
          complexity="Depends on subcommand.")


@subcommand("kdb", "save", **_KDB_FILE, arity=-2,
            summary="Save every tenant's data to a snapshot file (default: the configured one)")
def _kdb_save(conn, args):
    if len(args) > 3:
        raise CommandError(errors.wrong_arity("kdb|save"))
    snap = _snapshot(conn)
    path = data_path(conn, args[2]) if len(args) == 3 else None
    if path is None and snap.in_progress():
        raise CommandError(errors.BGSAVE_IN_PROGRESS)
    try:
        keys = snap.save(path)
    except Exception as exc:
        raise CommandError(errors.kdb_save_failed(_reason(exc)))
    return keys


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@subcommand("kdb", "load", **_KDB_FILE, arity=-2,
            summary="Replace every tenant's data with a snapshot file's")
def _kdb_load(conn, args):
    if len(args) > 3:
        raise CommandError(errors.wrong_arity("kdb|load"))
    server = conn.server
    named = len(args) == 3
    path = data_path(conn, args[2]) if named else server.snapshot.path()
    started = time.monotonic()
    try:
        result = load_into(server, path, nofollow=named)
    except kdb.KdbError as exc:
        raise CommandError(errors.kdb_load_refused(os.path.basename(path), exc))
    except OSError as exc:
        raise CommandError(errors.kdb_load_failed(_reason(exc)))
    _log_replaced(server)
    snap = server.snapshot
    if path == os.path.realpath(snap.path()):
        snap.total_at_save = snap.total   # memory now equals the configured file
    else:
        snap.total += result.keys
    log.warning("KDB LOAD %s: %d keys loaded in %.3f seconds (the whole dataset was replaced)",
                path, result.keys, time.monotonic() - started)
    audit("kdb-load", by=conn.user, addr=conn.addr, file=path, keys=result.keys)
    return result.keys


@subcommand("kdb", "export", arity=2, flags="readonly",
            acl_categories="@keyspace @read @slow @dangerous", group="server", since="0.1.0",
            summary="Return the caller's data as a .kdb payload",
            complexity="O(N) where N is the number of keys")
def _kdb_export(conn, args):
    tenant = conn.tenant
    return kdb.dumps({tenant.name: tenant})


@subcommand("kdb", "import", arity=-3, flags="write denyoom",
            acl_categories="@keyspace @write @slow @dangerous", group="server", since="0.1.0",
            summary="Add the keys of a KDB EXPORT payload to the caller's data",
            complexity="O(N) where N is the number of keys",
            arguments=[{"name": "payload", "type": "string"},
                       {"name": "replace", "type": "pure-token", "token": "REPLACE",
                        "flags": ["optional"]}])
def _kdb_import(conn, args):
    replace = False
    for option in args[3:]:
        if option.lower() == b"replace":
            replace = True
        else:
            raise CommandError(errors.SYNTAX)
    audit("kdb-import", by=conn.user, addr=conn.addr, tenant=conn.tenant.name,
          bytes=len(args[2]), replace=int(replace))
    return slices.run(conn, _import_job(conn, args[2], replace))


def _import_job(conn, payload: bytes, replace: bool):
    """KDB IMPORT's job (dispatch/slices.py): verify and decode the payload
    in slices (a 24 MB one took 2 s in one go), check for BUSYKEY in slices,
    then install every key in one step, so a save (a fork) or the log sees
    all of the import or none of it."""
    tenant = conn.tenant
    room, refusal = conn.server.memory.import_room(conn)
    try:
        result = yield from kdb.parse_steps(payload, now_ms=int(time.time() * 1000),
                                            databases=len(tenant.dbs),
                                            limits=conn.server.config.values, room=room)
    except kdb.KdbError as exc:
        raise CommandError(errors.kdb_payload_invalid(exc))
    except kdb.RoomExceeded:
        raise CommandError(refusal)
    sections = result.tenants
    if len(sections) > 1:
        raise CommandError(errors.kdb_import_tenants(len(sections)))
    per_db = next(iter(sections.values()), [])
    if not replace:
        yield from _check_busy(tenant, per_db)
    count = import_tenant(tenant, per_db, True, conn.server)   # checked above
    conn.server.snapshot.total += count   # changes since the last save
    return count


def _check_busy(tenant, per_db: list):
    """BUSYKEY if a key of `per_db` exists in `tenant`: a generator, yielding
    every few thousand keys."""
    for index, (data, _) in enumerate(per_db):
        if not data:
            continue   # makes no database (they are made on first use)
        db = tenant.dbs[index]
        live = db.data
        for n, key in enumerate(data, 1):
            if key in live and db.get(key) is not None:
                raise CommandError(errors.BUSYKEY)
            if not n % 4096:
                yield


def import_tenant(tenant, per_db: list, replace: bool, server=None) -> int:
    """Merge `per_db` ([(data, expires)...]) into `tenant`: all or nothing."""
    if not replace:
        for _ in _check_busy(tenant, per_db):
            pass
    count = 0
    written = []
    journal = server.events.journal if server is not None else None
    memory = server.memory if server is not None and server.memory.on else None
    for index, (data, expires) in enumerate(per_db):
        if not data:
            continue
        db = tenant.dbs[index]
        if memory is not None:   # the accounting (server/memory.py): O(keys imported)
            replaced = memory.footprints(db, (key for key in data if key in db.data))
        db.data.update(data)
        if db.expires:   # the old TTLs of replaced keys go (a loop only if any)
            pop = db.expires.pop
            for key in data:
                pop(key, None)
        if db.encodings:
            pop = db.encodings.pop
            for key in data:
                pop(key, None)
        db.expires.update(expires)
        if memory is not None:
            memory.charge(db, memory.footprints(db, data) - replaced, tenant)
        count += len(data)
        if db.watchers or db.blocked or tenant.tracking is not None:
            written.extend((db, key) for key in data)
        if journal is not None:   # not write commands: the log gets the keys' values
            journal.keys_set(tenant, [(db, key) for key in data])
    if written and server is not None:
        server.events.written(written)
    return count


# Orphaned tenants (server/app.py check_orphans): data no user owns, after a
# restore of an older users.db or an offline user deletion. Root lists them,
# takes a copy (to KDB IMPORT into the right user's tenant) and drops them;
# nothing else can reach them. Each re-reads the user store first, so a
# namespace root has bound a user to since is no longer an orphan.
_ORPHAN = dict(flags="admin noscript", acl_categories="@admin @slow @dangerous", group="server",
               since="0.1.0")
_ORPHAN_ARG = [{"name": "tenant", "type": "string"}]


@subcommand("kdb", "orphans", arity=2, **_ORPHAN,
            summary="List the tenants holding data that no user owns, with their key counts",
            complexity="O(N) where N is the number of users and tenants")
def _kdb_orphans(conn, args):
    server = conn.server
    server.check_orphans()
    return {name.encode("utf-8", "surrogateescape"): keys
            for name, keys in sorted(server.orphans.items())}


def _orphan(conn, raw: bytes):
    server = conn.server
    server.check_orphans()
    name = raw.decode("utf-8", "surrogateescape")
    if name not in server.orphans:
        raise CommandError(errors.KDB_NO_ORPHAN)
    return server, name


@subcommand("kdb", "export-orphan", arity=3, **_ORPHAN, arguments=_ORPHAN_ARG,
            summary="Return an orphaned tenant's data as a .kdb payload",
            complexity="O(N) where N is the number of keys")
def _kdb_export_orphan(conn, args):
    server, name = _orphan(conn, args[2])
    return kdb.dumps({name: server.tenants[name]})


@subcommand("kdb", "drop-orphan", arity=3, **_ORPHAN, arguments=_ORPHAN_ARG,
            summary="Delete an orphaned tenant and its data",
            complexity="O(N) where N is the number of keys")
def _kdb_drop_orphan(conn, args):
    server, name = _orphan(conn, args[2])
    tenant = server.tenants.pop(name)
    keys = tenant.key_count()
    if server.events.journal is not None:
        server.events.journal.dropped_tenant(name)
    for db in tenant.dbs:
        db.clear()
    del server.orphans[name]
    server.snapshot.total += keys   # changes since the last save
    log.warning("KDB DROP-ORPHAN: tenant %r and its %d keys deleted", name, keys)
    return keys


def _log_replaced(server) -> None:
    """The whole dataset was replaced without write commands (KDB LOAD, DEBUG
    RELOAD): the append-only log, if on, records every tenant's data as it is,
    and tenants no user owns are reported."""
    journal = server.events.journal
    if journal is not None:
        journal.replaced(list(server.tenants.values()))
    server.check_orphans()   # the file may hold tenants no user here owns


# -- DEBUG subcommands (dispatched from commands/server.py's DEBUG) -----------------

DEBUG_HELP = [
    "DIGEST", "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]", "    Output a hex signature of the values of all the specified keys.",
    "RELOAD [MERGE] [NOFLUSH] [NOSAVE]",
    "    Save the snapshot on disk and reload it back to memory. By default it will save",
    "    the snapshot, flush the dataset and load it back. NOSAVE loads the existing file;",
    "    NOFLUSH keeps the dataset (refusing duplicate keys unless MERGE replaces them).",
    "LOADAOF", "    Flush the AOF buffers on disk and reload the AOF in memory.",
]
def _digest_values(db, keys: list):
    """DEBUG DIGEST-VALUE's job (dispatch/slices.py): a big value's digest
    takes a second or more."""
    replies = []
    for key in keys:
        replies.append(Status((yield from key_steps(db, key))))
    return replies


DEBUG_SUBCOMMANDS = frozenset({b"digest", b"digest-value", b"reload", b"loadaof"})
DEBUG_OPEN = frozenset({b"digest", b"digest-value"})   # the caller's own tenant


def debug(conn, args):
    sub = args[1].lower()
    if sub == b"digest" and len(args) == 2:
        return slices.run(conn, dataset_steps(conn.tenant.dbs), Status)
    if sub == b"digest-value":
        return slices.run(conn, _digest_values(conn.db, args[2:]))
    if sub == b"reload":
        save_first = flush = True
        merge = False
        for option in args[2:]:
            option = option.lower()
            if option == b"nosave":
                save_first = False
            elif option == b"noflush":
                flush = False
            elif option == b"merge":
                merge = True
            else:
                raise CommandError(errors.DEBUG_RELOAD_OPTIONS)
        snap = _snapshot(conn)
        if save_first:
            if snap.in_progress():
                raise CommandError(errors.BGSAVE_IN_PROGRESS)
            try:
                snap.save()
            except Exception:
                raise CommandError(errors.BARE)
        server = conn.server
        try:
            if flush:
                load_into(server, snap.path())
                _log_replaced(server)
            else:   # NOFLUSH: keep the dataset; MERGE: the file's keys replace the same keys
                result = kdb.read_file(snap.path(), int(time.time() * 1000),
                                       server.config["limits.databases"])
                if not merge:   # Redis stops on a duplicate key; here nothing is loaded
                    for name, per_db in result.tenants.items():
                        tenant = server.tenant_for(name)
                        if any(key in tenant.dbs[i].data for i, (data, _) in enumerate(per_db)
                               for key in data):
                            raise kdb.KdbError("duplicate key in tenant %r" % name, 0)
                for name, per_db in result.tenants.items():
                    import_tenant(server.tenant_for(name), per_db, True, server)
        except (kdb.KdbError, OSError) as exc:
            log.warning("DEBUG RELOAD: %s", exc)
            raise CommandError(errors.DEBUG_RELOAD_FAILED)
        log.log(NOTICE, "DB reloaded by DEBUG RELOAD")
        return OK
    if sub == b"loadaof" and len(args) == 2:
        conn.server.aof.reload()
        return OK
    raise CommandError(errors.subcommand_syntax(args[1], "DEBUG"))
