"""The rate quota: commands per second per tenant (keyspace/quota.py).

Cost. A tenant without a rate quota has no RateLimiter (`tenant.limiter` is
None), and the connection tests that once per read, not per command. A
tenant with one pays `admit` per read: a token bucket refilled at `rate`
tokens a second, holding at most one second's worth, from which each read
takes one token per request it holds.

Refusal. A read that finds the bucket empty (or in debt) does not run its
requests: the connection's command table (`conn.lookup`, which the hot path
reads anyway) is swapped for a Throttled one, which finds no command, so
every request takes the general path, where `dispatch.call.execute` answers
errors.quota_rate (QUIT still runs). A later read that finds tokens again
puts the user's table back. The read that empties the bucket still runs
whole (a pipeline is not cut in two) and leaves the bucket in debt, paid
back before the tenant runs anything again: the tenant's average rate is
held to its quota, whatever the size of its reads. Requests refused take no
tokens: an idle second always gives a throttled tenant its commands back.
"""

from tenantkv import errors

# What a throttled connection may still run: leaving.
EXEMPT = frozenset((b"quit", b"QUIT"))


class Throttled:
    """A connection's command table while its tenant is over its rate
    quota: `get` finds nothing (so the request goes to `execute`, which
    refuses it), but for EXEMPT; `allowed` is the user's own table."""
    __slots__ = ("allowed",)

    def __init__(self, allowed) -> None:
        self.allowed = allowed

    def get(self, name, default=None):
        if name in EXEMPT or (type(name) is bytes and name.lower() in EXEMPT):
            return self.allowed.get(name, default)
        return default

    def refusal(self, client, args: list):
        """The error text for a request of a throttled client, or None for
        a request that may run (QUIT)."""
        if args and type(args[0]) is bytes and args[0].lower() in EXEMPT:
            return None
        tenant = client.tenant
        tenant.refused("rate")
        return errors.quota_rate(tenant.quota.rate)


class RateLimiter:
    """One tenant's token bucket (see the module's docstring), and the
    commands it let through in the last whole second (INFO, TENANT INFO)."""
    __slots__ = ("rate", "tokens", "stamp", "window", "count", "last")

    def __init__(self, rate: int, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate)   # a full second's worth to start with
        self.stamp = now
        self.window = now + 1.0     # end of the second being counted
        self.count = 0              # requests admitted in it
        self.last = 0               # requests admitted in the second before

    def admit(self, conn, requests: int, now: float) -> None:
        """A read of `conn` holding `requests` requests: run them (the
        user's table) or refuse them (a Throttled one). Per read of a
        tenant with a rate quota: kept to a few attribute operations."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > 0.0:
            if tokens > self.rate:
                tokens = self.rate
            self.tokens = tokens - requests
            if now < self.window:
                self.count += requests
            else:
                self._next_second(requests, now)
            if type(conn.lookup) is Throttled:
                conn.lookup = conn.lookup.allowed
        else:
            self.tokens = tokens
            if type(conn.lookup) is not Throttled:
                conn.lookup = Throttled(conn.lookup)

    def _next_second(self, requests: int, now: float) -> None:
        self.last = self.count if now - self.window < 1.0 else 0
        self.window = now + 1.0
        self.count = requests

    def per_second(self, now: float) -> int:
        """Requests admitted in the last whole second."""
        late = now - self.window   # < 0: the second being counted is not over
        if late >= 1.0:
            return 0
        return self.last if late < 0.0 else self.count


def release(conn) -> None:
    """Give `conn` its own command table back (its tenant's rate quota is gone)."""
    lookup = conn.lookup
    if type(lookup) is Throttled:
        conn.lookup = lookup.allowed
