"""Pub/sub commands: SUBSCRIBE, PUBLISH, PUBSUB and friends, in the caller's tenant.

The mechanism (a tenant's channel space, a connection's subscriptions,
delivery, pub/sub mode, the limits) is dispatch/pubsub.py; here are the
commands' arguments, the ACL channel rules (&pattern) and the replies, which
are Redis 7.0's byte for byte (a confirmation per name, RESP2 arrays or
RESP3 pushes). Nothing here can name another tenant's channels: every
command reads and writes `conn.tenant.channels` only.

PUBLISH and SPUBLISH are not writes (no "write" flag): the append-only log
never sees them and its replay never publishes.
"""

from tenantkv import errors
from tenantkv.dispatch import pubsub
from tenantkv.dispatch.table import command, container, lookup, subcommand
from tenantkv.errors import CommandError
from tenantkv.protocol.encoder import Raw
from tenantkv.util.glob import glob_matcher


def _check_channels(conn, args) -> None:
    """The user's ACL channel rules (dispatch/pubsub.py, channel_refusal)."""
    if conn.channel_rules is not None and pubsub.channel_refusal(conn, args):
        raise CommandError(errors.NOPERM_CHANNEL)


def _subscribe(conn, args, kind: int):
    names = args[1:]
    _check_channels(conn, args)
    refused = pubsub.check_limits(conn, kind, names)
    if refused is not None:
        raise CommandError(refused)
    return Raw(pubsub.subscribe(conn, kind, names))


def _unsubscribe(conn, args, kind: int):
    # No channel check: Redis lets a client leave any channel.
    return Raw(pubsub.unsubscribe(conn, kind, args[1:]))


@command("subscribe")
def subscribe(conn, args):
    return _subscribe(conn, args, pubsub.EXACT)


@command("psubscribe")
def psubscribe(conn, args):
    return _subscribe(conn, args, pubsub.PATTERN)


@command("ssubscribe")
def ssubscribe(conn, args):
    return _subscribe(conn, args, pubsub.SHARD)


@command("unsubscribe")
def unsubscribe(conn, args):
    return _unsubscribe(conn, args, pubsub.EXACT)


@command("punsubscribe")
def punsubscribe(conn, args):
    return _unsubscribe(conn, args, pubsub.PATTERN)


@command("sunsubscribe")
def sunsubscribe(conn, args):
    return _unsubscribe(conn, args, pubsub.SHARD)


def _check_publish(conn, args) -> None:
    _check_channels(conn, args)
    channel = args[1]
    if len(channel) > pubsub.MAX_CHANNEL_BYTES:
        raise CommandError(errors.pubsub_limit("channel", pubsub.MAX_CHANNEL_BYTES >> 10, "KB"))


@command("publish")
def publish(conn, args):
    channel = args[1]
    if len(channel) > 256 or conn.channel_rules is not None:   # one test when neither
        _check_publish(conn, args)
    if conn.server.replication.replicas:   # their subscribers hear it too (Redis propagates it)
        conn.server.replication.publish(conn.tenant.name, args)
    return pubsub.publish(conn.tenant, channel, args[2])


@command("spublish")
def spublish(conn, args):
    channel = args[1]
    if len(channel) > 256 or conn.channel_rules is not None:
        _check_publish(conn, args)
    if conn.server.replication.replicas:
        conn.server.replication.publish(conn.tenant.name, args)
    return pubsub.publish_shard(conn.tenant, channel, args[2])


# PUBLISH is @fast in Redis, but its cost grows with the tenant's patterns
# and subscribers: the fair loop (server/connection.py, TURN_SECONDS) reads
# the clock after each one, as after a slow command, so a pipeline of
# PUBLISHes cannot hold the other tenants for long.
lookup("publish").slow = lookup("spublish").slow = True


# -- PUBSUB ------------------------------------------------------------------------------

PUBSUB_HELP = [
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
]

container("pubsub", help=PUBSUB_HELP)


def _space(conn, kind: int) -> dict:
    channels = conn.tenant.channels
    if channels is None:
        return {}
    return channels.exact if kind == pubsub.EXACT else channels.shard


def _channel_list(conn, args, kind: int):
    if len(args) > 3:   # Redis checks this in the handler
        raise CommandError(errors.subcommand_syntax(args[1], "PUBSUB"))
    names = list(_space(conn, kind))
    if len(args) == 3:
        matches = glob_matcher(args[2])
        names = [name for name in names if matches(name)]
    return names


def _numsub(conn, args, kind: int):
    space = _space(conn, kind)
    reply = []
    for name in args[2:]:
        reply += [name, len(space.get(name, ()))]
    return reply


@subcommand("pubsub", "channels")
def pubsub_channels(conn, args):
    return _channel_list(conn, args, pubsub.EXACT)


@subcommand("pubsub", "shardchannels")
def pubsub_shardchannels(conn, args):
    return _channel_list(conn, args, pubsub.SHARD)


@subcommand("pubsub", "numsub")
def pubsub_numsub(conn, args):
    return _numsub(conn, args, pubsub.EXACT)


@subcommand("pubsub", "shardnumsub")
def pubsub_shardnumsub(conn, args):
    return _numsub(conn, args, pubsub.SHARD)


@subcommand("pubsub", "numpat")
def pubsub_numpat(conn, args):
    channels = conn.tenant.channels
    return len(channels.patterns) if channels is not None else 0

