"""Blocked clients: BLPOP and friends park a client until a key has data.

A blocking command first tries once, as its non-blocking form would. When
every key is empty it returns a `Blocked` reply instead: a Deferred (see
dispatch/replies.py) whose future the connection waits on with reading paused,
exactly as for AUTH. No coroutine and no polling: the client sits in the FIFO
queue of each of its keys (`db.blocked[key]`, in its tenant's database, so
another tenant's push can never reach it) with one loop timer for its timeout.

Whoever writes a key someone is blocked on reports it (dispatch/observers.py,
whose write hooks are installed while any client is blocked), and
`serve_ready` then hands the data to the waiting clients in the order they
blocked, right after the command that pushed it -- or after the whole EXEC
when the push was inside a transaction, as Redis does.
"""

from collections import deque
from time import monotonic

from tenantkv.errors import CommandError
from tenantkv.dispatch.replies import Deferred


def _reply_or_raise(result):
    if isinstance(result, CommandError):
        raise result
    return result


class Blocked(Deferred):
    """One parked client: its keys, how to serve it from a key, its timeout."""

    __slots__ = ("conn", "db", "keys", "kind", "serve", "timeout_reply", "timer", "events")

    def __init__(self, conn, keys: list, kind: type, serve, timeout: float, timeout_reply) -> None:
        loop = conn.server.loop
        super().__init__(loop.create_future(), _reply_or_raise)
        self.conn = conn
        self.db = db = conn.db
        self.keys = list(dict.fromkeys(keys))   # a key named twice waits once
        self.kind = kind              # the value type that can serve it (deque, ZSet)
        self.serve = serve            # serve(conn, key) -> reply, or None if the key cannot
        self.timeout_reply = timeout_reply
        self.events = conn.server.events
        for key in self.keys:
            queue = db.blocked.get(key)
            if queue is None:
                queue = db.blocked[key] = deque()
            queue.append(self)
        self.events.listen()
        self.timer = None
        if timeout > 0:
            # The loop's clock is read once per iteration, in whole ms (libuv):
            # it lags the real time, and a timer set from it could fire a
            # fraction of a ms early. Never early: add the lag and one ms.
            lag = max(0.0, monotonic() - loop.time())
            self.timer = loop.call_later(timeout + lag + 0.001, self.time_out)

    def _detach(self) -> None:
        blocked = self.db.blocked
        for key in self.keys:
            queue = blocked.get(key)
            if queue is not None:
                try:
                    queue.remove(self)
                except ValueError:
                    pass
                if not queue:
                    del blocked[key]
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.events.unlisten()

    def _finish(self, result) -> None:
        if not self.future.done():
            self._detach()
            self.future.set_result(result)

    def time_out(self) -> None:
        self._finish(self.timeout_reply)

    def unblock(self, error: str | None = None) -> None:
        """CLIENT UNBLOCK: as if the timeout had passed, or with an error."""
        self._finish(CommandError(error) if error else self.timeout_reply)

    def abandon(self) -> None:
        """The client went away: leave the queues, answer no one."""
        if not self.future.done():
            self._detach()
            self.future.cancel()

    def try_serve(self, key: bytes) -> bool:
        """`key` holds data: serve this client from it if its type fits."""
        if self.conn.closing:
            self.abandon()
            return False
        value = self.db.get(key)
        if value is None or type(value) is not self.kind:
            return False   # Redis 7.0: a value of another type leaves it blocked
        try:
            reply = self.serve(self.conn, key)
        except CommandError as exc:   # e.g. BLMOVE's destination holds a string
            self._finish(exc)
            return True
        if reply is None:
            return False
        self._finish(reply)
        return True


def serve_ready(events) -> None:
    """Serve the clients blocked on the keys in `events.ready`, in the order
    they blocked, while those keys hold data. Serving can fill other keys
    (BLMOVE pushes): they join `ready` and are served in the same pass."""
    if events.serving:
        return
    events.serving = True
    try:
        while events.ready:
            ready, events.ready = events.ready, []
            for db, key in ready:
                queue = db.blocked.get(key)
                if not queue:
                    continue
                for waiter in list(queue):
                    if key not in db.data:
                        break
                    waiter.try_serve(key)   # its serve() reports what it wrote
    finally:
        events.serving = False
