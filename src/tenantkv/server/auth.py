"""Authentication on the server side: the user store off the event loop, and
what a successful AUTH does to a connection.

Checking a password costs an argon2id hash (tens of milliseconds of CPU, by
design), so it runs in a small, bounded pool of worker threads: a flood of
AUTH commands queues there and never takes the event loop or every thread.
AUTH returns a Deferred; the connection holds the client's later requests
until the check is done, while other clients are served. The login itself
happens on the loop with the user as it is then: an ACL change that landed
during the check is never lost (`_login`).

An unknown user is checked against a dummy hash and a disabled user is
checked like any other, so unknown user, disabled user and wrong password
take the same time and get the same WRONGPASS reply.

Brute force: failed attempts are counted per client address and per user
name (unknown names alike, so the throttle says nothing about which users
exist), in a score that halves every THROTTLE_HALF_LIFE seconds. Every
attempt passes two gates, its address's and its user name's, before the
password is checked. A gate lets at most MAX_INFLIGHT checks run at once;
once its score reaches its free count (ADDR_/USER_FREE_FAILURES) it lets
one attempt through at a time, each FAILURE_DELAY * 2**(failures - free)
seconds (at most MAX_DELAY) after the previous one finished. Waiting attempts wait on the
event loop (a future, a timer), not in the worker pool, so the pool keeps
serving the other addresses and users. A retry of one of the last few
failed (user, password) pairs of a gate is no new guess and is not counted
again (redis-py makes about eleven attempts of one wrong password: AUTH
user pass, AUTH pass, and its retries); the pairs are kept as HMACs under
a key made at start-up, never as text. A success clears its user's count
(not its address's: one valid account must not clear an address that
guesses at others). At most MAX_TRACKED addresses and names are tracked
(least recently used idle ones are forgotten first).
"""

import asyncio
import hashlib
import hmac
import secrets
import logging
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor

from tenantkv import errors
from tenantkv.errors import CommandError
from tenantkv.dispatch.replies import Deferred
from tenantkv.tenancy import hashing, permissions

log = logging.getLogger("tenantkv.auth")

HASH_WORKERS = 2   # at most this many hashes at once; more AUTHs wait in line
ACL_LOG_MAX = 128  # Redis's acllog-max-len default

# Brute-force throttle (see the module's docstring). An address may be a
# NAT with many users behind it: it gets more free failures than a name.
USER_FREE_FAILURES = 10    # failures per user name before any delay
ADDR_FREE_FAILURES = 30    # failures per client address before any delay
RECENT_GUESSES = 4         # failed pairs per gate whose retries are not counted
FAILURE_DELAY = 0.05       # the first delay, doubled by each further failure...
MAX_DELAY = 5.0            # ...up to this (under the 10 s default auth deadline)
THROTTLE_HALF_LIFE = 600.0 # seconds for a failure count to halve
MAX_INFLIGHT = 2           # checks at once per address / per user (1 once throttled)
MAX_TRACKED = 10_000       # addresses, and user names, remembered
_CAP_OVER_FREE = 12        # scores stop this far past the free count (the delay
                           # is at MAX_DELAY long before): bounds the cool-down


class _Gate:
    """One address's or one user name's throttle state."""
    __slots__ = ("free", "score", "updated", "inflight", "next_at", "waiters", "timer", "recent")

    def __init__(self, free: int, now: float) -> None:
        self.free = free        # failures before any delay
        self.score = 0.0        # failures, decaying
        self.updated = now
        self.inflight = 0       # attempts let through and not finished
        self.next_at = 0.0      # loop time before which no attempt is let through
        self.waiters: deque = deque()   # futures of waiting attempts, in order
        self.timer = None
        self.recent = None      # deque of the last failed guesses' HMACs

    def failures(self, now: float) -> float:
        if self.score:
            self.score *= 0.5 ** ((now - self.updated) / THROTTLE_HALF_LIFE)
            if self.score < 0.01:
                self.score = 0.0
        self.updated = now
        return self.score

    def delay(self, now: float) -> float:
        excess = int(self.failures(now) + 0.5) - self.free
        return 0.0 if excess < 0 else min(MAX_DELAY, FAILURE_DELAY * 2 ** excess)

    def idle(self) -> bool:
        return not self.inflight and not self.waiters


class Throttle:
    """The gates, by key: ("addr", host) or ("user", name)."""

    def __init__(self, loop) -> None:
        self.loop = loop
        self.gates: OrderedDict = OrderedDict()   # least recently used first

    def gate(self, key) -> _Gate:
        gate = self.gates.get(key)
        if gate is not None:
            self.gates.move_to_end(key)
            return gate
        if len(self.gates) >= MAX_TRACKED:
            self._forget_one()
        free = ADDR_FREE_FAILURES if key[0] == "addr" else USER_FREE_FAILURES
        gate = self.gates[key] = _Gate(free, self.loop.time())
        return gate

    def _forget_one(self) -> None:
        # Only idle gates: a busy one has attempts waiting on it. (If every
        # gate is busy the table grows, bounded by the number of connections.)
        for key, gate in self.gates.items():
            if gate.idle():
                del self.gates[key]
                return

    def _can_pass(self, gate: _Gate, now: float) -> bool:
        if now + 0.001 < gate.next_at:   # (timers may fire a little early)
            return False
        return gate.inflight < (MAX_INFLIGHT if gate.delay(now) == 0.0 else 1)

    async def acquire(self, gate: _Gate) -> bool:
        """Wait for `gate` to let this attempt through; True if the gate was
        throttling (had a delay) when the attempt arrived."""
        now = self.loop.time()
        throttled = gate.delay(now) > 0.0 or now < gate.next_at
        if not gate.waiters and self._can_pass(gate, now):
            gate.inflight += 1
            return throttled
        waiter = self.loop.create_future()
        gate.waiters.append(waiter)
        self._schedule(gate)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():   # let through meanwhile
                self.release(gate, checked=False)
            raise
        return True

    def release(self, gate: _Gate, checked: bool) -> None:
        """An attempt let through by `gate` is over; if a password was
        checked, the next one waits for the gate's delay from now."""
        gate.inflight -= 1
        if checked:
            now = self.loop.time()
            gate.next_at = max(gate.next_at, now + gate.delay(now))
        if gate.waiters:
            self._wake(gate)

    def _wake(self, gate: _Gate) -> None:
        if gate.timer is not None:
            gate.timer.cancel()
            gate.timer = None
        now = self.loop.time()
        while gate.waiters and self._can_pass(gate, now):
            waiter = gate.waiters.popleft()
            if waiter.done():   # its task was cancelled
                continue
            gate.inflight += 1
            waiter.set_result(None)
        self._schedule(gate)

    def _schedule(self, gate: _Gate) -> None:
        # Waiters held by time get a timer; held by attempts in flight,
        # release() wakes them.
        if gate.waiters and gate.timer is None and self.loop.time() < gate.next_at:
            gate.timer = self.loop.call_at(gate.next_at, self._wake, gate)
        elif gate.waiters and gate.timer is None and not gate.inflight:
            gate.timer = self.loop.call_soon(self._wake, gate)

    @staticmethod
    def failed(gate: _Gate, now: float, guess: bytes | None = None) -> None:
        """A failed attempt; `guess` (an HMAC of the pair) seen lately: not counted."""
        if guess is not None:
            if gate.recent is None:
                gate.recent = deque(maxlen=RECENT_GUESSES)
            elif guess in gate.recent:
                return
            gate.recent.append(guess)
        gate.score = min(gate.free + _CAP_OVER_FREE, gate.failures(now) + 1.0)

    @staticmethod
    def succeeded(gate: _Gate) -> None:
        gate.score = 0.0
        gate.next_at = 0.0
        gate.recent = None


def client_host(addr: str) -> str:
    """The address part of a Connection's addr ("ip:port", "[v6]:port", a path)."""
    if addr.startswith("["):
        return addr[1:addr.find("]")]
    return addr.rsplit(":", 1)[0] if ":" in addr else addr


def _user_key(username: bytes) -> bytes:
    # Names up to 16 KB arrive before AUTH: keep long ones as a digest.
    return username if len(username) <= 64 else b"#" + hashlib.sha256(username).digest()


class Authenticator:
    def __init__(self, server, store) -> None:
        self.server = server
        self.store = store
        self.pool = ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="tenantkv-auth")
        # ACL LOG entries, newest first (dicts: count, reason "auth" | "command",
        # context, object, username, timestamp-created/-last-updated, client-info)
        self.acl_log: deque = deque(maxlen=ACL_LOG_MAX)
        self.throttle = None    # made on first use, on the server's loop
        self._guess_key = secrets.token_bytes(32)   # for the throttle's HMACs of failed pairs
        self.attempts: set = set()   # AUTH tasks not finished
        # Moves (on the loop) each time an ACL write lands: see _login.
        self.revision = 0

    def close(self) -> None:
        for task in list(self.attempts):
            task.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    def check(self, username: bytes, password: bytes):
        """The stored user if `password` is right and the user enabled, else None.
        Runs in a worker thread."""
        try:
            user = self.store.get(username.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):   # a name no user can have
            user = None
        stored = user.password if user is not None else hashing.dummy_hash()
        if not hashing.verify_password(stored, password) or user is None or not user.enabled:
            return None
        if hashing.needs_rehash(stored):
            # Parameters changed since this hash was made: upgrade it now that
            # we hold the password (the only moment we ever do).
            # (Only if unchanged meanwhile: a password change must win.)
            self.store.set_hash(user.username, hashing.hash_password(password), expected=stored)
        return user

    def users_changed(self) -> None:
        """An ACL write (SETUSER, DELUSER, LOAD) is in the store and its
        live sessions are being updated, in this same loop step
        (commands/acl.py, `_write_in_pool`)."""
        self.revision += 1

    def _reread(self, seen, username: bytes, password: bytes):
        """`seen` passed the password check, but an ACL write landed since
        the row was read: the user as it is now, if it may still log in.
        Runs in a worker thread."""
        user = self.store.get(seen.username)
        if user is None or not user.enabled:
            return None
        if user.id != seen.id or user.password != seen.password:
            # Deleted and made again, or a new password: check that one.
            return self.check(username, password)
        return user

    def command_table(self, user) -> dict:
        """The raw-name -> Command table `user` may run (see tenancy.permissions)."""
        return permissions.command_table(user)

    def denied(self, conn, command_name: str, context: str = "toplevel") -> None:
        """A command refused by the user's rules (NOPERM): counted, and kept
        for ACL LOG (`context`: "toplevel", or "multi" inside a transaction)."""
        self.server.stats.acl_denied += 1
        self.log_event(conn, "command", command_name, conn.user, context)

    def log_event(self, conn, reason: str, object_name: str, username: str,
                  context: str = "toplevel") -> None:
        """Record a security event for ACL LOG, as Redis does: the same
        (reason, object, username, context) within 60 s only bumps the count
        of the newest entry; at most ACL_LOG_MAX entries, newest first."""
        now = time.time()
        for entry in self.acl_log:
            if (entry["reason"], entry["object"], entry["username"], entry["context"]) == \
                    (reason, object_name, username, context):
                if now - entry["timestamp-last-updated"] < 60:
                    entry["count"] += 1
                    entry["timestamp-last-updated"] = now
                    entry["client-info"] = conn.client_info()
                    return
                break
        self.acl_log.appendleft({
            "count": 1, "reason": reason, "context": context, "object": object_name,
            "username": username, "timestamp-created": now, "timestamp-last-updated": now,
            "client-info": conn.client_info(),
        })

    def start(self, conn, username: bytes, password: bytes, reply) -> Deferred:
        """AUTH `username` `password` for `conn`; on success the connection
        logs in and the client gets `reply()`; else WRONGPASS."""
        task = self.server.loop.create_task(self._login(conn, username, password))
        self.attempts.add(task)
        task.add_done_callback(self.attempts.discard)

        def finish(logged_in):
            if not logged_in:
                self.server.stats.auth_failures += 1
                self.log_event(conn, "auth", "AUTH", username.decode("utf-8", "replace"))
                raise CommandError(errors.WRONGPASS)
            return reply()

        return Deferred(task, finish)

    async def _login(self, conn, username: bytes, password: bytes) -> bool:
        """The attempt, then the login itself, with the user as it is at the
        moment of the login: True if `conn` is now logged in.

        Why no ACL change can be lost. An ACL write commits in a worker
        thread, then `users_changed` and the update of the user's live
        sessions (commands/acl.py, `_write_in_pool`) run in one loop step L;
        the login below runs in one loop step too, checking that
        `self.revision` is still the value read before the last read of the
        row. Loop steps do not overlap, so for any write either
        - L came before the login: the revision moved after it was noted
          (noted on the loop before the read was handed to the pool, so
          before the read; L comes after the commit). If the read came
          before the commit, the revision noted before it differs now, and
          the row is read again: the login uses a row read after the
          commit. (A read after the commit may be redone for nothing.)
        - L came after the login: the session is then authenticated as the
          user, and L updates it (new rules, root flag, namespace) or, for
          DELUSER, closes it, before the write's reply leaves.
        A write's reply leaves after L, so an AUTH sent after it reads the
        new row (the store is one SQLite connection behind a lock).
        The re-read loop ends: each turn needs another ACL write, which
        only root can make, landing within one store read."""
        revision = self.revision
        user = await self._attempt(conn, username, password)
        loop = self.server.loop
        while user is not None and self.revision != revision:
            revision = self.revision
            user = await loop.run_in_executor(self.pool, self._reread, user, username, password)
        if user is None or conn.closing:   # (closing: nobody to log in or answer)
            return False
        conn.login(user)
        return True

    async def _attempt(self, conn, username: bytes, password: bytes):
        """Pass the address's and the user name's gates, then check the
        password in the pool; the outcome feeds both gates."""
        loop = self.server.loop
        if self.throttle is None:
            self.throttle = Throttle(loop)
        throttle = self.throttle
        gates = (throttle.gate(("addr", client_host(conn.addr))),
                 throttle.gate(("user", _user_key(username))))
        held = []
        checked = throttled = False
        try:
            for gate in gates:
                throttled |= await throttle.acquire(gate)
                held.append(gate)
            if throttled:
                self.server.stats.auth_throttled += 1
            if conn.closing:   # gave up while waiting: nobody to answer
                return None
            user = await loop.run_in_executor(self.pool, self.check, username, password)
            checked = True
            now = loop.time()
            if user is None:
                guess = hmac.digest(self._guess_key, b"%d:%s%s" % (len(username), username, password),
                                    "sha256")
                for gate in gates:
                    throttle.failed(gate, now, guess)
            else:
                throttle.succeeded(gates[1])
            return user
        finally:
            for gate in held:
                throttle.release(gate, checked)
