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
from time import monotonic

from tenantkv import errors
from tenantkv.dispatch.call import crashed, execute, failed
from tenantkv.dispatch.table import LOOKUP, NOAUTH_LOOKUP
from tenantkv.errors import CommandError, ProtocolError, QueryBufferExceeded
from tenantkv.protocol.encoder import SMALL_INTS, Raw, encode, encode_error
from tenantkv.protocol.reader import Reader
from tenantkv.dispatch.blocking import Blocked
from tenantkv.dispatch.replies import NO_REPLY, Deferred

log = logging.getLogger("tenantkv.connection")

# Before AUTH (as Redis after CVE-2021-32675, plus caps of our own): the
# largest argument (Redis: 16 KB; at most 10 arguments, in the reader), the
# input held for a client, and its unread replies.
UNAUTH_MAX_ARG = 16 * 1024
UNAUTH_MAX_INPUT = 1024 * 1024
UNAUTH_MAX_OUTPUT = 64 * 1024
FLUSH_AT = 256 * 1024   # write a long batch's replies out in pieces of this size
MAX_BLOCKED_BACKLOG = 1024   # requests held behind a blocked pop before reading pauses


class Connection(asyncio.Protocol):
    # Slots: over 30 attributes, instances of a plain class lose CPython's
    # fast attribute access (shared-key dicts stop growing), measurably on
    # the hot path; slots keep every attribute read a fixed offset.
    __slots__ = ("server", "id", "transport", "reader", "resp3", "tenant", "db", "user",
                 "authenticated", "root", "lookup", "auth_deadline", "name", "lib_name",
                 "lib_ver", "addr", "laddr", "created", "last_interaction", "last_command",
                 "closing", "close_after_reply", "no_evict", "no_touch", "paused", "unsent",
                 "multi", "multi_error", "watched", "watch_dirty", "backlog", "backlog_error",
                 "waiting", "net_in", "net_out")

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
        # Bytes read and written since the last fold_net() into the tenant's and
        # the server's figures (INFO adds the live connections' own): one
        # increment on the connection per read and per write.
        self.net_in = 0
        self.net_out = 0

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.addr = _format_addr(peer)
        self.laddr = _format_addr(local)
        server = self.server
        if len(server.clients) >= server.config["network.maxclients"]:
            transport.write(errors.MAXCLIENTS)
            transport.close()
            self.closing = True
            return
        if (server.default_user_open and server.config["network.protected_mode"]
                and peer and peer[0] not in ("127.0.0.1", "::1")):
            # Redis's protected mode: a password-less server talks to loopback only.
            transport.write(errors.PROTECTED_MODE)
            transport.close()
            self.closing = True
            log.info("Refused %s: protected mode", self.addr)
            return
        server.clients[self.id] = self
        self.tenant.join(self)
        server.stats.total_connections_received += 1
        log.info("Accepted %s", self.addr)
        if not self.authenticated:
            self._begin_unauthenticated()
            self.auth_deadline = server.loop.call_later(
                server.config["auth.auth_timeout"], self._auth_timeout)
        if server.frozen:   # accepted in the same turn as a shutdown began
            server.pause_for_freeze(self)

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
        self._enter(self.server.tenant_for(user.tenant_key))
        self._end_unauthenticated()

    def login_default(self) -> None:
        """The password-less default user (auth.default_user = nopass)."""
        self.user = "default"
        self.root = self.authenticated = True
        self.lookup = LOOKUP
        self._enter(self.server.default_tenant)
        self._end_unauthenticated()

    def logout(self) -> None:
        """Back to the default user (RESET): authenticated only in nopass mode."""
        if self.server.default_user_open:
            self.login_default()
            return
        self.user = "default"
        self.root = self.authenticated = False
        self.lookup = NOAUTH_LOOKUP
        self._enter(self.server.default_tenant)
        self._begin_unauthenticated()

    def _enter(self, tenant) -> None:
        if tenant is not self.tenant:
            self.fold_net()   # the bytes so far were the old tenant's
            self.tenant.leave(self)
            tenant.join(self)
            self.tenant = tenant
            tenant.connections += 1   # its total_connections_received
        self.db = tenant.dbs[self.db.index]

    def _begin_unauthenticated(self) -> None:
        strict = self.reader.strict
        strict.max_arg_unauth = UNAUTH_MAX_ARG
        strict.max_query_buffer = min(strict.max_query_buffer, UNAUTH_MAX_INPUT)
        self.reader.refresh()

    def _end_unauthenticated(self) -> None:
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
        self.server.clients.pop(self.id, None)
        self.tenant.leave(self)
        self.fold_net()
        if self.watched is not None:
            self.server.events.unwatch_all(self)
        waiting = self.waiting
        if type(waiting) is Blocked:
            waiting.abandon()   # a blocked pop whose client went: off its keys

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

    def resume_writing(self) -> None:
        self.paused = False
        if self.closing:
            return
        if self.backlog is not None:
            # Not from inside the transport's write-ready callback: next turn.
            self.server.loop.call_soon(self._run_backlog)
        else:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        server = self.server
        if server.frozen:   # a shutdown is saving: no command may run after it
            server.hold_input(self, data)
            return
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
            self.close()
            return
        except ProtocolError as exc:
            self._run_or_hold(exc.requests, exc, now)
            return
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
                self._wait(cmd, reply, [], None)
                return
            else:
                reply = encode(reply, self.resp3)
        cmd.calls += 1
        cmd.usec += (monotonic() - started) * 1e6
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
        CPU per request. Command time for INFO commandstats is measured per
        batch and shared evenly among the commands of the batch (exact when a
        read holds one command, as without pipelining).

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
        for args in requests:
            cmd = self.lookup.get(args[0])   # re-read: AUTH or RESET may change it
            arity = cmd.arity if cmd is not None else 0
            if (cmd is None or self.multi is not None
                    or (len(args) != arity and (arity > 0 or len(args) < -arity))):
                self.execute(args, out)
                if isinstance(out[-1], Deferred):
                    deferred = out.pop()
                    self._wait(deferred.cmd, deferred, requests[done + len(out) + 1:], error)
                    error = None   # it follows the requests that now wait
                    break
                size += len(out[-1])
            else:
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
                        self._wait(cmd, reply, requests[done + len(out) + 1:], error)
                        error = None   # it follows the requests that now wait
                        break
                    else:
                        reply = encode(reply, self.resp3)
                        size += len(reply)
                        append(reply)
                ran.append(cmd)
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
        if ran:
            share = (monotonic() - started) * 1e6 / len(ran)
            for cmd in ran:
                cmd.calls += 1
                cmd.usec += share
            self.tenant.ran += ran   # its commandstats, folded later (keyspace/tenant.py)
            self.last_command = cmd.name
        if self.backlog is not None and self.waiting is None:
            return   # paused mid-batch: the rest runs when the client drains
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

    def _wait(self, cmd, deferred: Deferred, rest: list, error) -> None:
        """Hold the client's later requests until `deferred` is done."""
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
        try:
            data = encode(deferred.finish(future.result()), self.resp3)
        except CommandError as exc:
            data = self._failed(cmd, exc.message)
        except Exception as exc:
            data = self._crashed(cmd, exc)
        self.unsent.append(data)
        self.flush()
        if self.close_after_reply:
            self.closing = True
            self.transport.close()
        elif not self.paused:   # else resume_writing runs the backlog
            self._run_backlog()

    def _hold(self) -> None:
        """Hold this client's requests while another client of its tenant runs
        a long command in slices: the tenant is the unit of atomicity
        (dispatch/slices.py). They run when that command ends."""
        if self.backlog is None:
            self.backlog = []
        self.tenant.held.append(self)

    def _run_backlog(self) -> None:
        if self.waiting is not None:
            return   # _finish_wait runs it
        if self.server.frozen:
            return   # shutting down; a failed shutdown's thaw runs it
        busy = self.tenant.busy
        if busy is not None and busy is not self:
            if self.backlog is not None and not self.closing:
                self._hold()
            return
        backlog, error = self.backlog, self.backlog_error
        self.backlog = self.backlog_error = None
        if self.closing or backlog is None:
            return
        self.run(backlog, error)
        if not (self.paused or self.closing or self.backlog is not None):
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

    def _check_output_limit(self) -> None:
        limit = (self.server.config["limits.client_output_buffer_limit"] if self.authenticated
                 else UNAUTH_MAX_OUTPUT)
        if self.transport.get_write_buffer_size() > limit:
            log.warning("closing client %d that exceeded the output buffer limit", self.id)
            self.closing = self.close_after_reply = True
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




def _format_addr(address) -> str:
    if not address:
        return "?"
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return "%s:%d" % (host, port) if ":" not in host else "[%s]:%d" % (host, port)
    return str(address)
