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

Brute force. Failed attempts are counted per client address group (IPv4:
the address; IPv6: its /64, IPv4-mapped IPv6 as IPv4; unix sockets: one
group) and per user name (unknown names alike, so the throttle says nothing
about which users exist), in scores that halve every THROTTLE_HALF_LIFE
seconds. An attempt is never queued to wait out a delay: it is checked at
once, or refused at once with `errors.auth_throttled` (which limit, and in
how many seconds to retry), so a guesser cannot keep an owner's login
waiting until the auth timeout.

- An address group with a recent failure (score >= SUSPECT_SCORE) is
  *suspect*; the others are *clean*. An attempt from a clean address skips
  the user name's gate: failures elsewhere never hold back a right password
  from an address that has not failed.
- Three lanes in front of the hash pool, served in order: GOOD (a clean
  address that logged in within GOOD_FOR), FRESH (another clean one),
  SUSPECT. GOOD keeps one of the HASH_WORKERS threads to itself, and no
  other check starts while a GOOD one runs, so a flood of fresh addresses'
  first guesses cannot make owners wait (nor slow their hashes down); each
  CLEAN_INFLIGHT attempts at once of an address go one lane lower.
- Every address's gate: past ADDR_FREE_FAILURES, one attempt at a time and
  FAILURE_DELAY * 2**(failures - free) seconds (at most MAX_DELAY) after its
  last failure; earlier ones are refused. A suspect address has at most
  MAX_INFLIGHT attempts at once. This is what stops a sprayer of user names
  at one address (and bounds the names one address can make us track).
- A user name's gate holds back suspect attempts only, the same way past
  USER_FREE_FAILURES: a guesser spread over many addresses gets a clean
  guess or two per address, then only what the name's budget gives. Refused
  attempts are not failures (they cost nothing), so hammering cannot push
  the lockout further; a success does not clear a name's count (the owner
  logging in must not hand a guesser fresh free attempts).
- The SUSPECT lane's budget (server-wide): at most SUSPECT_WORKERS
  threads, SUSPECT_RATE failed checks/s (burst SUSPECT_BURST: a check takes
  a token, a success gives it back); beyond, refused. Its waiting attempts
  are served one address group at a time, in turn. So a spray from many
  addresses gets a guess or two per fresh address, then this rate, and
  cannot starve the owners' logins of argon2.

A retry of one of the last few failed (user, password) pairs of a gate is
no new guess and is not counted again (redis-py makes about eleven attempts
of one wrong password: AUTH user pass, AUTH pass, and its retries); the
pairs are kept as HMACs under a key made at start-up, never as text.

Memory: a gate is forgotten only when idle with a decayed score under
FORGET_BELOW and no success within GOOD_FOR (swept when the table doubles),
never by recency, so a name or address with recent failures keeps its state
for the whole window. What can be tracked is bounded by the failures that
can happen (each costs an argon2 check, and one address gets few checks
past its free count); as a last resort, past MAX_TRACKED gates new keys
share one overflow gate (an overflow address counts as suspect) instead of
pushing out live state.
"""

import asyncio
import hashlib
import hmac
import ipaddress
import math
import secrets
import logging
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor

from tenantkv import errors
from tenantkv.errors import CommandError
from tenantkv.logs import audit
from tenantkv.dispatch.replies import Deferred
from tenantkv.tenancy import hashing, permissions

log = logging.getLogger("tenantkv.auth")

HASH_WORKERS = 2   # at most this many hashes at once; more AUTHs wait in line
ACL_LOG_MAX = 128  # Redis's acllog-max-len default

# Brute-force throttle (see the module's docstring). An address may be a
# NAT with many users behind it: it gets more free failures than a name.
USER_FREE_FAILURES = 10    # failures per user name before suspect attempts are limited
ADDR_FREE_FAILURES = 30    # failures per address group before its attempts are limited
SUSPECT_SCORE = 0.5        # an address with this many (decayed) failures is suspect
RECENT_GUESSES = 4         # failed pairs per gate whose retries are not counted
FAILURE_DELAY = 0.05       # the first wait, doubled by each further failure...
MAX_DELAY = 60.0           # ...up to this
THROTTLE_HALF_LIFE = 600.0 # seconds for a failure count to halve
MAX_INFLIGHT = 32          # attempts at once per suspect address (1 per gate once limited)
CLEAN_INFLIGHT = 2         # checks at once per address in its lane; more go one lane lower
SUSPECT_WORKERS = 1        # hash threads suspect attempts may hold (of HASH_WORKERS)
GOOD_FOR = 3600.0          # seconds an address that logged in stays in the GOOD lane
SUSPECT_RATE = 10.0        # failed suspect checks per second, server-wide...
SUSPECT_BURST = 30.0       # ...with this burst
MAX_TRACKED = 200_000      # gates kept; past it, new keys share an overflow gate
FORGET_BELOW = 0.05        # an idle gate whose score decayed under this is forgotten
_SWEEP_MIN = 1024          # no sweep below this many gates
_CAP_OVER_FREE = 12        # scores stop this far past the free count (the wait
                           # is at MAX_DELAY by then): bounds the cool-down
GOOD, FRESH, SUSPECT = 0, 1, 2   # the lanes in front of the hash pool, served in this order
_OVERFLOW_ADDR = ("addr", None)   # (None: no group or name is a key like these)
_OVERFLOW_USER = ("user", None)


class _Gate:
    """One address group's or one user name's throttle state."""
    __slots__ = ("free", "score", "updated", "inflight", "next_at", "recent", "good")

    def __init__(self, free: int, now: float) -> None:
        self.free = free        # failures before any limit
        self.score = 0.0        # failures, decaying
        self.updated = now
        self.inflight = 0       # attempts admitted and not finished
        self.next_at = 0.0      # loop time before which a limited gate refuses
        self.recent = None      # deque of the last failed guesses' HMACs
        self.good = -GOOD_FOR   # loop time of the last success (an address's)

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

    def refusal(self, now: float, inflight: int) -> float:
        """0 if an attempt may pass now, else the seconds to wait: a limited
        gate passes one attempt at a time, once its wait is over; any gate
        at most `inflight` at once."""
        if self.delay(now) > 0.0:
            if now < self.next_at:
                return self.next_at - now
            inflight = 1
        return 1.0 if self.inflight >= inflight else 0.0


class Throttle:
    """The gates, by key: ("addr", group) or ("user", name); and the lanes in
    front of the hash pool."""

    def __init__(self, loop, pool) -> None:
        self.loop = loop
        self.pool = pool
        self.gates: dict = {}
        self.sweep_at = _SWEEP_MIN
        self.next_sweep = 0.0
        # Futures waiting for a thread, by lane; SUSPECT's by address group,
        # served in turn: one address's queue delays only itself.
        self.waiting = (deque(), deque(), OrderedDict())
        self.busy = [0, 0, 0]       # hash threads taken, by lane
        self.tokens = SUSPECT_BURST
        self.refilled = loop.time()

    def gate(self, key) -> _Gate:
        gate = self.gates.get(key)
        if gate is not None:
            return gate
        if len(self.gates) >= self.sweep_at:
            now = self.loop.time()
            if len(self.gates) < MAX_TRACKED or now >= self.next_sweep:
                # (Full even so: at most one sweep a second, not one per attempt.)
                self._sweep()
                self.next_sweep = now + 1.0
            if len(self.gates) >= MAX_TRACKED:
                key = _OVERFLOW_ADDR if key[0] == "addr" else _OVERFLOW_USER
                gate = self.gates.get(key)
                if gate is not None:
                    return gate
        free = ADDR_FREE_FAILURES if key[0] == "addr" else USER_FREE_FAILURES
        gate = self.gates[key] = _Gate(free, self.loop.time())
        return gate

    def _sweep(self) -> None:
        # Forget only gates with nothing left to remember: no attempt in
        # flight, score decayed to ~0 (so no wait pending either).
        now = self.loop.time()
        for key in [key for key, gate in self.gates.items()
                    if not gate.inflight and gate.failures(now) < FORGET_BELOW
                    and gate.good < now - GOOD_FOR]:
            del self.gates[key]
        self.sweep_at = min(MAX_TRACKED, max(_SWEEP_MIN, 2 * len(self.gates)))

    def suspect_address(self, gate: _Gate, now: float) -> bool:
        return gate.failures(now) >= SUSPECT_SCORE or gate is self.gates.get(_OVERFLOW_ADDR)

    def take_token(self, now: float) -> bool:
        """One suspect check from the server-wide budget, if there is one."""
        self.tokens = min(SUSPECT_BURST, self.tokens + (now - self.refilled) * SUSPECT_RATE)
        self.refilled = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def _may_start(self, lane: int) -> bool:
        busy = self.busy
        if lane == GOOD:
            return busy[0] + busy[1] + busy[2] < HASH_WORKERS
        # One thread is kept for addresses that logged in lately, and no
        # other check starts while one of theirs runs (two argon2 hashes at
        # once nearly double each one's time on a 2-core machine): a flood
        # of fresh addresses' first guesses cannot make their owners wait.
        return (not busy[0] and busy[1] + busy[2] < max(1, HASH_WORKERS - 1)
                and (lane == FRESH or busy[2] < SUSPECT_WORKERS))

    async def check(self, lane: int, group: str, recheck, fn, *args):
        """Run `fn(*args)` in the hash pool, queued in `lane`: GOOD before
        FRESH before SUSPECT (`group`: the attempt's address group). Given
        a thread, the attempt asks `recheck()` before its check: its gates
        may have closed while it waited (an error text, or None)."""
        waiter = self.loop.create_future()
        if lane == SUSPECT:
            self.waiting[SUSPECT].setdefault(group, deque()).append(waiter)
        else:
            self.waiting[lane].append(waiter)
        self._dispatch()
        try:
            await waiter   # (done already if a thread was free: no wait)
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():   # given a thread meanwhile
                self._give_back(lane)
            raise
        try:
            refusal = recheck()
            if refusal is not None:
                raise CommandError(refusal)
            return await self.loop.run_in_executor(self.pool, fn, *args)
        finally:
            self._give_back(lane)

    def _give_back(self, lane: int) -> None:
        self.busy[lane] -= 1
        self._dispatch()

    def _dispatch(self) -> None:
        for lane in (GOOD, FRESH, SUSPECT):
            while self.waiting[lane] and self._may_start(lane):
                waiter = self._next_waiter(lane)
                if not waiter.done():   # else its task was cancelled
                    self.busy[lane] += 1
                    waiter.set_result(None)

    def _next_waiter(self, lane: int):
        if lane != SUSPECT:
            return self.waiting[lane].popleft()
        groups = self.waiting[SUSPECT]
        group, waiters = next(iter(groups.items()))
        waiter = waiters.popleft()
        if waiters:
            groups.move_to_end(group)
        else:
            del groups[group]
        return waiter

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
        gate.next_at = max(gate.next_at, now + gate.delay(now))


def client_host(addr: str) -> str:
    """The address part of a Connection's addr ("ip:port", "[v6]:port", a path)."""
    if addr.startswith("["):
        return addr[1:addr.find("]")]
    return addr.rsplit(":", 1)[0] if ":" in addr else addr


def client_group(addr: str) -> str:
    """The throttle's address group of a Connection's addr: an IPv4 address,
    an IPv6 /64 (one host's or site's usual allocation: counting single
    IPv6 addresses would give a guesser 2**64 fresh addresses), an
    IPv4-mapped IPv6 address as its IPv4, and one group for unix sockets."""
    try:
        ip = ipaddress.ip_address(client_host(addr).split("%", 1)[0])
    except ValueError:
        return "local"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


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
        self.acl_log: deque = deque(maxlen=server.config["acl.log_max_len"])
        server.config.listeners.setdefault("acllog-max-len", []).append(self._set_log_max)
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

    def _set_log_max(self, length: int) -> None:
        """acllog-max-len: the newest entries are kept, as Redis trims."""
        self.acl_log = deque(list(self.acl_log)[:length], maxlen=length)

    def users_changed(self) -> None:
        """An ACL write (SETUSER, DELUSER, LOAD) is in the store and its
        live sessions are being updated, in this same loop step
        (commands/acl.py, `_write_in_pool`)."""
        self.revision += 1
        self.server.replication.users.changed()   # replicas get the new rows

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
        # Admission first, here: a refused attempt is answered in this loop
        # step, with no task, no future and no timer (a flood of refused
        # guesses must cost the loop as little as possible).
        ticket = self._admit(conn, username)
        task = self.server.loop.create_task(self._login(conn, username, password, ticket))
        self.attempts.add(task)
        task.add_done_callback(self.attempts.discard)

        def finish(logged_in):
            if not logged_in:
                self.server.stats.auth_failures += 1
                self.log_event(conn, "auth", "AUTH", username.decode("utf-8", "replace"))
                audit("auth-failed", addr=conn.addr, user=username)
                raise CommandError(errors.WRONGPASS)
            return reply()

        return Deferred(task, finish)

    async def _login(self, conn, username: bytes, password: bytes, ticket: tuple) -> bool:
        """The attempt, then the login itself, with the user as it is at the
        moment of the login: True if `conn` is now logged in, False for a
        wrong password, CommandError if its tenant has no room for it.

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
        user = await self._attempt(conn, username, password, ticket)
        loop = self.server.loop
        while user is not None and self.revision != revision:
            revision = self.revision
            user = await loop.run_in_executor(self.pool, self._reread, user, username, password)
        if user is None or conn.closing:   # (closing: nobody to log in or answer)
            return False
        # The tenant's connections quota (server/quotas.py): the right
        # password, but no room. The reply says so, and the connection stays
        # as it was (not logged in, or still the user it was), open, as a
        # failed AUTH leaves it in Redis: the client may try again later.
        full = self.server.quotas.admit_login(conn, user)
        if full is not None:
            audit("login-refused", noisy=True, addr=conn.addr, user=user.username,
                  limit="tenant-quota-connections")
            raise CommandError(full)
        conn.login(user)
        return True

    def _admit(self, conn, username: bytes) -> tuple:
        """Admit an attempt through its address's gate (and, from a suspect
        address, its user name's), or refuse it at once (CommandError). On
        the loop, synchronously. The ticket: (address gate, user name gate
        or None, lane, address group)."""
        loop = self.server.loop
        if self.throttle is None:
            self.throttle = Throttle(loop, self.pool)
        throttle = self.throttle
        now = loop.time()
        group = client_group(conn.addr)
        addr_gate = throttle.gate(("addr", group))
        suspect = throttle.suspect_address(addr_gate, now)
        wait = addr_gate.refusal(now, MAX_INFLIGHT if suspect else math.inf)
        limit = "from this address"
        user_gate = None
        if not wait and suspect:
            user_gate = throttle.gate(("user", _user_key(username)))
            wait = user_gate.refusal(now, math.inf)
            limit = "for this user name"
        # Each CLEAN_INFLIGHT attempts at once of an address wait one lane
        # lower: no address floods a lane ahead of the others.
        lane = SUSPECT if suspect else FRESH if addr_gate.good < now - GOOD_FOR else GOOD
        lane = min(SUSPECT, lane + addr_gate.inflight // CLEAN_INFLIGHT)
        if not wait and lane == SUSPECT and not throttle.take_token(now):
            wait, limit = 1.0, "server-wide"
        if wait:
            self.server.stats.auth_throttled += 1
            audit("auth-throttled", noisy=True, addr=conn.addr, user=username, limit=limit)
            raise CommandError(errors.auth_throttled(limit, max(1, math.ceil(wait))))
        for gate in (addr_gate, user_gate):
            if gate is not None:   # in flight from now: _attempt gives it back
                gate.inflight += 1
        return addr_gate, user_gate, lane, group

    async def _attempt(self, conn, username: bytes, password: bytes, ticket: tuple):
        """Check the password of an admitted attempt (`ticket`, from _admit)
        in its lane of the hash pool; a failure feeds both gates."""
        loop = self.server.loop
        throttle = self.throttle
        addr_gate, user_gate, lane, group = ticket
        held = (addr_gate,) if user_gate is None else (addr_gate, user_gate)

        def recheck():
            # (Only the waits: this attempt is one of the gates' inflight.)
            if conn.closing:   # gone while queued: no check for nobody
                return errors.auth_throttled("from this address", 1)
            now = loop.time()
            for gate, limit in ((addr_gate, "from this address"), (user_gate, "for this user name")):
                if gate is not None and gate.delay(now) > 0.0 and now < gate.next_at:
                    return errors.auth_throttled(limit, max(1, math.ceil(gate.next_at - now)))
            return None

        try:
            try:
                user = await throttle.check(lane, group, recheck, self.check, username, password)
            except CommandError:
                if not conn.closing:
                    self.server.stats.auth_throttled += 1
                    audit("auth-throttled", noisy=True, addr=conn.addr, user=username,
                          limit="while queued")
                if lane == SUSPECT:   # not checked: no guess spent
                    throttle.tokens = min(SUSPECT_BURST, throttle.tokens + 1.0)
                raise
            if user is None:
                now = loop.time()
                guess = hmac.digest(self._guess_key, b"%d:%s%s" % (len(username), username, password),
                                    "sha256")
                throttle.failed(addr_gate, now, guess)
                throttle.failed(user_gate or throttle.gate(("user", _user_key(username))), now, guess)
            else:
                addr_gate.good = loop.time()
                if lane == SUSPECT:   # the budget is for guesses: a login costs none
                    throttle.tokens = min(SUSPECT_BURST, throttle.tokens + 1.0)
            return user
        finally:
            for gate in held:
                gate.inflight -= 1
