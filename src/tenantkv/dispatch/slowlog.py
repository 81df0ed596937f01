"""SLOWLOG's entries: the commands that ran longer than slowlog-log-slower-than.

Everything a client can name belongs to its tenant, and a slow-log entry
holds a command's arguments, so each tenant has its own log (`TenantLog`,
made at its first entry, on `tenant.slowlog`): a tenant reads, counts and
resets only its own, and another tenant's flood of slow commands cannot push
its entries out (slowlog-max-len is per tenant). A tenant's entry ids are its
own sequence (a server-wide id would tell it how many slow commands the
others ran). Root administers the server: SLOWLOG GET merges every tenant's
log, newest first, under server-wide ids; LEN counts them all, RESET clears
them all.

Root's view keeps Redis's six fields, so redis-cli, redis-py and the tools
parse it. The entries of root's own tenant are exactly Redis's; an entry of
another tenant has ` tenant=<tenant key> user=<user>` after its client name
(the sixth field; it starts with the space when the client has no name).
Client names, user names and tenant keys cannot contain spaces, so the first
space always starts the tag.

The arguments are stored as Redis stores them (slowlogCreateEntry): at most
32 (the 32nd says how many more there were), each cut at 128 bytes with
"... (N more bytes)", and with the secrets Redis redacts replaced by
"(redacted)" (redactClientCommandArgument: AUTH, HELLO's AUTH, ACL
SETUSER/GETUSER/DELUSER, MIGRATE's AUTH/AUTH2, CONFIG SET of a sensitive
parameter). So an entry is small and a log is bounded: slowlog-max-len
entries of at most 32 * ~150 bytes per tenant.
"""

from collections import deque
from heapq import merge
from itertools import islice
from time import time

from tenantkv.config import SETTINGS, is_secret
from tenantkv.dispatch.monitor import REDACT, REDACTED

MAX_ARGC = 32      # SLOWLOG_ENTRY_MAX_ARGC
MAX_STRING = 128   # SLOWLOG_ENTRY_MAX_STRING

# Redis's SENSITIVE_CONFIG parameters, and tenantkv's secret settings (and
# config.is_secret's, which the audit log hides too).
SENSITIVE_CONFIGS = frozenset(
    [b"masteruser", b"masterauth", b"requirepass", b"tls-key-file-pass",
     b"tls-client-key-file-pass"]
    + [s.redis_name.encode() for s in SETTINGS if s.secret and s.redis_name])


def _redact_acl(args: list) -> list:
    if len(args) >= 3:
        sub = args[1].lower()
        if sub in (b"setuser", b"deluser"):
            return args[:2] + [REDACTED] * (len(args) - 2)
        if sub == b"getuser" and len(args) == 3:
            return args[:2] + [REDACTED]
    return args


def _redact_config(args: list) -> list:
    if len(args) < 4 or args[1].lower() != b"set":
        return args
    args = list(args)
    for i in range(2, len(args) - 1, 2):
        name = args[i].lower()
        if name in SENSITIVE_CONFIGS or is_secret(name.decode("latin-1")):
            args[i + 1] = REDACTED
    return args


REDACT_SLOWLOG = {**REDACT, "acl": _redact_acl, "config": _redact_config}


def stored_args(cmd, args: list) -> list:
    """The arguments as an entry keeps them: redacted, trimmed, copied."""
    redact = REDACT_SLOWLOG.get(cmd.name.partition("|")[0])
    if redact is not None:
        args = redact(args)
    count = len(args)
    shown = []
    for j in range(min(count, MAX_ARGC)):
        if j == MAX_ARGC - 1 and count > MAX_ARGC:
            shown.append(b"... (%d more arguments)" % (count - MAX_ARGC + 1))
            break
        arg = args[j]
        if len(arg) > MAX_STRING:
            arg = arg[:MAX_STRING] + b"... (%d more bytes)" % (len(arg) - MAX_STRING)
        else:
            arg = bytes(arg)   # not a view of a buffer that may be reused
        shown.append(arg)
    return shown


class TenantLog:
    """One tenant's slow log: entries newest first, and its id sequence.
    An entry: (server id, tenant id, unix time, microseconds, args,
    client address, client name, user name)."""
    __slots__ = ("entries", "next_id")

    def __init__(self) -> None:
        self.entries: deque = deque()
        self.next_id = 0


class SlowLog:
    """The server's side: the settings, the server-wide id, and the reads."""

    def __init__(self, tenants: dict) -> None:
        self.tenants = tenants   # name -> Tenant (the server's table)
        self.slower_than = 10000   # microseconds; < 0: off
        self.max_len = 128
        self.next_id = 0

    def threshold(self) -> float:
        """Seconds from which a command is logged (inf: off)."""
        if self.slower_than < 0 or self.max_len == 0:
            return float("inf")
        return self.slower_than / 1e6

    def record(self, client, cmd, args: list, seconds: float) -> None:
        if self.slower_than < 0 or self.max_len == 0:
            return
        usec = int(seconds * 1e6)
        if usec < self.slower_than:
            return
        tenant = client.tenant
        log = tenant.slowlog
        if log is None:
            log = tenant.slowlog = TenantLog()
        entries = log.entries
        entries.appendleft((self.next_id, log.next_id, int(time()), usec,
                            stored_args(cmd, args), client.addr.encode(), bytes(client.name or b""),
                            client.user.encode()))
        self.next_id += 1
        log.next_id += 1
        while len(entries) > self.max_len:
            entries.pop()

    def _logs(self, client):
        if client.root:
            return [(t, t.slowlog) for t in self.tenants.values() if t.slowlog is not None]
        log = client.tenant.slowlog
        return [(client.tenant, log)] if log is not None else []

    def get(self, client, count: int) -> list:
        logs = self._logs(client)
        if not client.root:
            entries = logs[0][1].entries if logs else ()
            return [[e[1], e[2], e[3], e[4], e[5], e[6]]
                    for e in islice(entries, None if count < 0 else count)]
        own = client.tenant
        tagged = []
        for tenant, log in logs:
            if tenant is own:
                tagged.append(log.entries)
            else:
                tag = b" tenant=" + tenant.name.encode() + b" user="
                tagged.append(e[:6] + (e[6] + tag + e[7],) for e in log.entries)
        newest = merge(*tagged, key=lambda e: -e[0])
        return [[e[0], e[2], e[3], e[4], e[5], e[6]]
                for e in islice(newest, None if count < 0 else count)]

    def length(self, client) -> int:
        return sum(len(log.entries) for _, log in self._logs(client))

    def reset(self, client) -> None:
        for _, log in self._logs(client):
            log.entries.clear()
