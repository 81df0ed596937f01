"""Pub/sub commands: TEMPORARY, the least that client-side caching's tests
need (issue 16, part 3: a RESP2 client subscribed to __redis__:invalidate
receiving a REDIRECT's invalidations). Part 1 (pubsub) brings the real
module; at the merge, its version replaces this file whole.
"""

from tenantkv.dispatch.pubsub import Subscriptions, channels_of, deliver
from tenantkv.dispatch.replies import NO_REPLY
from tenantkv.dispatch.table import command


@command("subscribe")
def subscribe(conn, args):
    subs = conn.subs
    if subs is None:
        subs = conn.subs = Subscriptions()
    exact = channels_of(conn.tenant).exact
    for channel in args[1:]:
        if channel not in subs.channels:
            subs.channels[channel] = None
            exact.setdefault(channel, {})[conn] = None
        deliver(conn, (b">3\r\n" if conn.resp3 else b"*3\r\n")
                + b"$9\r\nsubscribe\r\n$%d\r\n%s\r\n:%d\r\n" % (len(channel), channel, subs.count()))
    return NO_REPLY
