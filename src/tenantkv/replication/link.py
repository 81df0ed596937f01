"""A replica's link to its primary.

The handshake is Redis's: PING, AUTH masteruser masterauth (a root user of
the primary; without credentials the link is not even tried: a replica
never takes a stream it did not authenticate for), REPLCONF listening-port,
REPLCONF capa psync2, PSYNC <replid> <offset + 1>. Then either
+CONTINUE (the primary's backlog had what we lack: the stream goes on) or
+FULLRESYNC <replid> <offset> and the payload (replication/payload.py),
which replaces the user store and every tenant's data.

The stream is applied as the append-only log is replayed: through
dispatch's one path (persistence/aof/replay.py's Replayer), on an internal
client that moves between tenants as `@context` records say, a MULTI ...
EXEC block as one batch (a transaction or a script stays atomic), with no
key expiring under the primary's commands (expiry is the primary's: it
sends the DEL). PING and REPLCONF GETACK are the primary's own; @user and
@deluser change the user store (replication/users.py).

`offset` counts the bytes of the stream applied; the bytes also go to this
server's own backlog, so that once promoted it can continue the others.
A clean shutdown saves (replid, offset, the stream's context) beside the
data (`save_state`); the next start offers them in its PSYNC.
"""

import asyncio
import json
import logging
import os
import ssl
import time

import hiredis

from tenantkv.keyspace import database
from tenantkv.logs import NOTICE
from tenantkv.persistence.aof.format import encode_command
from tenantkv.persistence.aof.replay import AofError, Replayer
from tenantkv.replication import payload, users
from tenantkv.replication.backlog import Backlog
from tenantkv.replication.core import setting

log = logging.getLogger("tenantkv.replication")

STATE_FILE = "replication-state.json"
CONNECT_TIMEOUT = 10
READ_CHUNK = 1 << 16
ACK_INTERVAL = 1.0
MAX_LINE = 1 << 16


class SyncError(Exception):
    pass


def state_path(server) -> str:
    return os.path.join(server.config["data.dir"], STATE_FILE)


def read_state(server):
    """What a clean shutdown of a replica left (and remove it: after this
    start the data moves on without it), or None."""
    path = state_path(server)
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        os.unlink(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("Ignoring %s: %s", path, exc)
        return None
    if not (isinstance(state, dict) and isinstance(state.get("replid"), str)
            and isinstance(state.get("offset"), int)):
        return None
    return state


class MasterLink:
    def __init__(self, replication, host: str, port: int, state=None) -> None:
        self.replication = replication
        self.server = replication.server
        self.host, self.port = host, port
        self.task = None
        self.writer = None
        self.state = "connect"          # connect, connecting, sync, connected
        self.down_since = time.monotonic()
        self.last_io = time.monotonic()
        self.last_ack = 0.0
        self.sync_total = 0
        self.sync_read = 0
        self.reader = hiredis.Reader()
        self.raw = bytearray()          # received, not applied yet
        self.multi = None               # the records of a MULTI block being received
        self.multi_bytes = 0
        self.replayer = Replayer(self.server)
        self.conn = self.replayer.conn
        if state is not None and state.get("tenant") is not None:
            tenant = self.server.tenant_for(state["tenant"])
            self.conn.tenant = tenant
            self.conn.db = tenant.dbs[state.get("db", 0)]

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self.task = self.server.loop.create_task(self._follow())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        self._close()

    def up(self) -> bool:
        return self.state == "connected"

    def role_state(self) -> str:
        return {"connect": "connect", "connecting": "connecting", "sync": "sync",
                "connected": "connected"}[self.state]

    def _close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
        if self.state == "connected":
            self.down_since = time.monotonic()
        self.state = "connect"

    def save_state(self) -> None:
        """At a clean shutdown (the data saved): where this replica stands."""
        repl = self.replication
        conn = self.conn
        state = {"replid": repl.replid, "offset": repl.offset,
                 "tenant": conn.tenant.name, "db": conn.db.index}
        path = state_path(self.server)
        try:
            with open(path + ".tmp", "w", encoding="utf-8") as handle:
                json.dump(state, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(path + ".tmp", path)
        except OSError as exc:
            log.warning("Could not save the replication state to %s: %s", path, exc)

    async def _follow(self) -> None:
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                self._close()
                raise
            except AofError as exc:
                # A record this server cannot apply: its data may now differ
                # from the primary's, so the next sync must be a full one.
                log.warning("MASTER <-> REPLICA sync: %s; a full resync follows", exc)
                self.replication.forget_history()
            except (OSError, SyncError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    payload.PayloadError, hiredis.ProtocolError) as exc:
                log.warning("MASTER <-> REPLICA sync: %s", exc or type(exc).__name__)
            except Exception:
                log.exception("MASTER <-> REPLICA sync failed")
            self._close()
            await asyncio.sleep(1)

    # -- the handshake ------------------------------------------------------------------

    def _ssl(self):
        config = self.server.config
        if not config["tls.replication"]:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False   # as Redis: the CA is what is checked
        cafile, capath = config["tls.ca_cert_file"] or None, config["tls.ca_cert_dir"] or None
        if cafile or capath:
            ctx.load_verify_locations(cafile=cafile, capath=capath)
        else:
            ctx.load_default_certs()
        cert = config["tls.client_cert_file"] or config["tls.cert_file"]
        key = config["tls.client_key_file"] or config["tls.key_file"]
        if cert and key:
            ctx.load_cert_chain(cert, key, password=config["tls.key_file_pass"] or None)
        return ctx

    async def _session(self) -> None:
        config = self.server.config
        user, password = config["replication.masteruser"], config["replication.masterauth"]
        if not password:
            self.state = "connect"
            raise SyncError("masterauth is not set: a replica authenticates as a root user of "
                            "its primary (masteruser / masterauth) and takes no stream otherwise")
        self.state = "connecting"
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self._ssl(), limit=MAX_LINE),
            CONNECT_TIMEOUT)
        self.writer = writer
        log.log(NOTICE, "MASTER <-> REPLICA sync started")
        self.last_io = time.monotonic()
        reply = await self._ask(reader, writer, [b"PING"])
        if reply.startswith(b"-") and not reply.startswith((b"-NOAUTH", b"-NOPERM")):
            raise SyncError("Error reply to PING from master: '%s'" % reply.decode("latin-1"))
        args = [b"AUTH", user.encode(), password.encode()] if user else \
            [b"AUTH", password.encode()]
        reply = await self._ask(reader, writer, args)
        if reply != b"+OK":
            raise SyncError("Unable to AUTH to MASTER: %s" % reply.decode("latin-1"))
        port = self.server.config["network.port"] or self.server.config["tls.port"]
        await self._ask(reader, writer, [b"REPLCONF", b"listening-port", b"%d" % port])
        await self._ask(reader, writer, [b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])
        repl = self.replication
        writer.write(encode_command([b"PSYNC", repl.replid.encode(), b"%d" % (repl.offset + 1)]))
        reply = await self._line(reader)
        if reply.startswith(b"+FULLRESYNC"):
            parts = reply.split()
            if len(parts) != 3 or len(parts[1]) != 40 or not parts[2].isdigit():
                raise SyncError("bad FULLRESYNC reply: %r" % reply[:100])
            log.log(NOTICE, "Full resync from master: %s:%d", parts[1].decode(), int(parts[2]))
            await self._full_sync(reader, parts[1].decode(), int(parts[2]))
        elif reply.startswith(b"+CONTINUE"):
            parts = reply.split()
            new_id = parts[1].decode() if len(parts) > 1 else repl.replid
            log.log(NOTICE, "MASTER <-> REPLICA sync: Master accepted a Partial "
                    "Resynchronization.")
            if new_id != repl.replid:
                # The primary's history goes on under a new id (it was promoted).
                repl.replid2, repl.second_offset = repl.replid, repl.offset + 1
                repl.replid = new_id
            if repl.backlog is None:
                repl.backlog = Backlog(setting(self.server.config, "repl-backlog-size"), repl.offset)
        else:
            raise SyncError("Unexpected reply to PSYNC from master: %s"
                            % reply.decode("latin-1")[:200])
        self.state = "connected"
        self.reader = hiredis.Reader()
        self.raw = bytearray()
        self.multi = None
        log.log(NOTICE, "MASTER <-> REPLICA sync: Finished with success")
        self._send_ack()
        while True:
            data = await reader.read(READ_CHUNK)
            if not data:
                raise SyncError("Connection with master lost.")
            self.last_io = time.monotonic()
            self._apply(data)

    async def _line(self, reader) -> bytes:
        while True:
            line = await asyncio.wait_for(reader.readline(),
                                          setting(self.server.config, "repl-timeout"))
            if not line:
                raise SyncError("Connection with master lost during the handshake")
            line = line.rstrip(b"\r\n")
            if line:   # a primary preparing the payload may send bare newlines
                self.last_io = time.monotonic()
                return line

    async def _ask(self, reader, writer, args) -> bytes:
        writer.write(encode_command(args))
        return await self._line(reader)

    # -- the full sync --------------------------------------------------------------------

    async def _full_sync(self, reader, replid: str, offset: int) -> None:
        self.state = "sync"
        header = await self._line(reader)
        if not header.startswith(b"$") or not header[1:].isdigit():
            raise SyncError("Bad protocol from MASTER, the first byte is not '$': %r"
                            % header[:100])
        size = int(header[1:])
        self.sync_total, self.sync_read = size, 0
        data = bytearray()
        timeout = setting(self.server.config, "repl-timeout")
        while len(data) < size:
            chunk = await asyncio.wait_for(reader.read(min(READ_CHUNK * 16, size - len(data))),
                                           timeout)
            if not chunk:
                raise SyncError("I/O error trying to sync with MASTER: connection lost")
            data += chunk
            self.sync_read = len(data)
            self.last_io = time.monotonic()
        log.log(NOTICE, "MASTER <-> REPLICA sync: received %d bytes of payload", size)
        started = time.monotonic()
        self._load(data)
        repl = self.replication
        repl.replid, repl.offset = replid, offset
        repl.replid2, repl.second_offset = "0" * 40, -1
        repl.backlog = Backlog(setting(self.server.config, "repl-backlog-size"), offset)
        self.conn.tenant = self.server.default_tenant
        self.conn.db = self.conn.tenant.dbs[0]
        log.log(NOTICE, "MASTER <-> REPLICA sync: Loading DB in memory done in %.3f seconds",
                time.monotonic() - started)

    def _load(self, data) -> None:
        """The payload replaces the user store and the dataset, at once."""
        from tenantkv.persistence.kdb import format as kdb
        from tenantkv.persistence.kdb.snapshot import install
        server = self.server
        rows, dataset = payload.split(data)
        # Parse the whole dataset before anything changes: a bad payload
        # leaves this server as it was.
        result = kdb.parse_file(bytes(dataset), None, server.config["limits.databases"],
                                server.config.values)
        server.auth.store.replace_rows(rows)
        users.users_reloaded(server)
        events = server.events
        journal, events.journal = events.journal, None
        try:
            install(server, result.tenants, result.functions)
        finally:
            events.journal = journal
        if journal is not None:   # this server's own log: the new data as it is now
            journal.replaced(list(server.tenants.values()))
        server.memory.refresh(loaded=True)
        server.check_orphans()

    # -- the stream --------------------------------------------------------------------------

    def _apply(self, data: bytes) -> None:
        """Run the records `data` completes. The offset moves by each
        record's bytes as it is applied (a MULTI block's at its EXEC), and
        those bytes go to this server's backlog: re-encoded, a record is
        the same bytes the primary sent (it wrote them with the same encoder)."""
        self.raw += data
        self.reader.feed(data)
        repl = self.replication
        applied = 0
        batch = []
        saved = database.SCRIPT_NOW
        # No key expires under the primary's commands: the primary decides
        # (it sends the DEL); its writes see every key it still has.
        database.SCRIPT_NOW = 1
        try:
            while True:
                args = self.reader.gets()
                if args is False:
                    break
                if type(args) is not list or not args or any(type(a) is not bytes for a in args):
                    raise SyncError("Protocol error from MASTER: not a command")
                size = len(encode_command(args))
                multi = self.multi
                upper = args[0].upper()
                if multi is not None:
                    self.multi_bytes += size
                    if upper != b"EXEC":
                        multi.append(args)
                        continue
                    self.multi = None
                    self._run(batch)
                    batch = []
                    self._run_block(multi)
                    repl.offset += self.multi_bytes
                    applied += self.multi_bytes
                    self.multi_bytes = 0
                    continue
                if upper == b"MULTI":
                    self._run(batch)
                    batch = []
                    self.multi, self.multi_bytes = [], size
                    continue
                if upper == b"PING":
                    pass
                elif upper == b"REPLCONF":
                    self._run(batch)
                    batch = []
                    if len(args) > 1 and args[1].lower() == b"getack":
                        self._send_ack()
                elif args[0] in (users.USER_RECORD, users.DELUSER_RECORD):
                    self._run(batch)
                    batch = []
                    users.apply(self.server, args)
                else:
                    batch.append(args)
                repl.offset += size
                applied += size
            self._run(batch)
        finally:
            database.SCRIPT_NOW = saved
            if applied:
                raw = self.raw
                if repl.backlog is not None:
                    repl.backlog.feed(bytes(raw[:applied]))
                del raw[:applied]

    def _run(self, batch: list) -> None:
        if batch:
            self.replayer.apply(batch)

    def _run_block(self, multi: list) -> None:
        """A transaction (or a script's effects) as one batch, and in this
        server's own log as one MULTI ... EXEC."""
        journal = self.server.events.journal
        if journal is not None:
            journal.multi_begin()
        try:
            self.replayer.apply(multi)
        finally:
            if journal is not None:
                journal.multi_end()

    # -- acknowledgements and the cron ---------------------------------------------------------

    def _send_ack(self) -> None:
        writer = self.writer
        if writer is not None and self.state == "connected":
            writer.write(encode_command([b"REPLCONF", b"ACK", b"%d" % self.replication.offset]))
            self.last_ack = time.monotonic()

    def cron(self, now: float) -> None:
        if self.state == "connected":
            if now - self.last_ack >= ACK_INTERVAL:
                self._send_ack()
            if now - self.last_io > setting(self.server.config, "repl-timeout"):
                log.warning("MASTER timeout: no data nor PING received...")
                self._close()
                if self.task is not None:
                    self.task.cancel()
                    self.start()

    def info_lines(self, now: float) -> list:
        up = self.state == "connected"
        lines = ["master_link_status:%s" % ("up" if up else "down"),
                 "master_last_io_seconds_ago:%d" % (int(now - self.last_io) if up else -1),
                 "master_sync_in_progress:%d" % (self.state == "sync"),
                 "slave_read_repl_offset:%d" % self.replication.offset,
                 "slave_repl_offset:%d" % self.replication.offset]
        if self.state == "sync":
            left = self.sync_total - self.sync_read
            lines += ["master_sync_total_bytes:%d" % self.sync_total,
                      "master_sync_read_bytes:%d" % self.sync_read,
                      "master_sync_left_bytes:%d" % left,
                      "master_sync_perc:%.2f" % (100.0 * self.sync_read / self.sync_total
                                                 if self.sync_total else 0.0),
                      "master_sync_last_io_seconds_ago:%d" % int(now - self.last_io)]
        if not up:
            lines.append("master_link_down_since_seconds:%d" % int(now - self.down_since))
        return lines
