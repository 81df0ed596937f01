"""The append-only log's life in the server: load at start-up, log while on,
rewrite in the background (BGREWRITEAOF), CONFIG SET appendonly, shutdown.

Files (Redis 7's multi-part AOF): <dir>/<appenddirname>/
    <appendfilename>.manifest           which files, in which order
    <appendfilename>.<n>.base.kdb       the data set when rewrite n started: a .kdb
                                        snapshot (aof-use-rdb-preamble yes, the
                                        default) or AOF records (.base.aof)
    <appendfilename>.<m>.incr.aof       writes logged since (appended to)

A rewrite opens a new incremental file, writes the manifest naming it after
the old ones, and only then logs to it (so a crash mid-rewrite loses nothing,
and a rewrite that cannot start changes nothing); it forks, and the child
writes the new base from its copy-on-write image of the data. When the child
succeeds the manifest becomes new base + new incremental file, and the old
files are removed. One background child at a time, as Redis: a BGREWRITEAOF
during a BGSAVE is scheduled (the cron starts it), and the snapshot side reads
`child_pid`. The cron also rewrites on its own when the log has grown by
auto-aof-rewrite-percentage over its size after the last rewrite (and is
over auto-aof-rewrite-min-size), backing off after repeated failures.
"""

import logging
import os
import time

from tenantkv import errors
from tenantkv.config import ConfigSetError
from tenantkv.errors import CommandError
from tenantkv.logs import NOTICE
from tenantkv.persistence import child as children
from tenantkv.persistence import diskerror
from tenantkv.persistence.aof.format import is_kdb, write_base
from tenantkv.persistence.aof.journal import Journal, StreamJournal
from tenantkv.persistence.aof.manifest import Manifest, ManifestError, log_files, quoted
from tenantkv.persistence.files import fsync_dir
from tenantkv.persistence.aof.replay import AofError, Replayer, expiry_suspended, scan
from tenantkv.persistence.kdb import format as kdb
from tenantkv.persistence.kdb.snapshot import install

log = logging.getLogger("tenantkv.aof")

CANT_ENABLE = "Unable to turn on AOF. Check server logs."
LIMIT_THRESHOLD = 3        # failures in a row before the automatic rewrite backs off
LIMIT_MAX_MINUTES = 60     # (Redis's AOF_REWRITE_LIMITE_THRESHOLD / _MAX_MINUTES)


class AppendOnly:
    def __init__(self, server) -> None:
        self.server = server
        self.config = server.config
        self.journal = None
        self.manifest = None
        self.rewrite_pid = None
        self.rewrite_started = None
        self.rewrite_plan = None
        # CONFIG SET appendonly yes, until its first rewrite succeeds (Redis's
        # AOF_WAIT_REWRITE): the log written meanwhile is named by no manifest.
        self.rewrite_enables = False
        self.scheduled = False         # a rewrite waiting for a BGSAVE (or a retry) to start
        self.last_rewrite_status = "ok"
        self.last_rewrite_time = -1
        self.rewrites = 0              # started, as Redis counts them
        self.failures = 0              # in a row (aof_rewrites_consecutive_failures)
        self.limit_minutes = 0         # the back-off after failures (_limited)
        self.limit_until = 0.0
        self.base_size = 0             # the log's size after the last rewrite (or at load)
        self.prior_size = 0            # bytes of the log's files before the journal's own
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
        that cannot be loaded (a bad manifest, a missing or damaged file, log
        files without their manifest) stops the start, naming the file and
        the problem, before anything is changed."""
        appendonly = self.config["data.appendonly"]
        if not (appendonly and os.path.lexists(self.manifest_path)):
            if appendonly:
                self._refuse_orphans()
            self.server.snapshot.load_at_startup()
            if appendonly:
                self._create_initial()
            return
        try:
            self.load()
        except ManifestError as exc:
            for line in exc.report():
                log.error("%s", line)
            log.error("Refusing to start: nothing was loaded or changed. %s; 'tenantkv "
                      "check-aof %s' checks the log. Then restart.", exc.advice, exc.path)
            raise SystemExit(1) from None
        except AofError as exc:
            log.error("%s", exc)
            last = self._path(self.manifest.incrs[-1][0]) if self.manifest.incrs else None
            if exc.kind == "format" and exc.path == last:
                log.error("Fix it with 'tenantkv check-aof --fix %s' (it truncates the file at "
                          "the last good record, offset %d: what follows is lost), then restart.",
                          exc.path, exc.good)
            else:
                base = self._path(self.manifest.base[0]) if self.manifest.base else None
                log.error("Refusing to start. This cannot be repaired automatically (%s): "
                          "restore the file from a backup. 'tenantkv check-aof %s' reports on "
                          "every file of the log.", _why_not_fixable(exc, base, last),
                          self.manifest_path)
            raise SystemExit(1) from None
        except kdb.KdbError as exc:
            log.error("Refusing to start: the append only file's base %s is damaged: %s",
                      self._path(self.manifest.base[0]), exc)
            log.error("This cannot be repaired automatically (a base file is written whole, then "
                      "renamed: damage in it is not a torn tail): restore it from a backup. "
                      "'tenantkv check-aof %s' reports on every file of the log.",
                      self.manifest_path)
            raise SystemExit(1) from None
        except OSError as exc:
            log.error("Fatal error: can't read the append only file %s: %s",
                      exc.filename or self.manifest_path, exc.strerror or exc)
            raise SystemExit(1) from None
        last = self.manifest.incrs[-1][0] if self.manifest.incrs else None
        if last is None:
            last = self._new_incr_name()
            self.manifest.incrs.append((last, self._seq(last)))
            self.manifest.write(self.manifest_path)
        self._install(self._path(last))

    def _refuse_orphans(self) -> None:
        """appendonly yes, no manifest: files of a log there would be left
        out of view (and the first ones overwritten by the new log). Redis
        7.0 starts anyway from its RDB and writes a new base 1 over the old
        one; tenantkv refuses, as a missing manifest is damage (log_files
        leaves empty files out: they hold nothing). A single-file log of the
        layout before Redis 7 in the data directory is refused too: Redis
        would move it into the directory as the base; tenantkv never wrote
        one, so it says how, rather than doing it."""
        found = log_files(self.directory, self.config["data.appendfilename"])
        if found:
            log.error("*** FATAL AOF MANIFEST FILE ERROR ***")
            log.error("The AOF manifest %s doesn't exist, but %s holds files of an append only "
                      "log: %s", self.manifest_path, self.directory, ", ".join(found))
            log.error("Refusing to start: starting without them would leave their data out "
                      "(and overwrite some of them). Nothing was changed. Restore the manifest "
                      "(docs/aof-format.md: one 'file <name> seq <n> type b|i' line per file, "
                      "the base first), or move the files away to start from the snapshot.")
            raise SystemExit(1)
        legacy = os.path.join(self.config["data.dir"], self.config["data.appendfilename"])
        if os.path.isfile(legacy) and os.path.getsize(legacy) > 0:
            log.error("*** FATAL AOF MANIFEST FILE ERROR ***")
            log.error("Found %s, a single-file append only log (the layout before Redis 7), but "
                      "no AOF manifest %s", legacy, self.manifest_path)
            log.error("Refusing to start: tenantkv does not convert it by itself. To load it, "
                      "move it into %s and write the manifest with the one line 'file %s seq 1 "
                      "type b'; to start without it, move it away. Nothing was changed.",
                      self.directory, quoted(self.config["data.appendfilename"]))
            raise SystemExit(1)

    def _check_files(self, manifest: Manifest) -> None:
        """Every file the manifest names exists, before anything is loaded (as
        Redis sizes them all first). The last incremental file may be missing:
        named, never created (a crash between the manifest and the file):
        nothing was written to it."""
        entries = ([("base", manifest.base[0])] if manifest.base else []) + \
            [("incremental", name) for name, _ in manifest.incrs]
        for i, (kind, name) in enumerate(entries):
            path = self._path(name)
            if os.path.isfile(path):
                continue
            if kind == "incremental" and i == len(entries) - 1 and not os.path.lexists(path):
                log.warning("The last incremental file of the append only log, %s, doesn't "
                            "exist (created, never written to?): it is created empty.", path)
                continue
            problem = "doesn't exist" if not os.path.lexists(path) else "is not a regular file"
            raise ManifestError(
                self.manifest_path, "The %s file %s, named at line %d of the manifest, %s"
                % (kind, path, manifest.lines.get(name, 0), problem),
                advice="A missing file cannot be made up again: restore it from a backup "
                       "(what it held is lost otherwise)")

    def load(self) -> None:
        started = time.monotonic()
        manifest = self.manifest = Manifest.read(self.manifest_path)
        self._check_files(manifest)
        replayer = Replayer(self.server)
        events = self.server.events
        journal, events.journal = events.journal, None
        try:
            with expiry_suspended():
                base = self._path(manifest.base[0]) if manifest.base else None
                if base is not None and is_kdb(base):
                    # Every key, expired or not: the log after it may touch them.
                    loaded = kdb.read_file(base, None, self.config["limits.databases"],
                                           limits=self.config.values)
                    install(self.server, loaded.tenants, loaded.functions)
                    self.base_size = loaded.size
                elif base is not None:
                    replayer.path = base
                    result = scan(base, replayer.apply)
                    if result.torn:
                        raise AofError(base, result.good, "the base file is incomplete (%s)"
                                       % result.torn)
                    self.base_size = result.size
                for i, (name, _) in enumerate(manifest.incrs):
                    path = self._path(name)
                    if not os.path.exists(path):
                        continue   # the last one (_check_files): created, never written
                    replayer.path = path
                    result = scan(path, replayer.apply)
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

    def reload(self) -> None:
        """DEBUG LOADAOF: write out what is buffered, then replace the data
        set with what the log on disk holds (as Redis, also with the log off
        when a log exists, e.g. after a BGREWRITEAOF). Where Redis exits on a
        log it cannot load, this keeps the data as it was and refuses."""
        if self.rewrite_enables:
            # The manifest on disk does not name the file being logged to yet.
            raise CommandError(errors.AOF_BEING_CREATED)
        if not os.path.exists(self.manifest_path):
            raise CommandError(errors.AOF_MISSING)
        if self.journal is not None:
            self.journal.flush()
        old = {name: tenant.dbs.pairs()
               for name, tenant in self.server.tenants.items()}
        old_functions = {name: [lib.code for lib in tenant.functions.libs.values()]
                         for name, tenant in self.server.tenants.items()
                         if getattr(tenant, "functions", None) is not None}
        install(self.server, {}, {})
        try:
            self.load()
        except (AofError, kdb.KdbError, OSError) as exc:
            log.warning("DEBUG LOADAOF: %s", exc)
            install(self.server, old, old_functions)
            raise CommandError(errors.aof_load_failed(exc)) from None
        log.warning("Append Only File loaded by DEBUG LOADAOF")

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

    def _write_base(self, path: str, key_save_delay_us: int = 0) -> int:
        """The data set now, as a .kdb snapshot or as AOF records (by the name).
        The .kdb base honours rdb-key-save-delay, as Redis's RDB preamble does."""
        if path.endswith(".kdb"):
            kdb.write_snapshot(self.server.tenants, path, key_save_delay_us=key_save_delay_us)
            return os.path.getsize(path)
        return write_base(self.server.tenants, path)

    def _temp_incr_name(self) -> str:
        return "temp-%s.incr" % self.config["data.appendfilename"]

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
        try:
            fsync_dir(os.path.dirname(path))
        except OSError:
            os.close(fd)
            raise
        return fd

    def _install(self, path: str, fresh: bool = False) -> None:
        fd = self._open(path, fresh)
        journal = Journal(self.server, fd, path, os.fstat(fd).st_size,
                          self.config["data.appendfsync"])
        self.journal = journal
        previous = self.server.events.journal
        if previous is not None:   # the replication stream's (StreamJournal): the log takes over
            previous.flush()
            journal.feed = previous.feed
        self.server.events.set_journal(journal)   # the write observer (dispatch)
        self._recount()
        diskerror.update(self.server)

    def _uninstall(self) -> None:
        journal, self.journal = self.journal, None
        if journal is None:
            return
        # Replicas still need the records: a journal without a file goes on.
        self.server.events.set_journal(
            StreamJournal(self.server, journal.feed) if journal.feed is not None else None)
        try:
            journal.close()
        except OSError as exc:
            log.warning("Fail to fsync the AOF file %s: %s", journal.path, exc)
        diskerror.update(self.server)   # a failing log no longer refuses writes

    def _set_appendonly(self, on: bool) -> None:
        if on and self.journal is None and not self.rewrite_enables:
            # As Redis: log from now on into a new incremental file, and write
            # the base in the background; the manifest names them once the
            # base is complete. Until then the log is on its way ("waiting
            # for the rewrite"): a failed attempt is retried by the cron.
            try:
                os.makedirs(self.directory, exist_ok=True)
                old = (Manifest.read(self.manifest_path)
                       if os.path.exists(self.manifest_path) else None)
            except Exception as exc:   # OSError, a manifest that cannot be read
                log.warning("Can't turn on the append only file in %s: %s", self.directory, exc)
                self.config.values[("data", "appendonly")] = False
                raise ConfigSetError("appendonly", CANT_ENABLE) from None
            self.manifest = old
            if self.rewrite_pid is not None:
                log.warning("AOF was enabled but there is already an AOF rewriting in background. "
                            "Stopping background AOF and starting a rewrite now.")
                self._kill_rewrite()
            self.rewrite_enables = True
            if self.server.snapshot.child_pid:
                self.scheduled = True   # logging starts with the rewrite, after the BGSAVE
                log.warning("AOF was enabled but there is already another background operation. "
                            "An AOF background was scheduled to start when possible.")
            elif self.server.events.in_exec:
                self.scheduled = True
                log.warning("AOF was enabled during a transaction. An AOF background was "
                            "scheduled to start when possible.")
            elif not self.start_rewrite():
                self.rewrite_enables = False
                self.config.values[("data", "appendonly")] = False
                log.warning("tenantkv needs to enable the AOF but can't trigger a background AOF "
                            "rewrite operation. Check the above logs for more info about the error.")
                raise ConfigSetError("appendonly", CANT_ENABLE)
        elif not on:
            self.scheduled = False
            if self.rewrite_pid is not None:
                self._kill_rewrite()
            self._stop_logging()

    def _stop_logging(self) -> None:
        """Close the log. While appendonly yes waits for its first rewrite,
        no manifest names the file being written: it goes too."""
        enabling, self.rewrite_enables = self.rewrite_enables, False
        journal = self.journal
        self._uninstall()
        if enabling and journal is not None:
            _remove(journal.path)

    def _set_appendfsync(self, mode: str) -> None:
        if self.journal is not None:
            self.journal.set_fsync_mode(mode)

    # -- BGREWRITEAOF --------------------------------------------------------------------
    #
    # Redis's order (rewriteAppendOnlyFileBackground, openNewIncrAofForAppend):
    # open the new incremental file, write the manifest that names it after
    # the current ones (temp file, fsync, rename, directory fsync), and only
    # then let the log go on in it; if a step fails, the log stays where it
    # was, the new file is removed, and the command answers an error. The
    # child writes the base; the manifest naming new base + new incremental
    # file is written last, and the old files are removed only once it is on
    # disk. Whatever fails, the manifest on disk names files that exist and
    # hold every logged write, in order.

    def request_rewrite(self) -> bool:
        """BGREWRITEAOF: True if started, False if scheduled (after a BGSAVE,
        or after the transaction it is part of)."""
        if self.rewrite_pid is not None:
            raise CommandError(errors.REWRITE_IN_PROGRESS)
        if self.server.snapshot.child_pid or self.server.events.in_exec:
            self.scheduled = True
            self.failures = 0   # as Redis: asked for, it is not held back by the limit
            return False
        if not self.start_rewrite():
            raise CommandError(errors.CANT_REWRITE)
        return True

    def cron(self) -> None:
        """From the server cron: retry a failed write of the log, reap the
        rewrite child, start a scheduled one, or an automatic one when the log
        has grown enough (serverCron)."""
        if self.journal is not None:
            self.journal.retry()
        if self.rewrite_pid is not None:
            done = children.poll(self.rewrite_pid)
            if done is not None:
                self._rewrite_done(*done)
            return
        if self.server.snapshot.child_pid or self.server.events.in_exec:
            return
        if self.scheduled:
            if not self._limited():
                self.start_rewrite()
            return
        journal = self.journal
        percentage = self.config["data.auto_aof_rewrite_percentage"]
        if journal is None or self.rewrite_enables or not percentage:
            return
        current = self.prior_size + journal.size
        if current <= self.config["data.auto_aof_rewrite_min_size"]:
            return
        if not getattr(journal, "last_write_ok", True):
            return   # the log cannot be written: neither could a rewrite; wait for space
        growth = current * 100 // (self.base_size or 1) - 100
        if growth >= percentage and not self._limited():
            log.log(NOTICE, "Starting automatic rewriting of AOF on %d%% growth", growth)
            self.start_rewrite()

    def _limited(self) -> bool:
        """Redis's aofRewriteLimited: after LIMIT_THRESHOLD failures in a row,
        the automatic and scheduled rewrites wait 1 minute, then 2, 4... up to
        an hour between attempts (BGREWRITEAOF still starts one at once), so a
        disk that stays full does not get a new incremental file per second."""
        if self.failures < LIMIT_THRESHOLD:
            self.limit_minutes, self.limit_until = 0, 0.0
            return False
        if self.limit_until:
            if time.time() < self.limit_until:
                return True
            self.limit_until = 0.0
            return False
        self.limit_minutes = min(LIMIT_MAX_MINUTES, self.limit_minutes * 2 or 1)
        self.limit_until = time.time() + 60 * self.limit_minutes
        log.warning("Background AOF rewrite has repeatedly failed and triggered the limit, "
                    "will retry in %d minutes", self.limit_minutes)
        return True

    def start_rewrite(self) -> bool:
        """Fork the rewrite child. False if it could not start: logged,
        aof_last_bgrewrite_status err, the log and its files as they were."""
        if self._start_rewrite():
            self.scheduled = False
            return True
        self.last_rewrite_status = "err"
        self.failures += 1
        return False

    def _start_rewrite(self) -> bool:
        try:
            os.makedirs(self.directory, exist_ok=True)
            if self.manifest is None and os.path.exists(self.manifest_path):
                self.manifest = Manifest.read(self.manifest_path)   # BGREWRITEAOF with the log off
        except Exception as exc:   # OSError, a manifest that cannot be read
            log.warning("Can't open or create append-only dir %s: %s", self.directory, exc)
            return False
        manifest = self.manifest
        base = self._new_base_name(manifest)
        incr = None   # with the log off: a base alone
        if self.rewrite_enables:
            # Logged from now on into a temp file (as Redis: a crash before the
            # base is complete leaves no log file that looks like one), renamed
            # to `incr` and named by the manifest once the base exists.
            incr = self._new_incr_name(manifest)
            temp = self._path(self._temp_incr_name())
            try:
                self._install(temp, fresh=True)
            except OSError as exc:
                log.warning("Can't open the append-only file %s: %s", temp, exc)
                _remove(temp)
                return False
        elif self.journal is not None:
            incr = self._new_incr_name(manifest)
            if not self._switch_incr(self.journal, manifest, incr):
                return False
        base_path = self._path(base)
        # rdb-key-save-delay (microseconds per key): Redis's knob for tests
        delay = max(0, int(self.config.values.get((None, "rdb-key-save-delay"), 0)))

        def work() -> int:   # in the child: the base from its copy of the data
            try:
                self._write_base(base_path, delay if base_path.endswith(".kdb") else 0)
            except OSError as exc:
                log.warning("Write error writing append only file on disk: %s",
                            exc.strerror or exc)
                _remove(base_path + ".tmp")
                return 1
            return 0
        self.rewrites += 1   # as Redis: counted when started
        forking = time.monotonic()
        try:
            pid = children.fork_child(work)
            self.server.latency.add("fork", time.monotonic() - forking)   # LATENCY's event
        except OSError as exc:
            log.warning("Can't rewrite append only file in background: fork: %s", exc)
            if self.rewrite_enables:
                self._stop_logging()
                self.rewrite_enables = True
            return False
        self.rewrite_pid = pid
        self.rewrite_started = time.monotonic()
        self.rewrite_plan = (base, incr)
        log.log(NOTICE, "Background append only file rewriting started by pid %d", pid)
        return True

    def _switch_incr(self, journal, manifest, incr: str) -> bool:
        """Let the log go on in the new incremental file `incr`: created,
        then named by the manifest on disk, then written to."""
        journal.flush()
        if journal.buf or not getattr(journal, "last_write_ok", True):
            # A batch not (wholly) written must not be split between two files.
            log.warning("Can't rewrite the append only file: writing to %s is failing",
                        journal.path)
            return False
        path = self._path(incr)
        try:
            fd = self._open(path, fresh=True)
        except OSError as exc:
            log.warning("Can't open the append-only file %s: %s", incr, exc)
            _remove(path)
            return False
        new = Manifest(manifest.base, manifest.incrs + [(incr, self._seq(incr))])
        try:
            new.write(self.manifest_path)
        except OSError as exc:
            log.warning("Error trying to write the AOF manifest file %s: %s",
                        self.manifest_path, exc)
            _close(fd)
            _remove(path)
            _remove(self.manifest_path + ".tmp")
            return False
        self.manifest = new
        try:
            journal.switch(fd, path)
        except OSError as exc:
            # The manifest names the new file after the one still written to:
            # both load in order, the next rewrite starts from there.
            log.warning("Can't switch the append only file to %s: %s", incr, exc)
            _close(fd)
            return False
        log.log(NOTICE, "Creating AOF incr file %s on background rewrite", incr)
        self._recount()
        return True

    def _rewrite_done(self, ok: bool, detail: str) -> None:
        pid = self.rewrite_pid
        base, incr = self.rewrite_plan
        self.rewrite_pid = self.rewrite_plan = None
        children.child_done()
        self.last_rewrite_time = int(time.monotonic() - self.rewrite_started)
        self.rewrite_started = None
        if not ok:
            log.warning("Background AOF rewrite terminated with error: child %d %s", pid, detail)
        else:
            log.log(NOTICE, "Background AOF rewrite terminated with success")
        if ok and self._adopt(base, incr):
            self.failures = 0
            self.last_rewrite_status = "ok"
            log.log(NOTICE, "Background AOF rewrite finished successfully")
            return
        self.last_rewrite_status = "err"
        self.failures += 1
        _remove_temp(self._path(base), pid)   # the new base too: no manifest names it
        if self.rewrite_enables:
            # As Redis: what was logged since is dropped (the next base holds
            # it) and the rewrite that turns the log on is tried again.
            self._stop_logging()
            self.rewrite_enables = self.scheduled = True

    def _adopt(self, base: str, incr) -> bool:
        """The child wrote `base`: the manifest becomes base + `incr` (the
        file being logged to), then the files only the old one named go.
        False if the manifest cannot be written (the old one stays valid)."""
        old = self.manifest
        journal = self.journal
        if self.rewrite_enables and journal is not None:
            path = self._path(incr)
            try:
                os.rename(journal.path, path)
            except OSError as exc:
                log.warning("Error trying to rename the temporary AOF incr file %s into %s: %s",
                            journal.path, path, exc)
                return False
            journal.path = path
        new = Manifest((base, self._seq(base)), [(incr, self._seq(incr))] if incr else [])
        try:
            new.write(self.manifest_path)
        except OSError as exc:
            log.warning("Error trying to write the AOF manifest file %s: %s",
                        self.manifest_path, exc)
            _remove(self.manifest_path + ".tmp")
            return False
        self.manifest = new
        self.rewrite_enables = False   # the log is on: its files are named
        keep = set(new.files())
        for name in (old.files() if old else []):
            if name not in keep:
                log.log(NOTICE, "Removing the history file %s", name)
                _remove(self._path(name))
        self._recount()
        # Redis's aof_rewrite_base_size: the log's size right after the rewrite.
        self.base_size = self.prior_size + (journal.size if journal is not None else 0)
        return True

    def _recount(self) -> None:
        """prior_size: the bytes of the log's files before the one being
        appended to (aof_current_size is prior_size + the journal's size).
        While appendonly yes waits for its first rewrite, the manifest is the
        old one: nothing before the journal counts."""
        journal = self.journal
        total = 0
        if self.manifest is not None and not self.rewrite_enables:
            for name in self.manifest.files():
                path = self._path(name)
                if journal is not None and path == journal.path:
                    continue
                try:
                    total += os.path.getsize(path)
                except OSError:
                    pass
        self.prior_size = total

    def _kill_rewrite(self) -> None:
        pid = self.rewrite_pid
        base, incr = self.rewrite_plan
        self.rewrite_pid = self.rewrite_plan = None
        children.kill_and_reap(pid)
        children.child_done()
        _remove_temp(self._path(base), pid)
        log.log(NOTICE, "Killed the AOF rewrite child %d", pid)

    # -- the end ----------------------------------------------------------------------------

    def shutdown(self) -> None:
        if self.rewrite_pid is not None:
            self._kill_rewrite()
        if self.journal is not None:
            self._stop_logging()   # flushes and fsyncs
            log.info("Append only file flushed and synced")

    # -- INFO -------------------------------------------------------------------------------

    def info(self) -> list:
        journal = self.journal
        lines = [
            "aof_enabled:%d" % int(journal is not None or self.rewrite_enables),
            "aof_rewrite_in_progress:%d" % int(self.rewrite_pid is not None),
            "aof_rewrite_scheduled:%d" % int(self.scheduled),
            "aof_last_rewrite_time_sec:%d" % self.last_rewrite_time,
            "aof_current_rewrite_time_sec:%d" % (
                int(time.monotonic() - self.rewrite_started) if self.rewrite_started else -1),
            "aof_last_bgrewrite_status:%s" % self.last_rewrite_status,
            "aof_rewrites:%d" % self.rewrites,
            "aof_rewrites_consecutive_failures:%d" % self.failures,
            "aof_last_write_status:%s" % ("ok" if journal is None or journal.last_write_ok else "err"),
            "aof_last_cow_size:0",
        ]
        if self.config["data.appendonly"]:
            lines += [
                "aof_current_size:%d" % (self.prior_size + (journal.size if journal else 0)),
                "aof_base_size:%d" % self.base_size,
                "aof_pending_rewrite:%d" % int(self.scheduled),
                "aof_buffer_length:%d" % ((len(journal.unwritten) + sum(len(b) for b in journal.buf))
                                          if journal else 0),
                "aof_pending_bio_fsync:0",
                "aof_delayed_fsync:0",
            ]
        return lines


def _why_not_fixable(exc: AofError, base, last) -> str:
    if exc.kind == "record":
        return ("the record is well-formed: truncating the file there would throw away good "
                "data; a newer tenantkv may know the command")
    if exc.path == base:
        return ("%s is the base: a base file is written whole, then renamed, so damage in it "
                "is not a torn tail" % exc.path)
    if exc.path != last:
        return ("%s is not the last file of the log: truncating it would drop writes the "
                "later files build on" % exc.path)
    return "see above"


def _remove_temp(base_path: str, pid: int) -> None:
    """What a failed or killed child leaves: its temp file, maybe the base."""
    _remove(base_path + ".tmp")   # write_base's (aof/format.py)
    _remove(os.path.join(os.path.dirname(base_path), "temp-%d.kdb" % pid))   # kdb's
    _remove(base_path)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("Can't remove %s: %s", path, exc)
