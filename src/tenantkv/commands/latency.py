"""SLOWLOG and LATENCY: what ran slowly, and when (dispatch/slowlog.py and
dispatch/latency.py keep the data and say who sees what).

Redis makes them admin commands. Here any user may run them, its rules
permitting: a tenant reads and resets only its own tenant's entries and
events, root the server's (and every tenant's slow log).
"""

from tenantkv import errors
from tenantkv.dispatch import latency
from tenantkv.dispatch.table import COMMANDS, container, subcommand
from tenantkv.errors import CommandError
from tenantkv.protocol.encoder import OK, Verbatim
from tenantkv.util.numbers import parse_int

SLOWLOG_HELP = [
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
]

container("slowlog", help=SLOWLOG_HELP)


@subcommand("slowlog", "get", root_only=False)
def _slowlog_get(conn, args):
    if len(args) > 3:
        raise CommandError(errors.subcommand_syntax(args[1], "SLOWLOG"))
    count = 10
    if len(args) == 3:
        count = parse_int(args[2])
        if count is None or count < -1:
            raise CommandError(errors.SLOWLOG_COUNT)
    return conn.server.slowlog.get(conn, count)


@subcommand("slowlog", "len", root_only=False)
def _slowlog_len(conn, args):
    return conn.server.slowlog.length(conn)


@subcommand("slowlog", "reset", root_only=False)
def _slowlog_reset(conn, args):
    conn.server.slowlog.reset(conn)
    return OK


LATENCY_HELP = [
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the "
    "specified command names.",
    "    If no commands are specified then all histograms are replied.",
]

container("latency", help=LATENCY_HELP)


def _event(arg: bytes) -> str:
    return arg.decode("utf-8", "surrogateescape")


@subcommand("latency", "latest", root_only=False)
def _latency_latest(conn, args):
    return conn.server.latency.view(conn).latest()


@subcommand("latency", "history", root_only=False)
def _latency_history(conn, args):
    return conn.server.latency.view(conn).history(_event(args[2]))


@subcommand("latency", "reset", root_only=False)
def _latency_reset(conn, args):
    return conn.server.latency.view(conn).reset([_event(a) for a in args[2:]])


@subcommand("latency", "graph", root_only=False)
def _latency_graph(conn, args):
    name = _event(args[2])
    event = conn.server.latency.view(conn).events.get(name)
    if event is None:
        raise CommandError(errors.latency_no_samples(name))
    return Verbatim(latency.sparkline(name, event))


@subcommand("latency", "doctor", root_only=False)
def _latency_doctor(conn, args):
    if not conn.server.latency.threshold:
        return Verbatim(latency.DISABLED)
    return Verbatim(latency.doctor(conn.server.latency.view(conn)))


def _histogram_of(cmd) -> dict:
    return {b"calls": sum(cmd.hist), b"histogram_usec": latency.cdf(cmd.hist)}


@subcommand("latency", "histogram", root_only=False)
def _latency_histogram(conn, args):
    """Root: the server's histograms of the named commands (a container's
    name: its subcommands), else of every command called since CONFIG
    RESETSTAT. A tenant: none (dispatch/latency.py says why)."""
    if not conn.root:
        return {}
    reply = {}
    if len(args) == 2:
        for top in COMMANDS.values():
            for cmd in (top, *top.subcommands.values()):
                if (cmd.subcommands and cmd is top) or not any(cmd.hist):
                    continue
                reply[cmd.name.encode()] = _histogram_of(cmd)
        return reply
    for arg in args[2:]:
        name = arg.decode("latin-1").lower()
        container_name, _, sub = name.partition("|")
        top = COMMANDS.get(container_name)
        if top is None:
            continue
        if sub:
            cmd = top.subcommands.get(sub.encode())
            found = [cmd] if cmd is not None else []
        elif top.subcommands:
            found = list(top.subcommands.values())
        else:
            found = [top]
        for cmd in found:
            if any(cmd.hist):
                reply[cmd.name.encode()] = _histogram_of(cmd)
    return reply
