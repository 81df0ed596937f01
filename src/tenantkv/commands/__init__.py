"""Command families. Importing this package registers every command."""

from tenantkv.commands import (  # noqa: F401  (imported for their registrations)
    acl, appendonly, bitmaps, connection, dump, geo, hashes, hll, keys, latency, lists, lolwut,
    memory, persistence, functions, pubsub, replication, scripting, server, sets, sort,
    streamgroups,
    streams, strings, tenant, transactions, zsets,
)
from tenantkv.dispatch.table import COMMANDS, Command

__all__ = ["COMMANDS", "Command"]
