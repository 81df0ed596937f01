"""Which quota each tenant has (keyspace/quota.py), kept up to date.

The user store holds each user's overrides; this keeps, on the loop, what
the tenants need of it: for each tenant key, the users working there (root
or not, and their overrides), read at start-up and changed by every ACL
write that lands (commands/acl.py) and by ACL LOAD (offline changes, as
`tenantkv user set-quota`, arrive with it or a restart). A tenant's Quota
is rebuilt (`apply`) when a user of it changes and when a default changes
(CONFIG SET tenant-quota-*): a tenant whose users have no override shares
the server's default object, which CONFIG SET changes in place.

A namespace shared by several users gets, per field, the strictest of its
users' figures (keyspace/quota.effective). The default tenant (the
password-less default user, and the connections that have not logged in)
has no quota: its rate would be every login's.

Connections: `admit_login` is asked before a connection enters a tenant by
AUTH / HELLO AUTH (server/auth.py).
"""

from time import monotonic

from tenantkv import errors
from tenantkv.dispatch.throttle import RateLimiter, release
from tenantkv.keyspace.quota import NO_QUOTA, effective, parse_overrides


class Quotas:
    def __init__(self, server, default_key: str) -> None:
        self.server = server
        self.default_key = default_key   # the default tenant's: no quota
        self.members: dict = {}   # tenant key -> {username: (root, {field: override})}
        self.where: dict = {}     # username -> tenant key

    # -- what the store says -----------------------------------------------------

    def load(self, users) -> None:
        """Every user, as the store has them now (start-up, ACL LOAD)."""
        self.members.clear()
        self.where.clear()
        for user in users:
            self._put(user)
        self.apply_all()

    def user_changed(self, user) -> None:
        """`user` (a tenancy User) was created or changed (ACL SETUSER)."""
        before = self._drop(user.username)
        self._put(user)
        for key in {before, user.tenant_key} - {None}:
            self._apply_key(key)
        self.refresh_memory()

    def user_deleted(self, username: str) -> None:
        key = self._drop(username)
        if key is not None:
            self._apply_key(key)

    def _put(self, user) -> None:
        key = user.tenant_key
        self.where[user.username] = key
        self.members.setdefault(key, {})[user.username] = (user.root, parse_overrides(user.quota))

    def _drop(self, username: str):
        key = self.where.pop(username, None)
        if key is not None:
            users = self.members.get(key)
            if users is not None:
                users.pop(username, None)
                if not users:
                    del self.members[key]
        return key

    # -- the tenants ---------------------------------------------------------------

    def quota_of(self, key: str):
        if key == self.default_key:
            return NO_QUOTA
        users = self.members.get(key)
        return effective(self.server.default_quota, list(users.values()) if users else [])

    def users_of(self, key: str) -> list:
        return sorted(self.members.get(key, ()))

    def apply(self, tenant) -> None:
        """Give `tenant` its Quota and, with a rate quota, its RateLimiter."""
        quota = tenant.quota = self.quota_of(tenant.name)
        rate = quota.rate
        limiter = tenant.limiter
        if rate:
            if limiter is None:
                # (the connection's clock: time.monotonic, not the loop's)
                tenant.limiter = RateLimiter(rate, monotonic())
            elif limiter.rate != rate:
                limiter.rate = rate
                limiter.tokens = min(limiter.tokens, float(rate))
        elif limiter is not None:
            tenant.limiter = None
            for conn in tenant.clients:   # no read will lift their throttle now
                release(conn)

    def _apply_key(self, key: str) -> None:
        tenant = self.server.tenants.get(key)
        if tenant is not None:
            self.apply(tenant)

    def apply_all(self) -> None:
        for tenant in list(self.server.tenants.values()):
            self.apply(tenant)
        self.refresh_memory()

    def refresh_memory(self) -> None:
        """The memory accounting enforces the memory and keys quotas
        (server/memory.py): it re-reads them when told."""
        memory = getattr(self.server, "memory", None)
        refresh = getattr(memory, "refresh", None)
        if refresh is not None:
            refresh()

    # -- connections -------------------------------------------------------------

    def admit_login(self, conn, user):
        """None if `conn` may log in as `user` now, else the error text: the
        tenant it would enter already holds as many connections as its
        connections quota allows. A connection already in that tenant (AUTH
        again as the same user, or as another of its namespace) takes no
        new place."""
        key = user.tenant_key
        tenant = self.server.tenants.get(key)
        if tenant is None or tenant is conn.tenant:
            return None
        limit = tenant.quota.connections
        if limit and len(tenant.clients) >= limit:
            tenant.refused("connections")
            return errors.quota_connections(limit)
        return None
