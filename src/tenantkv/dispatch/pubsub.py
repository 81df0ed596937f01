"""Pub/sub: every channel space belongs to a tenant (issue 16).

A tenant's channels, patterns and shard channels live on the tenant
(`tenant.channels`, a Channels made when first subscribed), so a PUBLISH can
only ever reach subscribers of the publisher's own tenant: there is no
server-wide channel table to leak names, counts or messages through. Root's
connections publish in root's tenant, as any other.

A connection's own subscriptions are `conn.subs` (a Subscriptions, None while
it subscribes to nothing: one test per connection, nothing per command).

Delivery (`deliver`) appends the encoded message to the subscriber's output
queue for the end-of-turn flush, exactly as a reply: RESP2 a 3- or 4-element
array, RESP3 a push (`>`). A subscriber that does not read is closed at its
`pubsub` class output limit (client-output-buffer-limit) by the connection's
own output check; publishers never wait for it.

This module is the mechanism that the commands (commands/pubsub.py), the
keyspace notifications and client-side caching's RESP2 redirection all use.
"""

from tenantkv.util.glob import glob_matcher

MESSAGE = b"message"
PMESSAGE = b"pmessage"
SMESSAGE = b"smessage"


class Channels:
    """One tenant's channel space: name -> {subscribed connection: None}
    (a dict keeps subscription order, which Redis's delivery order follows)."""
    __slots__ = ("exact", "patterns", "shard", "matchers")

    def __init__(self) -> None:
        self.exact: dict = {}
        self.patterns: dict = {}
        self.shard: dict = {}
        self.matchers: dict = {}   # pattern -> compiled matcher (util/glob.py)

    def empty(self) -> bool:
        return not (self.exact or self.patterns or self.shard)


class Subscriptions:
    """One connection's subscriptions (what CLIENT LIST's sub/psub/ssub count)."""
    __slots__ = ("channels", "patterns", "shard")

    def __init__(self) -> None:
        self.channels: dict = {}
        self.patterns: dict = {}
        self.shard: dict = {}

    def count(self) -> int:
        """Channels + patterns (what SUBSCRIBE / UNSUBSCRIBE replies carry)."""
        return len(self.channels) + len(self.patterns)

    def empty(self) -> bool:
        return not (self.channels or self.patterns or self.shard)


def channels_of(tenant) -> Channels:
    """The tenant's channel space, made when first needed."""
    channels = tenant.channels
    if channels is None:
        channels = tenant.channels = Channels()
    return channels


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def encode_message(resp3: bool, parts) -> bytes:
    """A pub/sub message of bulk strings: RESP2 array or RESP3 push."""
    return (b">%d\r\n" if resp3 else b"*%d\r\n") % len(parts) + b"".join(map(_bulk, parts))


def deliver(conn, data: bytes) -> None:
    """Queue `data` (an encoded message) for `conn`, flushed at the end of
    this loop turn with its replies (server/connection.py)."""
    if conn.closing:
        return
    unsent = conn.unsent
    if not unsent:
        server = conn.server
        pending = server.pending_writes
        if not pending:
            server.loop.call_soon(server.flush_pending_writes)
        pending.append(conn)
    unsent.append(data)


def publish(tenant, channel: bytes, message: bytes) -> int:
    """PUBLISH within `tenant`: the number of deliveries (exact subscribers
    plus one per matching pattern subscription), as Redis counts them."""
    channels = tenant.channels
    if channels is None:
        return 0
    received = 0
    subscribers = channels.exact.get(channel)
    if subscribers:
        resp2 = resp3 = None
        for conn in subscribers:
            if conn.resp3:
                resp3 = resp3 or encode_message(True, (MESSAGE, channel, message))
                deliver(conn, resp3)
            else:
                resp2 = resp2 or encode_message(False, (MESSAGE, channel, message))
                deliver(conn, resp2)
            received += 1
    if channels.patterns:
        matchers = channels.matchers
        for pattern, subscribers in channels.patterns.items():
            matches = matchers.get(pattern)
            if matches is None:
                matches = matchers[pattern] = glob_matcher(pattern)
            if not matches(channel):
                continue
            for conn in subscribers:
                deliver(conn, encode_message(conn.resp3, (PMESSAGE, pattern, channel, message)))
                received += 1
    return received


def publish_shard(tenant, channel: bytes, message: bytes) -> int:
    """SPUBLISH within `tenant` (one shard: this server)."""
    channels = tenant.channels
    if channels is None:
        return 0
    subscribers = channels.shard.get(channel)
    if not subscribers:
        return 0
    for conn in subscribers:
        deliver(conn, encode_message(conn.resp3, (SMESSAGE, channel, message)))
    return len(subscribers)
