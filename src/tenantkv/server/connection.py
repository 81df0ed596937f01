"""One client connection: bytes in, requests parsed, commands run, replies out.

An asyncio.Protocol (not streams): no coroutine per read or per command. All
replies produced while handling one `data_received` are joined into one
buffer, which is what makes pipelining cheap.

Replies are not written at once: as Redis does (its clients_pending_write list,
flushed in beforeSleep), a connection with output joins the server's list of
pending writes, and all of them are written together once the loop has handled
every read of this turn (flush_connections). Measured with redis-benchmark
(50 clients, pipeline 16): GET from 2.6 to 1.7 us of server CPU per request,
MSET at pipeline 1 from 25 to 15. Writing each reply as soon as it is ready
wakes the client process once per write, and on a VM each wake-up of a
sleeping vCPU is an expensive exit, charged to the writer's send().

A read that holds one request (no pipelining) takes a shorter path, run_one;
everything else goes through run(), one batch at a time.
"""

import asyncio
import logging
import time
from collections import _count_elements   # Counter.update's C loop
from time import monotonic

from tenantkv import errors
from tenantkv.config import OBUF_NORMAL
from tenantkv.dispatch.call import Quiet, crashed, execute, failed
from tenantkv.dispatch.table import LOOKUP, NOAUTH_LOOKUP
from tenantkv.errors import CommandError, ProtocolError, QueryBufferExceeded
from tenantkv.logs import audit
from tenantkv.protocol.encoder import SMALL_INTS, Raw, encode, encode_error
from tenantkv.protocol.reader import Reader
from tenantkv.dispatch.blocking import Blocked
from tenantkv.dispatch.pubsub import leave_all, refresh_mode, revoked
from tenantkv.dispatch.replies import NO_REPLY, RETRY, Deferred
from tenantkv.dispatch.latency import slow
from tenantkv.dispatch.slices import charge
from tenantkv.scripting.engine import busy_reply, script_busy
from tenantkv.server.auth import client_group
from tenantkv.tenancy.permissions import channel_rules

log = logging.getLogger("tenantkv.connection")

# Before AUTH (as Redis after CVE-2021-32675, plus caps of our own): the
# largest argument (Redis: 16 KB; at most 10 arguments, in the reader), the
# input held for a client (an unfinished request, a whole request, the
# requests read behind an AUTH that waits for its password check), and its
# unread replies.
UNAUTH_MAX_ARG = 16 * 1024
# 2 KB holds one `HELLO 3 AUTH <user> <password> SETNAME <name>` with the
# longest password Redis generates (ACL GENPASS 4096: 1,024 characters), the
# longest user name (128, tenancy/store.py) and a client name of 700.
# Measured (RSS, 5,000 connections): one holding 10 arguments of 16 KB cost
# 174 KB; one holding all that 4 KB would allow, 7.8 KB (39 MB in all:
# too close to the 40 MB wanted); 2 KB leaves room.
UNAUTH_MAX_INPUT = 2 * 1024
UNAUTH_MAX_OUTPUT = 64 * 1024
# At the cap of unauthenticated connections, how many of the oldest are looked
# at for one to close (those waiting for their password check are skipped).
EVICT_SCAN = 16
FLUSH_AT = 256 * 1024   # write a long batch's replies out in pieces of this size
MAX_BLOCKED_BACKLOG = 1024   # requests held behind a blocked pop before reading pauses
# A fair loop: at most this many requests of one connection per turn of the
# loop. libuv reads a ready socket up to 32 times per turn (256 KB each with
# uvloop), so one client pipelining a million INCRs held every other client
# for seconds (issue 15: 5.8 s). The rest waits in the backlog, with reading
# paused, and runs on the next turns: ~3 ms of cheap commands per turn.
TURN_REQUESTS = 1024
# The same in time: after a command that is not @fast (Command.slow), a
# batch that has run this long leaves the rest for the next turn (64
# pipelined SCAN 0 on a million keys held the others for 1.4 s).
TURN_SECONDS = 0.005
# And in bytes parsed: hiredis parses a whole read at once, and uvloop reads
# 256 KB (~18,000 INCRs: 6-8 ms of parsing before the first one runs). A
# longer read is cut after the last request that starts within this many
# bytes; the rest is parsed on a later turn, reading paused meanwhile.
INPUT_SHARE = 64 * 1024


class Connection(asyncio.Protocol):
    # Slots: over 30 attributes, instances of a plain class lose CPython's
    # fast attribute access (shared-key dicts stop growing), measurably on
    # the hot path; slots keep every attribute read a fixed offset.
    __slots__ = ("server", "id", "transport", "reader", "resp3", "tenant", "db", "user",
                 "authenticated", "root", "lookup", "auth_deadline", "name", "lib_name",
                 "lib_ver", "addr", "laddr", "created", "last_interaction", "last_command",
                 "closing", "close_after_reply", "no_evict", "no_touch", "paused", "unsent",
                 "multi", "multi_error", "watched", "watch_dirty", "backlog", "backlog_error",
                 "waiting", "net_in", "net_out", "unauth_group", "obuf_class", "soft_since",
                 "unparsed", "subs", "channel_rules", "tracking", "reply_mode",
                 "replica", "internal", "woff")

    def __init__(self, server) -> None:
        self.server = server
        self.id = server.next_client_id()
        self.transport = None
        self.reader = Reader(server.config["limits.proto_max_bulk_len"],
                             server.config["limits.client_query_buffer_limit"])
        self.resp3 = False
        self.tenant = server.default_tenant
        self.db = self.tenant.dbs[0]
        self.user = "default"
        # With `auth.default_user = nopass` a connection starts as the
        # password-less default user, with root rights (development mode, as
        # Redis without requirepass); otherwise it must AUTH first.
        self.authenticated = self.root = server.default_user_open
        # The command table this client may use without the general path.
        self.lookup = LOOKUP if self.authenticated else NOAUTH_LOOKUP
        self.auth_deadline = None
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.addr = "?"
        self.laddr = "?"
        self.created = time.monotonic()
        self.last_interaction = self.created
        self.last_command = "NULL"
        self.closing = False
        self.close_after_reply = False
        self.no_evict = False
        self.no_touch = False
        self.paused = False
        self.unsent: list = []   # replies waiting for the server's end-of-turn flush
        self.multi = None   # transactions: list of queued requests while in MULTI
        self.multi_error = False   # a request refused while queuing: EXEC aborts
        self.watched = None        # WATCH: {(db, key): expiry ms or None}, see dispatch/observers.py
        self.watch_dirty = False   # a watched key was written since WATCH
        self.backlog = None          # requests waiting for the client to drain its output
        self.backlog_error = None    # the protocol error that followed them, if any
        self.waiting = None          # the Deferred whose reply the client waits for
        self.unparsed = None         # the rest of a long read, parsed next turn (INPUT_SHARE)
        self.subs = None             # its pub/sub subscriptions (dispatch/pubsub.py), if any
        # Its user's ACL channel patterns (&pattern), None for allchannels
        # (dispatch/pubsub.py, channel_refusal).
        self.channel_rules = None
        self.tracking = None         # its CLIENT TRACKING mode (dispatch/tracking.py), if on
        self.reply_mode = None       # CLIENT REPLY: None or "on", "off", "skip" (dispatch/call.py Quiet)
        # Bytes read and written since the last fold_net() into the tenant's and
        # the server's figures (INFO adds the live connections' own): one
        # increment on the connection per read and per write.
        self.net_in = 0
        self.net_out = 0
        # The address group (server/auth.py's client_group) under which this
        # connection counts among the unauthenticated ones; None: not counted.
        self.unauth_group = None
        # Its client-output-buffer-limit class (config.OBUF_*): normal; pub/sub
        # sets OBUF_PUBSUB while the client is subscribed, replication
        # OBUF_REPLICA for a replica's link.
        self.obuf_class = OBUF_NORMAL
        # When its unsent output was first seen over the soft limit (monotonic).
        self.soft_since = None
        # A replica's link (replication/core.py ReplicaLink) once it sent
        # REPLCONF or PSYNC; `internal`: a client with no socket (the log
        # replay's, a replica's stream), which a read-only replica lets write.
        self.replica = None
        self.internal = False
        self.woff = 0   # the replication offset its last write ends at (WAIT)

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.addr = _format_addr(peer)
        self.laddr = _format_addr(local)
        server = self.server
        if len(server.clients) >= server.config["network.maxclients"]:
            self._refuse(errors.MAXCLIENTS)
            return
        if (server.default_user_open and server.config["network.protected_mode"]
                and peer and peer[0] not in ("127.0.0.1", "::1")):
            # Redis's protected mode: a password-less server talks to loopback only.
            self._refuse(errors.PROTECTED_MODE)
            log.info("Refused %s: protected mode", self.addr)
            return
        group = None
        if not self.authenticated:
            refusal, group = self._unauthenticated_refusal()
            if refusal is not None:
                self._refuse(refusal)
                return
        server.clients[self.id] = self
        self.tenant.join(self)
        server.stats.total_connections_received += 1
        log.info("Accepted %s", self.addr)
        if not self.authenticated:
            self._begin_unauthenticated(group)
            self.auth_deadline = server.loop.call_later(
                server.config["auth.auth_timeout"], self._auth_timeout)
        if server.frozen:   # accepted in the same turn as a shutdown began
            server.pause_for_freeze(self)

    def _refuse(self, error: bytes) -> None:
        self.server.stats.rejected_connections += 1
        audit("client-refused", noisy=True, addr=self.addr,
              reason=error.decode("utf-8", "replace").strip())
        self.transport.write(error)
        self.transport.close()
        self.closing = True

    def _unauthenticated_refusal(self) -> tuple:
        """(the error refusing this new connection, or None; its address
        group if computed).

        Over the cap per address, the new connection is refused: its own
        address is the one flooding. At the total cap (below maxclients: by
        default a tenth of it is kept for connections that log in), the
        oldest unauthenticated connection is closed to make room instead: a
        flood from many addresses then cycles through its own connections,
        and a user who connects during it has the time the flood takes to
        open that many more to log in (refusing the newcomer would lock users
        out for as long as the flood lasts). A connection whose AUTH is being
        checked is not closed; if the oldest few all are, the newcomer is refused."""
        server = self.server
        config = server.config
        group = None
        per_address = config["limits.unauthenticated_maxclients_per_address"]
        if per_address:
            group = client_group(self.addr)
            if server.unauth_by_group.get(group, 0) >= per_address:
                return errors.MAXCLIENTS_UNAUTH_ADDRESS, group
        total = (config["limits.unauthenticated_maxclients"]
                 or max(1, config["network.maxclients"] * 9 // 10))
        if len(server.unauth_conns) >= total:
            for _, oldest in zip(range(EVICT_SCAN), server.unauth_conns):
                if oldest.waiting is None:
                    log.info("Client id=%d addr=%s closed to make room for a new connection "
                             "(unauthenticated-maxclients)", oldest.id, oldest.addr)
                    audit("client-closed", noisy=True, addr=oldest.addr, user="",
                          limit="unauthenticated-maxclients")
                    oldest.unsent.append(errors.MAXCLIENTS_UNAUTH)
                    oldest.close()
                    oldest._count_unauthenticated(-1)   # its slot is the newcomer's now
                    break
            else:
                return errors.MAXCLIENTS_UNAUTH, group
        return None, group

    def _count_unauthenticated(self, step: int, group=None) -> None:
        """Count this connection in (1: under `group`, or its address's) or
        out of (-1) the unauthenticated ones."""
        server = self.server
        if step > 0:
            self.unauth_group = group = group or client_group(self.addr)
            server.unauth_conns[self] = None
            server.unauth_by_group[group] = server.unauth_by_group.get(group, 0) + 1
        else:
            group, self.unauth_group = self.unauth_group, None
            del server.unauth_conns[self]
            left = server.unauth_by_group[group] - 1
            if left:
                server.unauth_by_group[group] = left
            else:
                del server.unauth_by_group[group]

    def _auth_timeout(self) -> None:
        if not self.authenticated and not self.closing:
            log.info("Client id=%d addr=%s closed: no AUTH in time", self.id, self.addr)
            self.close()

    def login(self, user) -> None:
        """The client authenticated as `user` (tenancy.User): from now on it
        works in that user's tenant, in the same database number, with the
        commands its rules allow (its own command table: no check per command)."""
        self.user = user.username
        self.root = user.root
        self.authenticated = True
        self.lookup = self.server.auth.command_table(user)
        self.channel_rules = channel_rules(user)
        if self.reply_mode == "off":   # CLIENT REPLY OFF holds across a login
            self.lookup = Quiet(self.lookup)
        self._enter(self.server.tenant_for(user.tenant_key))
        self._end_unauthenticated()
        if self.subs is not None:   # a subscriber keeps RESP2's pub/sub mode
            refresh_mode(self)
            if revoked(self):   # as Redis 7: its channel rights were taken away
                log.info("Client id=%d addr=%s closed: ACL channel rules changed",
                         self.id, self.addr)
                self.close()

    def login_default(self) -> None:
        """The password-less default user (auth.default_user = nopass)."""
        self.user = "default"
        self.root = self.authenticated = True
        self.lookup = LOOKUP
        self.channel_rules = None
        self._enter(self.server.default_tenant)
        self._end_unauthenticated()
        if self.subs is not None:
            refresh_mode(self)

    def logout(self) -> None:
        """Back to the default user (RESET): authenticated only in nopass mode."""
        if self.server.default_user_open:
            self.login_default()
            return
        self.user = "default"
        self.root = self.authenticated = False
        self.lookup = NOAUTH_LOOKUP
        self.channel_rules = None
        self._enter(self.server.default_tenant)
        self._begin_unauthenticated()

    def _enter(self, tenant) -> None:
        if tenant is not self.tenant:
            # Its subscriptions are the old tenant's channels: they end.
            leave_all(self)
            if self.tracking is not None:
                # Its tracking state is the old tenant's (dispatch/tracking.py).
                self.server.events.tracker.disable(self)
            self.fold_net()   # the bytes so far were the old tenant's
            self.tenant.leave(self)
            tenant.join(self)
            self.tenant = tenant
            tenant.connections += 1   # its total_connections_received
        self.db = tenant.dbs[self.db.index]
        if self in self.server.monitors.conns:   # MONITOR, then AUTH: the new user's view
            self.server.monitors.rekey(self)

    def _begin_unauthenticated(self, group=None) -> None:
        if self.unauth_group is None and self.transport is not None and not self.closing:
            self._count_unauthenticated(1, group)
        strict = self.reader.strict
        strict.max_arg_unauth = UNAUTH_MAX_ARG
        strict.max_query_buffer = min(strict.max_query_buffer, UNAUTH_MAX_INPUT)
        self.reader.refresh()

    def _end_unauthenticated(self) -> None:
        if self.unauth_group is not None:
            self._count_unauthenticated(-1)
        strict = self.reader.strict
        if strict.max_arg_unauth:
            strict.max_arg_unauth = 0
            strict.max_query_buffer = self.server.config["limits.client_query_buffer_limit"]
            self.reader.refresh()
        if self.auth_deadline is not None:
            self.auth_deadline.cancel()
            self.auth_deadline = None

    def connection_lost(self, exc) -> None:
        if self.id in self.server.clients:
            log.info("Client id=%d addr=%s closed connection", self.id, self.addr)
        self.closing = True
        server = self.server
        if server.clients.pop(self.id, None) is not None and self.unauth_group is not None:
            self._count_unauthenticated(-1)
        server.output_paused.discard(self)
        if self.auth_deadline is not None:
            # The timer holds this connection (its reader, the input it held)
            # until it fires: an auth timeout later, not now.
            self.auth_deadline.cancel()
            self.auth_deadline = None
        self.tenant.leave(self)
        self.fold_net()
        if self.subs is not None:
            leave_all(self)
        if server.monitors.conns:
            server.monitors.remove(self)
        if self.watched is not None:
            self.server.events.unwatch_all(self)
        if self.tracking is not None:
            self.server.events.tracker.disable(self)
        waiting = self.waiting
        if type(waiting) is Blocked:
            waiting.abandon()   # a blocked pop whose client went: off its keys
        if self.replica is not None:
            server.replication.replica_gone(self.replica)

    def fold_net(self) -> None:
        """Add the bytes counted on this connection to its tenant's and the
        server's totals (at a change of tenant and at the close)."""
        net_in, net_out = self.net_in, self.net_out
        if net_in or net_out:
            stats, tenant = self.server.stats, self.tenant
            stats.net_input_bytes += net_in
            stats.net_output_bytes += net_out
            tenant.net_input_bytes += net_in
            tenant.net_output_bytes += net_out
            self.net_in = self.net_out = 0

    def pause_writing(self) -> None:
        # The client does not read its replies: stop reading its requests.
        self.paused = True
        self.transport.pause_reading()
        # The cron checks its output limits while it stays paused.
        self.server.output_paused.add(self)

    def resume_writing(self) -> None:
        self.paused = False
        self.soft_since = None   # drained below the high-water mark: under any soft limit
        self.server.output_paused.discard(self)
        if self.closing:
            return
        if self.backlog is not None:
            # Not from inside the transport's write-ready callback: next turn.
            self.server.loop.call_soon(self._run_backlog)
        elif self.unparsed is None:   # else _parse_rest resumes when it is done
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        server = self.server
        if server.frozen:   # a shutdown is saving: no command may run after it
            server.hold_input(self, data)
            return
        if len(data) > INPUT_SHARE:
            # A request boundary, most likely: "\r\n*" inside a value only
            # sends this piece to the strict parser, which keeps its state.
            cut = data.rfind(b"\r\n*", 0, INPUT_SHARE) + 2
            if cut > 2:
                self.unparsed = data[cut:]
                data = data[:cut]
                self.transport.pause_reading()
                server.loop.call_soon(self._parse_rest)
        # One clock read per read: idle time (CLIENT LIST, timeout) and the
        # start of the commandstats timing of this batch.
        self.last_interaction = now = monotonic()
        self.net_in += len(data)
        busy = self.tenant.busy
        if busy is not None and busy is not self and self.backlog is None:
            self._hold()   # its tenant runs a long command: wait (dispatch/slices.py)
        try:
            requests = self.reader.feed(data)
        except QueryBufferExceeded:
            log.warning("closing client %d that exceeded the query buffer limit", self.id)
            audit("client-closed", noisy=True, addr=self.addr,
                  user=self.user if self.authenticated else "", limit="query buffer")
            self.close()
            return
        except ProtocolError as exc:
            self._run_or_hold(exc.requests, exc, now)
            return
        limiter = self.tenant.limiter
        if limiter is not None:   # a rate quota (dispatch/throttle.py): one test per read without
            limiter.admit(self, len(requests), now)
        if len(requests) == 1 and self.multi is None and self.backlog is None:
            # One request in the read (no pipelining), the most common case.
            args = requests[0]
            cmd = self.lookup.get(args[0])
            if cmd is not None:
                arity = cmd.arity
                if len(args) == arity or (arity < 0 and len(args) >= -arity):
                    self.run_one(cmd, args, now)
                    return
        self._run_or_hold(requests, None, now)

    def _run_or_hold(self, requests: list, error, now: float) -> None:
        if self.backlog is not None:
            # Requests behind a reply the client waits for (or behind
            # output it does not read) wait their turn, in order.
            backlog = self.backlog
            backlog.extend(requests)
            self.backlog_error = self.backlog_error or error
            if len(backlog) > MAX_BLOCKED_BACKLOG:
                self.transport.pause_reading()
            return
        self.run(requests, error, now)

    def run_one(self, cmd, args: list, started: float) -> None:
        """run() for a read that holds one known command with the right arity,
        outside MULTI: the same steps without the batch machinery. Measured:
        0.6 us less server CPU per request at pipeline 1 (of 7.5)."""
        try:
            reply = cmd.handler(self, args)
        except CommandError as exc:
            reply = self._failed(cmd, exc.message)
        except Exception as exc:
            reply = self._crashed(cmd, exc)
        else:
            kind = type(reply)
            if kind is Raw:
                pass
            elif kind is bytes:
                reply = b"$%d\r\n%s\r\n" % (len(reply), reply)
            elif kind is int:
                reply = SMALL_INTS[reply + 1] if -1 <= reply <= 10000 else b":%d\r\n" % reply
            elif reply is NO_REPLY:
                reply = b""
            elif kind is Deferred or kind is Blocked:
                reply.args = args
                self._wait(cmd, reply, [], None)
                return
            else:
                reply = encode(reply, self.resp3)
        cmd.calls += 1
        elapsed = monotonic() - started
        cmd.usec += elapsed * 1e6
        server = self.server
        if elapsed >= server.timed_after:   # SLOWLOG, LATENCY (dispatch/latency.py)
            slow(self, cmd, args, elapsed)
        if server.latency_tracking:   # its bucket (dispatch/latency.py), common ones first
            if elapsed < 4.096e-06:
                cmd.hist[2 if elapsed >= 2.048e-06 else elapsed >= 1.024e-06] += 1
            else:
                cmd.hist[int(elapsed * 976562.5).bit_length()] += 1
        if cmd.slow:   # the tenant's share of this turn (dispatch/slices.py)
            charge(server, self.tenant, elapsed)
        self.tenant.ran.append(cmd)   # its commandstats, folded later (keyspace/tenant.py)
        self.last_command = cmd.name
        if self.closing:
            return
        # Queued for the end-of-turn flush, as at the end of run().
        unsent = self.unsent
        if not unsent:
            server = self.server
            pending = server.pending_writes
            if not pending:   # the first connection with output this turn
                server.loop.call_soon(server.flush_pending_writes)
            pending.append(self)
        unsent.append(reply)
        if self.close_after_reply:
            self.flush()
            self.closing = True
            self.transport.close()

    def run(self, requests: list, error, started: float = 0.0) -> None:
        """Execute parsed requests and write their replies, one write per batch.

        The loop inlines the common case (a known command with the right
        arity, outside MULTI) and leaves everything else to `execute`: this is
        the hot path, and every call or attribute lookup saved here shows in
        CPU per request. Command time (INFO commandstats, the latency
        histograms, SLOWLOG, LATENCY): the clock is read after a command
        that may take long (not @fast: `cmd.slow`), as the turn limit needs
        anyway; one that took longer than a threshold (slowlog-log-slower-
        than, latency-monitor-threshold) counts its own time; every other
        command (the @fast ones: GET, INCR...: O(1)) shares what is left of
        the batch's time evenly, as a clock read and a histogram bucket each
        cost ~10% of CPU per request at pipeline 16. Below a threshold of
        1 ms (`server.precise`: slowlog-log-slower-than 0 in a test, say)
        every command is timed on its own. Without pipelining (run_one) the
        time is always the command's own.

        Replies are flushed every FLUSH_AT bytes; if the client is then not
        draining its output (the transport paused us), the rest of the batch
        waits in `backlog` until it does, so a read full of GETs of a large
        value cannot make the server buffer gigabytes for one client.
        """
        out: list = []
        append = out.append
        ran: list = []          # commands run inline, for commandstats
        size = 0
        done = 0
        if not started:
            started = monotonic()
        timed: list = []        # ... of them, those timed on their own
        timed_total = 0.0       # their time, and the general path's
        # The last clock read, and whether nothing ran since (`fresh`): a run
        # of timed commands (pipelined SETs) costs one clock read each.
        mark = started
        fresh = False
        server = self.server
        precise = server.precise
        timed_after = server.timed_after
        # This turn's share (TURN_REQUESTS): a prefix, so the indices below
        # into `requests` stay right.
        for args in (requests if len(requests) <= TURN_REQUESTS else requests[:TURN_REQUESTS]):
            cmd = self.lookup.get(args[0])   # re-read: AUTH or RESET may change it
            arity = cmd.arity if cmd is not None else 0
            if (cmd is None or self.multi is not None
                    or (len(args) != arity and (arity > 0 or len(args) < -arity))):
                before = monotonic()   # `invoke` times the command itself
                self.execute(args, out)
                mark = monotonic()
                timed_total += mark - before
                fresh = True
                if isinstance(out[-1], Deferred):
                    deferred = out.pop()
                    self._wait(deferred.cmd, deferred, requests[done + len(out) + 1:], error)
                    error = None   # it follows the requests that now wait
                    break
                size += len(out[-1])
            else:
                on_its_own = precise or cmd.slow
                if on_its_own and not fresh:
                    mark = monotonic()
                try:
                    reply = cmd.handler(self, args)
                except CommandError as exc:
                    append(self._failed(cmd, exc.message))
                except Exception as exc:
                    append(self._crashed(cmd, exc))
                else:
                    # `size` counts what can be large (values, arrays); the
                    # pre-encoded replies (+OK, small integers) are a few bytes.
                    kind = type(reply)
                    if kind is Raw:   # LRANGE's replies are Raw too: counted
                        size += len(reply)
                        append(reply)
                    elif kind is bytes:
                        size += len(reply)
                        append(b"$%d\r\n%s\r\n" % (len(reply), reply))
                    elif kind is int:
                        append(SMALL_INTS[reply + 1] if -1 <= reply <= 10000 else b":%d\r\n" % reply)
                    elif reply is None and not self.resp3:
                        append(b"$-1\r\n")
                    elif reply is NO_REPLY:
                        append(b"")
                    elif kind is Deferred or kind is Blocked:
                        reply.args = args
                        self._wait(cmd, reply, requests[done + len(out) + 1:], error)
                        error = None   # it follows the requests that now wait
                        break
                    else:
                        reply = encode(reply, self.resp3)
                        size += len(reply)
                        append(reply)
                if on_its_own:
                    now = monotonic()
                    spent = now - mark
                    mark = now
                    fresh = True
                    if spent >= timed_after:   # its own time: SLOWLOG, LATENCY, stats
                        timed_total += spent
                        timed.append(cmd)
                        cmd.calls += 1
                        self._own_time(cmd, args, spent)
                    else:   # below the thresholds: it shares, as the @fast ones
                        ran.append(cmd)
                    if cmd.slow and now - started > TURN_SECONDS:
                        break   # the rest on the next turn (below)
                else:
                    ran.append(cmd)
                    fresh = False
            if self.close_after_reply:   # QUIT, a kill, a closed transport: stop here
                break
            if size > FLUSH_AT:
                done += len(out)
                self.write(b"".join(out))
                out.clear()
                size = 0
                if self.close_after_reply:
                    break
                if self.paused and done < len(requests):
                    self.backlog = requests[done:]
                    self.backlog_error = error
                    break
        if ran or timed:
            elapsed = monotonic() - started
            if ran:
                self._share(ran, elapsed - timed_total, requests)
            tenant = self.tenant
            tenant.ran += ran   # its commandstats, folded later (keyspace/tenant.py)
            if timed:
                tenant.ran += timed
            # (`cmd` may be None here: a later request took the general path)
            self.last_command = (ran or timed)[-1].name
            charge(server, tenant, elapsed)   # its share of this turn (dispatch/slices.py)
        if self.backlog is not None and self.waiting is None:
            return   # paused mid-batch: the rest runs when the client drains
        processed = done + len(out)
        if (processed < len(requests) and self.waiting is None
                and not self.close_after_reply and not self.closing):
            # More than this turn's share: the rest runs on the next turns
            # (its protocol error, if any, after it), the others' first.
            self.backlog = requests[processed:]
            self.backlog_error = error
            error = None
            self.transport.pause_reading()
            self.server.loop.call_soon(self._next_turn)
        if error is not None and not self.close_after_reply:
            self.server.stats.total_error_replies += 1
            self.tenant.error_replies += 1
            append(encode_error(str(error)))
            self.close_after_reply = True
        if out and not self.closing:
            # Queued for the end-of-turn flush (see the module docstring).
            unsent = self.unsent
            if not unsent:
                server = self.server
                pending = server.pending_writes
                if not pending:   # the first connection with output this turn
                    server.loop.call_soon(server.flush_pending_writes)
                pending.append(self)
            unsent += out
        if self.close_after_reply and not self.closing:
            self.flush()
            self.closing = True
            self.transport.close()

    def _own_time(self, cmd, args: list, spent: float) -> None:
        """A pipelined command past a threshold: its own time counted."""
        cmd.usec += spent * 1e6
        slow(self, cmd, args, spent)   # SLOWLOG, LATENCY (dispatch/latency.py)
        if self.server.latency_tracking:
            cmd.hist[int(spent * 976562.5).bit_length()] += 1

    def _share(self, ran: list, seconds: float, requests: list) -> None:
        """The @fast commands of a batch (run) share `seconds` evenly: their
        commandstats time, their histogram bucket, and SLOWLOG / LATENCY if
        the share is past the threshold (rare: then the batch's @fast
        requests are found again and each logged with the share)."""
        share = seconds / len(ran) if seconds > 0 else 0.0
        usec = share * 1e6
        server = self.server
        counts: dict = {}
        _count_elements(counts, ran)   # C: a batch is mostly one or two commands
        if server.latency_tracking:
            bucket = int(share * 976562.5).bit_length()   # dispatch/latency.py
            for cmd, n in counts.items():
                cmd.calls += n
                cmd.usec += usec * n
                cmd.hist[bucket] += n
        else:
            for cmd, n in counts.items():
                cmd.calls += n
                cmd.usec += usec * n
        if share >= server.timed_after:
            lookup = self.lookup
            left = len(ran)
            for args in requests:
                cmd = lookup.get(args[0])
                if cmd is not None:
                    slow(self, cmd, args, share)
                    left -= 1
                    if not left:
                        break

    def _wait(self, cmd, deferred: Deferred, rest: list, error) -> None:
        """Hold the client's later requests until `deferred` is done."""
        if (not self.authenticated and rest
                and sum(sum(map(len, args)) for args in rest) > UNAUTH_MAX_INPUT):
            # Before AUTH, what follows an AUTH in one read is held to the
            # input limit too: its password check may wait its turn a while.
            self.unsent.append(encode_error(errors.protocol_unauthenticated_size(UNAUTH_MAX_INPUT)))
            self.close()
            return
        deferred.cmd = cmd
        cmd.calls += 1
        self.tenant.count(self.tenant.calls, cmd)
        self.last_command = cmd.name
        self.waiting = deferred
        self.backlog = rest
        self.backlog_error = error
        if type(deferred) is not Blocked:
            self.transport.pause_reading()
        # A blocked pop keeps reading: a client that disconnects while
        # blocked must be seen (and taken off its keys) at once, as in Redis.
        # What it sends meanwhile waits in the backlog (paused past a cap).
        deferred.future.add_done_callback(self._finish_wait)

    def _finish_wait(self, future) -> None:
        deferred, self.waiting = self.waiting, None
        if self.closing or deferred is None or future.cancelled():
            return
        cmd = deferred.cmd
        if deferred.finish is RETRY:   # postponed (CLIENT PAUSE): run it again, first
            cmd.calls -= 1             # counted when it runs
            calls = self.tenant.calls
            if calls.get(cmd):
                calls[cmd] -= 1
            self.backlog = [future.result()] + (self.backlog or [])
            if not self.paused:
                self._run_backlog()
            return
        # The error taken as a value, not raised here: raised, its traceback
        # would hold this frame and this frame the future holding the error,
        # a cycle that kept what the job's frames hold (a refused KDB
        # IMPORT's payload and decoded keys, 40+ MB) until a full collection.
        error = future.exception()
        start = monotonic()
        if error is None:
            try:
                data = encode(deferred.finish(future.result()), self.resp3)
            except CommandError as exc:
                data = self._failed(cmd, exc.message)
            except Exception as exc:
                data = self._crashed(cmd, exc)
        elif isinstance(error, CommandError):
            data = self._failed(cmd, error.message)
        else:
            data = self._crashed(cmd, error)
        del error
        # Timed as Redis times a blocked command: its run, not its wait; an
        # entry once it has an answer (SLOWLOG, LATENCY, its histogram).
        spent = monotonic() - start
        server = self.server
        if spent >= server.timed_after and deferred.args is not None:
            slow(self, cmd, deferred.args, spent)
        if server.latency_tracking:
            cmd.hist[int(spent * 976562.5).bit_length()] += 1
        self.unsent.append(data)
        self.flush()
        if self.close_after_reply:
            self.closing = True
            self.transport.close()
        elif not self.paused:   # else resume_writing runs the backlog
            self._run_backlog()

    def _parse_rest(self) -> None:
        """The rest of a long read (INPUT_SHARE), after what came before it
        (its requests join the backlog, if any, in order); reading resumes
        once nothing of it is left."""
        if self.server.frozen:   # a shutdown is saving: later (as a sliced job waits)
            self.server.loop.call_later(0.01, self._parse_rest)
            return
        data, self.unparsed = self.unparsed, None
        if data is None or self.closing:
            return
        self.data_received(data)
        if (self.unparsed is None and self.backlog is None and self.waiting is None
                and not self.paused and not self.closing and not self.server.frozen):
            self.transport.resume_reading()

    def _next_turn(self) -> None:
        """The next share of a long read (see TURN_REQUESTS): unless the
        client is not reading its replies (resume_writing runs it then)."""
        if not self.paused:
            self._run_backlog()

    def _hold(self) -> None:
        """Hold this client's requests while another client of its tenant runs
        a long command in slices: the tenant is the unit of atomicity
        (dispatch/slices.py). They run when that command ends."""
        if self.backlog is None:
            self.backlog = []
        if script_busy(self.tenant):   # past busy-reply-threshold: -BUSY, not a wait
            self.server.loop.call_soon(self._run_backlog)
            return
        self.tenant.held.append(self)

    def _answer_busy(self) -> None:
        """A script of this client's tenant is past busy-reply-threshold:
        its requests get -BUSY, but SCRIPT KILL and the few Redis allows
        (scripting/engine.py, busy_reply), which run."""
        backlog, error = self.backlog, self.backlog_error
        self.backlog = self.backlog_error = None
        for i, args in enumerate(backlog):
            refused = busy_reply(self, args)
            data = execute(self, args) if refused is None else encode_error(refused)
            if isinstance(data, Deferred):   # AUTH's check: the rest waits for it
                self.flush()
                self._wait(data.cmd, data, backlog[i + 1:], error)
                return
            self.unsent.append(data)
        self.flush()
        if error is not None:
            self.run([], error)
        if not (self.paused or self.closing):
            self.transport.resume_reading()

    def _run_backlog(self) -> None:
        if self.waiting is not None:
            return   # _finish_wait runs it
        if self.server.frozen:
            return   # shutting down; a failed shutdown's thaw runs it
        busy = self.tenant.busy
        if busy is not None and busy is not self:
            if self.backlog is not None and not self.closing:
                if script_busy(self.tenant):
                    self._answer_busy()
                    return
                self._hold()
            return
        backlog, error = self.backlog, self.backlog_error
        self.backlog = self.backlog_error = None
        if self.closing or backlog is None:
            return
        self.run(backlog, error)
        if not (self.paused or self.closing or self.backlog is not None
                or self.unparsed is not None):
            self.transport.resume_reading()

    # -- running commands ----------------------------------------------------

    def execute(self, args: list, out: list) -> None:
        """Run one request and append its encoded reply (or a Deferred) to
        `out`: the general path, dispatch.call.execute."""
        out.append(execute(self, args))

    def _failed(self, cmd, message: str) -> bytes:
        return failed(self, cmd, message)

    def _crashed(self, cmd, exc: Exception) -> bytes:
        return crashed(self, cmd, exc)

    def write(self, data: bytes) -> None:
        """Write now, after anything still queued (a long batch's pieces)."""
        self.unsent.append(data)
        self.flush()

    def flush(self) -> None:
        """Hand the queued replies to the transport now."""
        flush_connections((self,), self.server.events.journal)

    def output_bytes(self) -> int:
        """Output held for this client: replies queued for this turn's flush
        plus what its transport has not sent yet (CLIENT LIST's omem; the
        tenant's memory adds it up: tenant_output_bytes)."""
        unsent = self.unsent
        held = sum(map(len, unsent)) if unsent else 0
        transport = self.transport
        if transport is not None and not self.closing:
            held += transport.get_write_buffer_size()
        return held

    def input_bytes(self) -> int:
        """Input held for this client: its unfinished request (the reader's
        bytes and the arguments cut so far) and the parsed requests waiting
        behind a blocked or deferred one."""
        held = self.reader.buffered()
        backlog = self.backlog
        if backlog:
            held += sum(sum(map(len, args)) for args in backlog)
        return held

    def _check_output_limit(self) -> None:
        """Close the client if its unsent output is over its limits, as Redis's
        checkClientOutputBufferLimits: its class's hard limit, or its soft
        limit for longer than the class's seconds (client-output-buffer-limit);
        for the normal clients of non-root tenants, tenant-client-output-limit
        as well (Redis's "normal 0 0 0" is no limit at all, which one hostile
        tenant would turn into gigabytes of replies it never reads); before
        AUTH, UNAUTH_MAX_OUTPUT.

        Called where output grows past the transport's high-water mark
        (flush_connections, for a paused client only: nothing per reply) and
        by the cron for clients that stay paused (a soft limit's seconds run
        out without new output)."""
        transport = self.transport
        if transport is None or self.closing:
            return
        used = transport.get_write_buffer_size()
        if not self.authenticated:
            if used > UNAUTH_MAX_OUTPUT:
                self._close_for_output()
            return
        config = self.server.config
        hard, soft, seconds = config["limits.client_output_buffer_limit"][self.obuf_class]
        if self.obuf_class == OBUF_NORMAL and not self.root:
            tenant_limit = config["limits.tenant_client_output_limit"]
            if tenant_limit and (not hard or tenant_limit < hard):
                hard = tenant_limit
        if hard and used >= hard:
            self._close_for_output()
        elif soft and used >= soft:
            now = monotonic()
            if self.soft_since is None:
                self.soft_since = now
            elif now - self.soft_since > seconds:
                self._close_for_output()
        else:
            self.soft_since = None

    def evict_for_memory(self) -> None:
        """Closed by client eviction (server/memory.py evict_clients): Redis's
        log line; its unsent replies are dropped."""
        log.warning("Evicting client: %s", self.client_info())
        self.closing = self.close_after_reply = True
        self.server.output_paused.discard(self)
        self.transport.abort()

    def _close_for_output(self) -> None:
        # Redis's words; its unsent replies are dropped, as Redis frees them.
        log.warning("Client %s scheduled to be closed ASAP for overcoming of output buffer "
                    "limits.", self.client_info())
        audit("client-closed", noisy=True, addr=self.addr, user=self.user if self.authenticated else "",
              limit="output buffer")
        self.closing = self.close_after_reply = True
        self.server.output_paused.discard(self)
        self.transport.abort()

    def close(self) -> None:
        if not self.closing:
            self.flush()   # replies already produced still go out, then the close
            self.closing = self.close_after_reply = True
            self.transport.close()

    def client_info(self) -> str:
        """This client's CLIENT INFO line."""
        from tenantkv.commands.connection import client_info_line
        return client_info_line(self)

    def select(self, index: int) -> None:
        self.db = self.tenant.dbs[index]


def flush_connections(conns, journal) -> None:
    """Hand each connection's queued replies to its transport.

    The server's end-of-turn flush calls this with every connection that has
    replies waiting: at pipeline 1 it runs once per reply, so the loop body is
    written out here rather than calling a method per connection.

    With the append-only log on (`journal`, the server's write observer,
    dispatch/observers.py), its records of this turn are written first
    (and with appendfsync always, fsynced): no reply leaves before the write
    it acknowledges is logged. With always, after a failed write, output that
    could show an un-logged write waits (persistence/aof/journal.py, Journal.hold).
    One test per flush when the log is off.
    """
    if journal is not None:
        if journal.buf:
            journal.flush()
        if journal.holding:
            conns = journal.hold(conns)
    for conn in conns:
        unsent = conn.unsent
        if not unsent:
            continue
        data = unsent[0] if len(unsent) == 1 else b"".join(unsent)
        unsent.clear()
        conn.net_out += len(data)
        if conn.closing:
            continue   # closed meanwhile (killed, connection lost): nothing to send to
        try:
            conn.transport.write(data)
        except RuntimeError:
            # uvloop refuses writes once the peer reset the connection, before
            # connection_lost has told us: the client is gone, drop its replies.
            conn.closing = True
            continue
        except Exception:   # one client's failure must not hold the others' replies
            log.exception("error writing to client %d", conn.id)
            continue
        if conn.paused:
            conn._check_output_limit()
            if not conn.closing:
                conn.server.memory.evict_clients()




def tenant_output_bytes(tenant) -> int:
    """The output its clients hold, summed: counted in the tenant's memory."""
    return sum(conn.output_bytes() for conn in tenant.clients)


def tenant_input_bytes(tenant) -> int:
    """The input its clients hold, summed."""
    return sum(conn.input_bytes() for conn in tenant.clients)


def _format_addr(address) -> str:
    if not address:
        return "?"
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return "%s:%d" % (host, port) if ":" not in host else "[%s]:%d" % (host, port)
    return str(address)
