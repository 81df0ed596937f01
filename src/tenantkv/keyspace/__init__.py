from tenantkv.keyspace.database import Database
from tenantkv.keyspace.tenant import Tenant

__all__ = ["Database", "Tenant"]
