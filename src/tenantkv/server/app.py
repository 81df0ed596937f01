"""The server: listeners, the client table, tenants, and the periodic cron."""

import asyncio
import errno
import logging
import os
import resource
import secrets
import signal
import time
from collections import OrderedDict

from tenantkv import commands as _commands  # noqa: F401  (registers every command)
from tenantkv import errors
from tenantkv.config import ConfigSetError
from tenantkv.logs import NOTICE, audit
from tenantkv.keyspace import Tenant
from tenantkv.keyspace.quota import Quota
from tenantkv.dispatch.blocking import Blocked
from tenantkv.dispatch.table import LOOKUP
from tenantkv.server.connection import Connection, flush_connections
from tenantkv.server.quotas import Quotas
from tenantkv.server.memory import Memory
from tenantkv.dispatch.notify import Notifier
from tenantkv.dispatch.observers import KeyEvents
from tenantkv.dispatch.monitor import Monitors
from tenantkv.dispatch.pause import Pauses
from tenantkv.dispatch.latency import Latency
from tenantkv.dispatch.slowlog import SlowLog
from tenantkv.server.stats import Stats

log = logging.getLogger("tenantkv.server")

DEFAULT_TENANT = ":default"
MIN_RESERVED_FDS = 32   # CONFIG_MIN_RESERVED_FDS: files, logs, the listeners...
CLOSE_TIMEOUT = 1.0   # seconds the last replies get to drain at exit


class Server:
    def __init__(self, config) -> None:
        self.config = config
        self.stats = Stats()
        self.events = KeyEvents(self.stats)   # WATCH and blocked clients (dispatch/observers.py)
        self.monitors = Monitors(self.events)   # MONITOR (dispatch/monitor.py)
        self.pauses = Pauses(self)              # CLIENT PAUSE (dispatch/pause.py)
        self.run_id = secrets.token_hex(20)
        self.started = time.time()
        self.started_monotonic = time.monotonic()
        self.clients: dict = {}
        self._client_ids = 0
        self.tenants: dict = {}
        # The quotas of every tenant without its own: one shared object, which
        # CONFIG SET changes in place (keyspace/quota.py).
        self.default_quota = Quota()
        # Each tenant's quota: the default, or its users' overrides (server/quotas.py).
        self.quotas = Quotas(self, DEFAULT_TENANT)
        # The default user's tenant, which also holds the connections that
        # have not authenticated. Its key has a ':' so that no namespace
        # (validate_namespace refuses ':') and no user's own tenant key
        # ("user:<id>", "tenant:<hex>") can be it: `ACL SETUSER x
        # namespace:default` gets a tenant of its own.
        self.default_tenant = self.tenant_for(DEFAULT_TENANT)
        # Tenants with data that no user owns (check_orphans): name -> keys
        # when found. Kept in memory and in every save, reachable by nobody.
        self.orphans: dict = {}
        self.listeners: list = []
        # TLS (server/tls.py): the context new TLS connections get, None
        # while tls-port is 0.
        self.tls_context = None
        self.tls_pending: set = set()   # TLSConnections whose handshake is under way
        for name in ("tls-cert-file", "tls-key-file", "tls-key-file-pass", "tls-ca-cert-file",
                     "tls-ca-cert-dir", "tls-auth-clients", "tls-protocols", "tls-ciphers",
                     "tls-ciphersuites", "tls-prefer-server-ciphers"):
            config.listeners.setdefault(name, []).append(
                lambda value, name=name: self._reload_tls(name))
        self.loop = None
        self.stopped = None
        # While a shutdown saves (and once it has), no command runs: see shutdown().
        self.frozen = False
        self.turn = 0   # loop turns with output so far: see flush_pending_writes
        self._frozen_reading: list = []   # connections whose reading the freeze paused
        self._frozen_input: list = []     # (connection, bytes) read while frozen
        self._relisten = None             # the task reopening the listeners after a thaw
        self._resume = None               # the thaw's resumption of the clients, pending
        self.exit_code = 0
        self.last_save = int(time.time())
        from tenantkv.persistence.kdb.snapshot import Snapshotter
        self.snapshot = Snapshotter(self)   # SAVE, BGSAVE, the save schedule
        self.active_expire_enabled = config["expiry.active_expire"]
        self.cron_paused = False   # DEBUG PAUSE-CRON 1: the cron skips its work
        # DEBUG SET-DISABLE-DENY-SCRIPTS 1 (root, for Redis's tests): scripts
        # may call the commands flagged noscript (scripting/engine.py).
        self.script_deny_disabled = False
        # auth.default_user = nopass: connections start as the password-less
        # default user (development mode); off: everyone must AUTH.
        self.default_user_open = config["auth.default_user"] == "nopass"
        self.auth = None   # the Authenticator, once serve() opened the user store
        self.metrics = None   # the Prometheus endpoint (server/metrics.py), when metrics-port is set
        from tenantkv.persistence.aof.appendonly import AppendOnly
        self.aof = AppendOnly(self)   # the append-only log (persistence/aof/appendonly.py)
        from tenantkv.replication.core import Replication
        self.replication = Replication(self)   # primary or replica (replication/)
        self.config_file = None
        # Connections with replies to write at the end of this loop turn.
        self.pending_writes: list = []
        # Connections not authenticated yet, oldest first, and how many per
        # address group (server/connection.py caps both).
        self.unauth_conns: OrderedDict = OrderedDict()
        self.unauth_by_group: dict = {}
        # Connections whose output is over the transport's high-water mark:
        # the cron checks their output limits (a soft limit's seconds).
        self.output_paused: set = set()
        # Input limits live in each client's reader: CONFIG SET reaches them all.
        config.listeners.setdefault("proto-max-bulk-len", []).append(
            lambda value: self._set_reader_limit("max_bulk", value))
        config.listeners.setdefault("client-query-buffer-limit", []).append(
            lambda value: self._set_reader_limit("max_query_buffer", value))
        config.listeners.setdefault("maxclients", []).append(self._set_maxclients)
        for field in ("memory", "keys", "connections", "rate"):
            self._set_default_quota(field, config["quotas." + field])
            config.listeners.setdefault("tenant-quota-" + field, []).append(
                lambda value, field=field: self._set_default_quota(field, value))
        # Keyspace notifications (dispatch/notify.py): the server's setting;
        # each tenant may have its own (commands/server.py, CONFIG SET).
        self.notifier = Notifier(self.tenants, self.events)
        self.notifier.set_server(config["notify.keyspace_events"])
        config.listeners.setdefault("notify-keyspace-events", []).append(self.notifier.set_server)
        # The memory accounting (server/memory.py): on while maxmemory or a
        # memory/keys quota is set; re-read whenever one of them changes.
        self.memory = Memory(self)
        for name in ("maxmemory", "maxmemory-policy", "maxmemory-samples",
                     "maxmemory-eviction-tenacity", "lfu-log-factor", "lfu-decay-time",
                     "tenant-quota-memory", "tenant-quota-keys"):
            config.listeners.setdefault(name, []).append(self.memory.refresh)
        # SLOWLOG and LATENCY (dispatch/slowlog.py, dispatch/latency.py). The
        # hot path compares each command's time with `timed_after` (seconds:
        # the lower of the two thresholds, inf while both are off) and counts
        # its latency histogram while `latency_tracking` is on.
        self.slowlog = SlowLog(self.tenants)
        self.latency = Latency()
        self.timed_after = float("inf")
        self.latency_tracking = True
        self.precise = False
        for name in ("slowlog-log-slower-than", "slowlog-max-len", "latency-monitor-threshold",
                     "latency-tracking"):
            config.listeners.setdefault(name, []).append(self._set_timing)
        self._set_timing()

    def _set_timing(self, _value=None) -> None:
        values = self.config.values
        self.slowlog.slower_than = values[(None, "slowlog-log-slower-than")]
        self.slowlog.max_len = values[(None, "slowlog-max-len")]
        self.latency.threshold = values[(None, "latency-monitor-threshold")]
        self.latency_tracking = values[(None, "latency-tracking")]
        monitor = self.latency.threshold / 1000 if self.latency.threshold else float("inf")
        self.timed_after = min(self.slowlog.threshold(), monitor)
        # Under 1 ms, every pipelined command is timed on its own
        # (Connection.run): a threshold that low is a test or a hunt.
        self.precise = self.timed_after < 0.001

    def _set_default_quota(self, field: str, value: int) -> None:
        setattr(self.default_quota, field, value)
        # Tenants with overrides have Quota objects of their own, and a rate
        # quota a RateLimiter: rebuilt (server/quotas.py).
        self.quotas.apply_all()

    def _reload_tls(self, name: str) -> None:
        """CONFIG SET of a tls-* setting: a new context for the connections
        accepted from now on; live ones keep theirs. Checked here, so a
        certificate that does not load refuses the CONFIG SET (the old
        context stays). With tls-port 0 nothing is built, as in Redis."""
        if not self.config["tls.port"]:
            return
        from tenantkv.server.tls import TLSConfigError, build_context
        try:
            self.tls_context = build_context(self.config)
        except TLSConfigError as exc:
            log.warning("CONFIG SET %s: %s", name, exc)
            raise ConfigSetError(name, "Unable to update TLS configuration. Check server logs.")
        log.log(NOTICE, "TLS configuration reloaded (CONFIG SET %s)", name)

    def _set_maxclients(self, value: int) -> None:
        """CONFIG SET maxclients: as Redis's updateMaxclients, the file limit
        is raised to match, and a value the OS cannot give is refused."""
        possible = adjust_open_files_limit(value)
        if possible != value:
            raise ConfigSetError("maxclients", "The operating system is not able to handle "
                                 "the specified number of clients, try with %d" % possible)

    def _set_reader_limit(self, name: str, value: int) -> None:
        for conn in self.clients.values():
            setattr(conn.reader.strict, name, value)

    def tenant_for(self, name: str) -> Tenant:
        tenant = self.tenants.get(name)
        if tenant is None:
            tenant = Tenant(name, self.stats, self.config["limits.databases"])
            self.quotas.apply(tenant)
            self.tenants[name] = tenant
        return tenant

    def check_orphans(self, owned: set | None = None) -> None:
        """Find the tenants holding data that no user owns (after a restore of
        an older users.db, an offline `tenantkv user del`, a KDB LOAD of
        another server's file), log each, and remember them for INFO. Their
        data stays as it is: no new user can get an old tenant key (new keys
        are random, tenancy/store.py), so it stays unreachable, and every
        save keeps it until root deletes it. Reads the user store on the
        loop: start-up and KDB LOAD / DEBUG RELOAD only; ACL LOAD, which
        has just read every user in a worker thread, passes `owned`."""
        if owned is None:
            owned = self.auth.store.owned_tenants() if self.auth is not None else set()
        owned.add(DEFAULT_TENANT)
        orphans = {}
        for name, tenant in self.tenants.items():
            if name not in owned:
                keys = tenant.key_count()
                if keys:
                    orphans[name] = keys
        for name, keys in sorted(orphans.items()):
            if name not in self.orphans:
                log.warning("Tenant %r holds %d keys but no user owns it (users.db restored "
                            "from an older backup, or a user deleted offline?): kept, "
                            "reachable by no user", name, keys)
        self.orphans = orphans

    def orphan_info(self) -> list:
        """INFO persistence lines for root: orphaned tenants and their keys now."""
        tenants = [self.tenants[name] for name in self.orphans if name in self.tenants]
        return ["orphan_tenants:%d" % len(tenants),
                "orphan_keys:%d" % sum(tenant.key_count() for tenant in tenants)]

    def flush_pending_writes(self) -> None:
        """Write the replies of every connection in `pending_writes`.

        A connection with new output while the list is empty schedules this
        with call_soon (see Connection.run_one and run), which runs after
        every I/O callback of the current turn of the loop: one flush serves
        all the reads handled in that turn.
        """
        conns = self.pending_writes
        self.pending_writes = []
        self.turn += 1   # a tenant's share of a turn (dispatch/slices.py: charge)
        flush_connections(conns, self.events.journal)

    def flush_now(self, conns) -> None:
        """Hand these connections' queued replies to their transports now
        (the append-only log's release of output it held)."""
        flush_connections(conns, self.events.journal)

    def internal_client(self):
        """A client with no socket, logged in as root, that never sends: the
        log replay's (persistence/aof/replay.py). Its replies go nowhere."""
        conn = Connection(self)
        conn.authenticated = conn.root = conn.internal = True
        conn.lookup = LOOKUP   # root's command table (a container checks its subcommands there)
        conn.closing = True
        return conn

    def next_client_id(self) -> int:
        self._client_ids += 1
        return self._client_ids

    # -- lifecycle -----------------------------------------------------------

    def open_user_store(self) -> None:
        """Open (and migrate) the user database; on a first start, create root.
        Done once before listening: blocking here is fine, nobody is connected."""
        from tenantkv.config import users_db_path
        from tenantkv.server.auth import Authenticator
        from tenantkv.tenancy import UserStore, ensure_root
        from tenantkv.tenancy.bootstrap import BootstrapError
        from tenantkv.tenancy.store import SchemaTooNew

        try:
            store = UserStore(users_db_path(self.config))
        except SchemaTooNew as exc:   # a downgrade: one clear line, the file untouched
            log.error("cannot start: %s", exc)
            raise SystemExit(1) from None
        password = os.environ.get("TENANTKV_ROOT_PASSWORD") or self.config["auth.root_password"]
        try:
            root, password_file = ensure_root(store, self.config["auth.root_user"],
                                              password or None, self.config["data.dir"])
        except BootstrapError as exc:   # e.g. root.password left from an earlier user store
            log.error("cannot create the root user: %s", exc)
            raise SystemExit(1) from None
        if root is not None:
            if password_file:
                log.warning("Created the root user '%s'; its generated password is in %s "
                            "(mode 0600): read it, then delete the file", root.username, password_file)
            else:
                log.log(NOTICE, "Created the root user '%s' with the configured password",
                        root.username)
        self.auth = Authenticator(self, store)
        self.quotas.load(store.list())   # each user's quota overrides

    async def serve(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.stopped = asyncio.Event()
        maxclients = self.config["network.maxclients"]
        possible = adjust_open_files_limit(maxclients)
        if possible < 1:
            raise SystemExit(1)
        self.config.values[("network", "maxclients")] = possible
        self.open_user_store()
        # The append-only log when it is on and exists, else the snapshot
        # (persistence/aof/appendonly.py); a refused file exits here, before listening.
        self.aof.startup()
        # Counts what was loaded, when maxmemory or a quota is set (the user
        # store's quotas may have turned the accounting on before the load).
        self.memory.refresh(loaded=True)
        self.check_orphans()
        # Before the port answers: a SIGTERM that comes as soon as a client
        # could connect must be a clean shutdown, not the default death.
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(signum, self.shutdown, signum)
        await self.listen()
        self.replication.startup()   # a configured replicaof: follow that primary
        self.metrics = None
        if self.config["metrics.port"]:
            # Imported only when on: prometheus-client costs nothing otherwise.
            from tenantkv.server.metrics import Endpoint
            self.metrics = Endpoint(self)
            try:
                await self.metrics.start()
            except OSError:
                for listener in self.listeners:
                    listener.close()
                raise
        bound = [s.getsockname() for lst in self.listeners for s in lst.sockets]
        log.log(NOTICE, "Ready to accept connections on %s (pid %d)",
                    ", ".join("%s:%d" % (a[0], a[1]) for a in bound), os.getpid())
        cron = self.loop.create_task(self.cron())
        backups = self.loop.create_task(self.backup_users())
        await self.stopped.wait()
        cron.cancel()
        backups.cancel()
        if self.metrics is not None:
            self.metrics.close()
        # Nothing has run since the final save (the server is frozen): the
        # clients get the replies still queued, then their connections end.
        for conn in list(self.clients.values()):
            conn.close()
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while self.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.replication.shutdown()   # a replica notes where it stands (data saved)
        self.aof.shutdown()   # the log flushed and fsynced
        self.auth.close()
        log.log(NOTICE, "tenantkv is now ready to exit, bye bye...")
        return self.exit_code

    async def listen(self) -> None:
        port = self.config["network.port"]
        tls_port = self.config["tls.port"]
        ports = []
        # port 0 beside a tls-port: TLS only, as Redis (port 0 alone keeps
        # its old meaning here: any free port).
        if port or not tls_port:
            ports.append((port, lambda: Connection(self)))
        if tls_port:
            from tenantkv.server.tls import TLSConfigError, build_context, tls_protocol_factory
            if self.tls_context is None:
                try:
                    self.tls_context = build_context(self.config)
                except TLSConfigError as exc:
                    log.error("TLS: %s", exc)
                    raise SystemExit(1) from None
            ports.append((tls_port, tls_protocol_factory(self)))
        listeners = []
        try:
            # Every address is bound before any listens: a failed bind then
            # leaves no window where the first address answered, and the
            # listens that follow come one right after the other.
            for host in self.config["network.bind"].split():
                for number, factory in ports:
                    listeners.append(await self.loop.create_server(
                        factory, host=host, port=number, backlog=511,
                        reuse_address=True, start_serving=False))
            for listener in listeners:
                await listener.start_serving()
        except BaseException:
            for listener in listeners:
                listener.close()
            raise
        self.listeners = listeners

    def shutdown(self, signum=None, save=None, force: bool = False) -> bool:
        """Stop serving, after saving per the config (save None), or not
        (False: NOSAVE), or in any case (True: SAVE). A failed save keeps the
        server running (False returned), unless `force`.

        The order is what keeps every acknowledged write: stop accepting,
        stop reading every client, so that no command runs from here on;
        send the replies already produced (their writes are in memory, so in
        the save); then the final save. All of it in this one callback: the
        loop runs nothing in between. serve() then closes the clients and
        flushes the log. A save that fails undoes the freeze."""
        if self.stopped.is_set():
            return True   # a second signal while on the way out
        if signum is not None:
            log.warning("Received %s scheduling shutdown...", signal.Signals(signum).name)
            audit("shutdown", signal=signal.Signals(signum).name)
        self.freeze()
        self.flush_pending_writes()
        # A replica applies nothing more: the save holds what its offset says.
        self.replication.pause()
        saving = save if save is not None else bool(self.snapshot.rules())
        if not self.snapshot.prepare_shutdown(save, force):
            if signum is not None:
                log.warning("%s received but errors trying to shut down the server, "
                            "check the logs for more information", signal.Signals(signum).name)
            self.thaw()
            self.replication.resume()
            return False
        # Where the replica stands is worth keeping only with its data on disk.
        self.replication.data_kept = saving or self.aof.journal is not None
        self.stopped.set()
        return True

    def freeze(self) -> None:
        """Close the listeners and stop reading from every client: from now
        on no command runs (Connection checks `frozen` where input or a
        held-back backlog would run one)."""
        self.frozen = True
        # A thaw not complete yet (SHUTDOWN failed, then SHUTDOWN again in
        # the same pipeline) must not resume anything after this freeze.
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._relisten is not None:
            self._relisten.cancel()
        for listener in self.listeners:
            listener.close()
        self.listeners = []
        for conn in list(self.clients.values()):
            self.pause_for_freeze(conn)

    def pause_for_freeze(self, conn) -> None:
        transport = conn.transport
        if conn.closing or transport is None or transport.is_closing():
            return
        if transport.is_reading():   # not paused already for its own reasons
            transport.pause_reading()
            self._frozen_reading.append(conn)

    def hold_input(self, conn, data: bytes) -> None:
        """Input that reached a connection while frozen (a read already under
        way when reading paused): kept, in order, for a thaw."""
        self._frozen_input.append((conn, data))

    def thaw(self) -> None:
        """The shutdown did not happen: listen and serve again. The clients
        resume on the next turn of the loop, after the current command (the
        SHUTDOWN that failed) has replied."""
        self._resume = self.loop.call_soon(self._resume_after_thaw)
        self._relisten = self.loop.create_task(self._listen_again())

    def _resume_after_thaw(self) -> None:
        self._resume = None
        self.frozen = False
        held, self._frozen_input = self._frozen_input, []
        paused, self._frozen_reading = self._frozen_reading, []
        for conn, data in held:   # first what was read, then new reads
            conn.data_received(data)
        for conn in paused:
            if not conn.closing and not conn.paused and conn.waiting is None:
                try:
                    conn.transport.resume_reading()
                except RuntimeError:   # closed meanwhile
                    pass
        for conn in list(self.clients.values()):
            if conn.backlog is not None and conn.waiting is None and not conn.paused:
                conn._run_backlog()   # held back by the freeze

    async def _listen_again(self) -> None:
        try:
            await self.listen()
        except OSError as exc:
            log.error("Cannot listen again after a failed shutdown: %s", exc)
        finally:
            self._relisten = None

    async def cron(self) -> None:
        """Background work, `hz` times a second: active expiry and idle clients."""
        while True:
            hz = max(1, min(500, self.config["expiry.hz"]))
            await asyncio.sleep(1 / hz)
            if self.frozen or self.cron_paused:
                continue   # shutting down: no expiry, no save, no child
            try:
                if self.active_expire_enabled:
                    started = time.monotonic()
                    self.active_expire(budget=0.25 / hz)
                    # LATENCY's expire-cycle event (root's: it walks every tenant)
                    self.latency.add("expire-cycle", time.monotonic() - started)
                self.close_idle_clients()
                for conn in list(self.output_paused):
                    conn._check_output_limit()
                self.memory.cron()
                for tenant in self.tenants.values():
                    if tenant.ran:   # bounds the hot path's list of commands run
                        tenant.fold()
                self.snapshot.cron()   # reap a BGSAVE child, the save schedule
                self.replication.cron()   # sync children, pings, ACKs, min-replicas
                self.aof.cron()        # reap a BGREWRITEAOF child, start a scheduled one
            except Exception:   # the cron must never die; log and go on
                log.exception("error in the server cron")

    async def backup_users(self) -> None:
        """Every auth.backup_interval seconds (0: never), a copy of the user
        database into auth.backup_dir, keeping the newest auth.backup_keep.
        SQLite's backup runs in the authenticator's worker pool, never on the
        event loop; a failure is logged and the next interval tries again."""
        from tenantkv.config import backup_dir_path
        while True:
            interval = self.config["auth.backup_interval"]
            if interval <= 0:
                return
            await asyncio.sleep(interval)
            directory = backup_dir_path(self.config)
            try:
                path = await self.loop.run_in_executor(
                    self.auth.pool, self.auth.store.backup_rotate, directory,
                    self.config["auth.backup_keep"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("User database backup into %s failed: %s", directory, exc)
            else:
                log.info("User database backed up to %s", path)

    def active_expire(self, budget: float) -> None:
        if self.replication.link is not None:
            return   # a replica's keys expire when its primary says (its DELs)
        deadline = time.monotonic() + budget
        for tenant in list(self.tenants.values()):
            scripts = tenant.scripts
            if scripts is not None and scripts.running is not None:
                # A script paused between two slices: as in Redis, none of
                # its keys expires in its middle (database.SCRIPT_NOW).
                continue
            for db in tenant.dbs:
                if db.expires:
                    db.active_expire(deadline)
                    if time.monotonic() > deadline:
                        return

    def close_idle_clients(self) -> None:
        timeout = self.config["network.timeout"]
        if not timeout:
            return
        limit = time.monotonic() - timeout
        for conn in list(self.clients.values()):
            # As Redis: a blocked client is not idle (its own timeout applies).
            if conn.last_interaction < limit and type(conn.waiting) is not Blocked:
                conn.close()


def adjust_open_files_limit(maxclients: int) -> int:
    """Redis's adjustOpenFilesLimit: make RLIMIT_NOFILE hold `maxclients`
    clients plus MIN_RESERVED_FDS, raising it as far as allowed. Returns the
    number of clients the limit allows (`maxclients` when it could be met),
    logging Redis's warnings when it could not; below 1, the server cannot
    start (logged too)."""
    wanted = maxclients + MIN_RESERVED_FDS
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError) as exc:
        log.warning("Unable to obtain the current NOFILE limit (%s), assuming 1024 and setting "
                    "the max clients configuration accordingly.", exc)
        return 1024 - MIN_RESERVED_FDS
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return maxclients
    best, error = soft, None

    def allowed(limit: int) -> bool:
        nonlocal error
        try:
            # Only the soft limit moves, unless the hard one must (privileged):
            # Redis sets both, which lowers the hard limit for good.
            new_hard = hard if hard == resource.RLIM_INFINITY or hard >= limit else limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, new_hard))
            return True
        except (OSError, ValueError) as exc:
            error = exc
            return False

    if allowed(wanted):
        best = wanted
    else:
        # Redis steps down 16 at a time from `wanted`; the same answer (the
        # highest limit allowed) by bisection, in ~32 calls for any maxclients.
        low, high = soft, wanted   # allowed(low) holds (the current limit), high fails
        while high - low > 1:
            middle = (low + high) // 2
            if allowed(middle):
                low = middle
            else:
                high = middle
        best = low   # the last call that succeeded set it
    if best < wanted:
        if best <= MIN_RESERVED_FDS:
            log.warning("Your current 'ulimit -n' of %d is not enough for the server to start. "
                        "Please increase your open file limit to at least %d. Exiting.",
                        soft, wanted)
            return 0
        # Python turns setrlimit's EPERM and EINVAL into ValueErrors of its own words.
        reason = getattr(error, "strerror", None) or os.strerror(
            errno.EPERM if "not allowed" in str(error) else errno.EINVAL)
        log.warning("You requested maxclients of %d requiring at least %d max file descriptors.",
                    maxclients, wanted)
        log.warning("Server can't set maximum open files to %d because of OS error: %s.",
                    wanted, reason)
        log.warning("Current maximum open files is %d. maxclients has been reduced to %d to "
                    "compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'.",
                    best, best - MIN_RESERVED_FDS)
        return best - MIN_RESERVED_FDS
    log.log(NOTICE, "Increased maximum number of open files to %d (it was originally set to %d).",
            wanted, soft)
    return maxclients


def uptime(server: Server) -> int:
    return int(time.monotonic() - server.started_monotonic)


__all__ = ["Server", "errors"]
