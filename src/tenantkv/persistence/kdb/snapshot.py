"""Snapshots in the running server: SAVE, BGSAVE, the `save` schedule, loading
at start-up, saving at shutdown, and the figures INFO persistence shows. The
file itself is kdb/format.py's; `load_into` and `install` make a file's data
the server's whole dataset (start-up, KDB LOAD, DEBUG RELOAD, the append-only
log's .kdb base).

One Snapshotter per server (`server.snapshot`). At most one background child
at a time, as in Redis: the append-only log's rewrite checks `child_pid`
before forking its own, and exposes its own as `server.aof.child_pid`.

Changes since the last save (`rdb_changes_since_last_save`, what the `save
<seconds> <changes>` rules count) are not counted on the hot path. Every
command already counts its calls and failures (INFO commandstats); the sum of
`calls - failed` over the commands flagged "write" is the number of write
commands that succeeded, less those that changed nothing (as Redis: SETBIT
of a bit to its value; the commands count them in `stats.unchanged_writes`).
`sync()` folds the growth of that sum into a
monotonic total (CONFIG RESETSTAT zeroes the per-command counters: it calls
sync() first, and a sum that went down is taken as a reset). It differs from
Redis's `dirty` (keys changed) in that MSET of ten keys counts 1 and a DEL of
a missing key counts 1; for deciding when to save, that is close enough, and
it costs nothing per command. sync() runs in the cron (10 times a second),
summing ~100 counters.
"""

import logging
import os
import time

from tenantkv.dispatch.table import COMMANDS
from tenantkv.config import parse_save
from tenantkv.logs import NOTICE
from tenantkv.persistence import child as children
from tenantkv.persistence import diskerror
from tenantkv.persistence.aof.format import CONTEXT
from tenantkv.persistence.kdb import format as kdb

log = logging.getLogger("tenantkv.persistence")

RETRY_DELAY = 5   # seconds before the schedule retries a failed BGSAVE (CONFIG_BGSAVE_RETRY_DELAY)


def install(server, tenants: dict, functions: dict | None = None) -> None:
    """Make `tenants` (as kdb.load() returns it) the server's whole dataset
    (tenants absent from it end up empty). Existing Tenant and Database
    objects are kept (connections hold them), their dicts are replaced.
    `functions` (a LoadResult's): tenant name -> its FUNCTION libraries'
    code, which replace every tenant's libraries; None leaves them."""
    if functions is not None:
        _install_functions(server, functions)
    events = getattr(server, "events", None)
    touched = []
    for name in set(server.tenants) | set(tenants):
        tenant = server.tenant_for(name)
        new = tenants.get(name, ())
        made = {db.index for db in tenant.dbs}
        # Databases are made on first use: one the file fills is made here,
        # one it leaves empty is not.
        for index, (values, _) in enumerate(new):
            if values and index not in made and index < len(tenant.dbs):
                tenant.dbs[index]
        for db in tenant.dbs:
            if db.watchers:
                touched.extend((db, key) for key in db.watchers)
            index = db.index
            values, expires = new[index] if index < len(new) else ({}, {})
            db.data = values
            db.expires = expires
            db.encodings = {}
            db.scans = {}
    if events is not None and events.tracking:
        # Client-side caches: every key may have changed (Redis's flush null).
        events.tracker.flushed_all()
    if events is not None and touched:
        events.written(touched, track=False)


def _install_functions(server, functions: dict) -> None:
    """Each tenant's libraries become the file's: FUNCTION FLUSH and FUNCTION
    LOAD run through the one command path (the log's replayer), so the
    code is checked and sandboxed as a client's would be."""
    from tenantkv.persistence.aof.replay import Replayer
    batch = []
    for name in set(functions) | {n for n, t in server.tenants.items()
                                  if getattr(t, "functions", None) is not None}:
        batch.append([CONTEXT, name.encode("utf-8", "surrogateescape"), b"0"])
        batch.append([b"FUNCTION", b"FLUSH"])
        batch.extend([b"FUNCTION", b"LOAD", code] for code in functions.get(name, ()))
    if batch:
        events = server.events
        journal, events.journal = events.journal, None   # not the log's news: a load
        try:
            Replayer(server).apply(batch)
        finally:
            events.journal = journal


def load_into(server, path: str, nofollow: bool = False) -> kdb.LoadResult:
    """Read the file at `path` completely, then make it the server's dataset.
    `nofollow`: a client named the file (see kdb.read_file)."""
    result = kdb.read_file(path, int(time.time() * 1000), server.config["limits.databases"],
                           nofollow=nofollow, limits=server.config.values)
    install(server, result.tenants, result.functions)
    return result


class Snapshotter:
    def __init__(self, server) -> None:
        self.server = server
        self.child_pid = 0
        self.child_started = 0.0        # monotonic
        self.child_path = ""
        self.child_mark = 0              # changes total when the child forked
        self.scheduled = False           # BGSAVE SCHEDULE waiting for another child
        self.last_status_ok = True
        self.last_bgsave_time = -1       # seconds the last BGSAVE took
        self.last_try = 0.0              # time of the last BGSAVE attempt
        self.saves = 0                   # rdb_saves
        self.loaded_keys = 0
        self.loaded_expired = 0
        self._write_commands = None
        self._seen = 0                   # the counters' sum at the last sync
        self._unchanged_seen = 0         # stats.unchanged_writes at the last sync
        self.total = 0                   # write commands since start (monotonic)
        self.total_at_save = 0
        self._save_text = None
        self._save_rules: list = []
        # Whether writes are refused after a failed save depends on these too.
        for name in ("save", "stop-writes-on-bgsave-error"):
            server.config.listeners.setdefault(name, []).append(
                lambda value: diskerror.update(server))

    # -- paths and settings ---------------------------------------------------------

    def path(self) -> str:
        config = self.server.config
        return os.path.join(config["data.dir"], config["data.dbfilename"])

    def rules(self) -> list:
        text = self.server.config["data.save"]
        if text != self._save_text:
            try:
                self._save_rules = parse_save(text)
            except ValueError:
                log.warning("Ignoring invalid save parameters %r", text)
                self._save_rules = []
            self._save_text = text
        return self._save_rules

    def _delay(self) -> int:
        # rdb-key-save-delay (microseconds per key, Redis's knob for tests)
        return max(0, int(self.server.config.values.get((None, "rdb-key-save-delay"), 0)))

    # -- changes since the last save --------------------------------------------------

    def sync(self) -> None:
        commands = self._write_commands
        if commands is None:
            commands = self._write_commands = [c for c in COMMANDS.values() if "write" in c.flags]
        current = 0
        for cmd in commands:
            current += cmd.calls - cmd.failed
        seen = self._seen
        self.total += current - seen if current >= seen else current
        self._seen = current
        unchanged = self.server.stats.unchanged_writes
        self.total -= unchanged - self._unchanged_seen
        self._unchanged_seen = unchanged

    def changes(self) -> int:
        self.sync()
        return self.total - self.total_at_save

    # -- saving ---------------------------------------------------------------------------

    def other_child(self) -> bool:
        aof = getattr(self.server, "aof", None)
        return bool(getattr(aof, "child_pid", 0))

    def save(self, path: str | None = None) -> int:
        """Foreground save (SAVE, SHUTDOWN, DEBUG RELOAD): blocks the loop.
        Raises OSError (or any error of the writer) on failure."""
        target = path or self.path()
        main = os.path.abspath(target) == os.path.abspath(self.path())
        self.sync()
        mark = self.total
        started = time.monotonic()
        try:
            keys = kdb.write_snapshot(self.server.tenants, target)
        except Exception as exc:
            log.warning("Failed saving the DB to %s: %s", target, exc)
            raise
        if main:
            self.total_at_save = mark
            self.server.last_save = int(time.time())
            self.saves += 1
            self.last_status_ok = True
            diskerror.update(self.server)
        log.log(NOTICE, "DB saved on disk: %d keys in %.3f seconds (%s)",
                keys, time.monotonic() - started, target)
        return keys

    def bgsave(self, reason: str = "") -> None:
        """Fork a child that writes the snapshot; returns at once (OSError if fork fails)."""
        self.sync()
        path = self.path()
        delay = self._delay()
        self.last_try = time.time()

        def work() -> int:
            kdb.write_snapshot(self.server.tenants, path, key_save_delay_us=delay)
            return 0

        forking = time.monotonic()
        try:
            pid = children.fork_child(work)
        except OSError as exc:
            self.last_status_ok = False
            diskerror.update(self.server)
            log.warning("Can't save in background: fork: %s", exc)
            raise
        self.child_pid = pid
        self.child_started = time.monotonic()
        self.server.latency.add("fork", self.child_started - forking)   # LATENCY's event
        self.child_path = path
        self.child_mark = self.total
        self.scheduled = False
        log.log(NOTICE, "Background saving started by pid %d%s", pid, " (%s)" % reason if reason else "")

    def in_progress(self) -> bool:
        return bool(self.child_pid)

    def _child_finished(self, ok: bool, detail: str, killed: bool = False) -> None:
        pid = self.child_pid
        self.child_pid = 0
        children.child_done()
        self.last_bgsave_time = int(time.monotonic() - self.child_started)
        if ok:
            self.total_at_save = self.child_mark
            self.server.last_save = int(time.time())
            self.saves += 1
            self.last_status_ok = True
            log.log(NOTICE, "Background saving terminated with success")
        else:
            # As Redis: a child killed on purpose (SIGUSR1) is no save error.
            self.last_status_ok = self.last_status_ok if killed else False
            log.warning("Background saving error: child %d %s", pid, detail)
            # a child killed mid-write leaves its temp file (the real file is untouched)
            temp = os.path.join(os.path.dirname(os.path.abspath(self.child_path)), "temp-%d.kdb" % pid)
            try:
                os.unlink(temp)
            except OSError:
                pass
        diskerror.update(self.server)

    def kill_child(self) -> None:
        if self.child_pid:
            pid = self.child_pid
            log.warning("There is a child saving an .kdb. Killing it!")
            children.kill_and_reap(pid)
            self._child_finished(False, "killed", killed=True)

    # -- the cron ---------------------------------------------------------------------------

    def cron(self) -> None:
        self.sync()
        if self.child_pid:
            done = children.poll(self.child_pid)
            if done is not None:
                self._child_finished(*done)
            return
        if self.other_child():
            return
        if self.scheduled:
            self._try_bgsave("scheduled")
            return
        rules = self.rules()
        if not rules:
            return
        now = time.time()
        changes = self.total - self.total_at_save
        for seconds, needed in rules:
            if (changes >= needed and now - self.server.last_save > seconds
                    and (now - self.last_try > RETRY_DELAY or self.last_status_ok)):
                log.log(NOTICE, "%d changes in %d seconds. Saving...", needed, seconds)
                self._try_bgsave("")
                return

    def _try_bgsave(self, reason: str) -> None:
        try:
            self.bgsave(reason)
        except OSError:
            pass

    # -- start-up and shutdown ----------------------------------------------------------------

    def load_at_startup(self) -> None:
        """Load the configured file. Missing: an empty start. Refused: exit 1
        (never start empty over a file we could not read)."""
        path = self.path()
        if not os.path.exists(path):
            log.info("No snapshot at %s: starting empty", path)
            return
        started = time.monotonic()
        try:
            result = load_into(self.server, path)
        except kdb.KdbError as exc:
            log.error("Refusing to start: the snapshot %s is damaged or unreadable: %s. "
                      "Move it away to start empty, or restore a good copy.", path, exc)
            raise SystemExit(1) from None
        except OSError as exc:
            log.error("Refusing to start: cannot read the snapshot %s: %s", path, exc)
            raise SystemExit(1) from None
        self.loaded_keys = result.keys
        self.loaded_expired = result.expired
        log.log(NOTICE, "Done loading the snapshot %s: %d keys loaded, %d expired keys skipped, "
                "%d bytes in %.3f seconds", path, result.keys, result.expired, result.size,
                time.monotonic() - started)

    def prepare_shutdown(self, save=None, force: bool = False) -> bool:
        """Before exiting: stop a background save; save if asked (SAVE), if
        not told otherwise (NOSAVE) when save rules are configured. False: the
        save failed and `force` is not set, so the server must not exit."""
        self.kill_child()
        if save is None:
            save = bool(self.rules())
        if not save:
            return True
        log.log(NOTICE, "Saving the final snapshot before exiting.")
        try:
            self.save()
        except Exception:
            if not force:
                log.warning("Error trying to save the DB, can't exit.")
                return False
            log.warning("Error trying to save the DB, exiting anyway (FORCE).")
        return True

    # -- INFO ---------------------------------------------------------------------------------------

    def info_lines(self) -> list:
        current = int(time.monotonic() - self.child_started) if self.child_pid else -1
        return [
            "rdb_changes_since_last_save:%d" % self.changes(),
            "rdb_bgsave_in_progress:%d" % (1 if self.child_pid else 0),
            "rdb_last_save_time:%d" % self.server.last_save,
            "rdb_last_bgsave_status:%s" % ("ok" if self.last_status_ok else "err"),
            "rdb_last_bgsave_time_sec:%d" % self.last_bgsave_time,
            "rdb_current_bgsave_time_sec:%d" % current,
            "rdb_saves:%d" % self.saves,
            "rdb_last_cow_size:0",
            "rdb_last_load_keys_expired:%d" % self.loaded_expired,
            "rdb_last_load_keys_loaded:%d" % self.loaded_keys,
        ]
