"""The append-only log's command: BGREWRITEAOF (persistence/appendonly.py does the work).

Kept apart from the snapshot commands (SAVE, BGSAVE, KDB) of commands/persistence.py.
"""

from tenantkv.commands.registry import command
from tenantkv.protocol.encoder import Status


@command("bgrewriteaof", 1, "admin noscript no_async_loading", group="server", since="1.0.0",
         summary="Asynchronously rewrites the append-only file to disk.", syntax="")
def bgrewriteaof(conn, args):
    conn.server.aof.start_rewrite()   # CommandError while one runs, as Redis
    return Status("Background append only file rewriting started")
