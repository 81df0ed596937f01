"""CLIENT PAUSE / UNPAUSE: commands held until a pause ends (issue 16).

Redis 7.0's semantics (processCommand, pauseClients): while paused, a
client's command is postponed, not refused: it runs, in order, when the
pause ends (its timeout, or CLIENT UNPAUSE). ALL holds every command (CLIENT
UNPAUSE of a paused client too: only the timeout, or a client the pause does
not hold, ends it); WRITE holds the write commands, those that may replicate
(PUBLISH, SPUBLISH, PFCOUNT, EVAL, EVALSHA, FCALL: Redis's CMD_MAY_REPLICATE,
which COMMAND INFO does not show) and an EXEC whose queue holds one; reads go
on. A request refused before it runs (unknown command, wrong arity, no
permission) is answered at once, as in Redis. Two pauses of one scope make
one: the stronger kind, the later end.

Tenancy: root's pause holds every client of the server; a tenant's holds
only that tenant's clients (the others keep running). A tenant's UNPAUSE
ends its own pause; root's ends every pause.

Cost: nothing while nothing is paused. During a pause every command's
handler (under WRITE pauses only, every command it may hold) is wrapped (dispatch/observers.py, set_layer) by the gate below: a
client it holds gets a Deferred whose finish is RETRY (dispatch/replies.py),
so the connection parks it as it parks AUTH's password check (reading
paused, the rest of its pipeline kept in order) and, when the future is
done, runs the same request again from the start. Inside EXEC nothing is
held (the EXEC itself was, or was let through).
"""

from time import monotonic

from tenantkv.dispatch.replies import RETRY, Deferred

WRITE, ALL = 1, 2

# Redis 7.0's CMD_MAY_REPLICATE commands (src/commands/*.json).
MAY_REPLICATE = frozenset(("eval", "evalsha", "fcall", "pfcount", "publish", "spublish"))

# The longest pause the timer is asked for (a longer one is as good as forever).
MAX_SECONDS = 10 * 365 * 86400


def _writes(cmd) -> bool:
    return "write" in cmd.flags or cmd.name in MAY_REPLICATE


def _queue_writes(conn) -> bool:
    """Whether a client's MULTI queue holds a write (EXEC is then a write)."""
    for cmd, args in conn.multi or ():
        if cmd.subcommands and len(args) > 1:
            cmd = cmd.subcommands.get(args[1].lower(), cmd)
        if _writes(cmd):
            return True
    return False


class Pauses:
    """The pauses in force: root's (the server's) and each tenant's."""

    def __init__(self, server) -> None:
        self.server = server
        self.everyone = None    # root's pause: [kind, end (monotonic)], or None
        self.tenants: dict = {}   # tenant -> [kind, end]
        self.postponed: list = []   # (conn, future, args, writes), in arrival order
        self.timer = None
        # The strongest pause in force: under WRITE pauses only, the gate
        # wraps only the commands it may hold (reads cost nothing more).
        self.strongest = 0

    # -- CLIENT PAUSE / UNPAUSE --------------------------------------------------

    def pause(self, conn, seconds: float, kind: int) -> None:
        end = monotonic() + min(seconds, MAX_SECONDS)
        current = self.everyone if conn.root else self.tenants.get(conn.tenant)
        if current is not None:
            current[0] = max(current[0], kind)
            current[1] = max(current[1], end)
        elif conn.root:
            self.everyone = [kind, end]
        else:
            self.tenants[conn.tenant] = [kind, end]
        self.update()

    def unpause(self, conn) -> None:
        if conn.root:
            self.everyone = None
            self.tenants.clear()
        else:
            self.tenants.pop(conn.tenant, None)
        self.update()

    def kind_for(self, conn) -> int:
        """How `conn` is paused now: 0, WRITE or ALL."""
        kind = 0
        everyone = self.everyone
        if everyone is not None:
            kind = everyone[0]
        if self.tenants:
            own = self.tenants.get(conn.tenant)
            if own is not None and own[0] > kind:
                kind = own[0]
        return kind

    # -- the pauses' ends ----------------------------------------------------------

    def update(self) -> None:
        """Drop the pauses that ended, let the held commands that no pause
        holds any more run (in the order they came), set the timer for the
        next end, and wrap the handlers only while a pause lasts."""
        now = monotonic()
        if self.everyone is not None and self.everyone[1] <= now:
            self.everyone = None
        for tenant, (_, end) in list(self.tenants.items()):
            if end <= now:
                del self.tenants[tenant]
        held = []
        for entry in self.postponed:
            conn, future, args, writes = entry
            if conn.closing or future.done():
                continue
            kind = self.kind_for(conn)
            if kind == ALL or (kind == WRITE and writes):
                held.append(entry)
            else:
                future.set_result(args)   # its done callbacks run in this order
        self.postponed = held
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        ends = [end for _, end in self.tenants.values()]
        if self.everyone is not None:
            ends.append(self.everyone[1])
        events = self.server.events
        if ends:
            self.timer = self.server.loop.call_later(max(0.0, min(ends) - now), self.update)
            strongest = max([kind for kind, _ in self.tenants.values()]
                            + ([self.everyone[0]] if self.everyone is not None else []))
            if strongest != self.strongest:
                events.set_layer("gate", None)   # what the gate wraps changes
            self.strongest = strongest
            events.set_layer("gate", self)
        else:
            self.strongest = 0
            events.set_layer("gate", None)

    # -- the gate ----------------------------------------------------------------------

    def wrap(self, cmd, handler):
        """`handler` behind the gate: held while its client is paused for it."""
        pauses = self
        events = self.server.events
        is_exec = cmd.name == "exec"
        writes = _writes(cmd)
        write_subs = frozenset(name for name, sub in cmd.subcommands.items() if _writes(sub)) \
            if cmd.subcommands else frozenset()
        if self.strongest < ALL and not (writes or write_subs or is_exec):
            return None

        def gated(conn, args):
            if conn.transport is None or events.in_exec:
                return handler(conn, args)   # the log's replay; inside EXEC
            kind = pauses.kind_for(conn)
            if kind:
                write = (writes or (write_subs and len(args) > 1 and args[1].lower() in write_subs)
                         or (is_exec and _queue_writes(conn)))
                if kind == ALL or write:
                    return pauses.postpone(conn, args, write)
            return handler(conn, args)

        gated.__wrapped__ = handler
        return gated

    def postpone(self, conn, args: list, writes: bool) -> Deferred:
        future = self.server.loop.create_future()
        self.postponed.append((conn, future, args, bool(writes)))
        return Deferred(future, RETRY)
