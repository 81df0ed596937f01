"""The append-only log's life in the server: load at start-up, log while on,
rewrite in the background (BGREWRITEAOF), CONFIG SET appendonly, shutdown.

Files (Redis 7's multi-part AOF): <dir>/<appenddirname>/
    <appendfilename>.manifest           which files, in which order
    <appendfilename>.<n>.base.kdb       the data set when rewrite n started: a .kdb
                                        snapshot (aof-use-rdb-preamble yes, the
                                        default) or AOF records (.base.aof)
    <appendfilename>.<m>.incr.aof       writes logged since (appended to)

A rewrite opens a new incremental file and logs to it from that moment (the
manifest names it at once, after the old ones, so a crash mid-rewrite loses
nothing), forks, and the child writes the new base from its copy-on-write
image of the data. When the child succeeds the manifest becomes new base + new
incremental file, and the old files are removed. One background child at a
time, as Redis: a BGREWRITEAOF during a BGSAVE is scheduled (the cron starts
it), and the snapshot side reads `child_pid`.
"""

import logging
import os
import time

from tenantkv.errors import CommandError
from tenantkv.keyspace import database as database_module
from tenantkv.persistence import aof, diskerror, kdb
from tenantkv.persistence import child as children
from tenantkv.persistence.aof import AofError, Journal, Manifest, Replayer, expiry_suspended

log = logging.getLogger("tenantkv.aof")

REWRITE_IN_PROGRESS = "ERR Background append only file rewriting already in progress"


class AppendOnly:
    def __init__(self, server) -> None:
        self.server = server
        self.config = server.config
        self.journal = None
        self.manifest = None
        self.rewrite_pid = None
        self.rewrite_started = None
        self.rewrite_plan = None
        self.rewrite_enables = False   # the rewrite that CONFIG SET appendonly yes started
        self.scheduled = False         # BGREWRITEAOF waiting for a BGSAVE to end
        self.last_rewrite_status = "ok"
        self.last_rewrite_time = -1
        self.rewrites = 0
        self.base_size = 0
        self.loaded_commands = 0
        self.load_truncated = 0
        server.config.listeners.setdefault("appendonly", []).append(self._set_appendonly)
        server.config.listeners.setdefault("appendfsync", []).append(self._set_appendfsync)

    # -- paths -----------------------------------------------------------------------

    @property
    def directory(self) -> str:
        return os.path.join(self.config["data.dir"], self.config["data.appenddirname"])

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.directory, self.config["data.appendfilename"] + ".manifest")

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    # -- start-up ----------------------------------------------------------------------

    @property
    def child_pid(self) -> int:
        return self.rewrite_pid or 0

    def startup(self) -> None:
        """Before the server listens: with appendonly yes and a log, load the
        log (not the snapshot, as Redis) and go on logging; else load the
        snapshot, and with appendonly yes start a log from that data. A log
        that cannot be loaded stops the start."""
        if not (self.config["data.appendonly"] and os.path.exists(self.manifest_path)):
            self.server.snapshot.load_at_startup()
            if self.config["data.appendonly"]:
                self._create_initial()
            return
        try:
            self.load()
        except AofError as exc:
            log.error("%s", exc)
            log.error("Fix it with 'tenantkv check-aof --fix %s' (it truncates the file at "
                      "the last good record: what follows is lost), then restart.", exc.path)
            raise SystemExit(1) from None
        except kdb.KdbError as exc:
            log.error("Refusing to start: the append only file's base %s is damaged: %s",
                      self.manifest.base[0], exc)
            raise SystemExit(1) from None
        last = self.manifest.incrs[-1][0] if self.manifest.incrs else None
        if last is None:
            last = self._new_incr_name()
            self.manifest.incrs.append((last, self._seq(last)))
            self.manifest.write(self.manifest_path)
        self._install(self._path(last))

    def load(self) -> None:
        started = time.monotonic()
        manifest = self.manifest = Manifest.read(self.manifest_path)
        replayer = Replayer(self.server)
        events = self.server.events
        journal, events.journal = events.journal, None
        try:
            with expiry_suspended():
                if manifest.base and manifest.base[0].endswith(".kdb"):
                    # Every key, expired or not: the log after it may touch them.
                    loaded = kdb.read_file(self._path(manifest.base[0]), None,
                                           self.config["limits.databases"])
                    kdb.install(self.server, loaded.tenants)
                    self.base_size = loaded.size
                elif manifest.base:
                    path = self._path(manifest.base[0])
                    replayer.path = path
                    result = aof.scan(path, replayer.apply)
                    if result.torn:
                        raise AofError(path, result.good, "the base file is incomplete (%s)"
                                       % result.torn)
                    self.base_size = result.size
                for i, (name, _) in enumerate(manifest.incrs):
                    path = self._path(name)
                    if not os.path.exists(path):
                        if i == len(manifest.incrs) - 1:
                            continue   # created, never written: nothing lost
                        raise AofError(path, None, "a file of the manifest is missing")
                    replayer.path = path
                    result = aof.scan(path, replayer.apply)
                    if result.torn:
                        last = i == len(manifest.incrs) - 1
                        if not last or not self.config["data.aof_load_truncated"]:
                            raise AofError(path, result.good, "unexpected end of file (%s)"
                                           % result.torn)
                        log.warning("!!! Warning: the append only file %s ends with %s "
                                    "(a crash while writing?): %d bytes after offset %d were "
                                    "not loaded; truncating the file there.", path,
                                    result.torn, result.size - result.good, result.good)
                        os.truncate(path, result.good)
                        self.load_truncated += 1
        finally:
            events.journal = journal
        self.loaded_commands = replayer.commands
        log.info("DB loaded from append only file: %.3f seconds (%d commands%s)",
                 time.monotonic() - started, replayer.commands,
                 ", %d failed" % replayer.errors if replayer.errors else "")

    def _create_initial(self) -> None:
        """No log yet: a base of what the server holds now, an empty
        incremental file, the manifest."""
        os.makedirs(self.directory, exist_ok=True)
        old = Manifest.read(self.manifest_path) if os.path.exists(self.manifest_path) else None
        base = self._new_base_name(old)
        incr = self._new_incr_name(old)
        self.base_size = self._write_base(self._path(base))
        self.manifest = Manifest((base, self._seq(base)), [(incr, self._seq(incr))])
        self._install(self._path(incr), fresh=True)
        self.manifest.write(self.manifest_path)
        log.info("Created the append only file directory %s", self.directory)

    # -- names ----------------------------------------------------------------------

    @staticmethod
    def _seq(name: str) -> int:
        return int(name.split(".")[-3])

    def _new_base_name(self, manifest=None) -> str:
        manifest = manifest or self.manifest
        seq = manifest.base[1] + 1 if manifest and manifest.base else 1
        kind = "kdb" if self.config["data.aof_use_rdb_preamble"] else "aof"
        return "%s.%d.base.%s" % (self.config["data.appendfilename"], seq, kind)

    def _write_base(self, path: str) -> int:
        """The data set now, as a .kdb snapshot or as AOF records (by the name)."""
        if path.endswith(".kdb"):
            kdb.write_snapshot(self.server.tenants, path)
            return os.path.getsize(path)
        return aof.write_base(self.server.tenants, path)

    def _new_incr_name(self, manifest=None) -> str:
        manifest = manifest or self.manifest
        seq = max((s for _, s in manifest.incrs), default=0) + 1 if manifest else 1
        return "%s.%d.incr.aof" % (self.config["data.appendfilename"], seq)

    # -- logging on / off ---------------------------------------------------------------

    def _open(self, path: str, fresh: bool = False) -> int:
        # fresh: a new file of the log; a leftover of that name (a rewrite that
        # failed before its manifest was written) must not be appended to.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_TRUNC if fresh else 0)
        fd = os.open(path, flags, 0o644)
        aof.fsync_dir(os.path.dirname(path))
        return fd

    def _install(self, path: str, fresh: bool = False) -> None:
        from tenantkv.server import connection
        fd = self._open(path, fresh)
        journal = Journal(self.server, fd, path, os.fstat(fd).st_size,
                          self.config["data.appendfsync"])
        self.journal = journal
        connection.journal = journal
        database_module.expire_hook = journal.expired
        self.server.events.set_journal(journal)
        diskerror.update(self.server)

    def _uninstall(self) -> None:
        from tenantkv.server import connection
        journal, self.journal = self.journal, None
        if journal is None:
            return
        self.server.events.set_journal(None)
        connection.journal = None
        database_module.expire_hook = None
        journal.close()
        diskerror.update(self.server)   # a failing log no longer refuses writes

    def _set_appendonly(self, on: bool) -> None:
        if on and self.journal is None and not self.rewrite_enables:
            # As Redis: log from now on into a new incremental file, and write
            # the base in the background; the manifest names them once the
            # base is complete.
            os.makedirs(self.directory, exist_ok=True)
            old = Manifest.read(self.manifest_path) if os.path.exists(self.manifest_path) else None
            self.manifest = old
            if self.rewrite_pid is not None:
                self._kill_rewrite()
            self.rewrite_enables = True
            if self.server.snapshot.child_pid:
                self.scheduled = True   # logging starts with the rewrite, after the BGSAVE
                log.info("AOF was enabled but there is already a BGSAVE running. An AOF "
                         "background was scheduled to start when possible.")
            else:
                self.start_rewrite()
        elif not on:
            self.scheduled = self.rewrite_enables = False
            if self.rewrite_pid is not None:
                self._kill_rewrite()
            self._uninstall()

    def _set_appendfsync(self, mode: str) -> None:
        if self.journal is not None:
            self.journal.set_fsync_mode(mode)

    # -- BGREWRITEAOF --------------------------------------------------------------------

    def request_rewrite(self) -> bool:
        """BGREWRITEAOF: True if started, False if scheduled after a BGSAVE."""
        if self.rewrite_pid is not None:
            raise CommandError(REWRITE_IN_PROGRESS)
        if self.server.snapshot.child_pid:
            self.scheduled = True
            return False
        self.start_rewrite()
        return True

    def cron(self) -> None:
        """From the server cron: reap the rewrite child, start a scheduled one,
        retry a failed write of the log."""
        if self.journal is not None:
            self.journal.retry()
        if self.rewrite_pid is not None:
            done = children.poll(self.rewrite_pid)
            if done is not None:
                self._rewrite_done(*done)
        elif self.scheduled and not self.server.snapshot.child_pid:
            try:
                self.start_rewrite()
            except OSError as exc:
                log.warning("Can't rewrite the append only file in background: %s", exc)

    def start_rewrite(self) -> None:
        self.scheduled = False
        if self.manifest is None and os.path.exists(self.manifest_path):
            self.manifest = Manifest.read(self.manifest_path)   # BGREWRITEAOF with the log off
        os.makedirs(self.directory, exist_ok=True)
        manifest = self.manifest
        base = self._new_base_name(manifest)
        incr = self._new_incr_name(manifest)
        if self.journal is not None:
            self.journal.switch(self._open(self._path(incr), True), self._path(incr))
            if not self.rewrite_enables and manifest is not None:
                manifest.incrs.append((incr, self._seq(incr)))
                manifest.write(self.manifest_path)
        elif self.rewrite_enables:
            self._install(self._path(incr), fresh=True)
        else:
            os.close(self._open(self._path(incr), True))   # BGREWRITEAOF with the log off
        base_path = self._path(base)

        def work() -> int:   # in the child: the base from its copy of the data
            self._write_base(base_path)
            return 0
        pid = children.fork_child(work)
        self.rewrite_pid = pid
        self.rewrite_started = time.monotonic()
        self.rewrite_plan = (base, incr)
        log.info("Background append only file rewriting started by pid %d", pid)

    def _rewrite_done(self, ok: bool, detail: str) -> None:
        pid = self.rewrite_pid
        base, incr = self.rewrite_plan
        self.rewrite_pid = self.rewrite_plan = None
        children.child_done()
        self.last_rewrite_time = int(time.monotonic() - self.rewrite_started)
        self.rewrite_started = None
        enables, self.rewrite_enables = self.rewrite_enables, False
        if not ok:
            self.last_rewrite_status = "err"
            log.warning("Background AOF rewrite terminated with error: child %d %s", pid, detail)
            _remove_temp(self._path(base), pid)
            if enables:
                log.warning("appendonly stays off: its first rewrite failed")
                self.config.values[("data", "appendonly")] = False
                self._uninstall()
            return
        old = self.manifest
        new = Manifest((base, self._seq(base)), [(incr, self._seq(incr))])
        new.write(self.manifest_path)
        self.manifest = new
        self.base_size = os.path.getsize(self._path(base))
        keep = set(new.files())
        for name in (old.files() if old else []):
            if name not in keep:
                _remove(self._path(name))
        self.rewrites += 1
        self.last_rewrite_status = "ok"
        log.info("Background AOF rewrite finished successfully")

    def _kill_rewrite(self) -> None:
        pid = self.rewrite_pid
        base, incr = self.rewrite_plan
        self.rewrite_pid = self.rewrite_plan = None
        self.rewrite_enables = False
        children.kill_and_reap(pid)
        children.child_done()
        _remove_temp(self._path(base), pid)
        log.info("Killed the AOF rewrite child %d", pid)

    # -- the end ----------------------------------------------------------------------------

    def shutdown(self) -> None:
        if self.rewrite_pid is not None:
            self._kill_rewrite()
        if self.journal is not None:
            self._uninstall()   # flushes and fsyncs
            log.info("Append only file flushed and synced")

    # -- INFO -------------------------------------------------------------------------------

    def info(self) -> list:
        journal = self.journal
        lines = [
            "aof_enabled:%d" % int(journal is not None),
            "aof_rewrite_in_progress:%d" % int(self.rewrite_pid is not None),
            "aof_rewrite_scheduled:0",
            "aof_last_rewrite_time_sec:%d" % self.last_rewrite_time,
            "aof_current_rewrite_time_sec:%d" % (
                int(time.monotonic() - self.rewrite_started) if self.rewrite_started else -1),
            "aof_last_bgrewrite_status:%s" % self.last_rewrite_status,
            "aof_rewrites:%d" % self.rewrites,
            "aof_last_write_status:%s" % ("ok" if journal is None or journal.last_write_ok else "err"),
            "aof_last_cow_size:0",
        ]
        if journal is not None:
            lines += [
                "aof_current_size:%d" % (self.base_size + journal.size),
                "aof_base_size:%d" % self.base_size,
                "aof_pending_rewrite:0",
                "aof_buffer_length:%d" % (len(journal.unwritten) + sum(len(b) for b in journal.buf)),
                "aof_pending_bio_fsync:0",
                "aof_delayed_fsync:0",
            ]
        return lines


def _remove_temp(base_path: str, pid: int) -> None:
    """What a failed or killed child leaves: its temp file, maybe the base."""
    _remove(base_path + ".tmp")   # aof.write_base's
    _remove(os.path.join(os.path.dirname(base_path), "temp-%d.kdb" % pid))   # kdb's
    _remove(base_path)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
