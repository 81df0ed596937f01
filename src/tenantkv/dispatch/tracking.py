"""Client-side caching (CLIENT TRACKING): who may hold which key, per tenant (issue 16).

Redis remembers, for each key a tracking client read, the ids of the
clients that read it (the tracking table), and when the key changes sends
each of them an invalidation: a RESP3 push `>2 invalidate [key]`, or, with
REDIRECT to a RESP2 client in pub/sub mode, a message on the channel
`__redis__:invalidate`. BCAST clients are not remembered per key: they name
prefixes, and every key written under one is announced to them once per
loop turn. FLUSHDB/FLUSHALL invalidate everything with a null.

Here every piece of that state belongs to a tenant: the table and the
prefixes live on the tenant (`tenant.tracking`, a TenantTracking made when
its first client tracks), so a key of tenant A can only ever invalidate the
caches of A's clients, whatever the names. A REDIRECT may only name a client
of the caller's own tenant (another's id is "does not exist"), and a
message is only ever delivered to a client still in the tenant: a client
that changes tenant (AUTH as another user) stops tracking first.

The cost is paid only while someone tracks: the first tracking client
installs the reader wrapper (dispatch/observers.py, `set_tracking`) that
remembers the keys a tracking client read, and listens to writes like WATCH
(`written`); expiry and eviction report through `expired`. With no tracking
client in the server, nothing of this runs per command.

Bounded: each tenant's table holds at most `tracking-table-max-keys` keys
(Redis's setting, server-wide there, per tenant here) and MAX_TABLE_BYTES of
key names (a GET of a missing key is remembered too, and a name may be
512 MB); past either the oldest remembered key is invalidated and forgotten,
as Redis does with a random one. A tenant's BCAST prefixes (each write of
the tenant is checked against them) are at most MAX_PREFIXES, of at most
MAX_PREFIX_BYTES in all.
"""

from tenantkv import errors
from tenantkv.dispatch.pubsub import deliver
from tenantkv.errors import CommandError

INVALIDATE_CHANNEL = b"__redis__:invalidate"
# A tenant's BCAST prefixes: each write of the tenant is matched against
# them (by length, see TenantTracking.match), so their number is bounded.
MAX_PREFIXES = 1000
MAX_PREFIX_BYTES = 64 * 1024
# The key names a tenant's table holds, in bytes.
MAX_TABLE_BYTES = 64 * 1024**2

_PUSH_INVALIDATE = b">2\r\n$10\r\ninvalidate\r\n"
_MESSAGE_INVALIDATE = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n"
# The "all keys" invalidation of a flush: a null, of the tracking client's
# protocol (Redis's shared.null[c->resp], even when redirected).
_NULLS = (b"$-1\r\n", b"_\r\n")


def _keys_body(key: bytes) -> bytes:
    return b"*1\r\n$%d\r\n%s\r\n" % (len(key), key)


class ClientTracking:
    """One tracking connection's mode (`conn.tracking`; None: not tracking)."""
    __slots__ = ("redirect", "bcast", "optin", "optout", "noloop", "caching", "broken",
                 "prefixes")

    def __init__(self) -> None:
        self.redirect = 0        # client id, 0: none
        self.bcast = self.optin = self.optout = self.noloop = False
        # CLIENT CACHING yes (OPTIN) / no (OPTOUT) given for the next read.
        self.caching = False
        self.broken = False      # the redirect target is gone
        self.prefixes: dict = {}   # BCAST prefixes, in order

    def flags(self) -> list:
        """CLIENT TRACKINGINFO's flags after "on", in Redis's order."""
        flags = []
        if self.bcast:
            flags.append(b"bcast")
        if self.optin:
            flags.append(b"optin")
            if self.caching:
                flags.append(b"caching-yes")
        if self.optout:
            flags.append(b"optout")
            if self.caching:
                flags.append(b"caching-no")
        if self.noloop:
            flags.append(b"noloop")
        if self.broken:
            flags.append(b"broken_redirect")
        return flags


class Bcast:
    """The clients of one prefix, and the keys under it written this turn
    (key -> the connection that wrote it last, for NOLOOP)."""
    __slots__ = ("clients", "keys")

    def __init__(self) -> None:
        self.clients: dict = {}
        self.keys: dict = {}


class TenantTracking:
    """A tenant's tracking table and BCAST prefixes."""
    __slots__ = ("keys", "items", "bytes", "prefixes", "prefix_bytes", "lengths", "clients")

    def __init__(self) -> None:
        # key -> the id of the one client that may cache it (an int), or a
        # set of ids: most keys are read by one client, and an int costs
        # nothing where a set costs 216 bytes.
        self.keys: dict = {}
        self.items = 0           # ids over all keys (INFO tracking_total_items)
        self.bytes = 0           # the key names' lengths, summed
        self.prefixes: dict = {}   # prefix -> Bcast
        self.prefix_bytes = 0
        self.lengths: dict = {}    # prefix length -> how many prefixes have it
        self.clients = 0         # this tenant's tracking connections

    def match(self, key: bytes):
        """The Bcast of every prefix of `key`: one dict lookup per distinct
        prefix length, not one comparison per prefix."""
        prefixes = self.prefixes
        size = len(key)
        for length in self.lengths:
            if length <= size:
                bcast = prefixes.get(key[:length])
                if bcast is not None:
                    yield bcast


class Tracker:
    """The server's side of client-side caching: made by the first CLIENT
    TRACKING ON (`tracker_of`), kept for the server's life."""

    def __init__(self, server) -> None:
        self.server = server
        self.clients = 0          # tracking connections, server-wide
        self.max_keys = server.config["limits.tracking_table_max_keys"]
        server.config.listeners.setdefault("tracking-table-max-keys", []).append(self._set_max_keys)
        # Invalidations of a client's own reads by its own command, sent
        # after the command's reply (as Redis's tracking_pending_keys).
        self.pending: list = []
        # The tracking client whose command runs now (Redis's
        # server.current_client inside call()): set by the wrappers of
        # dispatch/observers.py around the commands of tracking clients
        # only, so that a key its command expires lazily is invalidated
        # after its reply, as its own write is.
        self.current = None
        # Tenants with BCAST keys to announce at the end of this loop turn.
        self.broadcasts: dict = {}

    # -- turning it on and off -------------------------------------------------

    def enable(self, conn, redirect: int, options: set, prefixes: list) -> None:
        state = conn.tracking
        tenant = conn.tenant
        table = tenant.tracking
        if table is None:
            table = tenant.tracking = TenantTracking()
        if state is None:
            state = conn.tracking = ClientTracking()
            table.clients += 1
            self.clients += 1
            events = self.server.events
            events.listen()   # writes report their keys while anyone tracks
            if self.clients == 1:
                events.set_tracking(True)   # and reads remember theirs
        state.redirect = redirect
        state.broken = False
        state.optin = "optin" in options
        state.optout = "optout" in options
        state.noloop = "noloop" in options
        if "bcast" in options:
            state.bcast = True
            for prefix in prefixes or [b""]:
                if prefix in state.prefixes:
                    continue
                bcast = table.prefixes.get(prefix)
                if bcast is None:
                    bcast = table.prefixes[prefix] = Bcast()
                    table.prefix_bytes += len(prefix)
                    table.lengths[len(prefix)] = table.lengths.get(len(prefix), 0) + 1
                bcast.clients[conn] = None
                state.prefixes[prefix] = None

    def disable(self, conn) -> None:
        """Stop tracking (CLIENT TRACKING off, RESET, a change of tenant, the
        close). As in Redis, the table keeps the client's id under the keys
        it read: forgotten lazily, when those keys are invalidated."""
        state = conn.tracking
        if state is None:
            return
        conn.tracking = None
        table = conn.tenant.tracking
        if table is not None:
            for prefix in state.prefixes:
                bcast = table.prefixes.get(prefix)
                if bcast is None:
                    continue
                bcast.clients.pop(conn, None)
                if not bcast.clients:
                    del table.prefixes[prefix]
                    table.prefix_bytes -= len(prefix)
                    left = table.lengths[len(prefix)] - 1
                    if left:
                        table.lengths[len(prefix)] = left
                    else:
                        del table.lengths[len(prefix)]
            table.clients -= 1
            if not table.clients:
                # Nobody of the tenant tracks: nobody can be invalidated.
                conn.tenant.tracking = None
                self.broadcasts.pop(conn.tenant, None)
        self.clients -= 1
        events = self.server.events
        events.unlisten()
        if not self.clients:
            events.set_tracking(False)

    def check_prefixes(self, conn, prefixes: list) -> None:
        """Redis's checkPrefixCollisionsOrReply, then tenantkv's bound."""
        state = conn.tracking
        existing = state.prefixes if state is not None else ()
        for i, prefix in enumerate(prefixes):
            for other in existing:
                if prefix.startswith(other) or other.startswith(prefix):
                    raise CommandError(errors.tracking_prefix_overlap(prefix, other))
            for other in prefixes[i + 1:]:
                if prefix.startswith(other) or other.startswith(prefix):
                    raise CommandError(errors.tracking_prefix_overlap_given(prefix, other))
        table = conn.tenant.tracking
        known = table.prefixes if table is not None else {}
        new = {prefix for prefix in prefixes or [b""] if prefix not in known}
        if (len(known) + len(new) > MAX_PREFIXES
                or (table.prefix_bytes if table is not None else 0)
                + sum(map(len, new)) > MAX_PREFIX_BYTES):
            raise CommandError(errors.tracking_prefixes_limit(MAX_PREFIXES, MAX_PREFIX_BYTES))

    # -- reads -------------------------------------------------------------------

    def remember(self, conn, cmd, args: list) -> None:
        """After a read command of a tracking client: remember the keys it
        read (Redis's trackingRememberKeys), as OPTIN/OPTOUT say."""
        state = conn.tracking
        caching = state.caching
        if caching and not self.server.events.in_exec:
            # CLIENT CACHING speaks of the next read (or of every read of
            # the transaction that follows it: EXEC clears it after).
            state.caching = False
        if state.bcast or (state.optin and not caching) or (state.optout and caching):
            return
        if "pubsub" in cmd.flags:
            return   # shard channels are not keys to cache
        table = conn.tenant.tracking
        keys = table.keys
        ident = conn.id
        added = False
        for position in cmd.keys_of(args):
            key = args[position]
            ids = keys.get(key)
            if ids is None:
                keys[key] = ident
                table.bytes += len(key)
                added = True
            elif type(ids) is int:
                if ids != ident:
                    keys[key] = {ids, ident}
                else:
                    continue
            elif ident in ids:
                continue
            else:
                ids.add(ident)
            table.items += 1
        if added and ((self.max_keys and len(keys) > self.max_keys)
                      or table.bytes > MAX_TABLE_BYTES):
            self.limit(conn.tenant, table, conn)

    def limit(self, tenant, table, current=None) -> None:
        """Over tracking-table-max-keys (or MAX_TABLE_BYTES): invalidate and
        forget the oldest remembered keys (Redis picks random ones) until
        under it."""
        keys = table.keys
        while (self.max_keys and len(keys) > self.max_keys) or table.bytes > MAX_TABLE_BYTES:
            self.invalidate(tenant, table, next(iter(keys)), current, broadcast=False)

    def _set_max_keys(self, value: int) -> None:
        self.max_keys = value
        for tenant in list(self.server.tenants.values()):
            if tenant.tracking is not None:
                self.limit(tenant, tenant.tracking)

    # -- writes ------------------------------------------------------------------

    def written(self, keys, conn) -> None:
        """(db, key) pairs were changed, by `conn` (None: no client, as an
        expiry)."""
        tenants = self.server.tenants
        for db, key in keys:
            tenant = tenants.get(db.owner)
            if tenant is not None and tenant.tracking is not None:
                self.invalidate(tenant, tenant.tracking, key, conn)

    def expired(self, db, key: bytes) -> None:
        """A key expired (lazily, inside the command of `current`, or by the
        active cycle) or was evicted (before the command that needed the
        memory: `current` is not set yet, so it goes out before its reply,
        as in Redis)."""
        tenant = self.server.tenants.get(db.owner)
        if tenant is not None and tenant.tracking is not None:
            table = tenant.tracking
            if table.prefixes:
                # Written by no client: announced to NOLOOP BCAST clients
                # too, even the one whose read expired it (as Redis, whose
                # expiry signals the key with no client).
                self._broadcast(tenant, table, key, None)
            self.invalidate(tenant, table, key, self.current, broadcast=False)

    def invalidate(self, tenant, table, key: bytes, current, broadcast: bool = True) -> None:
        """Redis's trackingInvalidateKey within `tenant`: `current` is the
        client whose command changed the key (NOLOOP skips it; its own
        invalidation goes after its reply)."""
        if broadcast and table.prefixes:
            self._broadcast(tenant, table, key, current)
        ids = table.keys.pop(key, None)
        if ids is None:
            return
        table.bytes -= len(key)
        if type(ids) is int:
            table.items -= 1
            ids = (ids,)
        else:
            table.items -= len(ids)
        clients = self.server.clients
        for ident in ids:
            target = clients.get(ident)
            if target is None or target.tenant is not tenant:
                continue
            state = target.tracking
            if state is None or state.bcast:
                continue
            if target is current:
                if state.noloop:
                    continue
                self.defer(target, _keys_body(key))
            else:
                self.send(target, _keys_body(key))

    def _broadcast(self, tenant, table, key: bytes, writer) -> None:
        """Announce `key` to the BCAST clients of its prefixes at the end of
        the turn (Redis's trackingRememberKeyToBroadcast); `writer`: for
        NOLOOP."""
        found = False
        for bcast in table.match(key):
            bcast.keys[key] = writer
            found = True
        if found and tenant not in self.broadcasts:
            if not self.broadcasts and not self.pending:
                self._schedule()
            self.broadcasts[tenant] = None

    def flushed(self, tenant, current) -> None:
        """FLUSHDB / FLUSHALL in `tenant`: every tracking client of the
        tenant is told "all keys" (a null), and the table is emptied."""
        table = tenant.tracking
        if table is None:
            return
        for conn in list(tenant.clients):
            if conn.tracking is not None:
                null = _NULLS[conn.resp3]
                if conn is current:
                    self.defer(conn, null)
                else:
                    self.send(conn, null)
        table.keys = {}
        table.items = table.bytes = 0

    def flushed_all(self) -> None:
        """Every tenant's data was replaced (KDB LOAD, DEBUG RELOAD)."""
        for tenant in list(self.server.tenants.values()):
            self.flushed(tenant, None)

    # -- sending -----------------------------------------------------------------

    def send(self, conn, body: bytes) -> None:
        """Redis's sendTrackingMessage: `body` (the keys array, or a null)
        to `conn`, or to the client it redirects to."""
        state = conn.tracking
        if state is None:
            return
        if state.redirect:
            target = self.server.clients.get(state.redirect)
            if target is None or target.closing or target.tenant is not conn.tenant:
                # Gone, or no longer of this tenant: as gone.
                state.broken = True
                if conn.resp3:
                    deliver(conn, b">2\r\n$21\r\ntracking-redir-broken\r\n:%d\r\n" % state.redirect)
                return
            if target.resp3:
                deliver(target, _PUSH_INVALIDATE + body)
            elif target.subs is not None:
                deliver(target, _MESSAGE_INVALIDATE + body)
            return
        if conn.resp3:
            deliver(conn, _PUSH_INVALIDATE + body)
        # RESP2 without a redirect: nothing can be sent (as Redis).

    def defer(self, conn, body: bytes) -> None:
        """An invalidation for the client whose command caused it: after its
        reply (Redis's trackingHandlePendingKeyInvalidations after call();
        EXEC: after the whole EXEC reply). The reply is queued once the
        handler returns (with a pipeline, once the batch ran), so at the end
        of this turn."""
        waiting = conn.waiting
        if waiting is not None and not waiting.future.done():
            # A blocked client being served by another's write (BLMOVE's
            # push): its reply comes from its future's callback, which runs
            # before one added now.
            waiting.future.add_done_callback(lambda _: self.send(conn, body))
            return
        if not self.pending and not self.broadcasts:
            self._schedule()
        self.pending.append((conn, body))

    def _schedule(self) -> None:
        self.server.loop.call_soon(self.flush)

    def flush(self) -> None:
        """End of the loop turn: the deferred invalidations, then the BCAST
        announcements (Redis's trackingBroadcastInvalidationMessages)."""
        pending, self.pending = self.pending, []
        for conn, body in pending:
            if not conn.closing:
                self.send(conn, body)
        broadcasts, self.broadcasts = self.broadcasts, {}
        for tenant in broadcasts:
            table = tenant.tracking
            if table is None:
                continue
            prefixes = table.prefixes
            for prefix in sorted(prefixes):   # Redis's (radix tree) order
                bcast = prefixes[prefix]
                if not bcast.keys:
                    continue
                keys = sorted(bcast.keys.items())   # Redis's (radix tree) order
                common = _array(key for key, _ in keys)
                for conn in list(bcast.clients):
                    if conn.closing or conn.tracking is None:
                        continue
                    if conn.tracking.noloop:
                        own = [key for key, writer in keys if writer is not conn]
                        if own:
                            self.send(conn, _array(own))
                    else:
                        self.send(conn, common)
                bcast.keys = {}


def _array(keys) -> bytes:
    parts = [b"$%d\r\n%s\r\n" % (len(key), key) for key in keys]
    return b"*%d\r\n%s" % (len(parts), b"".join(parts))


def tracker_of(server) -> Tracker:
    """The server's Tracker, made when first needed."""
    tracker = server.events.tracker
    if tracker is None:
        tracker = server.events.tracker = Tracker(server)
    return tracker
