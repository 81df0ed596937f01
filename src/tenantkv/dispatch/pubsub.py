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

from tenantkv import errors
from tenantkv.config import OBUF_NORMAL, OBUF_PUBSUB
from tenantkv.util.glob import glob_matcher

MESSAGE = b"message"
PMESSAGE = b"pmessage"
SMESSAGE = b"smessage"


class Channels:
    """One tenant's channel space: name -> {subscribed connection: None}
    (a dict keeps subscription order, which Redis's delivery order follows)."""
    __slots__ = ("exact", "patterns", "shard", "matchers", "subscriptions", "name_bytes")

    def __init__(self) -> None:
        self.exact: dict = {}
        self.patterns: dict = {}
        self.shard: dict = {}
        self.matchers: dict = {}   # pattern -> compiled matcher (util/glob.py)
        # What the tenant holds, against the limits (MAX_TENANT_*, below):
        # subscriptions of all its clients, bytes of its distinct names.
        self.subscriptions = 0
        self.name_bytes = 0

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
        # The hot case, written out (deliver() inline; one format for the
        # message): measured 3.05 -> 2.05 us of server CPU per PUBLISH with
        # one subscriber, 4.30 -> 2.85 with ten (bench/pubsub.py).
        tail = b"$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(channel), channel, len(message), message)
        resp2 = b"*3\r\n" + tail
        resp3 = None
        for conn in subscribers:
            received += 1
            if conn.closing:
                continue
            if conn.resp3:
                data = resp3 = resp3 or b">3\r\n" + tail
            else:
                data = resp2
            unsent = conn.unsent
            if not unsent:
                server = conn.server
                pending = server.pending_writes
                if not pending:
                    server.loop.call_soon(server.flush_pending_writes)
                pending.append(conn)
            unsent.append(data)
    if channels.patterns:
        matchers = channels.matchers
        for pattern, subscribers in channels.patterns.items():
            matches = matchers.get(pattern)
            if matches is None:
                matches = matchers[pattern] = glob_matcher(pattern)
            if not matches(channel):
                continue
            encoded = [None, None]   # RESP2, RESP3: made once per pattern
            for conn in subscribers:
                resp3 = conn.resp3
                data = encoded[resp3]
                if data is None:
                    data = encoded[resp3] = encode_message(resp3, (PMESSAGE, pattern, channel,
                                                                   message))
                deliver(conn, data)
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
    encoded = [None, None]   # RESP2, RESP3
    for conn in subscribers:
        resp3 = conn.resp3
        data = encoded[resp3]
        if data is None:
            data = encoded[resp3] = encode_message(resp3, (SMESSAGE, channel, message))
        deliver(conn, data)
    return len(subscribers)


# -- subscribing (the commands are commands/pubsub.py) --------------------------------------

# What one tenant can make the server hold, and what each PUBLISH costs
# (README, "Pub/sub limits"). Redis has no such limits; in a shared server
# a hostile tenant would otherwise subscribe its way to gigabytes, or make
# every PUBLISH of its own scan millions of patterns while the others wait.
# Subscriptions of the tenant's clients, all kinds together (each one is a
# dict entry on the connection and one on the channel: ~200 bytes).
MAX_TENANT_SUBSCRIPTIONS = 100_000
# Distinct patterns in the tenant: a PUBLISH matches the channel against
# each (measured: 0.17 us a match for a short channel, 45 us per PUBLISH
# with 256 patterns; 10 us a match for a 64 KB channel).
MAX_TENANT_PATTERNS = 256
# The bytes of the distinct channel and pattern names the tenant holds.
MAX_TENANT_NAME_BYTES = 16 * 1024 * 1024
# One pattern: the matcher's size and time grow with it.
MAX_PATTERN_BYTES = 1024
# One channel name, subscribed to or published to: a match costs time in
# proportion to it, and each subscription holds it.
MAX_CHANNEL_BYTES = 64 * 1024

EXACT, PATTERN, SHARD = 0, 1, 2
_CONFIRM = ((b"subscribe", b"unsubscribe"), (b"psubscribe", b"punsubscribe"),
            (b"ssubscribe", b"sunsubscribe"))


class _Subscribers(dict):
    """The connections subscribed to one name ({conn: None}), and the name."""
    __slots__ = ("name",)


def _space(channels: Channels, kind: int) -> dict:
    if kind == EXACT:
        return channels.exact
    return channels.patterns if kind == PATTERN else channels.shard


def _own(subs: Subscriptions, kind: int) -> dict:
    return subs.channels if kind == EXACT else subs.patterns if kind == PATTERN else subs.shard


def _confirm(conn, word: bytes, name, count: int) -> bytes:
    """A (un)subscribe confirmation: RESP2 array / RESP3 push of the word,
    the name (a null for "nothing to unsubscribe from") and the count."""
    head = b">3\r\n" if conn.resp3 else b"*3\r\n"
    if name is None:
        name_part = b"_\r\n" if conn.resp3 else b"$-1\r\n"
    else:
        name_part = b"$%d\r\n%s\r\n" % (len(name), name)
    return b"%s$%d\r\n%s\r\n%s:%d\r\n" % (head, len(word), word, name_part, count)


def check_limits(conn, kind: int, names) -> str | None:
    """The error text if subscribing `conn` to `names` (of `kind`) could
    take its tenant past a limit above, else None. Checked before anything
    changes: a refused SUBSCRIBE subscribes to nothing."""
    channels = conn.tenant.channels
    held = channels.subscriptions if channels is not None else 0
    if held + len(names) > MAX_TENANT_SUBSCRIPTIONS:
        return errors.pubsub_limit("subscriptions", MAX_TENANT_SUBSCRIPTIONS)
    space = _space(channels, kind) if channels is not None else {}
    fresh = [name for name in dict.fromkeys(names) if name not in space]
    if kind != PATTERN and any(len(name) > MAX_CHANNEL_BYTES for name in fresh):
        return errors.pubsub_limit("channel", MAX_CHANNEL_BYTES >> 10, "KB")
    if kind == PATTERN:
        if any(len(name) > MAX_PATTERN_BYTES for name in fresh):
            return errors.pubsub_limit("pattern", MAX_PATTERN_BYTES, "bytes")
        if len(space) + len(fresh) > MAX_TENANT_PATTERNS:
            return errors.pubsub_limit("patterns", MAX_TENANT_PATTERNS)
    held_bytes = channels.name_bytes if channels is not None else 0
    if held_bytes + sum(map(len, fresh)) > MAX_TENANT_NAME_BYTES:
        return errors.pubsub_limit("channel names", MAX_TENANT_NAME_BYTES >> 20, "MB")
    return None


def subscribe(conn, kind: int, names) -> bytes:
    """Subscribe `conn` to `names` within its tenant: the encoded
    confirmations, one per name (a repeated name too, as Redis)."""
    channels = channels_of(conn.tenant)
    subs = conn.subs
    if subs is None:
        subs = conn.subs = Subscriptions()
        enter_mode(conn)
    space, own = _space(channels, kind), _own(subs, kind)
    word = _CONFIRM[kind][0]
    out = []
    for name in names:
        if name not in own:
            subscribers = space.get(name)
            if subscribers is None:
                subscribers = space[name] = _Subscribers()
                subscribers.name = name
                channels.name_bytes += len(name)
            else:
                # The tenant's copy of the name: each subscriber's entry
                # shares it rather than holding a copy of its own.
                name = subscribers.name
            subscribers[conn] = None
            own[name] = None
            channels.subscriptions += 1
        out.append(_confirm(conn, word, name, len(subs.shard) if kind == SHARD else subs.count()))
    return b"".join(out)


def unsubscribe(conn, kind: int, names) -> bytes:
    """Unsubscribe `conn` from `names` (all of that kind when empty): the
    encoded confirmations. Leaves pub/sub mode when nothing is left."""
    subs = conn.subs
    own = _own(subs, kind) if subs is not None else {}
    word = _CONFIRM[kind][1]
    if not names:
        names = list(own)
        if not names:
            return _confirm(conn, word, None, _count(subs, kind))
    out = []
    for name in names:
        if name in own:
            del own[name]
            _drop(conn, kind, name)
        out.append(_confirm(conn, word, name, _count(subs, kind)))
    if subs is not None and subs.empty():
        conn.subs = None
        leave_mode(conn)
    return b"".join(out)


def _count(subs, kind: int) -> int:
    if subs is None:
        return 0
    return len(subs.shard) if kind == SHARD else subs.count()


def _drop(conn, kind: int, name: bytes) -> None:
    """Take `conn` off `name` in its tenant's space; free what is left empty
    (an idle tenant keeps nothing)."""
    tenant = conn.tenant
    channels = tenant.channels
    space = _space(channels, kind)
    subscribers = space[name]
    del subscribers[conn]
    channels.subscriptions -= 1
    if not subscribers:
        del space[name]
        channels.name_bytes -= len(name)
        if kind == PATTERN:
            channels.matchers.pop(name, None)
        if channels.empty():
            tenant.channels = None


def leave_all(conn) -> None:
    """Every subscription of `conn` ends, without a reply: the connection
    closes, RESETs or changes tenant (its subscriptions belong to the old one)."""
    subs = conn.subs
    if subs is None:
        return
    conn.subs = None
    for kind in (EXACT, PATTERN, SHARD):
        for name in _own(subs, kind):
            _drop(conn, kind, name)
    leave_mode(conn)


# -- pub/sub mode -----------------------------------------------------------------------

# What a RESP2 client may run while subscribed (Redis's processCommand).
SUBSCRIBED_NAMES = frozenset(("ping", "subscribe", "ssubscribe", "psubscribe", "unsubscribe",
                              "sunsubscribe", "punsubscribe", "quit", "reset"))
_SUBSCRIBED_RAW = frozenset(n.encode() for n in SUBSCRIBED_NAMES)


class Subscribed:
    """A RESP2 subscriber's command table (conn.lookup, as Throttled): it
    finds only the commands Redis allows in pub/sub mode, so anything else
    takes the general path, where dispatch/call.py answers Redis's error.
    Nothing is tested per command on the hot path; `allowed` is the user's
    own table (subcommand and first-argument entries pass through)."""
    __slots__ = ("allowed",)

    def __init__(self, allowed) -> None:
        self.allowed = allowed

    def get(self, name, default=None):
        if type(name) is bytes and name not in _SUBSCRIBED_RAW \
                and name.lower() not in _SUBSCRIBED_RAW:
            return default
        return self.allowed.get(name, default)


def _restricted(conn, on: bool) -> None:
    lookup = conn.lookup
    holder = None
    # The rate quota's table (Throttled) and CLIENT REPLY's (call.Quiet) wrap
    # ours, each holding the one inside as `allowed`: the mode goes innermost.
    while type(lookup) is not Subscribed and hasattr(lookup, "allowed"):
        holder, lookup = lookup, lookup.allowed
    if on and type(lookup) is not Subscribed:
        lookup = Subscribed(lookup)
    elif not on and type(lookup) is Subscribed:
        lookup = lookup.allowed
    if holder is not None:
        holder.allowed = lookup
    else:
        conn.lookup = lookup


def enter_mode(conn) -> None:
    """`conn` subscribed to its first name: the pubsub output class, and in
    RESP2 only the subscribe family, PING, QUIT and RESET."""
    conn.obuf_class = OBUF_PUBSUB
    if not conn.resp3:
        _restricted(conn, True)


def leave_mode(conn) -> None:
    if conn not in conn.server.monitors.conns:   # a monitor keeps its class (MONITOR)
        conn.obuf_class = OBUF_NORMAL
    conn.soft_since = None
    _restricted(conn, False)


def refresh_mode(conn) -> None:
    """After a change of command table (AUTH, an ACL change) or of protocol
    (HELLO): a subscriber keeps its mode."""
    if conn.subs is not None:
        _restricted(conn, not conn.resp3)


# The commands whose arguments the ACL channel rules check, and where: the
# channels from args[1] on, or args[1] alone; PSUBSCRIBE's are patterns.
_CHANNEL_ARGS = {b"subscribe": None, b"ssubscribe": None, b"psubscribe": None,
                 b"publish": 2, b"spublish": 2}


def channel_refusal(conn, args) -> bool:
    """Whether the user's channel rules (conn.channel_rules; Redis 7's
    &pattern) refuse the channels of `args` (a command of _CHANNEL_ARGS):
    each channel must match one of the user's patterns, and a pattern
    subscribed to must be one of them, literally (Redis 7.0's
    ACLCheckChannelAgainstList). A refusal is kept for ACL LOG as Redis
    keeps it: reason "channel", the channel as object. Checked by the
    commands (commands/pubsub.py) and, inside MULTI, when queued
    (dispatch/call.py), as Redis does."""
    rules = conn.channel_rules
    name = args[0].lower()
    if rules is None or name not in _CHANNEL_ARGS:
        return False
    is_pattern = name == b"psubscribe"
    for channel in args[1:_CHANNEL_ARGS[name]]:
        if is_pattern:
            if channel not in rules:
                break
        elif not any(glob_matcher(rule)(channel) for rule in rules):
            break
    else:
        return False
    conn.server.auth.log_event(conn, "channel", channel.decode("utf-8", "surrogateescape"),
                               conn.user, "multi" if conn.multi is not None else "toplevel")
    return True


def revoked(conn) -> bool:
    """Whether `conn` holds a subscription its user's channel rules
    (conn.channel_rules) no longer allow: Redis 7 then closes the client
    (ACLKillPubsubClientsIfNeeded), so that an ACL change takes effect."""
    rules = conn.channel_rules
    subs = conn.subs
    if rules is None or subs is None:
        return False
    if any(pattern not in rules for pattern in subs.patterns):
        return True
    matchers = [glob_matcher(rule) for rule in rules]
    return any(not any(m(name) for m in matchers)
               for own in (subs.channels, subs.shard) for name in own)
