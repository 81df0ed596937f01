"""The append-only log's command: BGREWRITEAOF (persistence/appendonly.py does the work).

Kept apart from the snapshot commands (SAVE, BGSAVE, KDB) of commands/persistence.py.
"""

from tenantkv.dispatch.table import command
from tenantkv.protocol.encoder import Status


@command("bgrewriteaof")
def bgrewriteaof(conn, args):
    # CommandError while one runs; scheduled while a BGSAVE runs (as Redis).
    if conn.server.aof.request_rewrite():
        return Status("Background append only file rewriting started")
    return Status("Background append only file rewriting scheduled")
