"""The server: listeners, the client table, tenants, and the periodic cron."""

import asyncio
import logging
import os
import secrets
import signal
import time

from tenantkv import commands as _commands  # noqa: F401  (registers every command)
from tenantkv import errors
from tenantkv.logs import NOTICE
from tenantkv.keyspace import Tenant
from tenantkv.server.blocking import Blocked
from tenantkv.server.connection import Connection, flush_connections
from tenantkv.server.keyevents import KeyEvents
from tenantkv.server.stats import Stats

log = logging.getLogger("tenantkv.server")

DEFAULT_TENANT = ":default"


class Server:
    def __init__(self, config) -> None:
        self.config = config
        self.stats = Stats()
        self.events = KeyEvents()   # WATCH and blocked clients (server/keyevents.py)
        self.run_id = secrets.token_hex(20)
        self.started = time.time()
        self.started_monotonic = time.monotonic()
        self.clients: dict = {}
        self._client_ids = 0
        self.tenants: dict = {}
        # The default user's tenant, which also holds the connections that
        # have not authenticated. Its key has a ':' so that no namespace
        # (validate_namespace refuses ':') and no user's "user:<id>" can be it:
        # `ACL SETUSER x namespace:default` gets a tenant of its own.
        self.default_tenant = self.tenant_for(DEFAULT_TENANT)
        self.listeners: list = []
        self.loop = None
        self.stopped = None
        self.exit_code = 0
        self.last_save = int(time.time())
        from tenantkv.persistence.snapshot import Snapshotter
        self.snapshot = Snapshotter(self)   # SAVE, BGSAVE, the save schedule
        self.active_expire_enabled = config["expiry.active_expire"]
        # auth.default_user = nopass: connections start as the password-less
        # default user (development mode); off: everyone must AUTH.
        self.default_user_open = config["auth.default_user"] == "nopass"
        self.auth = None   # the Authenticator, once serve() opened the user store
        from tenantkv.persistence.appendonly import AppendOnly
        self.aof = AppendOnly(self)   # the append-only log (persistence/appendonly.py)
        self.config_file = None
        # Connections with replies to write at the end of this loop turn.
        self.pending_writes: list = []
        # Input limits live in each client's reader: CONFIG SET reaches them all.
        config.listeners.setdefault("proto-max-bulk-len", []).append(
            lambda value: self._set_reader_limit("max_bulk", value))
        config.listeners.setdefault("client-query-buffer-limit", []).append(
            lambda value: self._set_reader_limit("max_query_buffer", value))

    def _set_reader_limit(self, name: str, value: int) -> None:
        for conn in self.clients.values():
            setattr(conn.reader.strict, name, value)

    def tenant_for(self, name: str) -> Tenant:
        tenant = self.tenants.get(name)
        if tenant is None:
            tenant = Tenant(name, self.stats, self.config["limits.databases"])
            self.tenants[name] = tenant
        return tenant

    def flush_pending_writes(self) -> None:
        """Write the replies of every connection in `pending_writes`.

        A connection with new output while the list is empty schedules this
        with call_soon (see Connection.run_one and run), which runs after
        every I/O callback of the current turn of the loop: one flush serves
        all the reads handled in that turn.
        """
        conns = self.pending_writes
        self.pending_writes = []
        flush_connections(conns)

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

        store = UserStore(users_db_path(self.config))
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

    async def serve(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.stopped = asyncio.Event()
        self.open_user_store()
        # The append-only log when it is on and exists, else the snapshot
        # (persistence/appendonly.py); a refused file exits here, before listening.
        self.aof.startup()
        port = self.config["network.port"]
        for host in self.config["network.bind"].split():
            listener = await self.loop.create_server(
                lambda: Connection(self), host=host, port=port, backlog=511,
                reuse_address=True)
            self.listeners.append(listener)
        bound = [s.getsockname() for lst in self.listeners for s in lst.sockets]
        log.log(NOTICE, "Ready to accept connections on %s (pid %d)",
                    ", ".join("%s:%d" % (a[0], a[1]) for a in bound), os.getpid())
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(signum, self.shutdown, signum)
        cron = self.loop.create_task(self.cron())
        backups = self.loop.create_task(self.backup_users())
        await self.stopped.wait()
        cron.cancel()
        backups.cancel()
        for listener in self.listeners:
            listener.close()
        for conn in list(self.clients.values()):
            conn.close()
        await asyncio.sleep(0)
        self.aof.shutdown()   # the log flushed and fsynced
        self.auth.close()
        log.log(NOTICE, "tenantkv is now ready to exit, bye bye...")
        return self.exit_code

    def shutdown(self, signum=None, save=None, force: bool = False) -> bool:
        """Stop serving, after saving per the config (save None), or not
        (False: NOSAVE), or in any case (True: SAVE). A failed save keeps the
        server running (False returned), unless `force`."""
        if signum is not None:
            log.warning("Received %s scheduling shutdown...", signal.Signals(signum).name)
        if not self.snapshot.prepare_shutdown(save, force):
            if signum is not None:
                log.warning("%s received but errors trying to shut down the server, "
                            "check the logs for more information", signal.Signals(signum).name)
            return False
        self.stopped.set()
        return True

    async def cron(self) -> None:
        """Background work, `hz` times a second: active expiry and idle clients."""
        while True:
            hz = max(1, min(500, self.config["expiry.hz"]))
            await asyncio.sleep(1 / hz)
            try:
                if self.active_expire_enabled:
                    self.active_expire(budget=0.25 / hz)
                self.close_idle_clients()
                self.snapshot.cron()   # reap a BGSAVE child, the save schedule
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
        deadline = time.monotonic() + budget
        for tenant in list(self.tenants.values()):
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


def uptime(server: Server) -> int:
    return int(time.monotonic() - server.started_monotonic)


__all__ = ["Server", "errors"]
