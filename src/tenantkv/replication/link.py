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
from collections import deque
import logging
import os
import ssl
import time

import hiredis

from tenantkv.keyspace import database
from tenantkv.logs import NOTICE
from tenantkv.dispatch import pubsub
from tenantkv.dispatch.slices import OVER_SHARE
from tenantkv.persistence.aof.format import CONTEXT, encode_command
from tenantkv.persistence.aof.replay import Replayer
from tenantkv.replication import payload, users
from tenantkv.replication.backlog import Backlog
from tenantkv.replication.core import setting

log = logging.getLogger("tenantkv.replication")

STATE_FILE = "replication-state.json"
CONNECT_TIMEOUT = 10
READ_CHUNK = 1 << 16
ACK_INTERVAL = 1.0
MAX_LINE = 1 << 16
FAILURE_LOG_INTERVAL = 60   # seconds between two log lines of the same failure
HELD_RETRY = 0.002    # seconds before records held by a busy tenant are tried again
USER_RECORDS = (users.USER_RECORD, users.DELUSER_RECORD)
# Records that are not plain writes of the current tenant (a batch stops there).
SPECIAL = frozenset((b"MULTI", b"EXEC", b"PING", b"REPLCONF", b"PUBLISH", b"SPUBLISH",
                     users.USER_RECORD.upper(),
                     users.DELUSER_RECORD.upper()))


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
        self.stopped = False
        self.last_failure = ""
        self.last_failure_logged = 0.0
        self.writer = None
        self.state = "connect"          # connect, connecting, sync, connected
        self.down_since = None          # when the link last went down (None: never up)
        self.last_io = time.monotonic()
        self.last_ack = 0.0
        self.sync_total = 0
        self.sync_read = 0
        self.reader = hiredis.Reader()
        self.raw = bytearray()          # received, not applied yet
        self.parsed = deque()           # (args, bytes) parsed, not applied yet
        self.retry = None               # the timer of a held _process
        self.replayer = Replayer(self.server)
        self.conn = self.replayer.conn
        if state is not None and isinstance(state.get("tenant"), str):
            # The stream's context where the last run stopped reading it.
            tenant = self.server.tenant_for(state["tenant"])
            index = state.get("db", 0)
            if isinstance(index, int) and 0 <= index < self.server.config["limits.databases"]:
                self.conn.tenant = tenant
                self.conn.db = tenant.dbs[index]

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self.stopped = False
        self.task = self.server.loop.create_task(self._follow())

    def stop(self) -> None:
        self.stopped = True
        if self.task is not None:
            self.task.cancel()
            self.task = None
        self._close()

    def up(self) -> bool:
        return self.state == "connected"

    def _close(self) -> None:
        # What was received and not applied is asked for again (PSYNC
        # from the offset applied).
        self.reader = hiredis.Reader()
        self.raw = bytearray()
        self.parsed.clear()
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None
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
        # `stopped`, not only the cancellation: asyncio.wait_for (3.11) may
        # swallow a cancel that comes as its inner call fails.
        while not self.stopped:
            try:
                await self._session()
            except asyncio.CancelledError:
                self._close()
                raise
            except (OSError, SyncError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    payload.PayloadError, hiredis.ProtocolError) as exc:
                self._failed(str(exc) or type(exc).__name__)
            except Exception:
                log.exception("MASTER <-> REPLICA sync failed")
            if self.stopped:
                return
            self._close()
            await asyncio.sleep(1)

    def _failed(self, why: str) -> None:
        """A failed attempt: logged, but the same reason once a minute only
        (the link retries every second)."""
        now = time.monotonic()
        if why != self.last_failure or now - self.last_failure_logged > FAILURE_LOG_INTERVAL:
            log.warning("MASTER <-> REPLICA sync: %s", why)
            self.last_failure, self.last_failure_logged = why, now

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
        log.log(NOTICE, "MASTER <-> REPLICA sync: Finished with success")
        self._send_ack()
        while True:
            data = await reader.read(READ_CHUNK)
            if not data:
                raise SyncError("Connection with master lost.")
            self.last_io = time.monotonic()
            self._receive(data)

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

    def _receive(self, data: bytes) -> None:
        """Bytes of the stream: parse the records they complete, then apply
        what may be applied now."""
        if self.stopped:
            raise SyncError("the link was stopped")
        self.raw += data
        reader = self.reader
        reader.feed(data)
        parsed = self.parsed
        while True:
            args = reader.gets()
            if args is False:
                break
            if type(args) is not list or not args or any(type(a) is not bytes for a in args):
                raise SyncError("Protocol error from MASTER: not a command")
            parsed.append((args, len(encode_command(args))))
        if self.retry is None:
            self._process()

    def _process(self) -> None:
        """Apply the parsed records in order. The offset moves by each
        record's bytes as it is applied (a MULTI block's at its EXEC), and
        those bytes go to this server's backlog (re-encoded, a record is the
        bytes the primary sent: it wrote them with the same encoder).

        A tenant is the unit of atomicity here too: while one of its
        clients runs a long command in slices (a read-only script, a big
        SUNION: dispatch/slices.py), its records wait, as its other
        clients do, and are applied when the command ends."""
        self.retry = None
        if self.stopped:
            return
        parsed = self.parsed
        conn = self.conn
        repl = self.replication
        applied = 0
        saved = database.SCRIPT_NOW
        # No key expires under the primary's commands: the primary decides
        # (it sends the DEL); its writes see every key it still has.
        database.SCRIPT_NOW = 1
        try:
            while parsed:
                args, size = parsed[0]
                name = args[0]
                if name == CONTEXT:
                    self.replayer.apply([args])   # checks it, moves the client
                    parsed.popleft()
                    repl.offset += size
                    applied += size
                    continue
                busy = conn.tenant.busy
                if busy is not None and busy is not OVER_SHARE:
                    self.retry = self.server.loop.call_later(HELD_RETRY, self._process)
                    break
                upper = name.upper()
                if upper == b"MULTI":
                    block = self._block()
                    if block is None:
                        break   # its EXEC has not arrived yet
                    total = sum(size for _, size in block)
                    self._run_block([args for args, _ in block[1:-1]])
                    repl.offset += total
                    applied += total
                    continue
                parsed.popleft()
                repl.offset += size
                applied += size
                if upper == b"PING":
                    continue
                if upper == b"REPLCONF":
                    if len(args) > 1 and args[1].lower() == b"getack":
                        self._send_ack()
                    continue
                if name in USER_RECORDS:
                    users.apply(self.server, args)
                    continue
                if upper == b"PUBLISH" or upper == b"SPUBLISH":
                    if len(args) == 3:
                        publish = pubsub.publish if upper == b"PUBLISH" else pubsub.publish_shard
                        publish(conn.tenant, args[1], args[2])
                    continue
                batch = [args]
                while parsed:   # the plain writes that follow, in one call
                    args, size = parsed[0]
                    if args[0] == CONTEXT or args[0].upper() in SPECIAL:
                        break
                    batch.append(args)
                    parsed.popleft()
                    repl.offset += size
                    applied += size
                self.replayer.apply(batch)
        except Exception as exc:
            # A record this server cannot apply (an unknown command, a bad
            # @user row...): its data may now differ from the primary's, so
            # the next sync must be a full one (retrying the same offset
            # would fail the same way for ever).
            log.warning("MASTER <-> REPLICA sync: %s: %s; a full resync follows",
                        type(exc).__name__, exc)
            self.replication.forget_history()
            self._close()
            applied = 0
        finally:
            database.SCRIPT_NOW = saved
            if applied:
                raw = self.raw
                if repl.backlog is not None:
                    repl.backlog.feed(bytes(raw[:applied]))
                del raw[:applied]

    def _block(self):
        """The parsed records of the MULTI ... EXEC block at the front,
        taken off the queue, or None while its EXEC is still to come."""
        parsed = self.parsed
        for end, (args, _) in enumerate(parsed):
            if end and args[0].upper() == b"EXEC":
                return [parsed.popleft() for _ in range(end + 1)]
        return None

    def _run_block(self, commands: list) -> None:
        """A transaction (or a script's effects) as one batch, and in this
        server's own log as one MULTI ... EXEC."""
        journal = self.server.events.journal
        if journal is not None:
            journal.multi_begin()
        try:
            self.replayer.apply(commands)
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
            lines.append("master_link_down_since_seconds:%d" % (
                int(now - self.down_since) if self.down_since is not None else -1))
        return lines
