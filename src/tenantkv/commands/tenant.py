"""TENANT LIST / TENANT INFO: every tenant's usage against its quotas, for root.

A tenant sees its own figures in INFO (the "quota" section, `quota_lines`);
only root sees across tenants (DESIGN: "Only root sees across tenants").
tenantkv's own command, so declared in full, root-only as KDB SAVE ("admin").

The reply of TENANT INFO is a map (RESP3; flat pairs in RESP2, as CLIENT
INFO's fields or MEMORY STATS); TENANT LIST an array of such maps, by
tenant name. Fields:

    name               the tenant key: a namespace, or a user's own tenant
    users              the users working in it (a namespace has several)
    keys               keys over all its databases
    used_memory        bytes of its data (server/memory.py's accounting)
    connections        its connections now
    commands_processed its commands so far (INFO's total_commands_processed)
    rate               commands admitted in the last whole second (measured
                       only while it has a rate quota: 0 otherwise)
    quota_memory, quota_keys, quota_connections, quota_rate
                       its quotas (0: no limit)

Users come from the server's copy of the user store (server/quotas.py): a
user added offline shows after ACL LOAD, as for logging in with its changes.
"""

import time

from tenantkv import errors
from tenantkv.dispatch.table import COMMANDS, container, subcommand
from tenantkv.errors import CommandError

TENANT_HELP = [
    "LIST", "    Every tenant: its users, keys, memory, connections, rate and quotas.",
    "INFO <user|tenant>", "    The same for one tenant, named by one of its users or its key.",
]

_ADMIN = dict(flags="admin noscript loading stale", acl_categories="@admin @slow @dangerous",
              group="server", since="0.1.0")

container("tenant", help=TENANT_HELP, arity=-2, flags=(), acl_categories="@slow", group="server",
          since="0.1.0", summary="A container for per-tenant usage and quota commands",
          complexity="Depends on subcommand.")


def rate_now(tenant) -> int:
    """Commands the tenant ran in the last whole second (0 without a rate quota)."""
    limiter = tenant.limiter
    return limiter.per_second(time.monotonic()) if limiter is not None else 0


def _commands(tenant) -> int:
    """INFO's total_commands_processed of `tenant` (commands/server.py), from
    the commands it used rather than the whole table: LIST walks every tenant."""
    tenant.fold()
    return sum(calls for cmd, calls in tenant.calls.items() if COMMANDS.get(cmd.name) is cmd)


def figures(server, name: str) -> dict:
    """One tenant's usage and quotas (the module's docstring); a tenant
    never made (its users never logged in, it has no data) has zeros."""
    tenant = server.tenants.get(name)
    quota = tenant.quota if tenant is not None else server.quotas.quota_of(name)
    return {
        b"name": name.encode("utf-8", "surrogateescape"),
        b"users": [u.encode("utf-8", "surrogateescape") for u in server.quotas.users_of(name)],
        b"keys": tenant.key_count() if tenant is not None else 0,
        b"used_memory": tenant.used_memory if tenant is not None else 0,
        b"connections": len(tenant.clients) if tenant is not None else 0,
        b"commands_processed": _commands(tenant) if tenant is not None else 0,
        b"rate": rate_now(tenant) if tenant is not None else 0,
        b"quota_memory": quota.memory,
        b"quota_keys": quota.keys,
        b"quota_connections": quota.connections,
        b"quota_rate": quota.rate,
    }


def quota_lines(tenant) -> list:
    """INFO's quota section: the caller's own tenant against its quotas."""
    quota = tenant.quota
    return [
        "tenant_keys:%d" % tenant.key_count(),
        "tenant_used_memory:%d" % tenant.used_memory,
        "tenant_connections:%d" % len(tenant.clients),
        "tenant_rate:%d" % rate_now(tenant),
        "quota_memory:%d" % quota.memory,
        "quota_keys:%d" % quota.keys,
        "quota_connections:%d" % quota.connections,
        "quota_rate:%d" % quota.rate,
    ]


@subcommand("tenant", "list", arity=2, **_ADMIN,
            summary="Every tenant's usage against its quotas",
            complexity="O(N) where N is the number of tenants")
def _tenant_list(conn, args):
    server = conn.server
    names = set(server.tenants) | set(server.quotas.members)
    return [figures(server, name) for name in sorted(names)]


@subcommand("tenant", "info", arity=3, **_ADMIN,
            arguments=[{"name": "name", "type": "string"}],
            summary="One tenant's usage against its quotas, named by a user or its key",
            complexity="O(1)")
def _tenant_info(conn, args):
    server = conn.server
    name = args[2].decode("utf-8", "surrogateescape")
    key = server.quotas.where.get(name)
    if key is None:
        if name not in server.tenants:
            raise CommandError(errors.tenant_not_found(args[2]))
        key = name
    return figures(server, key)
