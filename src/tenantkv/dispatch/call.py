"""call(): the one path every command takes, whichever way it arrives.

    a socket          server/connection.py: run() and run_one() inline the
                      common case (below); everything else is `execute`
    EXEC              commands/transactions.py: `run_queued` for each command
    the log replay    persistence/aof/replay.py: `replay`
    (later: Lua's redis.call, a replica's stream)

The steps, in Redis's order (processCommand): look the name up; check the
arity; check authentication; check the user's permission (its command table,
tenancy/permissions.py, and the rules per subcommand); queue inside MULTI;
run the handler; encode the reply (RESP2 or RESP3 per client); count it
(INFO commandstats / errorstats). The write observers (dispatch/observers.py:
the append-only log, WATCH, blocked clients) see every write because they
wrap the write commands' handlers while anyone listens, so this path pays
nothing for them when nobody does.

The hot path: a request whose name is in the client's own command table
(`client.lookup`, which holds only what the user may run, so it already
answers authentication and permission), with the right arity, outside MULTI,
is run by the connection itself (run_one/run in server/connection.py): the
same handler call, encoding and counting as `invoke`, written out inline
because a function call per command shows in CPU per request. Everything
else comes here.

A handler is `handler(client, args) -> reply`: a plain value the encoder
knows (protocol/encoder.py), NO_REPLY (it wrote or closed already), or a
Deferred (dispatch/replies.py; Blocked for a client parked on keys) that the
server turns into a waiting client. It raises CommandError with Redis's text
for a refusal; any other exception is a bug, answered as an internal error
without taking the connection down.
"""

import logging
from time import monotonic

from tenantkv import errors
from tenantkv.dispatch.replies import NO_REPLY, Deferred
from tenantkv.dispatch.table import find
from tenantkv.errors import CommandError
from tenantkv.protocol.encoder import QUEUED, encode, encode_error

log = logging.getLogger("tenantkv.dispatch")

# What runs at once inside MULTI instead of being queued.
TRANSACTION_CONTROL = frozenset(("exec", "discard", "multi", "watch", "quit", "reset"))


def refusal(client, cmd, args: list):
    """The error text that refuses `cmd` for `client` before it runs, or
    None: arity, authentication, permission (the command, and the
    subcommand of a container). Counts the refusal."""
    stats = client.server.stats
    if not cmd.arity_ok(len(args)):
        cmd.rejected += 1
        stats.error("ERR")
        return errors.wrong_arity(cmd.name)
    if not client.authenticated and "no_auth" not in cmd.flags:
        cmd.rejected += 1
        stats.error("NOAUTH")
        return errors.NOAUTH
    if (client.authenticated and client.lookup.get(cmd.name.encode()) is not cmd
            and not (len(args) > 1 and args[1].lower() in cmd.open_subcommands)):
        # Not in this user's command table: a command its ACL rules deny.
        cmd.rejected += 1
        stats.error("NOPERM")
        client.server.auth.denied(client, cmd.name)
        return errors.noperm(cmd.name)
    return None


def execute(client, args: list):
    """A request from a client: its encoded reply (bytes), or a Deferred
    the caller waits on (its `cmd` set)."""
    cmd = find(args[0])
    if cmd is None:
        client.server.stats.unknown_command(args)
        client.multi_error = client.multi is not None   # EXEC will abort
        return encode_error(errors.unknown_command(args))
    refused = refusal(client, cmd, args)
    if refused is not None:
        if refused is not errors.NOAUTH:
            client.multi_error = client.multi is not None
        return encode_error(refused)
    if client.multi is not None and cmd.name not in TRANSACTION_CONTROL:
        return _queue(client, cmd, args)
    return invoke(client, cmd, args)


def _queue(client, cmd, args: list) -> bytes:
    stats = client.server.stats
    if "no_multi" in cmd.flags:
        cmd.rejected += 1
        stats.error("ERR")
        client.multi_error = True
        return encode_error(errors.NOT_IN_MULTI)
    denied = client.server.events.denied
    if denied is not None and ("write" in cmd.flags or cmd.name == "ping"):
        # Writes are refused (MISCONF): refused when queued too, and EXEC
        # then aborts, as Redis.
        cmd.rejected += 1
        stats.error(denied)
        client.multi_error = True
        return encode_error(denied)
    client.multi.append((cmd, args))
    return QUEUED


def invoke(client, cmd, args: list):
    """Run a command that passed the checks: its encoded reply, or a
    Deferred (counted when it finishes, by the connection)."""
    client.last_command = cmd.name
    start = monotonic()
    try:
        reply = cmd.handler(client, args)
        if isinstance(reply, Deferred):
            reply.cmd = cmd
            return reply
        # NO_REPLY: the handler wrote already (or closed); one entry per request.
        data = encode(reply, client.resp3) if reply is not NO_REPLY else b""
    except CommandError as exc:
        data = failed(client, cmd, exc.message)
    except Exception as exc:
        data = crashed(client, cmd, exc)
    cmd.calls += 1
    cmd.usec += (monotonic() - start) * 1e6
    return data


def run_queued(client, cmd, args: list) -> bytes:
    """One command of an EXEC: its encoded reply. Nothing may wait inside a
    transaction (other clients would run in the middle of it)."""
    client.last_command = cmd.name
    start = monotonic()
    try:
        reply = cmd.handler(client, args)
        if isinstance(reply, Deferred):
            # AUTH / HELLO AUTH hash in a worker thread: waiting for it here
            # would let other clients run inside the transaction.
            reply.future.cancel()
            raise CommandError(errors.not_in_multi_tenantkv(cmd.name))
        data = encode(reply, client.resp3) if type(reply) is not bytes else \
            b"$%d\r\n%s\r\n" % (len(reply), reply)
    except CommandError as exc:
        data = failed(client, cmd, exc.message)
    except Exception as exc:   # a bug in one command must not abort the rest
        data = crashed(client, cmd, exc)
    cmd.calls += 1
    cmd.usec += (monotonic() - start) * 1e6
    return data


def replay(client, cmd, args: list):
    """A write from the append-only log: the handler alone, on the log's
    internal client. Not counted as a call (a restart is not traffic: the
    changes since the last save stay 0, as in Redis); a CommandError goes
    to the caller, which counts and reports it."""
    return cmd.handler(client, args)


def failed(client, cmd, message: str) -> bytes:
    """Count a command's error and return its encoded reply."""
    cmd.failed += 1
    client.server.stats.error(message)
    return encode_error(message)


def crashed(client, cmd, exc: Exception) -> bytes:
    # A bug in one command must not take the connection (or the batch) down.
    log.error("error running %r for client %s", cmd.name, getattr(client, "id", "?"),
              exc_info=exc)
    return failed(client, cmd, errors.internal_error(cmd.name, exc))
