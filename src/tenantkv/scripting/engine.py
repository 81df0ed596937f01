"""Lua scripting: one sandboxed Lua 5.1 state per tenant (`tenant.scripts`).

The API other modules use (EVAL and friends in commands/scripting.py, later
FUNCTION/FCALL):

    scripts = engine.of(conn.tenant, conn.server)   # made on first use
    sha = scripts.load(body)          # compile and keep; CommandError on a bad script
    scripts.run(conn, sha, keys, args, read_only)   # the reply, or a Deferred

The state (lupa.lua51, PUC Lua 5.1 as Redis) is sandboxed by prelude.lua:
the Python bridges live only in upvalues of its closures, `debug` is gone
before any script runs, and nothing Python is ever handed to Lua (only
strings, numbers and tables built here).

How a script runs, so that a long one does not freeze other tenants (the
tenant is the unit of atomicity, DESIGN.md): on the loop thread, in a
greenlet of its own (a "runner", kept for the next script when it ends).
Its `redis.call`s run the command at once through dispatch's checks and
the one command path (the caller's connection: tenant, ACL, quotas,
observers: the log, WATCH, notifications): no thread, no queue (a thread
hand-off per call cost ~40 us). A script that ends within SLICE answers in
the same turn, as any command. Past SLICE, at its next check (the count
hook or its next redis.call): one that has not written ends there and runs
again from its start on a worker thread (_to_thread: why there), its
redis.calls handed to the loop thread; one that has written switches back
to the loop's greenlet and resumes one SLICE per later loop turn
(_next_turn). Either way its reply is a Deferred and its tenant is held
busy (its other clients wait, dispatch/slices.py). A script whose code
names a function that can run long inside C (THREADED) runs on a thread
from its start; prelude.lua guards the other ways to reach them. Nothing
touches a running or paused script's Lua state: its tenant's clients wait
or get -BUSY, SCRIPT KILL / FUNCTION KILL only set a flag the hook reads.
Inside EXEC and on the log's internal client a script runs whole. Past
busy-reply-threshold the tenant's other clients get -BUSY and SCRIPT KILL
stops a script that has not written.

The log: EVAL is not a write command, the writes its redis.call run are, so
the log records the script's effects (inside MULTI/EXEC, so a replay is
atomic and deterministic whatever TIME or SRANDMEMBER gave).
"""

import hashlib
import logging
import os
import queue
import re
import threading
from time import monotonic

from greenlet import GreenletExit, getcurrent, greenlet
from lupa import lua51

from tenantkv import errors
from tenantkv.dispatch.call import allowed, crashed, failed
from tenantkv.dispatch.replies import Deferred
from tenantkv.dispatch.slices import _collect, _joined, _release, _whole
from tenantkv.dispatch.table import find
from tenantkv.errors import CommandError
from tenantkv.keyspace import database
from tenantkv.persistence.aof.format import EXEC_RECORD, MULTI_RECORD
from tenantkv.protocol.encoder import Raw, encode

log = logging.getLogger("tenantkv.scripting")

SLICE = 0.002              # a script runs this long per loop turn, then others' replies go out
MAX_MEMORY = 64 << 20      # bytes a tenant's Lua state may take
# Code that names a function prelude.lua guards (a pattern search, a sort):
# such a script runs on a worker thread from its start, with the originals.
THREADED = re.compile(rb"\b(?:find|match|gmatch|gsub|sort)\b")
# prelude.lua's bound of a guarded call's steps past which a script that
# has written (it cannot move to a thread) gets an error instead: ~1 s of C.
REFUSED = 1e9
VARARGS = 64               # keys + arguments passed to Lua one by one (Lua's C stack: 8,000)
# Nesting of a reply, either way: the conversions recurse (Python's own
# limit is ~1000 frames). Redis goes deeper; a deeper reply is refused.
MAX_DEPTH = 400
_PRELUDE = open(os.path.join(os.path.dirname(__file__), "prelude.lua"), "rb").read()
_LEVELS = (logging.DEBUG, logging.INFO, logging.INFO, logging.WARNING)


def of(tenant, server):
    scripts = tenant.scripts
    if scripts is None:
        scripts = tenant.scripts = Scripts(server)
    return scripts


def sha1hex(body: bytes) -> bytes:
    return hashlib.sha1(body).hexdigest().encode()


def parse_shebang(body: bytes):
    """(flags set or None without a shebang) of a script; CommandError as Redis."""
    if not body.startswith(b"#!"):
        return None
    line = body.split(b"\n", 1)[0]
    parts = line.split(b" ")
    if parts[0] != b"#!lua":
        raise CommandError("ERR Unexpected engine in script shebang: %s" % line.decode("latin-1"))
    flags = set()
    for part in parts[1:]:
        if not part:
            continue
        if not part.startswith(b"flags="):
            raise CommandError("ERR Unknown lua shebang option: %s" % part.decode("latin-1"))
        for flag in part[6:].split(b","):
            if flag and flag not in _SHEBANG_FLAGS:
                raise CommandError("ERR Unexpected flag in script shebang: %s"
                                   % flag.decode("latin-1"))
            if flag:
                flags.add(flag)
    return flags


_SHEBANG_FLAGS = frozenset((b"no-writes", b"allow-oom", b"allow-stale", b"no-cluster",
                            b"allow-cross-slot-keys"))


class Run:
    """One script running: the connection it runs for, its runner greenlet
    while it may pause, and its state for the hook."""
    __slots__ = ("conn", "sha", "read_only", "start", "wrote", "killed", "busy", "resp3",
                 "future", "loop", "db", "effects", "runner", "deadline", "moving",
                 "requests", "answers", "lock", "detached", "job", "now", "allow_oom")

    def __init__(self, conn, sha, read_only) -> None:
        self.conn = conn
        self.sha = sha
        self.read_only = read_only
        self.start = monotonic()
        self.now = database.now_ms()   # the keys' clock for its commands (SCRIPT_NOW)
        self.allow_oom = False   # root's allow-oom script: its writes pass maxmemory
        self.wrote = self.killed = self.busy = self.resp3 = False
        self.future = None
        self.loop = conn.server.loop
        # The greenlet it runs in, None when it runs whole (EXEC, the log):
        # only then may it pause, once past `deadline`.
        self.runner = None
        self.deadline = 0.0
        # Past its first slice without a write: ended, to run again on a
        # worker thread (_to_thread).
        self.moving = False
        # On a worker thread: its redis.calls go to the loop thread and
        # their replies come back (_pycall, _pump); None before.
        self.requests = self.answers = self.lock = None
        self.detached = True   # the loop thread does not wait for its thread
        # A SELECT inside the script is the script's own, as in Redis: the
        # caller's database is back when it ends.
        self.db = conn.db
        self.effects: list = []   # the log's records of its writes (_effects)
        # A sliced command's job (dispatch/slices.py) that a redis.call
        # left past its first slice: (generator, its reply's parts so far).
        self.job = None


class Scripts:
    """A tenant's Lua state and script cache."""
    __slots__ = ("server", "lua", "bodies", "_compile", "_has", "_flush", "_run", "_runv",
                 "_setguard", "guarded", "threaded", "running", "counted", "_rawget")

    def __init__(self, server) -> None:
        self.server = server
        self.bodies: dict = {}   # sha (lower-case hex bytes) -> body
        self.running = None
        self.counted = 0   # bytes of the state counted in the tenant's used_memory
        self._new_state()

    def _new_state(self) -> None:
        lua = lua51.LuaRuntime(register_eval=False, register_builtins=False,
                               unpack_returned_tuples=False, encoding=None,
                               max_memory=MAX_MEMORY)
        self.lua = lua
        prelude = lua.globals().loadstring(_PRELUDE, b"@redis_prelude")
        compile_, has, flush, run, addlib, runv, setguard = prelude(
            self._pycall, self._pycheck, self._pylog, self._pysha1, self._pyflags)
        for name, source in _libraries().items():
            err = addlib(name.encode(), source)
            if err is not None:   # a broken library must not stop scripting
                log.error("Lua library %s failed to load: %s", name, err)
        self._compile, self._has, self._flush, self._run = compile_, has, flush, run
        self._runv = runv
        self._setguard = setguard
        self.guarded = True    # prelude.lua's guards in place (the loop thread's runs)
        self.threaded: dict = {}   # code -> whether it names a guarded function (THREADED)
        # The bound holds only while a script runs (_call): an allocation
        # that fails outside a protected Lua call (lupa building a table for
        # Python) aborts the whole process (Lua's panic), so tenantkv's own
        # work on the state is never bounded.
        lua.set_max_memory(0)
        self._rawget = lua.globals().rawget

    # -- the bridges (called by Lua, on the thread running the script) -------

    def _pysha1(self, s):
        return sha1hex(s)

    def _pylog(self, level, text):
        log.log(_LEVELS[int(level)], "script: %s", text.decode("utf-8", "replace"))

    def _pycheck(self):
        run = self.running
        if run is None:
            return None
        if run.runner is not None:
            if monotonic() > run.deadline:
                _past_slice(run)
        elif run.requests is not None and run.conn.closing and not run.wrote:
            run.killed = True   # on a thread, and nobody waits for it (as _resume)
        if run.killed or run.moving:
            return errors.SCRIPT_KILLED
        return None

    def _pyflags(self, what, value=None):
        run = self.running
        if what == b"resp" and run is not None:
            run.resp3 = value == 3
        elif what == b"acl":
            return self._acl_check(run, value)
        elif what == b"guard" and run is not None and run.runner is not None:
            # A call that may be long in C (prelude.lua's guards): off the
            # loop thread if the script can still move (_past_slice); else
            # here, unless it may hold every tenant for seconds.
            if not run.wrote and run.future is None:
                run.moving = True
                return errors.SCRIPT_KILLED.encode()
            if value > REFUSED:
                return errors.SCRIPT_CALL_TOO_LONG.encode()
        return None

    def _acl_check(self, run, table):
        """redis.acl_check_cmd: whether the script's caller may run the
        command (a Lua table of its arguments, checked strings or numbers)."""
        if run is None:
            return self._error("ERR redis.acl_check_cmd can only be called inside a script "
                               "invocation")
        args = [_arg(table[i]) for i in range(1, len(table) + 1)]
        cmd = find(args[0])
        if cmd is not None and cmd.subcommands and len(args) > 1:
            cmd = cmd.subcommands.get(args[1].lower())
        if cmd is None:
            return self._error("ERR Invalid command passed to redis.acl_check_cmd()")
        conn = run.conn
        return allowed(conn.lookup if type(conn.lookup) is dict else conn.lookup.allowed,
                       cmd, args)

    def _pycall(self, *args):
        run = self.running
        try:
            args = [a if type(a) is bytes else _arg(a) for a in args]
        except Exception:
            return self._error("ERR Lua redis lib command arguments must be strings or integers")
        if not args:
            return self._error("ERR Please specify at least one argument for this redis lib call")
        if run is None:
            return self._error("ERR no script running")
        if run.runner is not None and monotonic() > run.deadline:
            _past_slice(run)   # before the command: it runs whole in one slice
        if run.killed or run.moving:
            # Killed while paused (SCRIPT KILL, its client gone) or ending
            # to move: no command runs after that, pcall or not.
            return self._error(errors.SCRIPT_KILLED)
        if run.requests is None:
            data = self._command(run, args)
        else:   # on a worker thread
            data = None
            with run.lock:
                if not run.detached:
                    # The loop thread is blocked waiting for this script
                    # (_to_thread's wait) and cannot go on while we hold
                    # the lock: the command runs here.
                    data = self._command(run, args)
                    if type(data) is _Job:
                        # A sliced command past its first slice: the loop
                        # thread steps the rest (_step_job), between other
                        # tenants' work, and no longer waits for us.
                        run.detached = True
                        run.requests.put(("job", data))
                        data = None
                else:   # it runs on the loop thread
                    run.requests.put(("call", args))
                    run.loop.call_soon_threadsafe(self._pump, run)
            if data is None:
                data = run.answers.get()
        lua = self.lua
        lua.set_max_memory(0)   # building the reply must not fail half-way (see _new_state)
        try:
            value, _ = _parse(data, 0, lua, 0, run if run.runner is not None else None)
        except (_TooDeep, RecursionError):
            return self._error("ERR reached lua stack limit")
        finally:
            lua.set_max_memory(MAX_MEMORY)
        return value

    def _error(self, msg):
        return self.lua.table_from({b"err": msg.encode() if type(msg) is str else msg,
                                    b"__raise": True})

    # -- the loop thread: running the commands of a script ------------------

    def _command(self, run, args: list) -> bytes:
        """A redis.call, on the loop thread: dispatch's checks for a script's
        caller, then the one command path; the encoded reply."""
        conn = run.conn
        cmd = find(args[0])
        if cmd is None:
            return b"-ERR Unknown Redis command called from script\r\n"
        checked = cmd
        if cmd.subcommands and len(args) > 1:
            checked = cmd.subcommands.get(args[1].lower())
            if checked is None:
                return b"-ERR Unknown Redis command called from script\r\n"
        if not checked.arity_ok(len(args)) or not cmd.arity_ok(len(args)):
            return b"-ERR Wrong number of args calling Redis command from script\r\n"
        flags = checked.flags
        if "noscript" in flags and not conn.server.script_deny_disabled:
            return b"-ERR This Redis command is not allowed from script\r\n"
        if not allowed(conn.lookup if type(conn.lookup) is dict else conn.lookup.allowed,
                       checked, args):
            conn.server.auth.denied(conn, checked.name, "lua")
            return (b"-NOPERM User %s has no permissions to run the '%s' command\r\n"
                    % (conn.user.encode() if type(conn.user) is str else conn.user,
                       checked.name.encode()))
        if "write" in flags:
            if run.read_only:
                return b"-ERR Write commands are not allowed from read-only scripts.\r\n"
            denied = conn.server.events.denied
            if denied is not None:
                return b"-%s\r\n" % denied.encode()
        if "denyoom" in flags and not run.wrote and not run.allow_oom:
            meter = conn.server.events.meter
            if meter is not None:
                try:
                    data = conn.db.data
                    meter.admit(conn, lambda: any(args[i] not in data
                                                  for i in checked.keys_of(args)))
                except CommandError as exc:
                    return b"-%s\r\n" % exc.message.encode()
        journal = None
        if "write" in flags:
            run.wrote = True
            journal = conn.server.events.journal
            if journal is not None:
                # The log's records of this command are the script's: cut
                # here, they go to the log together at its end (_effects).
                journal.tenant, journal.index = None, -1
                mark = len(journal.buf)
        start = monotonic()
        # The command replies in the script's protocol (redis.setresp), as
        # Redis's script client: a handler that shapes its reply by it (a
        # sliced job encoding its own) must see that one.
        resp3, conn.resp3 = conn.resp3, run.resp3
        database.SCRIPT_NOW = run.now
        if run.allow_oom and conn.server.events.meter is not None:
            conn.server.events.meter.unrefused = conn
        try:
            reply = cmd.handler(conn, args)
            if isinstance(reply, Deferred):
                job, run.job = run.job, None
                if job is None:   # a blocking form: scripts may not wait
                    reply.future.cancel()
                    data = b"-ERR This Redis command is not allowed from script\r\n"
                else:   # a sliced command past its first slice: the script's own work
                    data = self._job(run, cmd, reply, resp3, *job)
            elif type(reply) is bytes:
                data = b"$%d\r\n%s\r\n" % (len(reply), reply)
            else:
                data = encode(reply, run.resp3)
        except CommandError as exc:
            data = failed(conn, cmd, exc.message)
        except Exception as exc:
            data = crashed(conn, cmd, exc)
        finally:
            conn.resp3 = resp3
            database.SCRIPT_NOW = 0
            if run.allow_oom and conn.server.events.meter is not None:
                conn.server.events.meter.unrefused = None
            if journal is not None:
                run.effects += journal.buf[mark:]
                del journal.buf[mark:]
                journal.tenant, journal.index = None, -1
        cmd.calls += 1
        cmd.usec += (monotonic() - start) * 1e6
        conn.tenant.count(conn.tenant.calls, cmd)
        return data

    # -- sliced commands called by a script ---------------------------------

    def _job(self, run, cmd, deferred, resp3, job, pending):
        """A sliced command (dispatch/slices.py) that a redis.call began and
        that outlasted its first slice: run to its end as the script's own
        work, which is bounded as the script (its tenant held; SCRIPT KILL
        while it has not written). In its runner: here, pausing between
        slices as the script does; on a worker thread: a _Job the loop
        thread steps (_step_job), its reply handed back then. `resp3`:
        the caller's protocol, its connection's while the script pauses."""
        if run.runner is not None:
            conn = run.conn
            try:
                while True:
                    if monotonic() > run.deadline:
                        conn.resp3 = resp3
                        database.SCRIPT_NOW = 0
                        _pause(run, job)
                        conn.resp3 = run.resp3
                        database.SCRIPT_NOW = run.now
                        if run.killed:   # SCRIPT KILL, or its client gone
                            job.close()
                            deferred.future.cancel()
                            return b"-%s\r\n" % errors.SCRIPT_KILLED.encode()
                    _collect(job, pending, run.deadline)
            except StopIteration as done:
                return self._job_done(run, cmd, deferred, _joined(pending, done.value))
            except CommandError as exc:
                deferred.future.cancel()
                return failed(conn, cmd, exc.message)
            except Exception as exc:
                deferred.future.cancel()
                return crashed(conn, cmd, exc)
        if run.requests is None:
            # The script runs whole (not a case slices.run leaves to us: it
            # runs the job whole itself inside EXEC and on the log's client):
            # whole too, with EXEC's bound for a non-root user.
            try:
                value = _joined(pending, _whole(run.conn, job, pending))
            except CommandError as exc:
                deferred.future.cancel()
                return failed(run.conn, cmd, exc.message)
            return self._job_done(run, cmd, deferred, value)
        return _Job(cmd, deferred, job, pending)

    def _job_done(self, run, cmd, deferred, value) -> bytes:
        """The end of a script's sliced command: its future done (the
        observers' callbacks: WATCH, blocked clients), its reply encoded."""
        deferred.future.set_result(value)
        conn = run.conn
        try:
            reply = deferred.finish(value)
        except CommandError as exc:
            return failed(conn, cmd, exc.message)
        if type(reply) is bytes:
            return b"$%d\r\n%s\r\n" % (len(reply), reply)
        return encode(reply, run.resp3)

    def _step_job(self, run, pend) -> None:
        """One slice of a _Job, on the loop thread (a loop callback, as
        dispatch/slices.py's _step); at its end its reply goes to the
        script's worker thread, which waits for it."""
        conn = run.conn
        if conn.server.frozen:   # a shutdown is saving: nothing runs
            run.loop.call_later(0.01, self._step_job, run, pend)
            return
        if conn.closing and not run.wrote:
            run.killed = True   # nobody waits for it and it changed nothing
        if run.killed:
            pend.job.close()
            pend.deferred.future.cancel()
            run.answers.put(b"-%s\r\n" % errors.SCRIPT_KILLED.encode())
            return
        resp3, conn.resp3 = conn.resp3, run.resp3
        database.SCRIPT_NOW = run.now
        try:
            _collect(pend.job, pend.pending, monotonic() + SLICE)
        except StopIteration as done:
            run.answers.put(self._job_done(run, pend.cmd, pend.deferred,
                                           _joined(pend.pending, done.value)))
            return
        except CommandError as exc:
            pend.deferred.future.cancel()
            run.answers.put(failed(conn, pend.cmd, exc.message))
            return
        except Exception as exc:
            pend.deferred.future.cancel()
            run.answers.put(crashed(conn, pend.cmd, exc))
            return
        finally:
            conn.resp3 = resp3
            database.SCRIPT_NOW = 0
        run.loop.call_soon(self._step_job, run, pend)

    def _finished(self, run) -> None:
        self.running = None
        if not self.guarded:
            self._setguard(True)
            self.guarded = True
        runner, run.runner = run.runner, None
        if runner is not None and len(_idle) < IDLE_RUNNERS:
            _idle.append(runner)
        run.conn.db = run.db
        _effects(run)
        self.account(run.conn.tenant)
        tenant = run.conn.tenant
        if tenant.busy is run.conn:
            _release(tenant)

    # -- public ---------------------------------------------------------------

    def load(self, body: bytes) -> bytes:
        sha = sha1hex(body)
        if sha not in self.bodies:
            parse_shebang(body)
            code = body
            if body.startswith(b"#!"):   # the shebang line is not Lua: keep the line count
                code = b"--" + body
            err = self._compile(sha, code)
            if err is not None:
                raise CommandError("ERR Error compiling script (new function): %s"
                                   % err.decode("utf-8", "replace"))
            self.bodies[sha] = body
        return sha

    def exists(self, sha: bytes) -> bool:
        return sha.lower() in self.bodies

    def flush(self, tenant=None) -> None:
        """SCRIPT FLUSH: the scripts, and a fresh Lua state, as Redis."""
        if self.running is not None:
            raise CommandError(errors.SCRIPT_IN_SCRIPT)
        self.bodies.clear()
        self._new_state()
        if tenant is not None:
            self.account(tenant)

    def kill(self, conn) -> None:
        run = self.running
        if run is None:
            raise CommandError(errors.NOTBUSY)
        if run.wrote:
            raise CommandError(errors.SCRIPT_UNKILLABLE)
        if run.sha[:1] == b"\0":   # a function (run_function): FUNCTION KILL's, as Redis
            raise CommandError(errors.BUSY_FUNCTION)
        run.killed = True

    def run_function(self, conn, name: bytes, keys: list, args: list, read_only: bool,
                     code: bytes = b"", allow_oom: bool = False):
        """FCALL (scripting/functions.py): the function `name`, whose chunk
        functions.lua keeps under b"\\0" + name, on the same path as a script
        (`code`: its library's, for THREADED)."""
        key = b"\0" + name
        self.bodies[key] = b""   # only while run() starts: SCRIPT EXISTS never sees it
        try:
            return self.run(conn, key, keys, args, read_only, code, allow_oom)
        finally:
            del self.bodies[key]

    def run(self, conn, sha: bytes, keys: list, args: list, read_only: bool,
            code: bytes | None = None, allow_oom: bool = False):
        body = self.bodies.get(sha)
        if body is None:
            raise CommandError(errors.NOSCRIPT)
        if self.running is not None:   # a script calling EVAL: refused as Redis
            raise CommandError(errors.SCRIPT_IN_SCRIPT)
        flags = parse_shebang(body)
        if flags is not None:
            if b"no-writes" in flags:
                read_only = True
            elif conn.server.events.read_only and not conn.internal:
                # A script that declares its flags and not no-writes is a
                # write command on a read-only replica (Redis's
                # processCommand): refused whole. One without a shebang
                # runs; its writes get -READONLY from redis.call.
                raise CommandError(errors.READONLY)
            elif conn.server.events.denied is not None and not conn.internal:
                # The same for writes refused (MISCONF, NOREPLICAS): Redis's
                # scriptPrepareForRun refuses it whole.
                raise CommandError(conn.server.events.denied)
            elif b"allow-oom" not in flags:
                # Redis 7: a script that declares its flags and not allow-oom
                # is refused as a whole over maxmemory (or its quota), before
                # it runs; one without a shebang is checked at its first write.
                meter = conn.server.events.meter
                if meter is not None:
                    meter.admit(conn, _creates)
            else:
                allow_oom = True
        run = Run(conn, sha, read_only)
        # allow-oom lets a script write past maxmemory (Redis): root's only.
        # A tenant's writes always meet maxmemory and its quota, or any
        # tenant could declare the flag and grow without bound.
        run.allow_oom = allow_oom and conn.root
        server = conn.server
        self.running = run
        if conn.transport is None or server.events.in_exec or getcurrent().parent is not None:
            # Runs whole: nothing may wait inside EXEC or the log's replay
            # (and a script is never started from another's greenlet).
            try:
                result = self._call(run, keys, args)
            finally:
                self.running = None
                conn.db = run.db
                _effects(run)
                self.account(conn.tenant)
            return result
        code = body if code is None else code
        threaded = self.threaded.get(code)
        if threaded is None:
            threaded = self.threaded[code] = THREADED.search(code) is not None
        if threaded:   # on a worker thread from its start (prelude.lua: the guards)
            run.future = run.loop.create_future()
            conn.tenant.busy = conn
            done = self._to_thread(run, keys, args, wait=True)
            if done is not None:   # within the slice the loop waited for it
                self._finished(run)
                if isinstance(done[0], CommandError):
                    raise done[0]
                return done[0]
            threshold = server.config.values.get((None, "busy-reply-threshold"), 5000)
            run.loop.call_later(max(threshold / 1000 - (monotonic() - run.start), 0),
                                _mark_busy, run)
            return Deferred(run.future, _same)
        run.runner = _idle.pop() if _idle else greenlet(_runner)
        run.deadline = run.start + SLICE
        kind, value = run.runner.switch((self, run, keys, args))
        if kind is _DONE and not run.moving:   # most scripts: done within the slice
            self._finished(run)
            if isinstance(value, CommandError):
                raise value
            return value
        future = run.future = run.loop.create_future()
        conn.tenant.busy = conn
        if run.moving:
            self._to_thread(run, keys, args)
        else:   # paused: the rest runs one slice per loop turn, its tenant held
            run.loop.call_soon(self._next_turn, run)
        threshold = server.config.values.get((None, "busy-reply-threshold"), 5000)
        run.loop.call_later(max(threshold / 1000 - (monotonic() - run.start), 0),
                            _mark_busy, run)
        return Deferred(future, _same)

    def _to_thread(self, run, keys: list, args: list, wait: bool = False):
        """Run again, from its start, on a worker thread, a script that
        passed its first slice without a write (its first run ended at once,
        as a kill ends it). A long script is most often a loop in Lua:
        there, on a thread (lupa releases the GIL), it leaves the loop
        thread free, and the loop's process is not a CPU hog the kernel
        makes wait (on a loaded machine another tenant's PING waited 20-30
        ms behind slices, 1-10 behind a thread); and a long C call (a
        string.find that backtracks for hours) holds only its thread. Its
        redis.calls then cost a hand-off each (~40 us). The first run did
        only reads: running them again changes nothing but the
        statistics.

        With `wait` (a script that runs on a thread from its start), the
        loop thread waits for it up to SLICE, and meanwhile its redis.calls
        run on its own thread, under the run's lock (no hand-off: the loop
        thread does nothing else): (its reply,) if it ended, else None."""
        runner, run.runner = run.runner, None
        if runner is not None and len(_idle) < IDLE_RUNNERS:
            _idle.append(runner)
        if self.guarded:   # the originals on the thread: nothing to guard there
            self._setguard(False)
            self.guarded = False
        run.moving = False
        run.resp3 = False
        run.conn.db = run.db
        run.requests = queue.SimpleQueue()   # worker -> loop: ("call", args) / ("done", reply)
        run.answers = queue.SimpleQueue()    # loop -> worker: encoded replies
        run.lock = threading.Lock()
        run.detached = not wait
        _submit(self._work, run, keys, args)
        if not wait:
            return None
        try:
            kind, value = run.requests.get(timeout=SLICE)
            if kind == "done":
                return (value,)
            # A sliced command's job its redis.call left (it detached the
            # run, _pycall): stepped from the next turn.
            run.loop.call_soon(self._step_job, run, value)
            return None
        except queue.Empty:
            with run.lock:
                run.detached = True
                pending = not run.requests.empty()
            if pending:   # it ended between the timeout and the lock
                run.loop.call_soon(self._pump, run)
            return None

    def _work(self, run, keys: list, args: list) -> None:
        """On a worker thread: the script, then its reply to the loop."""
        try:
            result = self._call(run, keys, args)
        except BaseException as exc:   # a CommandError or a bug: the caller answers it
            if not isinstance(exc, CommandError):
                log.error("error running a script", exc_info=exc)
            result = exc if isinstance(exc, CommandError) else CommandError(
                errors.internal_error("eval", exc))
        with run.lock:
            run.requests.put(("done", result))
            if run.detached:
                run.loop.call_soon_threadsafe(self._pump, run)

    def _pump(self, run) -> None:
        """On the loop thread: serve a worker's requests (its redis.calls,
        then its end)."""
        while True:
            try:
                kind, value = run.requests.get_nowait()
            except queue.Empty:
                return
            if kind == "call":
                data = self._command(run, value)
                if type(data) is _Job:   # stepped from the next turn, then answered
                    run.loop.call_soon(self._step_job, run, data)
                else:
                    run.answers.put(data)
            elif kind == "job":
                run.loop.call_soon(self._step_job, run, value)
            else:
                self._finished(run)
                if not run.future.done():
                    run.future.set_result(value)
                return

    def _next_turn(self, run) -> None:
        """Resume the script after this turn's reads and their replies'
        flush: the reads a slice kept waiting were queued behind this
        callback, their flush behind them (call_soon runs at the next turn
        what it is given during this one). Resumed at once, the script's
        next slice would run before that flush: another tenant's PING
        waited two slices."""
        run.loop.call_soon(self._resume, run)

    def _resume(self, run) -> None:
        """The next slice of a paused script (a loop callback)."""
        conn = run.conn
        if conn.server.frozen:
            # A shutdown is saving: nothing runs (as dispatch/slices.py).
            run.loop.call_later(0.01, self._resume, run)
            return
        if (conn.closing or run.future.cancelled()) and not run.wrote:
            # Nobody waits for its reply and it changed nothing: end it as
            # SCRIPT KILL would (a gone client's script must not hold its
            # tenant). One that wrote runs to its end, as in Redis.
            run.killed = True
        run.deadline = monotonic() + SLICE
        kind, value = run.runner.switch()
        if kind is not _DONE:
            run.loop.call_soon(self._next_turn, run)
            return
        self._finished(run)
        if not run.future.done():
            run.future.set_result(value)

    def _call(self, run, keys: list, args: list):
        """Run the script: its reply (a Raw), or raise CommandError with
        Redis's text."""
        lua = self.lua
        if len(keys) + len(args) <= VARARGS:
            fn, fargs = self._runv, (run.sha, len(keys), *keys, *args)
        else:   # made before the bound is on (see _new_state)
            fn, fargs = self._run, (run.sha, lua.table_from(keys), lua.table_from(args))
        lua.set_max_memory(MAX_MEMORY)
        try:
            ok, value = fn(*fargs)
        except lua51.LuaMemoryError:
            raise CommandError(errors.SCRIPT_OOM)
        except lua51.LuaError as exc:
            raise CommandError("ERR Error running script: %s" % exc)
        finally:
            lua.set_max_memory(0)
            if lua.get_memory_used() > MAX_MEMORY // 2:
                self._gc()
        funcname = run.sha.lstrip(b"\0")   # a function's (run_function)
        if not ok:
            raise CommandError(_error_text(value, funcname, self._rawget))
        try:
            # The reply is in the caller's protocol (redis.setresp is about
            # what redis.call gives the script), as Redis.
            return Raw(_to_resp(value, run.conn.resp3, 0, run.resp3, self._rawget,
                                run if run.runner is not None else None))
        except (_TooDeep, RecursionError):
            raise CommandError("ERR reached lua stack limit")

    def _gc(self) -> None:
        try:
            self.lua.execute("collectgarbage('collect')")
        except Exception:
            pass

    def memory(self) -> int:
        return self.lua.get_memory_used() or 0

    def account(self, tenant) -> None:
        """Count the state's memory in the tenant's used_memory while the
        memory accounting is on (server/memory.py): what a script leaves in
        its state (a table kept in a library's table) is the tenant's."""
        meter = self.server.events.meter
        if meter is None:
            return
        used = self.memory()
        delta = used - self.counted
        if delta:
            self.counted = used
            tenant.used_memory += delta
            meter.data += delta


def _effects(run) -> None:
    """The script's writes go to the log as one MULTI ... EXEC (Redis logs
    a script as its effects), whatever loop turns it took: a replay runs all
    or nothing of it, and gets what TIME or SRANDMEMBER gave the script."""
    effects = run.effects
    if not effects:
        return
    run.effects = []
    journal = run.conn.server.events.journal
    if journal is None:
        return
    if journal.multi_mark is not None:   # inside EXEC: already one transaction
        journal.append(effects)
    else:
        journal.append([MULTI_RECORD, *effects, EXEC_RECORD])


_LIBS: list = []


def counted(conn, reply):
    """A script's reply, its error (redis.error_reply, {err=...}, a failed
    redis.call returned as is) counted in INFO errorstats as Redis's
    afterErrorReply counts any error reply; a Deferred's when it comes."""
    if isinstance(reply, Deferred):
        finish = reply.finish

        def counting(value):
            return counted(conn, finish(value))
        reply.finish = counting
        return reply
    if isinstance(reply, bytes) and reply[:1] == b"-":
        message = reply[1:reply.find(b"\r\n")].decode("utf-8", "replace")
        conn.server.stats.error(message or "ERR", conn.tenant)
    return reply


def _libraries() -> dict:
    """The Lua libraries Redis loads (cjson, cmsgpack, struct, bit): name ->
    Lua source returning the module (scripting/lib, LIBRARIES), once."""
    if not _LIBS:
        try:
            from tenantkv.scripting.lib import LIBRARIES
        except ImportError:   # not there yet (issue 17, part B)
            LIBRARIES = {}
        _LIBS.append({name: (src.encode() if isinstance(src, str) else src)
                      for name, src in LIBRARIES.items()})
    return _LIBS[0]


_DONE = "done"       # what a runner switches to the loop with: (_DONE, reply)
_PAUSED = "paused"   # (_PAUSED, None): past its slice, resume it later

# Runners waiting for a script: a new greenlet costs ~5 us, a switch into a
# waiting one ~0.3 (measured), so a few are kept. A paused script keeps its
# own; a runner is busy only for its tenant's one script.
IDLE_RUNNERS = 8
_idle: list = []


def _runner(job) -> None:
    """A runner greenlet's life: run scripts, one per switch into it."""
    while True:
        scripts, run, keys, args = job
        try:
            result = scripts._call(run, keys, args)
        except GreenletExit:
            raise   # thrown in by the greenlet's collection (the server stops)
        except BaseException as exc:   # a CommandError or a bug: the caller answers it
            if not isinstance(exc, CommandError):
                log.error("error running a script", exc_info=exc)
            result = exc if isinstance(exc, CommandError) else CommandError(
                errors.internal_error("eval", exc))
        job = getcurrent().parent.switch((_DONE, result))   # the loop's greenlet


def _past_slice(run) -> None:
    """The script passed its slice (in its runner): one that has not
    written ends, to run again on a thread (Scripts._to_thread); one that
    has goes back to the loop's greenlet until _resume."""
    if not run.wrote and run.future is None:
        run.moving = True
        return
    _pause(run)


def _pause(run, job=None) -> None:
    """Back to the loop's greenlet until _resume (in the runner)."""
    try:
        run.runner.parent.switch((_PAUSED, None))
    except GreenletExit:
        if job is not None:
            job.close()
        # The runner is collected while paused (the server stops): the
        # script must end now, without pausing again: the kill's error on
        # every line (prelude.lua's hook) ends it, pcall or not.
        run.killed = True
        run.runner = None
        raise


# The threads long scripts run on (_to_thread): daemon threads (a runaway
# script must not keep a stopping server alive, as a ThreadPoolExecutor's
# threads would), made when no thread waits for work, at most WORKERS
# (scripts of more tenants than that running at once queue behind them).
WORKERS = 16
_jobs: queue.SimpleQueue = queue.SimpleQueue()
_threads: list = []
_waiting = [0]   # threads waiting for a job
_lock = threading.Lock()


def _submit(fn, *args) -> None:
    _jobs.put((fn, args))
    with _lock:
        spawn = _jobs.qsize() > _waiting[0] and len(_threads) < WORKERS
        if spawn:
            thread = threading.Thread(target=_worker, name="lua-%d" % len(_threads),
                                      daemon=True)
            _threads.append(thread)
    if spawn:
        thread.start()


def _worker() -> None:
    while True:
        with _lock:
            _waiting[0] += 1
        fn, args = _jobs.get()
        with _lock:
            _waiting[0] -= 1
        fn(*args)


def _creates() -> bool:
    return True


def _same(reply):
    if isinstance(reply, CommandError):
        raise reply
    return reply


def _mark_busy(run) -> None:
    """The script passed busy-reply-threshold: its tenant's waiting clients
    get -BUSY now (server/connection.py asks busy_reply())."""
    if run.future is None or run.future.done():
        return
    run.busy = True
    tenant = run.conn.tenant
    held = tenant.held
    if held:
        tenant.held = []
        for conn in held:
            conn.server.loop.call_soon(conn._run_backlog)


_ALLOWED_BUSY = frozenset((b"script", b"function", b"shutdown", b"auth", b"hello",
                           b"multi", b"discard", b"watch", b"unwatch", b"reset", b"quit"))


def busy_reply(conn, args: list):
    """While a script of conn's tenant is past its time limit: None to run
    `args` (SCRIPT KILL and the few Redis allows), else the BUSY error."""
    name = args[0].lower()
    if name in _ALLOWED_BUSY:
        if name == b"script" and (len(args) < 2 or args[1].lower() != b"kill"):
            return errors.BUSY_SCRIPT
        if name == b"function" and (len(args) < 2 or args[1].lower() not in (b"kill", b"stats")):
            return errors.BUSY_SCRIPT
        return None
    return errors.BUSY_SCRIPT


def script_busy(tenant) -> bool:
    scripts = tenant.scripts
    return scripts is not None and scripts.running is not None and scripts.running.busy


def _arg(a) -> bytes:
    t = type(a)
    if t is bytes:
        return a
    if t is int:
        return b"%d" % a
    if t is float:
        if a.is_integer() and abs(a) < 1e17:
            return b"%d" % int(a)
        return repr(a).encode()
    raise TypeError


class _TooDeep(Exception):
    pass


class _Job:
    """A script's sliced command that the loop thread steps for the
    script's worker thread (Scripts._step_job)."""
    __slots__ = ("cmd", "deferred", "job", "pending")

    def __init__(self, cmd, deferred, job, pending) -> None:
        self.cmd = cmd
        self.deferred = deferred
        self.job = job
        self.pending = pending


def _error_text(value, funcname: bytes, rawget) -> str:
    """Redis's reply to a script that failed (luaCallFunction)."""
    if hasattr(value, "values") and not isinstance(value, (bytes, dict)):
        msg = rawget(value, b"err")
        source, line = rawget(value, b"source"), rawget(value, b"line")
        if type(msg) is not bytes:
            msg = b"execution failure" if msg is None else str(msg).encode()
        text = msg.decode("utf-8", "replace")
        if source is not None and line is not None:
            text += " script: %s, on %s:%s." % (funcname.decode(), source.decode("utf-8", "replace"),
                                                 _num(line))
        return text
    msg = value if type(value) is bytes else b"execution failure"
    return "ERR Error running script %s, %.100s\n" % (funcname.decode(),
                                                      msg.decode("utf-8", "replace"))


def _num(n) -> str:
    return "%d" % n if type(n) is int or (type(n) is float and n.is_integer()) else str(n)


def _bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


def _to_resp(v, resp3: bool, depth: int, script3: bool, rawget, run=None) -> bytes:
    """A Lua value -> RESP, as Redis's luaReplyToRedisReply. Tables are read
    with rawget: a script's metatable (an __index that errors or loops)
    must not run outside the script's protection. With `run` (a script in
    its runner), a long array pauses past the slice, as _parse."""
    if depth > MAX_DEPTH:
        raise _TooDeep
    t = type(v)
    if t is bytes:
        return _bulk(v)
    if t is bool:   # by the script's protocol (redis.setresp), then the caller's
        if script3:
            if resp3:
                return b"#t\r\n" if v else b"#f\r\n"
            return b":1\r\n" if v else b":0\r\n"
        return b":1\r\n" if v else (b"_\r\n" if resp3 else b"$-1\r\n")
    if t is int:
        return b":%d\r\n" % v
    if t is float:
        return b":%d\r\n" % int(v) if v == v and abs(v) != float("inf") else b":%d\r\n" % (
            -(1 << 63))
    if v is None or lua51.lua_type(v) != "table":
        # nil, functions, userdata (cjson.null, a full userdata here: Redis's
        # light userdata answers a null too)...
        return b"_\r\n" if resp3 else b"$-1\r\n"
    err = rawget(v, b"err")
    if type(err) is bytes:
        return b"-%s\r\n" % _oneline(err)
    ok = rawget(v, b"ok")
    if type(ok) is bytes:
        return b"+%s\r\n" % _oneline(ok)
    double = rawget(v, b"double")
    if type(double) in (int, float):
        text = _double(float(double))
        return b",%s\r\n" % text if resp3 else _bulk(text)
    big = rawget(v, b"big_number")
    if type(big) is bytes:
        big = _oneline(big)
        return b"(%s\r\n" % big if resp3 else _bulk(big)
    m = rawget(v, b"map")
    if m is not None and hasattr(m, "items"):
        parts = [_to_resp(k, resp3, depth + 1, script3, rawget, run)
                 + _to_resp(val, resp3, depth + 1, script3, rawget, run)
                 for k, val in m.items()]
        return b"%s%d\r\n%s" % (b"%" if resp3 else b"*", len(parts) * (1 if resp3 else 2),
                                  b"".join(parts))
    st = rawget(v, b"set")
    if st is not None and hasattr(st, "items"):
        parts = [_to_resp(k, resp3, depth + 1, script3, rawget, run) for k, _ in st.items()]
        return b"%s%d\r\n%s" % (b"~" if resp3 else b"*", len(parts), b"".join(parts))
    verb = rawget(v, b"verbatim_string")
    if verb is not None and hasattr(verb, "items"):
        fmt, text = rawget(verb, b"format"), rawget(verb, b"string")
        if type(fmt) is bytes and type(text) is bytes:
            if resp3:
                return b"=%d\r\n%s:%s\r\n" % (len(text) + 4, fmt[:3], text)
            return _bulk(text)
    parts = []
    i = 1
    while True:
        item = rawget(v, i)
        if item is None:
            break
        parts.append(_to_resp(item, resp3, depth + 1, script3, rawget, run))
        i += 1
        if run is not None and not i & 1023 and monotonic() > run.deadline:
            _pause(run)
    return b"*%d\r\n%s" % (len(parts), b"".join(parts))


def _oneline(b: bytes) -> bytes:
    return b.replace(b"\r", b" ").replace(b"\n", b" ")


def _double(d: float) -> bytes:
    if d != d:
        return b"nan"
    if d in (float("inf"), float("-inf")):
        return b"inf" if d > 0 else b"-inf"
    return (b"%.17g" % d)


def _parse(data: bytes, pos: int, lua, depth: int, run=None):
    """An encoded RESP reply -> (Lua value, next position), as Redis's
    redisProtocolToLuaType (RESP2 and RESP3). With `run` (a script in its
    runner, on the loop thread), a long reply's conversion (200k elements:
    ~130 ms) pauses past the script's slice, as the script does."""
    if depth > MAX_DEPTH:
        raise _TooDeep
    kind = data[pos:pos + 1]
    end = data.index(b"\r\n", pos)
    head = data[pos + 1:end]
    pos = end + 2
    if kind == b"$":
        n = int(head)
        if n < 0:
            return False, pos
        return data[pos:pos + n], pos + n + 2
    if kind == b":":
        return int(head), pos
    if kind == b"+":
        return lua.table_from({b"ok": head}), pos
    if kind == b"-":
        return lua.table_from({b"err": head, b"__raise": True}), pos
    if kind in (b"*", b"~", b">", b"%"):
        n = int(head)
        if n < 0:
            return False, pos
        if kind == b"%":
            m = lua.table()
            for i in range(n):
                k, pos = _parse(data, pos, lua, depth + 1, run)
                val, pos = _parse(data, pos, lua, depth + 1, run)
                m[k] = val
                if run is not None and not i & 1023 and monotonic() > run.deadline:
                    _pause(run)
            return lua.table_from({b"map": m}), pos
        items = []
        for i in range(n):
            item, pos = _parse(data, pos, lua, depth + 1, run)
            items.append(item)
            if run is not None and not i & 1023 and monotonic() > run.deadline:
                _pause(run)
        if kind == b"~":
            s = lua.table()
            for item in items:
                s[item] = True
            return lua.table_from({b"set": s}), pos
        return lua.table_from(items), pos
    if kind == b"_":
        return None, pos
    if kind == b"|":   # attributes: skipped, the reply that follows is the value (as Redis)
        for _ in range(2 * int(head)):
            _, pos = _parse(data, pos, lua, depth + 1)
        return _parse(data, pos, lua, depth, run)
    if kind == b"#":
        return head == b"t", pos
    if kind == b",":
        return lua.table_from({b"double": float(head)}), pos
    if kind == b"(":
        return lua.table_from({b"big_number": head}), pos
    if kind in (b"=", b"!"):
        n = int(head)
        body = data[pos:pos + n]
        pos += n + 2
        if kind == b"!":
            return lua.table_from({b"err": body, b"__raise": True}), pos
        return lua.table_from({b"verbatim_string": lua.table_from(
            {b"format": body[:3], b"string": body[4:]})}), pos
    raise ValueError("bad reply %r" % kind)
