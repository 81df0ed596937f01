"""Refusing writes the server can no longer persist (-MISCONF).

As Redis (server.c, writeCommandsDeniedByDiskError), writes are refused when
  - stop-writes-on-bgsave-error is yes, save rules are set and the last
    background save failed: until a save (SAVE, BGSAVE, the schedule)
    succeeds, or the setting or the rules change;
  - the append-only log is on and its last write, or its last background
    fsync (everysec), failed: until a write succeeds again (the journal
    retries every second from the cron, persistence/aof/journal.py).
A failed foreground SAVE only answers its error, as Redis 7.0.

Refused means: every command flagged "write", PING, and an EXEC whose queue
holds a write answer the MISCONF error (dispatch/observers.py swaps their
handlers, so nothing is tested per command while healthy). Reads go on.

`update` is called wherever one of the inputs changes: the snapshot status
(persistence/kdb/snapshot.py), the journal's status (persistence/aof/journal.py), the log
turned on or off (persistence/aof/appendonly.py), CONFIG SET of
stop-writes-on-bgsave-error or save (listeners set up in snapshot.py).
"""

import logging

from tenantkv import errors

log = logging.getLogger("tenantkv.persistence")


def reason(server):
    """The error text writes get now, or None when they are accepted."""
    snapshot = server.snapshot
    if (not snapshot.last_status_ok and server.config["data.stop_writes_on_bgsave_error"]
            and snapshot.rules()):
        return errors.MISCONF_RDB
    aof = getattr(server, "aof", None)   # None while the server is being built
    journal = aof.journal if aof is not None else None
    if journal is not None and journal.error is not None:
        return errors.misconf_aof(journal.error)
    replication = getattr(server, "replication", None)
    if replication is not None:   # min-replicas-to-write not met (-NOREPLICAS)
        return replication.write_refusal()
    return None


def update(server) -> None:
    """Refuse or accept writes as the state now says."""
    events = server.events
    now = reason(server)
    if now == events.denied:
        return
    if now is None:
        log.warning("Writes are accepted again: the data can be persisted")
    else:
        log.warning("Refusing write commands until the data can be persisted: %s", now)
    events.deny(now)
