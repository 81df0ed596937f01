"""The Prometheus endpoint (`metrics-port`, off by default): server series and
per-tenant series, labelled by tenant name, in the text exposition format of
`prometheus-client`.

Served from the server's own event loop, because the figures live in objects
only the loop may walk (a thread iterating `server.tenants` while a command
adds one would fail). A scrape must not stall the commands, so:
- nothing walks keys: a tenant's figures are counters it keeps already
  (keyspace/tenant.py) and the length of each database's dict;
- the walk over the tenants runs in slices of SLICE tenants, yielding to the
  loop in between (10,000 tenants: ~SLICE tenants' worth of delay at a time);
- the formatting, the biggest part, runs in a worker thread on a snapshot
  the loop made (plain dicts and numbers nobody else holds);
- one scrape at a time (requests meanwhile share its result), and at most MAX_CONNECTIONS connections open to the
  endpoint, each with a deadline for its request (a slow or hostile scraper
  cannot pile up work or sockets; at the limit the oldest connection still
  to send its request is closed for a newcomer).

Label cardinality: the `metrics-max-tenants` most active tenants (commands
since the start or the last CONFIG RESETSTAT) get series of their own; all
the others are summed under tenant="other", so 100k tenants cost one scrape
the size of N+1 tenants. A tenant's label is its user's name (a namespace's:
the namespace), read from the user store in a worker thread and cached until
an ACL change or an unknown tenant shows up.

Slow commands: the commands the slowlog recorded for a tenant, ever (its
log's id sequence, dispatch/slowlog.py, which SLOWLOG RESET leaves alone).

Optional HTTP basic auth (`metrics.user` / `metrics.password`, the password a
secret: not in CONFIG GET, never logged). Basic auth travels in clear text:
bind the endpoint to an address only the scraper reaches.
"""

import asyncio
import base64
import hmac
import heapq
import logging
import resource
import time

from tenantkv.dispatch.table import COMMANDS

log = logging.getLogger("tenantkv.metrics")

SLICE = 500              # tenants walked per loop step
MAX_CONNECTIONS = 16     # open connections to the endpoint
REQUEST_TIMEOUT = 10.0   # seconds a client has to send its request head
MAX_HEAD = 8192          # bytes of request line and headers
OTHER = "other"          # the label of every tenant outside the top N
DEFAULT_LABEL = "default"
NAMES_RETRY = 60.0       # seconds between rereads of the user names for unnamed tenants


class Endpoint:
    def __init__(self, server) -> None:
        self.server = server
        self.listeners: list = []
        self.waiting: dict = {}   # connections still to send their request, oldest first
        self.answering = 0        # connections being answered
        self.running = None          # the scrape under way (a Future of its text)
        self.names: dict = {}        # tenant key -> label (user or namespace name)
        self.names_revision = None
        self.names_read = 0.0        # monotonic time of the last read
        self.last_duration = 0.0     # seconds the previous scrape took
        self.scrapes = 0
        config = server.config
        user, password = config["metrics.user"], config["metrics.password"]
        # The whole header value expected, compared in constant time.
        self.expected = None
        if user or password:
            token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
            self.expected = ("Basic " + token).encode()

    async def start(self) -> None:
        port = self.server.config["metrics.port"]
        listeners = []
        try:
            for host in self.server.config["network.bind"].split():
                listeners.append(await asyncio.start_server(
                    self._serve, host=host, port=port, limit=MAX_HEAD, reuse_address=True))
        except BaseException:
            for listener in listeners:
                listener.close()
            raise
        self.listeners = listeners
        bound = [s.getsockname() for lst in listeners for s in lst.sockets]
        log.info("Metrics endpoint on %s", ", ".join("%s:%d" % (a[0], a[1]) for a in bound))

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        self.listeners = []

    # -- HTTP ------------------------------------------------------------------

    async def _serve(self, reader, writer) -> None:
        # At the limit, the oldest connection still to send its request
        # makes room (as the server's unauthenticated clients): idle sockets
        # cannot lock the scraper out. With none such, the newcomer is closed.
        waiting = self.waiting
        if len(waiting) + self.answering >= MAX_CONNECTIONS:
            if not waiting:
                writer.close()
                return
            oldest = next(iter(waiting))
            del waiting[oldest]
            oldest.transport.abort()
        waiting[writer] = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, ConnectionError):
            writer.close()
            return
        finally:
            made_room = waiting.pop(writer, True) is True   # (True: it was pushed out)
        if made_room:
            writer.close()
            return
        self.answering += 1
        try:
            status, headers, body = await self._respond(head)
            lines = ["HTTP/1.1 %s" % status, "Content-Length: %d" % len(body),
                     "Connection: close", *headers]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            self.answering -= 1
            writer.close()

    async def _respond(self, head: bytes) -> tuple:
        text = "text/plain; charset=utf-8"
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return "400 Bad Request", ["Content-Type: " + text], b"bad request\n"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if self.expected is not None:
            given = b""
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"authorization":
                    given = value.strip()
            if not hmac.compare_digest(given, self.expected):
                return ("401 Unauthorized", ['WWW-Authenticate: Basic realm="tenantkv"',
                                             "Content-Type: " + text], b"unauthorized\n")
        if target not in (b"/metrics", b"/"):
            return "404 Not Found", ["Content-Type: " + text], b"not found: try /metrics\n"
        if method not in (b"GET", b"HEAD"):
            return "405 Method Not Allowed", ["Allow: GET, HEAD", "Content-Type: " + text], b""
        # The classic text format: every Prometheus version (Debian's too) reads it.
        from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE
        body = await self.scrape()
        return "200 OK", ["Content-Type: " + CONTENT_TYPE], b"" if method == b"HEAD" else body

    # -- the scrape -------------------------------------------------------------

    async def scrape(self) -> bytes:
        """The exposition text. Requests that arrive while a scrape runs
        share its result: however many ask at once, one scrape's work."""
        if self.running is not None:
            return await asyncio.shield(self.running)
        loop = asyncio.get_running_loop()
        self.running = loop.create_future()
        try:
            started = time.perf_counter()
            snapshot = await self.snapshot()
            await self._refresh_names(snapshot["top"])
            snapshot["names"] = self.names
            snapshot["previous_duration"] = self.last_duration
            snapshot["scrapes"] = self.scrapes
            body = await loop.run_in_executor(None, render, snapshot)
            self.last_duration = time.perf_counter() - started
            self.scrapes += 1
            self.running.set_result(body)
            return body
        except asyncio.CancelledError:
            self.running.cancel()
            raise
        except Exception as exc:
            self.running.set_exception(exc)
            self.running.exception()   # retrieved: no "never retrieved" warning if none waits
            raise
        finally:
            self.running = None

    async def snapshot(self) -> dict:
        """The figures, copied on the loop (in slices) into plain objects.
        Per tenant only ints in flat lists: 10,000 live tuples would start
        the garbage collector's passes over the whole heap, a stall of its own."""
        server = self.server
        limit = server.config["metrics.max_tenants"]
        tenants = list(server.tenants.values())
        commands = []   # per tenant, in `tenants` order: commands run
        held = []       # keys held
        keys = expires = 0
        top = []        # indexes of the N most active so far

        def activity(i: int) -> tuple:   # ties broken by name: a stable choice
            return commands[i], tenants[i].name

        for start in range(0, len(tenants), SLICE):
            if start:
                await asyncio.sleep(0)
            for tenant in tenants[start:start + SLICE]:
                tenant.fold()
                calls = tenant._calls
                count = 0
                for db in tenant.dbs:
                    count += len(db.data)
                    expires += len(db.expires)
                keys += count
                held.append(count)
                commands.append(sum(calls.values()) if calls else 0)
            if limit:   # merged slice by slice: no one long step at the end
                top = heapq.nlargest(limit, [*top, *range(start, len(commands))], key=activity)
        rows = [tenant_row(tenants[i], held[i]) for i in top]
        chosen = set(top)
        other = empty_row()
        others = 0
        for start in range(0, len(tenants), SLICE):
            await asyncio.sleep(0)
            for i in range(start, min(start + SLICE, len(tenants))):
                if i not in chosen:
                    add_tenant(other, tenants[i], held[i])
                    others += 1
        return {"server": server_figures(server, keys, expires, len(tenants)),
                "top": rows, "other": other if others else None, "others": others}

    async def _refresh_names(self, rows: list) -> None:
        auth = self.server.auth
        if auth is None:
            return
        revision = auth.revision
        if revision == self.names_revision:
            # A user made offline (`tenantkv user add`) moves no revision: a
            # tenant without a name rereads, at most every NAMES_RETRY s (an
            # orphaned tenant has no name ever).
            now = time.monotonic()
            if now < self.names_read + NAMES_RETRY or all(
                    row["key"] in self.names or row["key"].startswith(":") for row in rows):
                return
        self.names_read = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            users = await loop.run_in_executor(None, auth.store.list)
        except Exception as exc:   # a scrape without names beats no scrape
            log.warning("Metrics: cannot read the user store for tenant names: %s", exc)
            return
        names = {}
        for user in users:
            if user.own_tenant:
                names[user.own_tenant] = user.username
        for user in users:
            if user.namespace is not None:
                names[user.namespace] = user.namespace
        self.names = names
        self.names_revision = revision


def server_figures(server, keys: int, expires: int, tenants: int) -> dict:
    stats = server.stats
    memory = server.memory
    from tenantkv.util.rss import rss_bytes
    rss = rss_bytes()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    persistence = {}
    for line in [*server.snapshot.info_lines(), *server.aof.info()]:
        name, _, value = line.partition(":")
        if value in ("ok", "err"):
            persistence[name] = 1 if value == "ok" else 0
        else:
            try:
                persistence[name] = int(value)
            except ValueError:
                pass
    commands = {}
    for cmd in COMMANDS.values():
        for leaf in leaves(cmd):
            if leaf.calls or leaf.failed or leaf.rejected:
                commands[leaf.name] = (leaf.calls, leaf.usec, leaf.failed, leaf.rejected)
    return {
        "uptime": time.monotonic() - server.started_monotonic,
        "clients": len(server.clients),
        "maxclients": server.config["network.maxclients"],
        "connections_received": stats.total_connections_received,
        "rejected_connections": stats.rejected_connections,
        "commands_processed": sum(c.calls for c in COMMANDS.values()),
        "commands": commands,
        "errors": dict(stats.errors),
        "error_replies": stats.total_error_replies,
        "auth_failures": stats.auth_failures,
        "auth_throttled": stats.auth_throttled,
        "acl_denied": stats.acl_denied,
        "used_memory": memory.used() if memory.on else rss,
        "rss": rss,
        "maxmemory": server.config["limits.maxmemory"],
        "keys": keys,
        "expires": expires,
        "expired_keys": stats.expired_keys,
        "evicted_keys": stats.evicted_keys,
        "evicted_clients": stats.evicted_clients,
        "persistence": persistence,
        "tenants": tenants,
        "cpu_user": usage.ru_utime,
        "cpu_sys": usage.ru_stime,
    }


def leaves(cmd):
    """The Commands that count calls of their own in commandstats' sense: a
    plain command, or a container's subcommands and its bare form."""
    if not cmd.subcommands:
        return (cmd,)
    bare = cmd.bare
    subs = tuple(cmd.subcommands.values())
    return subs if bare is None else (bare, *subs)


def tenant_row(tenant, keys: int) -> dict:
    row = empty_row()
    row["key"] = tenant.name
    add_tenant(row, tenant, keys)
    quota = tenant.quota
    row["quota"] = {"memory": quota.memory, "keys": quota.keys,
                    "connections": quota.connections, "rate": quota.rate}
    return row


def empty_row() -> dict:
    return {"key": None, "commands": {}, "errors": {}, "keys": 0, "used_memory": 0,
            "clients": 0, "connections": 0, "auth_failures": 0, "acl_denied": 0,
            "quota_refused": {}, "quota": None, "slow_commands": 0}


def add_tenant(row: dict, tenant, keys: int) -> None:
    """Add `tenant`'s figures to `row` (its own, or "other"'s sum): only
    counters it keeps; an idle tenant costs a few attribute reads."""
    commands = row["commands"]
    for counters, index in ((tenant._calls, 0), (tenant._failed, 1), (tenant._rejected, 2)):
        if counters:
            for cmd, count in counters.items():
                if cmd.subcommands:   # a container: its subcommands are counted
                    continue
                entry = commands.get(cmd.name)
                if entry is None:
                    entry = commands[cmd.name] = [0, 0, 0]
                entry[index] += count
    for field, counters in (("errors", tenant._errors), ("quota_refused", tenant.quota_refused)):
        if counters:
            total = row[field]
            for name, count in counters.items():
                total[name] = total.get(name, 0) + count
    row["keys"] += keys
    row["used_memory"] += tenant.used_memory
    row["clients"] += len(tenant.clients)
    row["connections"] += tenant.connections
    row["auth_failures"] += tenant.auth_failures
    row["acl_denied"] += tenant.acl_denied
    log = tenant.slowlog
    row["slow_commands"] += log.next_id if log is not None else 0


def labels_for(rows: list, names: dict) -> list:
    """One distinct label per row: the user's (or namespace's) name; the
    tenant key when that name is taken (a user named like a namespace, or
    "other") or unknown."""
    taken = {OTHER}
    labels = []
    for row in rows:
        key = row["key"]
        label = DEFAULT_LABEL if key.startswith(":") else names.get(key, key)
        if label in taken:
            label = key
        n = 2
        base = label
        while label in taken:
            label = "%s#%d" % (base, n)
            n += 1
        taken.add(label)
        labels.append(label)
    return labels


def render(snapshot: dict) -> bytes:
    """The exposition text of a snapshot (a worker thread: nothing here
    touches the server)."""
    from prometheus_client import generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    families = []

    def gauge(name, doc, value=None, labels=()):
        family = GaugeMetricFamily("tenantkv_" + name, doc, value=value,
                                   labels=None if value is not None else labels)
        families.append(family)
        return family

    def counter(name, doc, value=None, labels=()):
        family = CounterMetricFamily("tenantkv_" + name, doc, value=value,
                                     labels=None if value is not None else labels)
        families.append(family)
        return family

    s = snapshot["server"]
    gauge("uptime_seconds", "Seconds since the server started.", s["uptime"])
    gauge("connected_clients", "Client connections open now.", s["clients"])
    gauge("maxclients", "Most simultaneous clients (maxclients).", s["maxclients"])
    counter("connections_received", "Client connections accepted.", s["connections_received"])
    counter("rejected_connections", "Connections refused (maxclients).", s["rejected_connections"])
    counter("commands_processed", "Commands run, every tenant.", s["commands_processed"])
    calls = counter("commands", "Calls by command, every tenant.", labels=["command"])
    usec = counter("commands_duration_seconds", "Seconds spent in each command.", labels=["command"])
    failed = counter("commands_failed", "Calls that failed while running, by command.",
                     labels=["command"])
    rejected = counter("commands_rejected", "Calls refused before running, by command.",
                       labels=["command"])
    for name, (n, us, f, r) in sorted(s["commands"].items()):
        calls.add_metric([name], n)
        usec.add_metric([name], us / 1e6)
        failed.add_metric([name], f)
        rejected.add_metric([name], r)
    counter("error_replies", "Error replies sent, every tenant.", s["error_replies"])
    errors = counter("errors", "Error replies by prefix (ERR, WRONGTYPE...).", labels=["prefix"])
    for prefix, count in sorted(s["errors"].items()):
        errors.add_metric([prefix], count)
    counter("auth_failures", "Failed AUTH / HELLO AUTH, every tenant.", s["auth_failures"])
    counter("auth_throttled", "AUTH attempts refused by the brute-force throttle.",
            s["auth_throttled"])
    counter("acl_denied", "Commands refused for permission (NOPERM).", s["acl_denied"])
    gauge("memory_used_bytes", "Memory used (the accounting's figure, else RSS).", s["used_memory"])
    gauge("memory_rss_bytes", "Resident set size of the process.", s["rss"])
    gauge("memory_max_bytes", "maxmemory (0 = no limit).", s["maxmemory"])
    gauge("keys", "Keys held, every tenant and database.", s["keys"])
    gauge("keys_expiring", "Keys with a time to live, every tenant.", s["expires"])
    counter("expired_keys", "Keys removed by expiry.", s["expired_keys"])
    counter("evicted_keys", "Keys evicted for maxmemory.", s["evicted_keys"])
    counter("evicted_clients", "Clients closed for memory.", s["evicted_clients"])
    gauge("tenants", "Tenants the server holds (with data or clients).", s["tenants"])
    counter("cpu_user_seconds", "User CPU time of the server process.", s["cpu_user"])
    counter("cpu_system_seconds", "System CPU time of the server process.", s["cpu_sys"])
    for name, value in sorted(s["persistence"].items()):
        gauge("persistence_" + name, "INFO persistence's %s (ok = 1, err = 0)." % name, value)

    rows = list(snapshot["top"])
    labels = labels_for(rows, snapshot["names"])
    if snapshot["other"] is not None:
        rows.append(snapshot["other"])
        labels.append(OTHER)
    gauge("tenants_other", "Tenants summed under tenant=\"other\" (beyond metrics-max-tenants).",
          snapshot["others"])
    t_calls = counter("tenant_commands", "A tenant's calls by command.", labels=["tenant", "command"])
    t_failed = counter("tenant_commands_failed", "A tenant's failed calls by command.",
                       labels=["tenant", "command"])
    t_rejected = counter("tenant_commands_rejected", "A tenant's calls refused before running, "
                         "by command.", labels=["tenant", "command"])
    t_errors = counter("tenant_errors", "A tenant's error replies by prefix.",
                       labels=["tenant", "prefix"])
    t_keys = gauge("tenant_keys", "Keys a tenant holds.", labels=["tenant"])
    t_memory = gauge("tenant_memory_used_bytes", "Memory a tenant's data uses (0 while the "
                     "memory accounting is off: no maxmemory and no memory/keys quota).",
                     labels=["tenant"])
    t_clients = gauge("tenant_connected_clients", "A tenant's connections open now.",
                      labels=["tenant"])
    t_logins = counter("tenant_connections", "Logins into a tenant.", labels=["tenant"])
    t_auth = counter("tenant_auth_failures", "Rejected AUTHs on a tenant's connections.",
                     labels=["tenant"])
    t_denied = counter("tenant_acl_denied", "A tenant's commands refused for permission.",
                       labels=["tenant"])
    t_refused = counter("tenant_quota_refusals", "A tenant's requests refused by a quota.",
                        labels=["tenant", "quota"])
    t_quota = gauge("tenant_quota", "A tenant's quotas (0 = none): memory in bytes, keys, "
                    "connections, rate in commands/s.", labels=["tenant", "quota"])
    t_slow = counter("tenant_slow_commands", "A tenant's commands the slowlog recorded.",
                     labels=["tenant"])
    for label, row in zip(labels, rows):
        for name, (n, f, r) in sorted(row["commands"].items()):
            t_calls.add_metric([label, name], n)
            if f:
                t_failed.add_metric([label, name], f)
            if r:
                t_rejected.add_metric([label, name], r)
        for prefix, count in sorted(row["errors"].items()):
            t_errors.add_metric([label, prefix], count)
        t_keys.add_metric([label], row["keys"])
        t_memory.add_metric([label], row["used_memory"])
        t_clients.add_metric([label], row["clients"])
        t_logins.add_metric([label], row["connections"])
        t_auth.add_metric([label], row["auth_failures"])
        t_denied.add_metric([label], row["acl_denied"])
        for quota in ("memory", "keys", "connections", "rate"):
            t_refused.add_metric([label, quota], row["quota_refused"].get(quota, 0))
        if row["quota"] is not None:
            for quota, value in row["quota"].items():
                t_quota.add_metric([label, quota], value)
        t_slow.add_metric([label], row["slow_commands"])
    gauge("scrape_previous_duration_seconds", "Seconds the previous scrape of this endpoint took.",
          snapshot["previous_duration"])
    counter("scrapes", "Scrapes of this endpoint before this one.", snapshot["scrapes"])

    class Families:
        def collect(self):
            return families

    return generate_latest(Families())
