"""A tenant's quotas: the limits one tenant may not pass, whatever it sends.

Redis has one keyspace and server-wide limits (maxmemory, maxclients); a
server shared by hostile tenants needs them per tenant too (issue 15). A
figure of 0 means "no limit of this kind". Every tenant starts with the
defaults of the config's [quotas] table; root overrides them per user.

Who enforces what: memory and keys in the write path (server/memory.py),
connections at login, the command rate per read. Each refusal names its quota
(errors.quota_*).
"""


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
