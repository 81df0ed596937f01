"""Replies that come later: a command whose work runs off the event loop.

AUTH hashes a password with argon2id (tens of milliseconds of CPU): that runs
in a worker thread, and the handler returns a Deferred instead of a reply. The
connection then holds the client's later requests, in order, with reading
paused, until the future is done; `finish(result)` runs on the event loop and
returns the reply (or raises CommandError). Other clients are served meanwhile.
"""


# A handler's way to say "nothing to send": it wrote already (or closed the
# connection, as QUIT does).
NO_REPLY = object()


def RETRY(result):
    """The `finish` of a Deferred that postpones its request (CLIENT PAUSE,
    dispatch/pause.py): when its future is done, the connection runs the
    request (the future's result, its arguments) again from the start."""
    raise RuntimeError("a postponed request is run again by its connection")


class Deferred:
    __slots__ = ("future", "finish", "cmd", "args")

    def __init__(self, future, finish) -> None:
        self.future = future    # an asyncio future or task (run_in_executor, create_task)
        self.finish = finish    # result -> reply, called on the event loop
        self.cmd = None         # set by the connection, for commandstats
        self.args = None        # the request, for SLOWLOG when it finishes
