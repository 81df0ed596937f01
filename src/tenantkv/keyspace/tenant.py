"""A tenant: one user's (or one namespace's) world: its databases and clients.

Commands reach data only through `conn.tenant`, so isolation between users is
a matter of which Tenant object a connection holds, not of key prefixes.
"""

from tenantkv.keyspace.database import Database

DATABASES = 16


class Tenant:
    def __init__(self, name: str, stats, databases: int = DATABASES) -> None:
        self.name = name
        self.dbs = [Database(i, stats) for i in range(databases)]
        for db in self.dbs:
            db.owner = name
        self.clients: set = set()

    def key_count(self) -> int:
        return sum(len(db) for db in self.dbs)
