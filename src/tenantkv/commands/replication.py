"""Replication commands: REPLICAOF (SLAVEOF), ROLE, WAIT, and the primary's
side of the protocol its replicas speak (REPLCONF, PSYNC, SYNC). The work is
replication/'s; these parse and answer.

REPLICAOF, REPLCONF, PSYNC and SYNC are admin commands: root only. The
stream holds every tenant's writes, so only a root user (a replica's
masteruser, Sentinel) may ask for it or move the server. ROLE and WAIT are
any user's: they show offsets and replica addresses, no tenant's data.
"""

import logging

from tenantkv import errors
from tenantkv.dispatch.replies import NO_REPLY, Deferred
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.logs import NOTICE, audit
from tenantkv.protocol.encoder import OK, Status
from tenantkv.util.numbers import parse_int

log = logging.getLogger("tenantkv.replication")


def _replicaof(conn, args):
    replication = conn.server.replication
    host, port_arg = args[1], args[2]
    if host.lower() == b"no" and port_arg.lower() == b"one":
        if replication.link is not None:
            audit("replicaof", user=conn.user, master="no one")
            log.log(NOTICE, "MASTER MODE enabled (user request from '%s')", conn.client_info())
            replication.become_primary()
        return OK
    port = parse_int(port_arg)
    if port is None or not 0 <= port <= 65535:
        raise CommandError(errors.INVALID_MASTER_PORT)
    text = host.decode("utf-8", "surrogateescape")
    if (replication.link is not None and replication.master_host == text
            and replication.master_port == port):
        return Status("OK Already connected to specified master")
    if not conn.server.config["replication.masterauth"]:
        # A replica logs in to its primary as a root user; without the
        # password it would only retry for ever: said now, not in the log.
        raise CommandError(errors.REPLICAOF_NO_MASTERAUTH)
    audit("replicaof", user=conn.user, master="%s:%d" % (text, port))
    log.log(NOTICE, "REPLICAOF %s:%d enabled (user request from '%s')", text, port,
            conn.client_info())
    replication.become_replica(text, port)
    return OK


command("replicaof")(_replicaof)
command("slaveof")(_replicaof)


@command("role", root_only=False)
def role(conn, args):
    return conn.server.replication.role_reply()


# `waits`: WAIT parks its client for the replicas' ACKs, but never inside
# EXEC, where it answers the count at once (replication/core.py wait, as
# Redis): so it is queued in MULTI like any command.
@command("wait", root_only=False, waits=lambda args: False)
def wait(conn, args):
    needed = parse_int(args[1])
    timeout = parse_int(args[2])
    if needed is None:
        raise CommandError(errors.NOT_INTEGER)
    if timeout is None:
        raise CommandError(errors.TIMEOUT_NOT_INTEGER)
    if timeout < 0:
        raise CommandError(errors.NEGATIVE_TIMEOUT)
    replication = conn.server.replication
    if replication.link is not None:
        raise CommandError(errors.WAIT_ON_REPLICA)
    count, future = replication.wait(conn, needed, timeout)
    if future is None:
        return count
    return Deferred(future, lambda result: result)


@command("replconf")
def replconf(conn, args):
    """The replica's side of the handshake (listening-port, ip-address,
    capa) and its acknowledgements (ACK offset, which get no reply)."""
    if len(args) % 2 == 0:
        raise CommandError(errors.SYNTAX)
    replication = conn.server.replication
    for i in range(1, len(args), 2):
        option, value = args[i].lower(), args[i + 1]
        if option == b"ack":
            offset = parse_int(value)
            link = conn.replica
            if link is not None and offset is not None and link.state == "online":
                replication.ack(link, offset)
            return NO_REPLY
        if option == b"getack":
            return NO_REPLY   # a replica's question: this server is no replica of yours
        link = replication.link_for(conn)
        if option == b"listening-port":
            port = parse_int(value)
            if port is None or not 0 <= port <= 65535:
                raise CommandError(errors.NOT_INTEGER)
            link.listening_port = port
        elif option == b"ip-address":
            if len(value) > 46:   # NET_HOST_STR_LEN
                raise CommandError(errors.SYNTAX)
            link.announced_ip = value.decode("latin-1")
        elif option == b"capa":
            link.capa.add(value.lower().decode("latin-1"))
        elif option in (b"rdb-only", b"rdb-filter-only"):
            pass
        else:
            raise CommandError("ERR Unrecognized REPLCONF option: %s"
                               % args[i].decode("latin-1"))
    return OK


@command("psync")
def psync(conn, args):
    offset = parse_int(args[2])
    if offset is None:
        raise CommandError(errors.NOT_INTEGER)
    _sync(conn, args[1], offset, sync=False)
    return NO_REPLY


@command("sync")
def sync(conn, args):
    _sync(conn, b"?", -1, sync=True)
    return NO_REPLY


def _sync(conn, replid: bytes, offset: int, sync: bool) -> None:
    if conn.multi is not None or conn.server.events.in_exec:
        raise CommandError("ERR Replica can't be in a transaction")
    if conn.replica is not None and conn.replica.state != "handshake":
        return   # already a replica: Redis ignores a second SYNC
    audit("replica-sync", addr=conn.addr, user=conn.user)
    conn.server.replication.psync(conn, replid, offset, sync)
