"""Scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT LOAD/EXISTS/FLUSH/KILL.

The engine (scripting/engine.py) holds each tenant's Lua state and scripts:
a SHA loaded by one tenant is NOSCRIPT for every other, SCRIPT FLUSH and
SCRIPT KILL reach only the caller's tenant.
"""

from tenantkv import errors
from tenantkv.dispatch.table import command, container, subcommand
from tenantkv.errors import CommandError
from tenantkv.protocol.encoder import OK
from tenantkv.scripting import engine
from tenantkv.util.numbers import parse_int


def _keys_args(args: list):
    numkeys = parse_int(args[2])
    if numkeys is None:
        raise CommandError(errors.NOT_INTEGER)
    if numkeys < 0:
        raise CommandError(errors.NUMKEYS_NEGATIVE)
    if numkeys > len(args) - 3:
        raise CommandError(errors.NUMKEYS_TOO_MANY)
    return args[3:3 + numkeys], args[3 + numkeys:]


def _eval(conn, args, read_only: bool):
    keys, argv = _keys_args(args)
    scripts = engine.of(conn.tenant, conn.server)
    sha = scripts.load(args[1])
    return engine.counted(conn, scripts.run(conn, sha, keys, argv, read_only))


def _evalsha(conn, args, read_only: bool):
    keys, argv = _keys_args(args)
    scripts = conn.tenant.scripts
    sha = args[1].lower()
    if scripts is None or not scripts.exists(sha):
        raise CommandError(errors.NOSCRIPT)
    return engine.counted(conn, scripts.run(conn, sha, keys, argv, read_only))


@command("eval")
def eval_(conn, args):
    return _eval(conn, args, False)


@command("eval_ro")
def eval_ro(conn, args):
    return _eval(conn, args, True)


@command("evalsha")
def evalsha(conn, args):
    return _evalsha(conn, args, False)


@command("evalsha_ro")
def evalsha_ro(conn, args):
    return _evalsha(conn, args, True)


SCRIPT_HELP = [
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
]

container("script", help=SCRIPT_HELP)


@subcommand("script", "load")
def _script_load(conn, args):
    return engine.of(conn.tenant, conn.server).load(args[2])


@subcommand("script", "exists")
def _script_exists(conn, args):
    scripts = conn.tenant.scripts
    return [int(scripts is not None and scripts.exists(sha)) for sha in args[2:]]


@subcommand("script", "flush")
def _script_flush(conn, args):
    if len(args) > 3 or (len(args) == 3 and args[2].lower() not in (b"async", b"sync")):
        raise CommandError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    scripts = conn.tenant.scripts
    if scripts is not None:
        scripts.flush(conn.tenant)
    return OK


@subcommand("script", "kill")
def _script_kill(conn, args):
    scripts = conn.tenant.scripts
    if scripts is None:
        raise CommandError(errors.NOTBUSY)
    scripts.kill(conn)
    return OK
