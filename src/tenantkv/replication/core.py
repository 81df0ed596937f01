"""Replication, the primary's side and the state both sides share.

The stream: what a replica receives after its first synchronization is
exactly what the append-only log writes (persistence/aof/journal.py): the
effects of every write, `@context <tenant> <db>` records naming whose data
they touch, transactions and scripts as MULTI ... EXEC, expired keys as DEL,
user changes as `@user`/`@deluser` records (replication/users.py). The
journal hands each loop turn's records to `feed` (one call per turn, before
any reply of that turn leaves, so an acknowledged write is on its way to the
replicas first); with the log off, a StreamJournal (a journal without a file)
does the same while replicas may come.

Offsets and ids are Redis's (PSYNC2): `replid` names the history, `offset`
is master_repl_offset (bytes fed so far); a promoted replica keeps its old
primary's id as `replid2`, valid up to `second_offset`, so the other
replicas and the old primary (if it wrote nothing the others lack) can go
on from the new primary with a partial resynchronization. The backlog
(replication/backlog.py) keeps the last repl-backlog-size bytes.

A replica (its link: replication/link.py) connects as a root user of the
primary (masteruser/masterauth): PSYNC, REPLCONF and SYNC are root-only, so
no tenant can read the stream (it holds every tenant's data). A full
synchronization forks a child, as BGSAVE does, that writes the payload
(replication/payload.py: the user store's rows and a .kdb of every tenant)
to a file, then the primary sends it, then what was fed meanwhile.

One replica is one Connection (server/connection.py) whose `replica` is a
ReplicaLink: its reads are REPLCONF ACKs, its writes the stream, written
straight to its transport.
"""

import asyncio
import logging
import os
import secrets
import time

from tenantkv import errors
from tenantkv.errors import CommandError
from tenantkv.config import OBUF_REPLICA
from tenantkv.dispatch.slices import OVER_SHARE
from tenantkv.keyspace import database
from tenantkv.logs import NOTICE, set_role
from tenantkv.persistence import child as children
from tenantkv.persistence.aof.format import CONTEXT, encode_command
from tenantkv.persistence.aof.journal import StreamJournal
from tenantkv.replication import payload
from tenantkv.replication.backlog import Backlog
from tenantkv.replication.users import UserFeed

log = logging.getLogger("tenantkv.replication")

NO_ID = "0" * 40
PING_RECORD = encode_command([b"PING"])
GETACK_RECORD = encode_command([b"REPLCONF", b"GETACK", b"*"])
SEND_CHUNK = 1 << 20          # bytes of the payload file read per write
SEND_HIGH_WATER = 8 << 20     # the payload waits while this much is unsent


def setting(config, name: str):
    """A setting known by its Redis name only (repl-timeout, min-replicas-*...)."""
    return config.values[(None, name)]


def new_replid() -> str:
    return secrets.token_hex(20)


class ReplicaLink:
    """A replica, as its primary sees it."""

    __slots__ = ("conn", "state", "ack_offset", "ack_time", "listening_port", "announced_ip",
                 "pending", "pending_bytes", "capa", "sync_started")

    def __init__(self, conn) -> None:
        self.conn = conn
        self.state = "handshake"    # handshake, wait_bgsave, send_bulk, online
        self.ack_offset = 0
        self.ack_time = time.monotonic()
        self.listening_port = 0
        self.announced_ip = ""
        self.pending: list = []     # stream fed while its payload is being made or sent
        self.pending_bytes = 0
        self.capa: set = set()
        self.sync_started = 0.0

    def ip(self) -> str:
        if self.announced_ip:
            return self.announced_ip
        addr = self.conn.addr
        host = addr.rsplit(":", 1)[0]
        return host[1:-1] if host.startswith("[") else host

    def send(self, data: bytes) -> None:
        conn = self.conn
        if self.state != "online":
            self.pending.append(data)
            self.pending_bytes += len(data)
            hard = conn.server.config["limits.client_output_buffer_limit"][OBUF_REPLICA][0]
            if hard and self.pending_bytes > hard:
                log.warning("Replica %s is too slow to sync (%d bytes waiting over the "
                            "client-output-buffer-limit of replicas): dropped",
                            conn.addr, self.pending_bytes)
                conn.replica = None
                conn.server.replication.replica_gone(self)
                conn.close()
            return
        if conn.closing:
            return
        try:
            conn.transport.write(data)
        except RuntimeError:
            conn.closing = True
            return
        conn.net_out += len(data)
        if conn.paused:
            conn._check_output_limit()


class Replication:
    def __init__(self, server) -> None:
        self.server = server
        self.config = server.config
        self.replid = new_replid()
        self.replid2 = NO_ID
        self.second_offset = -1
        self.offset = 0                 # master_repl_offset
        self.backlog = None
        self.replicas: list = []        # ReplicaLink, the primary's
        self.link = None                # MasterLink (replication/link.py) while a replica
        self.master_host = ""
        self.master_port = 0
        self.waiters: list = []         # WAIT: [target offset, replicas needed, future, timer]
        self.getack_asked = False
        self.last_ping = time.monotonic()
        self.good_replicas = 0          # with lag <= min-replicas-max-lag (min-replicas-to-write)
        self.users = UserFeed(self)
        self.syncs: dict = {}           # child pid -> (path, [ReplicaLink])
        self.fork_waiting: list = []    # replicas whose full sync waits for its fork
        self.sync_counter = 0
        self.full_syncs = 0             # sync_full
        self.partial_ok = 0             # sync_partial_ok
        self.partial_err = 0            # sync_partial_err
        self.data_kept = False          # the shutdown kept the data (server/app.py)
        server.config.listeners.setdefault("repl-backlog-size", []).append(self._resize)
        server.config.listeners.setdefault("replica-read-only", []).append(
            lambda value: server.events.set_read_only(bool(value) and self.link is not None))
        for name in ("min-replicas-to-write", "min-replicas-max-lag"):
            server.config.listeners.setdefault(name, []).append(lambda value: self.check_good())

    # -- role -------------------------------------------------------------------

    def startup(self) -> None:
        """At start, after the data loaded: follow the configured primary."""
        from tenantkv.replication import link as links
        self.check_good()   # min-replicas-to-write holds from the first command
        target = self.config["replication.replicaof"]
        state = links.read_state(self.server)   # what a clean shutdown of a replica left
        if target:
            host, port = target.split()
            if state is not None:
                self.replid, self.offset = state["replid"], state["offset"]
            self.become_replica(host, int(port), state)

    def become_replica(self, host: str, port: int, state=None) -> None:
        """REPLICAOF host port (and a configured replicaof at start): drop
        the replicas (they resync with the new chain), keep the data, follow
        `host`:`port` from where this server's own history stands."""
        from tenantkv.replication.link import MasterLink
        # A primary that turns replica offers its own history (id and
        # offset: the link's PSYNC) to the new primary, which continues it
        # if it is a prefix of its own (Redis's replicationCacheMasterUsingMyself).
        if self.link is not None:
            self.link.stop()
        self._drop_replicas()
        self._detach_feed()
        self._unblock_clients()
        self.master_host, self.master_port = host, port
        self.link = MasterLink(self, host, port, state)
        self.server.events.set_read_only(setting(self.config, "replica-read-only"))
        database.REPLICA_HIDES = True
        set_role("S")
        self.check_good()
        self._save_config()
        log.log(NOTICE, "Connecting to MASTER %s:%d", host, port)
        self.link.start()

    def _unblock_clients(self) -> None:
        """As Redis when a primary turns replica: its blocked clients get an
        error (a BLPOP served later by the stream would pop on a replica,
        and a queue worker run a job twice after a failover)."""
        from tenantkv.dispatch.blocking import Blocked
        for conn in list(self.server.clients.values()):
            if type(conn.waiting) is Blocked:
                conn.waiting.unblock(errors.UNBLOCKED_STATE_CHANGED)

    def become_primary(self) -> None:
        """REPLICAOF NO ONE: stop following; writes are accepted; this
        history goes on under a new id, the old one kept as replid2 so that
        the other replicas of the old primary can continue from here."""
        link, self.link = self.link, None
        if link is None:
            return
        link.stop()
        self.master_host, self.master_port = "", 0
        self.replid2 = self.replid
        self.second_offset = self.offset + 1
        self.replid = new_replid()
        self.server.events.set_read_only(False)
        database.REPLICA_HIDES = False
        set_role("M")
        self._save_config()
        self._attach_feed()
        self.check_good()
        log.log(NOTICE, "MASTER MODE enabled (user request from a REPLICAOF NO ONE); "
                "new replication ID %s, keeping %s up to offset %d",
                self.replid, self.replid2, self.second_offset - 1)

    def forget_history(self) -> None:
        """The data no longer matches any primary's stream: the next PSYNC
        asks for a full sync."""
        self.replid, self.offset = new_replid(), 0
        self.replid2, self.second_offset = NO_ID, -1
        self.backlog = None

    def _save_config(self) -> None:
        value = "%s %d" % (self.master_host, self.master_port) if self.master_host else ""
        self.config.values[("replication", "replicaof")] = value

    # -- the stream ----------------------------------------------------------------

    def _attach_feed(self) -> None:
        """The journal hands its records to `feed` from now on (a journal
        without a file when the log is off). Called when the first replica
        comes and when a replica becomes a primary."""
        if self.backlog is None:
            self.backlog = Backlog(setting(self.config, "repl-backlog-size"), self.offset)
        events = self.server.events
        journal = events.journal
        if journal is None:
            events.set_journal(StreamJournal(self.server, self.feed))
        else:
            journal.flush()
            journal.feed = self.feed
        self.users.start()

    def _detach_feed(self) -> None:
        events = self.server.events
        journal = events.journal
        if journal is None:
            return
        journal.flush()
        journal.feed = None
        journal.writers.clear()
        if isinstance(journal, StreamJournal):
            events.set_journal(None)
        self.users.stop()

    def feed(self, data: bytes) -> None:
        """This turn's records (the journal's flush): to the backlog and to
        every replica."""
        self.offset += len(data)
        self.backlog.feed(data)
        for replica in self.replicas:
            replica.send(data)

    def feed_records(self, records: bytes) -> None:
        """Records made here (PING, GETACK), after what the journal holds."""
        journal = self.server.events.journal
        if journal is not None and journal.feed is not None:
            journal.flush()
            self.feed(records)

    def publish(self, tenant: str, args: list) -> None:
        """A PUBLISH (SPUBLISH) of `tenant`: to the replicas, whose
        subscribers of that tenant get it too, as Redis propagates it. Not
        a write: the stream only, never the append-only log."""
        journal = self.server.events.journal
        if journal is None or journal.feed is None:
            return
        journal.flush()
        journal.tenant, journal.index = None, -1   # the log's next record names its context
        self.feed(encode_command([CONTEXT, tenant.encode("utf-8", "surrogateescape"), b"0"])
                  + encode_command([args[0].upper(), args[1], args[2]]))

    def _resize(self, value) -> None:
        if self.backlog is not None:
            self.backlog.resize(value)

    # -- PSYNC (the primary) ------------------------------------------------------

    def link_for(self, conn) -> ReplicaLink:
        link = conn.replica
        if link is None:
            link = conn.replica = ReplicaLink(conn)
        return link

    def psync(self, conn, replid: bytes, offset: int, sync: bool = False):
        """PSYNC replid offset (SYNC: `sync`, no reply line): a partial
        resynchronization when the backlog has what the replica lacks, else
        a full one. The replies are written here, in order."""
        if self.link is not None:
            if not self.link.up():
                raise CommandError(errors.NOMASTERLINK)
            raise CommandError(errors.CHAINED_REPLICATION)
        if self.backlog is None or self.server.events.journal is None \
                or self.server.events.journal.feed is None:
            self._attach_feed()
        conn.flush()   # replies before this one (REPLCONF's +OK) go first
        link = self.link_for(conn)
        conn.obuf_class = OBUF_REPLICA
        if not sync and self._can_continue(replid.decode("latin-1"), offset):
            self.partial_ok += 1
            conn.transport.write(b"+CONTINUE %s\r\n" % self.replid.encode())
            data = self.backlog.since(offset)
            link.state = "online"
            link.ack_offset = offset - 1
            link.ack_time = time.monotonic()
            self.replicas.append(link)
            if data:
                conn.transport.write(data)
            log.log(NOTICE, "Partial resynchronization request from %s accepted. Sending %d "
                    "bytes of backlog starting from offset %d.", conn.addr, len(data), offset)
            return
        if not sync and replid != b"?":
            self.partial_err += 1
        self.full_sync(conn, link, sync)

    def _can_continue(self, replid: str, offset: int) -> bool:
        if replid != self.replid and (replid != self.replid2 or offset > self.second_offset):
            return False
        return self.backlog is not None and self.backlog.has(offset)

    def full_sync(self, conn, link: ReplicaLink, sync: bool) -> None:
        log.log(NOTICE, "Replica %s asks for synchronization; a full resync follows",
                conn.addr)
        link.state = "wait_bgsave"
        link.sync_started = time.monotonic()
        link.capa.add("sync" if sync else "psync")
        self.full_syncs += 1
        self.fork_waiting.append(link)
        self._start_sync()

    def _start_sync(self) -> None:
        """Fork the child that writes the payload for the replicas waiting
        for one, unless a tenant is in the middle of a script or of a long
        command in slices: the snapshot must hold each tenant as of a point
        between two of its commands, as the stream that follows assumes
        (the cron tries again)."""
        waiting = [link for link in self.fork_waiting if not link.conn.closing]
        self.fork_waiting = []
        if not waiting:
            return
        for tenant in self.server.tenants.values():
            busy = tenant.busy
            if busy is not None and busy is not OVER_SHARE:
                self.fork_waiting = waiting
                return
        journal = self.server.events.journal
        journal.flush()
        # The stream after the payload must name its context first.
        journal.tenant, journal.index = None, -1
        for link in waiting:
            if "psync" in link.capa:
                link.conn.transport.write(b"+FULLRESYNC %s %d\r\n"
                                          % (self.replid.encode(), self.offset))
            link.ack_offset = self.offset
            link.ack_time = time.monotonic()
            link.pending, link.pending_bytes = [], 0
            self.replicas.append(link)
        rows = self.server.auth.store.rows() if self.server.auth is not None else []
        self.users.shipped_now(rows)
        self.sync_counter += 1
        path = os.path.join(self.config["data.dir"], "temp-repl-%d-%d.sync"
                            % (os.getpid(), self.sync_counter))
        tenants = self.server.tenants

        def work() -> int:
            from tenantkv.persistence.kdb import format as kdb
            with open(path, "wb") as handle:
                payload.write(handle, rows, lambda f: kdb.dump(tenants, f))
            return 0

        try:
            pid = children.fork_child(work)
        except OSError as exc:
            log.warning("Can't fork for the replicas' full sync: %s", exc)
            for link in waiting:
                self.replica_gone(link)
                link.conn.close()
            return
        self.syncs[pid] = (path, waiting)
        log.log(NOTICE, "Starting BGSAVE for SYNC with target: disk (child %d, offset %d)",
                pid, self.offset)

    def _reap_syncs(self) -> None:
        for pid in list(self.syncs):
            done = children.poll(pid)
            if done is None:
                continue
            children.child_done()
            path, links = self.syncs.pop(pid)
            ok, detail = done
            if not ok:
                log.warning("The sync child %d failed (%s): its replicas are dropped", pid, detail)
                for link in links:
                    self.replica_gone(link)
                    link.conn.close()
                _unlink(path)
                continue
            size = os.path.getsize(path)
            log.log(NOTICE, "Background RDB transfer started: %d bytes for %d replica(s)",
                    size, len(links))
            handles = []
            for link in links:
                if link.conn.closing:
                    continue
                link.state = "send_bulk"
                handles.append((link, open(path, "rb")))
            _unlink(path)   # each open handle keeps its bytes
            for link, handle in handles:
                self.server.loop.create_task(self._send_payload(link, handle, size))

    async def _send_payload(self, link: ReplicaLink, handle, size: int) -> None:
        conn = link.conn
        try:
            with handle:
                conn.transport.write(b"$%d\r\n" % size)
                while not conn.closing:
                    chunk = handle.read(SEND_CHUNK)
                    if not chunk:
                        break
                    conn.transport.write(chunk)
                    conn.net_out += len(chunk)
                    while not conn.closing and conn.transport.get_write_buffer_size() > SEND_HIGH_WATER:
                        await asyncio.sleep(0.002)
        except Exception:
            log.exception("sending the sync payload to %s", conn.addr)
            conn.close()
            return
        if conn.closing:
            return
        pending, link.pending, link.pending_bytes = link.pending, [], 0
        link.state = "online"
        link.ack_time = time.monotonic()
        if pending:
            conn.transport.write(b"".join(pending))
        log.log(NOTICE, "Synchronization with replica %s succeeded", conn.addr)
        self.check_good()

    def replica_gone(self, link: ReplicaLink) -> None:
        """A replica's connection closed (server/connection.py) or was dropped."""
        if link in self.replicas:
            self.replicas.remove(link)
            log.log(NOTICE, "Connection with replica %s lost.", link.conn.addr)
        for pid, (path, links) in list(self.syncs.items()):
            if link in links:
                links.remove(link)
        if link in self.fork_waiting:
            self.fork_waiting.remove(link)
        self.check_good()
        self._answer_waiters()

    def _drop_replicas(self) -> None:
        for link in list(self.replicas):
            link.conn.replica = None
            self.replica_gone(link)
            link.conn.close()

    # -- acknowledgements, WAIT, min-replicas -----------------------------------------

    def ack(self, link: ReplicaLink, offset: int) -> None:
        if offset > link.ack_offset:
            link.ack_offset = offset
        link.ack_time = time.monotonic()
        if self.waiters:
            self._answer_waiters()

    def acked(self, target: int) -> int:
        return sum(1 for r in self.replicas if r.state == "online" and r.ack_offset >= target)

    def wait(self, conn, needed: int, timeout_ms: int):
        """WAIT: the number of replicas that acknowledged every write so
        far, now or (a future) when `needed` have or the timeout passed."""
        journal = self.server.events.journal
        if journal is not None and journal.feed is not None:
            journal.flush()
        # As Redis (c->woff): the caller's own writes, not its neighbours'.
        target = conn.woff
        count = self.acked(target)
        if count >= needed or self.server.events.in_exec:
            return count, None
        loop = self.server.loop
        future = loop.create_future()
        waiter = [target, needed, future, None, conn]
        if timeout_ms > 0:
            waiter[3] = loop.call_later(timeout_ms / 1000, self._timeout, waiter)
        self.waiters.append(waiter)
        if not self.getack_asked:
            self.getack_asked = True
            loop.call_soon(self._ask_acks)
        return count, future

    def _ask_acks(self) -> None:
        self.getack_asked = False
        if self.waiters:
            self.feed_records(GETACK_RECORD)

    def _timeout(self, waiter) -> None:
        if waiter in self.waiters:
            self.waiters.remove(waiter)
            if not waiter[2].done():
                waiter[2].set_result(self.acked(waiter[0]))

    def _answer_waiters(self) -> None:
        for waiter in list(self.waiters):
            target, needed, future, timer, conn = waiter
            if future.done() or conn.closing:   # a client gone: nothing to answer
                if timer is not None:
                    timer.cancel()
                self.waiters.remove(waiter)
                continue
            count = self.acked(target)
            if count >= needed:
                self.waiters.remove(waiter)
                if timer is not None:
                    timer.cancel()
                future.set_result(count)

    def check_good(self) -> None:
        """min-replicas-to-write: count the replicas whose last ACK is
        recent enough, and refuse writes (-NOREPLICAS) while too few are."""
        lag = setting(self.config, "min-replicas-max-lag")
        now = time.monotonic()
        self.good_replicas = sum(1 for r in self.replicas
                                 if r.state == "online" and now - r.ack_time <= lag)
        from tenantkv.persistence import diskerror
        diskerror.update(self.server)

    def write_refusal(self):
        """The -NOREPLICAS error while min-replicas-to-write is not met, else None."""
        needed = setting(self.config, "min-replicas-to-write")
        if (needed and setting(self.config, "min-replicas-max-lag") and self.link is None
                and self.good_replicas < needed):
            return errors.NOREPLICAS
        return None

    # -- the cron ------------------------------------------------------------------------

    def cron(self) -> None:
        if self.syncs:
            self._reap_syncs()
        if self.fork_waiting:
            self._start_sync()
        if self.waiters:
            self._answer_waiters()   # and forget those whose client went
        now = time.monotonic()
        if self.link is not None:
            self.link.cron(now)
        if self.replicas:
            period = setting(self.config, "repl-ping-replica-period")
            if now - self.last_ping >= period:
                self.last_ping = now
                self.feed_records(PING_RECORD)
            timeout = setting(self.config, "repl-timeout")
            for link in list(self.replicas):
                if link.state == "online" and now - link.ack_time > timeout:
                    log.warning("Disconnecting timedout replica (streaming sync): %s",
                                link.conn.addr)
                    link.conn.replica = None
                    self.replica_gone(link)
                    link.conn.close()
        if setting(self.config, "min-replicas-to-write"):
            before = self.good_replicas
            self.check_good()
            if before != self.good_replicas:
                log.info("%d good replicas now", self.good_replicas)

    def pause(self) -> None:
        """A shutdown is saving: a replica applies nothing more (its link
        closes), so the saved data is exactly its offset."""
        if self.link is not None:
            self.link.stop()

    def resume(self) -> None:
        """The shutdown failed: follow the primary again."""
        if self.link is not None and self.link.task is None:
            self.link.start()

    def shutdown(self) -> None:
        """At exit: a replica whose data is on disk (saved at shutdown, or
        in the append-only log) remembers where it stands in its primary's
        stream (replication/link.py, save_state), for a partial resync at
        its next start."""
        for pid, (path, _) in list(self.syncs.items()):
            children.kill_and_reap(pid)
            _unlink(path)
        self.syncs.clear()
        if self.link is not None:
            self.link.stop()
            if self.data_kept:
                self.link.save_state()

    # -- INFO replication, ROLE ------------------------------------------------------------

    def info_lines(self) -> list:
        lines = []
        now = time.monotonic()
        link = self.link
        if link is None:
            lines.append("role:master")
        else:
            lines += ["role:slave", "master_host:%s" % self.master_host,
                      "master_port:%d" % self.master_port]
            lines += link.info_lines(now)
            lines += ["slave_priority:%d" % setting(self.config, "replica-priority"),
                      "slave_read_only:%d" % int(setting(self.config, "replica-read-only")),
                      "replica_announced:1"]
        lines.append("connected_slaves:%d" % len(self.replicas))
        if (setting(self.config, "min-replicas-to-write")
                and setting(self.config, "min-replicas-max-lag")):
            lines.append("min_slaves_good_slaves:%d" % self.good_replicas)
        for i, replica in enumerate(self.replicas):
            lines.append("slave%d:ip=%s,port=%d,state=%s,offset=%d,lag=%d"
                         % (i, replica.ip(), replica.listening_port, replica.state,
                            replica.ack_offset, int(now - replica.ack_time)))
        backlog = self.backlog
        lines += [
            "master_failover_state:no-failover",
            "master_replid:%s" % self.replid,
            "master_replid2:%s" % self.replid2,
            "master_repl_offset:%d" % self.offset,
            "second_repl_offset:%d" % self.second_offset,
            "repl_backlog_active:%d" % (backlog is not None),
            "repl_backlog_size:%d" % setting(self.config, "repl-backlog-size"),
            "repl_backlog_first_byte_offset:%d" % (backlog.first_offset() if backlog else 0),
            "repl_backlog_histlen:%d" % (backlog.histlen() if backlog else 0),
        ]
        return lines

    def role_reply(self) -> list:
        link = self.link
        if link is None:
            return [b"master", self.offset,
                    [[r.ip().encode(), b"%d" % r.listening_port, b"%d" % r.ack_offset]
                     for r in self.replicas if r.state == "online"]]
        return [b"slave", self.master_host.encode(), self.master_port, link.state.encode(),
                self.offset if link.up() else -1]


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
