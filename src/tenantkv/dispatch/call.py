"""call(): the one path every command takes, whichever way it arrives.

    a socket          server/connection.py: run() and run_one() inline the
                      common case (below); everything else is `execute`
    EXEC              commands/transactions.py: `run_queued` for each command
    the log replay    persistence/aof/replay.py: `replay`
    (later: Lua's redis.call, a replica's stream)

The steps, in Redis's order (processCommand): look the name up (and a
container's subcommand); check the arity (the subcommand's); check
authentication; check the user's permission (`allowed`: its command table,
built by tenancy/permissions.py, per command, per subcommand, per first
argument); queue inside MULTI; run the handler; encode the reply (RESP2 or
RESP3 per client); count it (INFO commandstats / errorstats). The write observers (dispatch/observers.py:
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

A container's handler is `dispatcher(container)` (below): the same checks
for its subcommand, which matter on the hot path (a container in the user's
table says nothing of its subcommands) and inside EXEC (the rules may have
changed since the command was queued), then the subcommand's handler, whose
calls, time and errors it counts (INFO's cmdstat_client|list, as Redis).

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
from tenantkv.dispatch.latency import slow
from tenantkv.dispatch.pubsub import SUBSCRIBED_NAMES, Subscribed, channel_refusal
from tenantkv.dispatch.replies import NO_REPLY, Deferred
from tenantkv.dispatch.table import find
from tenantkv.dispatch.throttle import Throttled
from tenantkv.errors import CommandError
from tenantkv.protocol.encoder import QUEUED, Raw, encode, encode_error

log = logging.getLogger("tenantkv.dispatch")

# What runs at once inside MULTI instead of being queued.
TRANSACTION_CONTROL = frozenset(("exec", "discard", "multi", "watch", "quit", "reset"))


def allowed(table: dict, cmd, args: list) -> bool:
    """Whether a client whose command table (tenancy/permissions.py) is
    `table` may run `cmd` (a command, or a container's subcommand) with
    `args`: the command or subcommand is in the table (the `key` of a
    subcommand is "container|sub", a str, which no request name can be), or
    the table names the first arguments it may be run with (`+select|0`:
    the command's name as a str -> a set of lower-case first arguments), or
    a function of the arguments (a subcommand's Command.open_args)."""
    if type(table) is Subscribed:   # pub/sub mode restricts, it does not permit
        table = table.allowed
    if table.get(cmd.key) is cmd:
        return True
    firstargs = table.get(cmd.name)
    if firstargs is None:
        return False
    if type(firstargs) is frozenset:
        return len(args) > 1 and args[1].lower() in firstargs
    return firstargs(args)


def refusal(client, cmd, args: list):
    """The error text that refuses `cmd` for `client` before it runs, or
    None: arity, the subcommand of a container and its arity,
    authentication, permission. Counts the refusal."""
    stats = client.server.stats
    tenant = client.tenant
    if not cmd.arity_ok(len(args)):
        cmd.rejected += 1
        tenant.count(tenant.rejected, cmd)
        stats.error("ERR", tenant)
        return errors.wrong_arity(cmd.name)
    if cmd.subcommands and len(args) > 1:
        sub = cmd.subcommands.get(args[1].lower())
        if sub is None:   # Redis counts it for no command
            stats.error("ERR", tenant)
            return errors.unknown_subcommand(args[0], args[1])
        cmd = sub
        if not cmd.arity_ok(len(args)):
            cmd.rejected += 1
            tenant.count(tenant.rejected, cmd)
            stats.error("ERR", tenant)
            return errors.wrong_arity(cmd.name)
    if not client.authenticated and "no_auth" not in cmd.flags:
        cmd.rejected += 1
        tenant.count(tenant.rejected, cmd)
        stats.error("NOAUTH", tenant)
        return errors.NOAUTH
    if client.authenticated and not allowed(client.lookup, cmd, args):
        cmd.rejected += 1
        tenant.count(tenant.rejected, cmd)
        stats.error("NOPERM", tenant)
        client.server.auth.denied(client, cmd.name,
                                  "multi" if client.multi is not None else "toplevel")
        return errors.noperm(cmd.name)
    return None


def dispatcher(container):
    """The handler of `container` (dispatch/table.py's container()): find
    the subcommand args[1] names, check its arity and the caller's
    permission for it (refusal() did already on the general path; the hot
    path and EXEC come here directly), run it, and count it as Redis counts
    a subcommand. Called without a subcommand (COMMAND alone), it runs the
    container's bare handler."""
    subcommands = container.subcommands
    bare = container.bare

    def dispatch(client, args):
        if len(args) == 1:
            return _counted(bare, client, args)
        sub = subcommands.get(args[1].lower())
        if sub is None:
            raise CommandError(errors.unknown_subcommand(args[0], args[1]))
        if not sub.arity_ok(len(args)):
            sub.rejected += 1
            client.tenant.count(client.tenant.rejected, sub)
            raise CommandError(errors.wrong_arity(sub.name))
        if client.lookup.get(sub.key) is not sub and not allowed(client.lookup, sub, args):
            sub.rejected += 1
            client.tenant.count(client.tenant.rejected, sub)
            client.server.auth.denied(client, sub.name)
            raise CommandError(errors.noperm(sub.name))
        if "write" in sub.flags and not client.internal:
            # FUNCTION LOAD, XGROUP CREATE...: refused as the write commands
            # are (dispatch/observers.py swaps those handlers) on a
            # read-only replica, and while writes are refused (MISCONF,
            # NOREPLICAS)
            events = client.server.events
            if events.read_only:
                raise CommandError(errors.READONLY)
            if events.denied is not None and not events.in_exec:
                raise CommandError(events.denied)
        return _counted(sub, client, args)
    return dispatch


def _counted(cmd, client, args: list):
    """Run a subcommand's handler, counting its call, time and error (the
    caller counts the container, and the error reply)."""
    tenant = client.tenant   # the one the client was in when the command started
    start = monotonic()
    try:
        reply = cmd.handler(client, args)
    except CommandError:
        cmd.failed += 1
        tenant.count(tenant.failed, cmd)
        raise
    finally:
        cmd.calls += 1
        spent = monotonic() - start
        cmd.usec += spent * 1e6
        if client.server.latency_tracking:   # Redis's histograms are the subcommands'
            cmd.hist[int(spent * 976562.5).bit_length()] += 1
        tenant.count(tenant.calls, cmd)
    if isinstance(reply, Deferred):   # it may fail later (ACL SETUSER's store)
        finish = reply.finish

        def counted_finish(result):
            try:
                return finish(result)
            except CommandError:
                cmd.failed += 1
                tenant.count(tenant.failed, cmd)
                raise
        reply.finish = counted_finish
    return reply


class Quiet:
    """A client's command table while CLIENT REPLY is OFF or SKIP: it finds
    no command, so every request takes the general path (`execute`), which
    runs it with the user's own table (`allowed`) and drops its reply. The
    hot path tests nothing for it."""
    __slots__ = ("allowed",)

    def __init__(self, allowed) -> None:
        self.allowed = allowed

    def get(self, name, default=None):
        return default


_SILENT = Raw(b"")


def _silenced(finish):
    def silent(result):
        try:
            finish(result)
        except CommandError:
            pass
        return _SILENT
    return silent


def _run_quiet(client, quiet: Quiet, args: list):
    """A request while replies are off (client.reply_mode "off") or the one
    after CLIENT REPLY SKIP ("skip"). Redis's flags: ON (and RESET) clear
    both before replying, so their reply goes out; SKIP while OFF changes
    nothing; errors are dropped too."""
    mode = client.reply_mode
    if mode == "skip":
        client.reply_mode = None   # only this one is dropped
    client.lookup = quiet.allowed
    data = execute(client, args)
    now = client.reply_mode
    if now == "on":   # CLIENT REPLY ON, RESET: answered, replies on again
        client.reply_mode = None
        return data
    if now is not None and type(client.lookup) is not Quiet:
        client.lookup = Quiet(client.lookup)   # still quiet (AUTH may have changed the table)
    if isinstance(data, Deferred):   # AUTH's check, a blocked pop: answered later, dropped then
        data.finish = _silenced(data.finish)
        return data
    if isinstance(data, bytes) and data[:1] in b"*>" and (
            data[:1] == b">" or args[0].lower() in _PUSHING):
        # Pub/sub confirmations (RESP2 arrays too) and RESP3 pushes go out
        # whatever the reply mode, as Redis's CLIENT_PUSHING replies do.
        return data
    return b""


# The commands whose replies Redis sends as CLIENT_PUSHING (pubsub.c): not
# silenced by CLIENT REPLY OFF/SKIP, in RESP2 as in RESP3.
_PUSHING = frozenset((b"subscribe", b"psubscribe", b"ssubscribe",
                      b"unsubscribe", b"punsubscribe", b"sunsubscribe"))


def execute(client, args: list):
    """A request from a client: its encoded reply (bytes), or a Deferred
    the caller waits on (its `cmd` set)."""
    lookup = client.lookup
    if type(lookup) is Quiet:   # CLIENT REPLY OFF or SKIP
        return _run_quiet(client, lookup, args)
    if type(lookup) is Throttled:   # its tenant is over its rate quota (dispatch/throttle.py)
        refused = lookup.refusal(client, args)
        if refused is not None:
            client.server.stats.error(refused, client.tenant)
            client.multi_error = client.multi is not None   # EXEC will abort
            return encode_error(refused)
    cmd = find(args[0])
    if cmd is None:
        client.server.stats.unknown_command(args, client.tenant)
        client.multi_error = client.multi is not None   # EXEC will abort
        return encode_error(errors.unknown_command(args))
    refused = refusal(client, cmd, args)
    if refused is not None:
        if refused is not errors.NOAUTH:
            client.multi_error = client.multi is not None
        return encode_error(refused)
    if type(lookup) is Subscribed and cmd.name not in SUBSCRIBED_NAMES:
        return encode_error(_subscribed_refusal(client, cmd, args))
    if client.multi is not None and cmd.name not in TRANSACTION_CONTROL:
        return _queue(client, cmd, args)
    return invoke(client, cmd, args)


def _subscribed_refusal(client, cmd, args: list) -> str:
    """A RESP2 client in pub/sub mode (its table is a Subscribed) sent a
    command outside the subscribe family: Redis's error, counted as Redis
    counts a rejected command."""
    if cmd.subcommands and len(args) > 1:
        cmd = cmd.subcommands[args[1].lower()]   # refusal() found it
    cmd.rejected += 1
    client.tenant.count(client.tenant.rejected, cmd)
    client.server.stats.error("ERR", client.tenant)
    return errors.subscribed_context(cmd.name)


def _queue(client, cmd, args: list) -> bytes:
    stats = client.server.stats
    checked = cmd   # a container's subcommand (refusal() found it) has the flags
    if cmd.subcommands and len(args) > 1:
        checked = cmd.subcommands[args[1].lower()]
    flags = checked.flags
    waits = checked.waits
    tenant = client.tenant
    if "no_multi" in flags or (waits and (waits is True or waits(args))):
        # A command that waits for work off the loop (the user store, AUTH's
        # hashing: `waits` in dispatch/table.py) cannot run inside EXEC, which
        # must finish in one loop step, and must not half-run there (the
        # store changed, live sessions and the reply not). Redis runs them
        # in EXEC, as it runs everything on one thread; tenantkv refuses them
        # here, with the text Redis gives a no-multi command, and EXEC aborts.
        checked.rejected += 1
        tenant.count(tenant.rejected, checked)
        stats.error("ERR", tenant)
        client.multi_error = True
        return encode_error(errors.NOT_IN_MULTI)
    if client.channel_rules is not None and "pubsub" in flags and channel_refusal(client, args):
        # The user's ACL channel rules refuse it: refused when queued, as Redis.
        checked.rejected += 1
        tenant.count(tenant.rejected, checked)
        stats.error("NOPERM", tenant)
        client.multi_error = True
        return encode_error(errors.NOPERM_CHANNEL)
    events = client.server.events
    denied = events.denied
    if denied is not None and ("write" in flags or (
            cmd.name == "ping" and denied.startswith("MISCONF"))):
        # Writes are refused (MISCONF, NOREPLICAS): refused when queued
        # too, and EXEC then aborts, as Redis.
        checked.rejected += 1
        tenant.count(tenant.rejected, checked)
        stats.error(denied, tenant)
        client.multi_error = True
        return encode_error(denied)
    if events.read_only and "write" in flags and not client.internal:
        checked.rejected += 1
        tenant.count(tenant.rejected, checked)
        stats.error(errors.READONLY, tenant)
        client.multi_error = True
        return encode_error(errors.READONLY)
    meter = client.server.events.meter
    if meter is not None and "denyoom" in flags:
        # Over maxmemory or a quota (server/memory.py): refused when queued,
        # as Redis's processCommand, and EXEC then aborts.
        try:
            data = client.db.data
            meter.admit(client, lambda: any(args[i] not in data for i in checked.keys_of(args)))
        except CommandError as exc:
            checked.rejected += 1
            tenant.count(tenant.rejected, checked)
            stats.error(exc.message, tenant)
            client.multi_error = True
            return encode_error(exc.message)
    queue = client.multi
    if client.multi_error:
        return QUEUED   # EXEC will abort: keeping the command would only cost memory
    if not client.root:
        queue.size += sum(map(len, args))
        if len(queue) >= queue.MAX_COMMANDS or queue.size > queue.MAX_BYTES:
            # A bound of tenantkv's (commands/transactions.py): the
            # transaction is aborted as after any queuing error, and what
            # it held is freed now.
            queue.clear()
            stats.error("ERR", tenant)
            client.multi_error = True
            return encode_error(errors.multi_queue_limit(queue.MAX_COMMANDS, queue.MAX_BYTES >> 20))
    queue.append((cmd, args))
    return QUEUED


def invoke(client, cmd, args: list):
    """Run a command that passed the checks: its encoded reply, or a
    Deferred (counted when it finishes, by the connection)."""
    client.last_command = cmd.name
    tenant = client.tenant   # before the command (RESET) may change it
    start = monotonic()
    try:
        reply = cmd.handler(client, args)
        if isinstance(reply, Deferred):
            reply.cmd = cmd   # counted by the connection's _wait
            reply.args = args   # timed when it finishes (SLOWLOG)
            return reply
        # NO_REPLY: the handler wrote already (or closed); one entry per request.
        data = encode(reply, client.resp3) if reply is not NO_REPLY else b""
    except CommandError as exc:
        data = failed(client, cmd, exc.message)
    except Exception as exc:
        data = crashed(client, cmd, exc)
    _timed(client, cmd, args, monotonic() - start)
    tenant.count(tenant.calls, cmd)
    return data


def _timed(client, cmd, args: list, spent: float) -> None:
    """Count a command's call and time (commandstats, the latency
    histogram) and offer it to SLOWLOG and LATENCY."""
    cmd.calls += 1
    cmd.usec += spent * 1e6
    server = client.server
    if spent >= server.timed_after:
        slow(client, cmd, args, spent)
    if server.latency_tracking:   # its bucket: units of 1024 ns, doubling
        cmd.hist[int(spent * 976562.5).bit_length()] += 1


def run_queued(client, cmd, args: list) -> bytes:
    """One command of an EXEC: its encoded reply. Nothing may wait inside a
    transaction (other clients would run in the middle of it). The rules
    are checked again, as Redis 7 does: they may have changed since the
    command was queued."""
    checked = cmd.subcommands[args[1].lower()] if cmd.subcommands and len(args) > 1 else cmd
    if client.authenticated and not allowed(client.lookup, checked, args):
        client.server.stats.error("NOPERM", client.tenant)
        client.server.auth.denied(client, checked.name, "multi")
        return encode_error(errors.NOPERM_CHANGED_IN_EXEC)
    client.last_command = cmd.name
    start = monotonic()
    try:
        reply = cmd.handler(client, args)
        if isinstance(reply, Deferred):
            # Unreachable for a command declared `waits` (refused when
            # queued); waiting here would let other clients run inside the
            # transaction. A command that waits without saying so is a bug.
            reply.future.cancel()
            log.error("%r answered a Deferred inside EXEC: declare it `waits`", cmd.name)
            raise CommandError(errors.not_in_multi_tenantkv(cmd.name))
        data = encode(reply, client.resp3) if type(reply) is not bytes else \
            b"$%d\r\n%s\r\n" % (len(reply), reply)
    except CommandError as exc:
        data = failed(client, cmd, exc.message)
    except Exception as exc:   # a bug in one command must not abort the rest
        data = crashed(client, cmd, exc)
    _timed(client, cmd, args, monotonic() - start)
    client.tenant.count(client.tenant.calls, cmd)
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
    tenant = client.tenant
    tenant.count(tenant.failed, cmd)
    client.server.stats.error(message, tenant)
    return encode_error(message)


def crashed(client, cmd, exc: Exception) -> bytes:
    # A bug in one command must not take the connection (or the batch) down.
    log.error("error running %r for client %s", cmd.name, getattr(client, "id", "?"),
              exc_info=exc)
    return failed(client, cmd, errors.internal_error(cmd.name, exc))
