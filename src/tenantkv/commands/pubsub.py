"""A stand-in for part 1 of issue 16 (commands/pubsub.py, the real pub/sub
commands): the least SUBSCRIBE and PSUBSCRIBE that let the keyspace
notification tests (tests/test_notifications.py) listen. No subscribed-mode
rules, no UNSUBSCRIBE, no clean-up when a client leaves (a closed client is
skipped by dispatch/pubsub.deliver). Part 1's module replaces this file
whole at merge."""

from tenantkv.dispatch.pubsub import Subscriptions, channels_of, deliver
from tenantkv.dispatch.replies import NO_REPLY
from tenantkv.dispatch.table import command


def _subscribe(conn, args, kind: bytes, attr: str):
    channels = getattr(channels_of(conn.tenant), attr)
    subs = conn.subs
    if subs is None:
        subs = conn.subs = Subscriptions()
    mine = subs.patterns if attr == "patterns" else subs.channels
    for name in args[1:]:
        channels.setdefault(name, {})[conn] = None
        mine[name] = None
        deliver(conn, _confirm(conn, kind, name, subs.count()))
    return NO_REPLY


def _confirm(conn, kind: bytes, name: bytes, count: int) -> bytes:
    head = b">3\r\n" if conn.resp3 else b"*3\r\n"
    return head + b"$%d\r\n%s\r\n$%d\r\n%s\r\n:%d\r\n" % (len(kind), kind, len(name), name, count)


@command("subscribe")
def subscribe(conn, args):
    return _subscribe(conn, args, b"subscribe", "exact")


@command("psubscribe")
def psubscribe(conn, args):
    return _subscribe(conn, args, b"psubscribe", "patterns")
