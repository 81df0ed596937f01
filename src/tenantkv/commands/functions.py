"""Functions: FUNCTION LOAD/DELETE/FLUSH/LIST/DUMP/RESTORE/STATS/KILL, FCALL, FCALL_RO.

A tenant's libraries (scripting/functions.py, `tenant.functions`) are its
own: another tenant's FCALL gets "Function not found", FUNCTION FLUSH,
STATS and KILL reach only the caller's tenant (root's too: its own).
"""

from time import monotonic

from tenantkv import errors
from tenantkv.dispatch.table import command, container, subcommand
from tenantkv.errors import CommandError
from tenantkv.protocol.encoder import OK, SetReply, Status
from tenantkv.scripting import engine, functions
from tenantkv.util.glob import glob_match
from tenantkv.util.numbers import parse_int


def _logged(conn, args) -> None:
    """A FUNCTION LOAD/DELETE/FLUSH/RESTORE that changed the libraries goes
    to the log as itself (containers' subcommands are not wrapped by
    dispatch/observers.py; a library's code is deterministic to replay)."""
    journal = conn.server.events.journal
    if journal is not None:
        journal.emit(conn.tenant.name, conn.db.index, args)


def _writable(conn) -> None:
    """Refused as every write while the server cannot persist (MISCONF)."""
    denied = conn.server.events.denied
    if denied is not None:
        raise CommandError(denied)


def _admit(conn) -> None:
    """FUNCTION LOAD/RESTORE are denyoom (maxmemory, the tenant's memory
    quota), as Redis; containers' subcommands are not metered by dispatch."""
    meter = conn.server.events.meter
    if meter is not None:
        meter.admit(conn, lambda: False)


def _fcall(conn, args, ro: bool):
    libs = conn.tenant.functions
    found = libs.owner.get(args[1].lower()) if libs is not None else None
    if found is None:
        raise CommandError("ERR Function not found")
    lib, name = found
    numkeys = parse_int(args[2])
    if numkeys is None:
        raise CommandError("ERR Bad number of keys provided")
    if numkeys > len(args) - 3:
        raise CommandError(errors.NUMKEYS_TOO_MANY)
    if numkeys < 0:
        raise CommandError(errors.NUMKEYS_NEGATIVE)
    flags = lib.functions[name][0]
    no_writes = b"no-writes" in flags
    if not no_writes and conn.server.events.read_only and not conn.internal:
        # As Redis's processCommand: a function that may write is a write
        # command on a read-only replica, refused before it runs (and
        # before FCALL_RO's own error).
        raise CommandError(errors.READONLY)
    denied = conn.server.events.denied
    if not no_writes and denied is not None and not conn.internal:
        raise CommandError(denied)   # MISCONF, NOREPLICAS: refused whole, as Redis
    if ro and not no_writes:
        raise CommandError("ERR Can not execute a script with write flag using *_ro command.")
    # allow-oom spares a tenant's function only this refusal: its writes
    # still meet maxmemory and its quota, so no tenant pushes the server past
    # them; root's pass them too, as in Redis (scripting/engine.py).
    if not (no_writes or b"allow-oom" in flags):
        # As Redis (scriptPrepareForRun): refused whole, not at its first write.
        try:
            _admit(conn)
        except CommandError as exc:
            if not exc.message.startswith("OOM"):
                raise
            raise CommandError("OOM allow-oom flag is not set on the script, can not run it "
                               "when used memory > 'maxmemory'")
    scripts = engine.of(conn.tenant, conn.server)
    libs.bind(scripts)
    libs.caller = (list(args), monotonic())
    return engine.counted(conn, scripts.run_function(conn, name, args[3:3 + numkeys],
                                                     args[3 + numkeys:], ro or no_writes,
                                                     lib.code, b"allow-oom" in flags))


@command("fcall")
def fcall(conn, args):
    return _fcall(conn, args, False)


@command("fcall_ro")
def fcall_ro(conn, args):
    return _fcall(conn, args, True)


FUNCTION_HELP = [
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using "
    "FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a "
    "restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, "
    "replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance "
    "of failure",
    "      in case of functions name collision with another library).",
]

container("function", help=FUNCTION_HELP)


@subcommand("function", "load")
def _load(conn, args):
    replace = False
    pos = 2
    while pos < len(args) - 1:
        arg = args[pos]
        pos += 1
        if arg.lower() == b"replace":
            replace = True
            continue
        raise CommandError("ERR Unknown option given: %s" % arg.decode("utf-8", "replace"))
    if pos >= len(args):
        raise CommandError("ERR Function code is missing")
    _writable(conn)
    _admit(conn)
    scripts = engine.of(conn.tenant, conn.server)
    # No time limit when the log replays it (Redis: mustObeyClient).
    name = functions.of(conn.tenant).load(scripts, args[pos], replace,
                                          timeout=conn.transport is not None)
    _logged(conn, args)
    return name


@subcommand("function", "delete")
def _delete(conn, args):
    libs = conn.tenant.functions
    if libs is None:
        raise CommandError("ERR Library not found")
    _writable(conn)
    libs.delete(conn.tenant.scripts, args[2])
    _logged(conn, args)
    return OK


@subcommand("function", "flush")
def _flush(conn, args):
    if len(args) > 3:
        raise CommandError(errors.subcommand_syntax(args[1], "FUNCTION"))
    if (len(args) == 3 and args[2].lower() not in (b"async", b"sync")):
        raise CommandError("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
    _writable(conn)
    libs = conn.tenant.functions
    if libs is not None:
        libs.flush(conn.tenant.scripts)
    _logged(conn, args)
    return OK


@subcommand("function", "list")
def _list(conn, args):
    with_code = False
    pattern = None
    i = 2
    while i < len(args):
        arg = args[i].lower()
        if not with_code and arg == b"withcode":
            with_code = True
        elif pattern is None and arg == b"libraryname":
            if i >= len(args) - 1:
                raise CommandError("ERR library name argument was not given")
            i += 1
            pattern = args[i]
        else:
            raise CommandError("ERR Unknown argument %s" % args[i].decode("utf-8", "replace"))
        i += 1
    libs = conn.tenant.functions
    reply = []
    for name in sorted(libs.libs) if libs is not None else ():
        if pattern is not None and not glob_match(pattern, name, True):
            continue
        lib = libs.libs[name]
        entry = {b"library_name": name, b"engine": b"LUA",
                 b"functions": [{b"name": fname, b"description": desc,
                                 b"flags": SetReply([Status(f.decode()) for f in flags])}
                                for fname, (flags, desc) in sorted(lib.functions.items())]}
        if with_code:
            entry[b"library_code"] = lib.code
        reply.append(entry)
    return reply


@subcommand("function", "dump")
def _dump(conn, args):
    libs = conn.tenant.functions
    return (libs or functions.Libraries()).dump()


@subcommand("function", "restore")
def _restore(conn, args):
    if len(args) > 4:
        raise CommandError(errors.subcommand_syntax(args[1], "FUNCTION"))
    policy = b"append"
    if len(args) > 3:
        policy = args[3].lower()
        if policy not in (b"append", b"replace", b"flush"):
            raise CommandError("ERR Wrong restore policy given, value should be either FLUSH, "
                               "APPEND or REPLACE.")
    _writable(conn)
    _admit(conn)
    scripts = engine.of(conn.tenant, conn.server)
    functions.of(conn.tenant).restore(scripts, args[2], policy,
                                      timeout=conn.transport is not None)
    _logged(conn, args)
    return OK


def _running(conn):
    """The caller's tenant's running Run, None; BUSY if it is an EVAL's."""
    scripts = conn.tenant.scripts
    run = scripts.running if scripts is not None else None
    if run is None or not run.sha:
        return None
    if not run.sha.startswith(b"\0"):
        return False
    return run


@subcommand("function", "stats")
def _stats(conn, args):
    run = _running(conn)
    if run is False:
        raise CommandError(errors.BUSY_SCRIPT)
    libs = conn.tenant.functions
    running = None
    if run is not None:
        caller = libs.caller[0] if libs is not None and libs.caller else []
        running = {b"name": run.sha[1:], b"command": caller,
                   b"duration_ms": int((monotonic() - run.start) * 1000)}
    return {b"running_script": running,
            b"engines": {b"LUA": {b"libraries_count": len(libs.libs) if libs else 0,
                                  b"functions_count": len(libs.owner) if libs else 0}}}


@subcommand("function", "kill")
def _kill(conn, args):
    scripts = conn.tenant.scripts
    run = scripts.running if scripts is not None else None
    if run is None or not run.sha:   # not a _Loading (a library's load)
        raise CommandError(errors.NOTBUSY)
    if run.wrote:   # Redis's order (scriptKill): unkillable, then the other kind's BUSY
        raise CommandError(errors.SCRIPT_UNKILLABLE)
    if not run.sha.startswith(b"\0"):
        raise CommandError(errors.BUSY_SCRIPT)
    run.killed = True
    return OK
