"""A tenant's quotas: the limits one tenant may not pass, whatever it sends.

Redis has one keyspace and server-wide limits (maxmemory, maxclients); a
server shared by hostile tenants needs them per tenant too (issue 15). A
figure of 0 means "no limit of this kind". Every tenant starts with the
defaults of the config's [quotas] table; root overrides them per user.

Who enforces what: memory and keys in the write path (server/memory.py),
connections at login, the command rate per read. Each refusal names its quota
(errors.quota_*).

Overrides. Root sets any of the four per user (`ACL SETUSER alice
quota:memory=100mb`, `tenantkv user set-quota`); the user store keeps them as
text, "memory=104857600 rate=5000" (overrides_text), only the fields set, so
a field without an override follows the default even when CONFIG SET changes
it later (server/quotas.py rebuilds the tenants' Quota objects then). An
override of 0 means "no limit" for that user, whatever the default.
"""

FIELDS = ("memory", "keys", "connections", "rate")
# The largest figure of each field (the config's bounds for the defaults).
MAXIMUM = {"memory": 2**63 - 1, "keys": 2**63 - 1, "connections": 2**31 - 1, "rate": 2**31 - 1}


class Quota:
    __slots__ = ("memory", "keys", "connections", "rate")

    def __init__(self, memory: int = 0, keys: int = 0, connections: int = 0,
                 rate: int = 0) -> None:
        self.memory = memory            # bytes of data, buffers, queues, cursors
        self.keys = keys                # keys over all its databases
        self.connections = connections  # simultaneous connections
        self.rate = rate                # commands per second

    def __repr__(self) -> str:
        return "Quota(memory=%d, keys=%d, connections=%d, rate=%d)" % (
            self.memory, self.keys, self.connections, self.rate)


NO_QUOTA = Quota()   # shared by every tenant without limits: costs no tenant a byte


def parse_value(field: str, text: str) -> int:
    """One override's figure: memory takes Redis's units (100mb, 1gb, 5000,
    as maxmemory), the others plain integers; 0 is "no limit". ValueError
    with the reason for anything else."""
    if field not in MAXIMUM:
        raise ValueError("unknown quota '%s' (memory, keys, connections, rate)" % field)
    if field == "memory":
        from tenantkv.config import parse_memory
        try:
            value = parse_memory(text) if text else -1
        except ValueError:
            value = -1
    else:
        value = int(text) if text.isdigit() and len(text) <= 20 else -1
    if not 0 <= value <= MAXIMUM[field]:
        raise ValueError("quota '%s' must be %s between 0 and %d (0: no limit)"
                         % (field, "a memory value" if field == "memory" else "an integer",
                            MAXIMUM[field]))
    return value


def parse_overrides(text) -> dict:
    """The store's text ("memory=N rate=N") as {field: int}; {} for None.
    Unknown or damaged parts are skipped: a newer server's field must not
    stop an older one from starting."""
    found = {}
    for part in (text or "").split():
        field, _, figure = part.partition("=")
        if field in MAXIMUM and figure.isdigit():
            found[field] = min(int(figure), MAXIMUM[field])
    return found


def overrides_text(overrides: dict):
    """{field: int} as the store keeps it, in FIELDS order; None when empty."""
    parts = ["%s=%d" % (field, overrides[field]) for field in FIELDS if field in overrides]
    return " ".join(parts) or None


def effective(default: Quota, members: list) -> Quota:
    """The Quota of a tenant used by `members`: [(root, {field: override})]
    for each user working in it (a namespace has several).

    Each user's figure is its override, else the default; root users are
    not held to the defaults (a low default must not lock the administrator
    out), only to their own overrides. A shared namespace gets, per field,
    the strictest of its users' figures (0, no limit, being the loosest):
    binding a user to a namespace never loosens it. Returns `default`
    itself when every figure is the default's (the common case: no object
    per tenant, and CONFIG SET of a default reaches it at once)."""
    if not members or all(not root and not overrides for root, overrides in members):
        return default
    figures = []
    for field in FIELDS:
        strictest = 0
        for root, overrides in members:
            value = overrides.get(field, 0 if root else getattr(default, field))
            if value and (not strictest or value < strictest):
                strictest = value
        figures.append(strictest)
    return Quota(*figures)
