"""Server commands: INFO, CONFIG, COMMAND, HELP, TIME, DEBUG, SHUTDOWN (LASTSAVE: persistence.py)."""

import logging
import os
import platform
import re
import resource
import sys
import time

from tenantkv import REDIS_COMPAT_VERSION, __version__, errors
from tenantkv.commands import persistence
from tenantkv.commands.tenant import quota_lines
from tenantkv.dispatch.table import (
    COMMANDS, HIDDEN, command, container, help_reply, lookup, subcommand,
)
from tenantkv.config import (BY_REDIS_NAME, ConfigError, ConfigSetError, is_secret, parse_memory,
                             show_percentiles)
from tenantkv.config import rewrite as rewrite_config
from tenantkv.logs import NOTICE, audit
from tenantkv.errors import CommandError
from tenantkv.keyspace.types import encoding
from tenantkv.protocol.encoder import (OK, Attributed, BigNumber, Push, Raw, SetReply, Status,
                                      Verbatim, encode)
from tenantkv.dispatch import lazyfree
from tenantkv.dispatch.latency import new_histogram, percentile
from tenantkv.dispatch.blocking import Blocked
from tenantkv.dispatch.replies import NO_REPLY, RETRY
from tenantkv.util.glob import glob_match
from tenantkv.util.keyspace_events import render_flags
from tenantkv.util.rss import rss_bytes
from tenantkv.util.numbers import parse_float, parse_int

log = logging.getLogger("tenantkv.server")

# -- INFO ----------------------------------------------------------------------
#
# What INFO shows whom. Root (and the password-less default user) administers
# the server and sees the server's figures, as in Redis. Any other user is a
# tenant among others, and a figure that moves with another tenant's activity
# tells it about that tenant (how busy it is, when it writes, its errors and
# failed logins, its memory), so:
#
#   - activity figures are its own tenant's (keyspace/tenant.py counts them
#     beside the server's): commands and commandstats (calls, rejected and
#     failed calls), errors and errorstats, net bytes, connections, keyspace
#     hits/misses/expiries, clients, blocked and watching clients, keyspace;
#   - a figure that cannot be split by tenant cheaply is left out rather than
#     shown server-wide: used_memory* (the process's RSS), used_cpu_* (the
#     process's CPU), rejected_connections, auth_throttled, and the rdb_* and
#     aof_* figures that grow with all the data (SERVER_DATA: changes since
#     the last save, log sizes, keys loaded, how long a save took);
#     commandstats without usec and usec_per_call, and no latencystats nor
#     LATENCY HISTOGRAM (timing every command for its tenant is a second
#     count per command on the hot path: the server's are per Command);
#     SLOWLOG and LATENCY's command events are its own (dispatch/slowlog.py,
#     dispatch/latency.py);
#   - static facts a client may need stay: versions, mode, port, uptime, hz,
#     run_id, maxclients, maxmemory and its policy, role, persistence status;
#   - facts about the host are root's: os (kernel release), python_version,
#     process_id, executable and config_file (paths): a tenant needs none of
#     them, and they help whoever tries to get from the server to the host.
#
# The persistence status lines that remain (a save or rewrite in progress,
# rdb_saves, rdb_last_save_time) still move when the `save` rules fire, which
# count every tenant's writes: a coarse signal, which LASTSAVE gives as well.

# Lines of the server section only root sees (see above).
HOST_FACTS = ("os", "python_version", "process_id", "executable", "config_file")

SECTIONS = ["server", "clients", "memory", "persistence", "stats", "replication",
            "cpu", "modules", "errorstats", "cluster", "keyspace", "quota"]
ALL_ONLY = ["commandstats", "latencystats"]




def _peakrss_bytes() -> int:
    """The most memory the process has held: the kernel's high-water mark
    of its RSS (VmHWM), which no sampling can miss (a big argument held
    for a moment). Redis's used_memory_peak is never reset either."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024   # bytes there, KB elsewhere


def _human(size: int) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return ("%dB" % size) if unit == "B" else "%.2f%s" % (size, unit)
        size /= 1024
    return str(size)


def pubsub_info(tenants) -> list:
    """INFO stats' pub/sub figures, summed over `tenants` (dispatch/pubsub.py)."""
    exact = patterns = shard = 0
    for tenant in tenants:
        channels = tenant.channels
        if channels is not None:
            exact += len(channels.exact)
            patterns += len(channels.patterns)
            shard += len(channels.shard)
    return ["pubsub_channels:%d" % exact, "pubsub_patterns:%d" % patterns,
            "pubsubshard_channels:%d" % shard]


def keyspace_counts(conn) -> tuple:
    """(keyspace_hits, keyspace_misses, expired_keys) as INFO stats shows them
    to `conn`. Root: server-wide, as Redis reports them. Anyone else: its own
    tenant's databases only, since the server-wide figures let one tenant watch
    another's reads hit or miss and count its keys expiring."""
    server = conn.server
    if conn.root:
        dbs = [db for tenant in server.tenants.values() for db in tenant.dbs]
        expired = server.stats.expired_keys
    else:
        dbs = conn.tenant.dbs
        expired = sum(db.expired for db in dbs)
    return sum(db.hits for db in dbs), sum(db.misses for db in dbs), expired


def info_section(conn, name: str) -> list:
    server = conn.server
    stats = server.stats
    uptime = int(time.monotonic() - server.started_monotonic)
    if name == "server":
        config = server.config
        lines = [
            "redis_version:%s" % REDIS_COMPAT_VERSION,
            "tenantkv_version:%s" % __version__,
            "redis_git_sha1:00000000",
            "redis_git_dirty:0",
            "redis_build_id:0",
            "redis_mode:standalone",
            "os:%s %s %s" % (platform.system(), platform.release(), platform.machine()),
            "arch_bits:64",
            "monotonic_clock:POSIX clock_gettime",
            "multiplexing_api:epoll",
            "python_version:%s" % platform.python_version(),
            "process_id:%d" % os.getpid(),
            "process_supervised:no",
            "run_id:%s" % server.run_id,
            "tcp_port:%d" % config["network.port"],
            "server_time_usec:%d" % int(time.time() * 1e6),
            "uptime_in_seconds:%d" % uptime,
            "uptime_in_days:%d" % (uptime // 86400),
            "hz:%d" % config["expiry.hz"],
            "configured_hz:%d" % config["expiry.hz"],
            "lru_clock:%d" % (int(time.time()) & ((1 << 24) - 1)),
            "executable:%s" % sys.argv[0],
            "config_file:%s" % os.path.abspath(server.config_file) if server.config_file else "config_file:",
            "io_threads_active:0",
        ]
        if not conn.root:
            lines = [line for line in lines if line.partition(":")[0] not in HOST_FACTS]
        return lines
    if name == "clients":
        clients = server.clients.values() if conn.root else conn.tenant.clients
        dbs = [db for tenant in server.tenants.values() for db in tenant.dbs] if conn.root \
            else conn.tenant.dbs
        blocked = [c.waiting for c in clients if type(c.waiting) is Blocked]
        return [
            # root (and the password-less default user) administers the
            # server: every client, as its CLIENT LIST; others their tenant's.
            "connected_clients:%d" % len(server.clients if conn.root else conn.tenant.clients),
            "cluster_connections:0",
            "maxclients:%d" % server.config["network.maxclients"],
            "client_recent_max_input_buffer:0",
            "client_recent_max_output_buffer:0",
            # Redis counts the clients CLIENT PAUSE holds as blocked (BLOCKED_POSTPONE).
            "blocked_clients:%d" % (len(blocked) + sum(
                1 for c in clients if c.waiting is not None and c.waiting.finish is RETRY)),
            "tracking_clients:%d" % _tracking_clients(server, conn),
            "clients_in_timeout_table:%d" % sum(1 for b in blocked if b.timer is not None),
            "total_blocking_keys:%d" % sum(len(db.blocked) for db in dbs),
            "total_blocking_keys_on_nokey:0",
            # Redis 7.4's WATCH figures: clients watching, keys watched.
            "watching_clients:%d" % sum(1 for c in clients if c.watched),
            "total_watched_keys:%d" % sum(len(db.watchers) for db in dbs),
        ]
    if name == "memory":
        if not conn.root:   # the process's memory moves with every tenant's data
            maxmemory = server.config["limits.maxmemory"]
            return [
                "maxmemory:%d" % maxmemory,
                "maxmemory_human:%s" % _human(maxmemory),
                "maxmemory_policy:%s" % server.config["limits.maxmemory_policy"],
                "mem_allocator:pymalloc",
                *_script_lines(conn),
            ]
        rss = rss_bytes()
        memory = server.memory
        if memory.on:
            # The accounting's logical figure (server/memory.py), the one
            # compared with maxmemory; its own high-water mark.
            used = memory.used()
            peak = memory.peak = max(memory.peak, used)
        else:   # no accounting: the process's memory is the best figure
            used = rss
            peak = max(rss, _peakrss_bytes())
        maxmemory = server.config["limits.maxmemory"]
        lines = [
            "used_memory:%d" % used,
            "used_memory_human:%s" % _human(used),
            "used_memory_rss:%d" % rss,
            "used_memory_rss_human:%s" % _human(rss),
            "used_memory_peak:%d" % peak,
            "used_memory_peak_human:%s" % _human(peak),
            "used_memory_peak_perc:%.2f%%" % (used * 100 / peak if peak else 100.0),
        ]
        if memory.on:
            lines += [
                "used_memory_startup:%d" % memory.baseline,
                "used_memory_dataset:%d" % memory.data,
                "mem_clients_normal:%d" % memory.buffers,
            ]
        return lines + [
            "maxmemory:%d" % maxmemory,
            "maxmemory_human:%s" % _human(maxmemory),
            "maxmemory_policy:%s" % server.config["limits.maxmemory_policy"],
            "mem_allocator:pymalloc",
            # Objects the lazy free (dispatch/lazyfree.py) has still to drop:
            # every tenant's, hence root's figure only (Redis's test suite
            # waits for it to reach 0).
            "lazyfree_pending_objects:%d" % lazyfree.pending(),
            *_script_lines(conn),
        ]
    if name == "persistence":
        lines = [
            "loading:0",
            "async_loading:0",
            *server.snapshot.info_lines(),   # rdb_* (persistence/kdb/snapshot.py)
            *server.aof.info(),              # aof_* (persistence/aof/appendonly.py)
            # tenants no user owns (server/app.py check_orphans): root's business
            *(server.orphan_info() if conn.root else ()),
        ]
        if not conn.root:
            lines = [line for line in lines if line.partition(":")[0] not in SERVER_DATA]
        return lines
    if name == "stats":
        hits, misses, expired = keyspace_counts(conn)
        if not conn.root:
            tenant = conn.tenant
            return [
                "total_connections_received:%d" % tenant.connections,
                "total_commands_processed:%d" % _tenant_commands(tenant),
                "instantaneous_ops_per_sec:0",
                "total_net_input_bytes:%d" % (tenant.net_input_bytes
                                              + sum(c.net_in for c in tenant.clients)),
                "total_net_output_bytes:%d" % (tenant.net_output_bytes
                                               + sum(c.net_out for c in tenant.clients)),
                "expired_keys:%d" % expired,
                "evicted_keys:%d" % sum(db.evicted for db in tenant.dbs),
                "keyspace_hits:%d" % hits,
                "keyspace_misses:%d" % misses,
                *pubsub_info((tenant,)),
                *_tracking_totals([tenant]),
                "unexpected_error_replies:0",
                "total_error_replies:%d" % tenant.error_replies,
                "acl_access_denied_auth:%d" % tenant.auth_failures,
                "acl_access_denied_cmd:%d" % tenant.acl_denied,
                "acl_access_denied_key:0",
                "acl_access_denied_channel:0",
            ]
        return [
            "total_connections_received:%d" % stats.total_connections_received,
            "total_commands_processed:%d" % sum(c.calls for c in COMMANDS.values()),
            "instantaneous_ops_per_sec:0",
            "total_net_input_bytes:%d" % (stats.net_input_bytes
                                          + sum(c.net_in for c in server.clients.values())),
            "total_net_output_bytes:%d" % (stats.net_output_bytes
                                           + sum(c.net_out for c in server.clients.values())),
            "rejected_connections:%d" % stats.rejected_connections,
            "sync_full:%d" % server.replication.full_syncs,
            "sync_partial_ok:%d" % server.replication.partial_ok,
            "sync_partial_err:%d" % server.replication.partial_err,
            "expired_keys:%d" % expired,
            "evicted_keys:%d" % stats.evicted_keys,
            "evicted_clients:%d" % stats.evicted_clients,
            "keyspace_hits:%d" % hits,
            "keyspace_misses:%d" % misses,
            *pubsub_info(server.tenants.values()),
            *_tracking_totals(server.tenants.values()),
            "unexpected_error_replies:0",
            "total_error_replies:%d" % stats.total_error_replies,
            # Redis 7.2's ACL counters (not in 7.0), at the end of the section as there
            "acl_access_denied_auth:%d" % stats.auth_failures,
            "acl_access_denied_cmd:%d" % stats.acl_denied,
            "acl_access_denied_key:0",       # no key patterns: tenants isolate keys
            "acl_access_denied_channel:0",   # nor channel patterns
            "auth_throttled:%d" % stats.auth_throttled,
        ]
    if name == "replication":
        return server.replication.info_lines()
    if name == "cpu":
        if not conn.root:   # the process's CPU time moves with every tenant's commands
            return []
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return ["used_cpu_sys:%.6f" % usage.ru_stime, "used_cpu_user:%.6f" % usage.ru_utime,
                "used_cpu_sys_children:0.000000", "used_cpu_user_children:0.000000"]
    if name == "modules":
        return []
    if name == "errorstats":
        errors_ = stats.errors if conn.root else conn.tenant.errors
        return ["errorstat_%s:count=%d" % (prefix, count) for prefix, count in sorted(errors_.items())]
    if name == "cluster":
        return ["cluster_enabled:0"]
    if name == "keyspace":
        lines = []
        for db in conn.tenant.dbs:
            if db.data:
                lines.append("db%d:keys=%d,expires=%d,avg_ttl=0" % (db.index, len(db.data), len(db.expires)))
        return lines
    if name == "quota":
        # tenantkv's own section: the caller's tenant against its quotas
        # (root's too: every tenant's is TENANT LIST's, commands/tenant.py).
        return quota_lines(conn.tenant)
    if name == "commandstats":
        if not conn.root:
            tenant = conn.tenant
            tenant.fold()
            calls, rejected, failed = tenant.calls, tenant.rejected, tenant.failed
            return ["cmdstat_%s:calls=%d,rejected_calls=%d,failed_calls=%d" % (name, n, r, f)
                    for name, (n, _, r, f) in _command_counters(
                        lambda c: (calls.get(c, 0), 0.0, rejected.get(c, 0), failed.get(c, 0)))
                    if n or r or f]
        return [_cmdstat(name, *counters) for name, counters in _command_counters(_server_counters)
                if any(counters)]
    if name == "latencystats":
        # Root's: the server's histograms (a tenant's own would cost a
        # second count per command on the hot path; dispatch/latency.py).
        if not conn.root or not conn.server.latency_tracking:   # off: none, as Redis
            return []
        wanted = conn.server.config.values[(None, "latency-tracking-info-percentiles")]
        lines = []
        for top in sorted(COMMANDS.values(), key=lambda c: c.name):
            for cmd in ([top] if not top.subcommands else
                        sorted(top.subcommands.values(), key=lambda c: c.name)):
                hist = cmd.hist
                calls = sum(hist)
                if calls:
                    lines.append("latency_percentiles_usec_%s:%s" % (cmd.name, ",".join(
                        "p%s=%.3f" % (show_percentiles((p,)), percentile(hist, calls, p))
                        for p in wanted)))
        return lines
    return []


# rdb_* and aof_* lines that grow with every tenant's writes or data: counts,
# sizes, and how long a save or rewrite (of all the data) took. Not for tenants.
SERVER_DATA = frozenset((
    "rdb_changes_since_last_save", "rdb_last_bgsave_time_sec", "rdb_current_bgsave_time_sec",
    "rdb_last_load_keys_expired", "rdb_last_load_keys_loaded", "aof_last_rewrite_time_sec",
    "aof_current_rewrite_time_sec", "aof_current_size", "aof_base_size", "aof_buffer_length"))


def _server_counters(cmd) -> tuple:
    return cmd.calls, cmd.usec, cmd.rejected, cmd.failed


def _tenant_commands(tenant) -> int:
    """total_commands_processed for a tenant: the calls of commands (a
    container counts every call; its subcommands' own counts are not added)."""
    tenant.fold()
    calls = tenant.calls
    return sum(calls.get(cmd, 0) for cmd in COMMANDS.values())


def _command_counters(counters):
    """(name, (calls, usec, rejected, failed)) for INFO commandstats, as
    Redis 7 counts them: a subcommand on its own line (cmdstat_client|list);
    a container only for its own arity refusals and, for COMMAND, its calls
    without a subcommand (its own counters count every call, for
    total_commands_processed). `counters(cmd)`: the server's
    (_server_counters) or a tenant's."""
    for top in sorted(COMMANDS.values(), key=lambda c: c.name):
        calls, usec, rejected, failed = counters(top)
        if not top.subcommands:
            yield top.name, (calls, usec, rejected, failed)
            continue
        bare = top.bare
        if bare is None:
            yield top.name, (0, 0.0, rejected, 0)
        else:
            calls, usec, bare_rejected, failed = counters(bare)
            yield top.name, (calls, usec, rejected + bare_rejected, failed)
        for sub in top.subcommands.values():
            yield sub.name, counters(sub)


def _cmdstat(name: str, calls: int, usec: float, rejected: int, failed: int) -> str:
    return ("cmdstat_%s:calls=%d,usec=%d,usec_per_call=%.2f,rejected_calls=%d,failed_calls=%d"
            % (name, calls, usec, usec / calls if calls else 0, rejected, failed))


@command("info")
def info(conn, args):
    wanted = [a.decode("latin-1").lower() for a in args[1:]] or ["default"]
    sections = []
    for name in wanted:
        if name in ("all", "everything"):
            sections += SECTIONS + ALL_ONLY
        elif name == "default":
            sections += SECTIONS
        elif name in SECTIONS or name in ALL_ONLY:
            sections.append(name)
    seen = []
    for name in sections:
        if name not in seen:
            seen.append(name)
    parts = []
    for name in seen:
        lines = info_section(conn, name)
        parts.append("# %s\r\n%s" % (name.capitalize() if name != "cpu" else "CPU",
                                     "".join(line + "\r\n" for line in lines)))
    return Verbatim("\r\n".join(parts).encode())


# -- CONFIG --------------------------------------------------------------------

CONFIG_HELP = [
    "GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>", "    Set the configuration <directive> to <value>.",
    "RESETSTAT", "    Reset statistics reported by the INFO command.",
    "REWRITE", "    Rewrite the configuration file.",
]


container("config", help=CONFIG_HELP)


# The parameters a non-root user may CONFIG GET / SET, named exactly: its
# tenant's own value (root's CONFIG SET sets the server's, which every
# tenant without its own follows). Any other name or a pattern is refused by
# the permission check (Command.open_args), as before: a tenant learns
# nothing of the server's settings.
TENANT_SETTINGS = frozenset((b"notify-keyspace-events",))


def _tenant_get(args) -> bool:
    return all(name.lower() in TENANT_SETTINGS for name in args[2:])


def _tenant_set(args) -> bool:
    return all(name.lower() in TENANT_SETTINGS for name in args[2::2])


def _tenant_config_get(conn, args):
    names = [raw.decode("latin-1") for raw in args[2:]]
    value = render_flags(conn.server.notifier.flags_of(conn.tenant)).encode()
    found = {}   # as root's: each name once, shown as first asked
    for name in names:
        found.setdefault(name.lower(), name)
    return {name.encode("latin-1"): value for name in found.values()}


def _tenant_config_set(conn, args):
    pairs = [(args[i].decode("latin-1"), args[i + 1].decode("utf-8", "surrogateescape"))
             for i in range(2, len(args), 2)]
    seen = set()
    for name, _ in pairs:
        if name.lower() in seen:
            raise CommandError(errors.config_set_failed(
                errors.arg_text(name.encode("latin-1")), "duplicate parameter"))
        seen.add(name.lower())
    flags = None
    for name, raw in pairs:
        try:
            flags = BY_REDIS_NAME[name.lower()].convert(raw)
        except ValueError as exc:
            raise CommandError(errors.config_set_failed(
                errors.arg_text(name.encode("latin-1")), str(exc)))
    conn.server.notifier.set_tenant(conn.tenant, flags)
    return OK


@subcommand("config", "get", open_args=_tenant_get)
def _config_get(conn, args):
    if not conn.root:
        return _tenant_config_get(conn, args)
    server = conn.server
    found = {}   # lower-case name -> (name as shown, value)
    for raw in args[2:]:
        name = raw.decode("latin-1")
        if not any(c in name for c in "*?["):   # as asked, once (any case)
            if name.lower() in BY_REDIS_NAME and name.lower() not in found:
                found[name.lower()] = (name, server.config.get_redis(name.lower()))
            continue
        for candidate, setting in BY_REDIS_NAME.items():
            # As Redis: a hidden parameter answers its exact name only.
            if (candidate not in found and not setting.hidden
                    and glob_match(raw, candidate.encode(), nocase=True)):
                found[candidate] = (candidate, server.config.get_redis(candidate))
    return {name.encode("latin-1"): value.encode("utf-8", "surrogateescape")
            for name, value in found.values()}


@subcommand("config", "set", open_args=_tenant_set)
def _config_set(conn, args):
    if len(args) % 2:
        raise CommandError(errors.SYNTAX)
    if not conn.root:
        return _tenant_config_set(conn, args)
    pairs = [(args[i].decode("latin-1"), args[i + 1].decode("utf-8", "surrogateescape"))
             for i in range(2, len(args), 2)]
    try:
        conn.server.config.set_redis(pairs)
    except ConfigSetError as exc:
        name = errors.arg_text(exc.name.encode("latin-1"))
        if exc.reason is None:
            raise CommandError(errors.config_set_unknown(name))
        raise CommandError(errors.config_set_failed(name, exc.reason))
    audit("config-set", by=conn.user, addr=conn.addr,
          changes=" ".join("%s=%s" % (name.lower(), "<redacted>" if is_secret(name) else value)
                           for name, value in pairs))
    return OK


@subcommand("config", "resetstat")
def _config_resetstat(conn, args):
    server = conn.server
    server.snapshot.sync()   # it counts changes from the counters reset below
    server.stats.reset()
    for client in server.clients.values():
        client.net_in = client.net_out = 0
    for tenant in server.tenants.values():
        tenant.reset_stats()
        for db in tenant.dbs:
            db.hits = db.misses = db.expired = 0
    for top in COMMANDS.values():
        for cmd in (top, top.bare, *top.subcommands.values()):
            if cmd is not None:
                cmd.calls = cmd.rejected = cmd.failed = 0
                cmd.usec = 0.0
                cmd.hist = new_histogram()
    return OK


@subcommand("config", "rewrite")
def _config_rewrite(conn, args):
    path = conn.server.config_file
    if not path:
        raise CommandError(errors.CONFIG_NO_FILE)
    try:
        rewrite_config(conn.server.config, path)
    except OSError as exc:
        log.warning("CONFIG REWRITE failed: %s", exc.strerror or exc)
        raise CommandError(errors.config_rewrite_failed(exc.strerror or str(exc)))
    except ConfigError as exc:
        log.warning("CONFIG REWRITE failed: %s", exc)
        raise CommandError(errors.config_rewrite_failed(str(exc)))
    log.log(NOTICE, "CONFIG REWRITE executed with success.")
    audit("config-rewrite", by=conn.user, addr=conn.addr, file=os.path.abspath(path))
    return OK


# -- COMMAND and HELP ------------------------------------------------------------
# Both read the command table (dispatch/table.py), filled from Redis's
# recorded COMMAND INFO and DOCS, and rebuild Redis's replies from it.

# Command flags in the order Redis replies them (addReplyFlagsForCommand;
# may_replicate, protected and the sentinel flags it hides).
_FLAG_NAMES = ["write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript", "blocking",
               "loading", "stale", "skip_monitor", "skip_slowlog", "asking", "fast", "no_auth",
               "no_mandatory_keys", "no_async_loading", "no_multi", "movablekeys", "allow_busy"]


def _flags(cmd) -> list:
    return [Status(f) for f in _FLAG_NAMES if f in cmd.flags]


def _categories(cmd) -> list:
    return [Status("@" + c) for c in cmd.acl_categories]


def _key_spec(spec) -> dict:
    begin, find = spec.begin, spec.find
    if begin[0] == "index":
        begin_spec = {b"index": begin[1]}
    elif begin[0] == "keyword":
        begin_spec = {b"keyword": begin[1].encode(), b"startfrom": begin[2]}
    else:
        begin_spec = {}
    if find[0] == "range":
        find_spec = {b"lastkey": find[1], b"keystep": find[2], b"limit": find[3]}
    elif find[0] == "keynum":
        find_spec = {b"keynumidx": find[1], b"firstkey": find[2], b"keystep": find[3]}
    else:
        find_spec = {}
    reply = {b"notes": spec.notes.encode()} if spec.notes else {}
    reply[b"flags"] = SetReply([Status(f) for f in spec.flags])
    reply[b"begin_search"] = {b"type": begin[0].encode(), b"spec": begin_spec}
    reply[b"find_keys"] = {b"type": find[0].encode(), b"spec": find_spec}
    return reply


def command_info(cmd) -> list:
    """COMMAND INFO's entry for `cmd`, as Redis's addReplyCommandInfo."""
    subcommands = cmd.subcommands
    return [cmd.name.encode(), cmd.arity, SetReply(_flags(cmd)), cmd.first_key, cmd.last_key,
            cmd.step, SetReply(_categories(cmd)), SetReply([t.encode() for t in cmd.tips]),
            SetReply([_key_spec(spec) for spec in cmd.key_specs]),
            # no subcommands: an empty set; else an array
            [command_info(sub) for sub in subcommands.values()] if subcommands else SetReply([])]


def command_docs(cmd) -> dict:
    """COMMAND DOCS's map for `cmd`, as Redis's addReplyCommandDocs."""
    docs = _DOCS_CACHE.get(cmd.name)
    if docs is None:
        docs = {}
        for name in ("summary", "since"):
            if getattr(cmd, name):
                docs[name.encode()] = getattr(cmd, name).encode()
        docs[b"group"] = cmd.group.encode()
        if cmd.complexity:
            docs[b"complexity"] = cmd.complexity.encode()
        extra = cmd.docs
        if "doc_flags" in extra:
            docs[b"doc_flags"] = SetReply([Status(f) for f in extra["doc_flags"]])
        for name in ("deprecated_since", "replaced_by"):
            if name in extra:
                docs[name.encode()] = extra[name].encode()
        if "history" in extra:
            docs[b"history"] = SetReply([[v.encode(), text.encode()] for v, text in extra["history"]])
        if "arguments" in extra:
            docs[b"arguments"] = [_argument_docs(arg) for arg in extra["arguments"]]
        if cmd.subcommands:
            docs[b"subcommands"] = {sub.name.encode(): command_docs(sub)
                                    for sub in cmd.subcommands.values()}
        _DOCS_CACHE[cmd.name] = docs
    return docs


_DOCS_CACHE: dict = {}


def _argument_docs(arg: dict) -> dict:
    """One argument of COMMAND DOCS, as Redis's addReplyCommandArgList."""
    reply = {b"name": arg["name"].encode(), b"type": arg["type"].encode()}
    if "key_spec_index" in arg:
        reply[b"key_spec_index"] = arg["key_spec_index"]
    for name in ("token", "summary", "since", "deprecated_since"):
        if name in arg:
            reply[name.encode()] = arg[name].encode()
    if arg.get("flags"):
        reply[b"flags"] = SetReply([Status(f) for f in arg["flags"]])
    if arg["type"] in ("oneof", "block"):
        reply[b"arguments"] = [_argument_docs(child) for child in arg.get("arguments", ())]
    return reply


def _visible() -> list:
    return [c for c in COMMANDS.values() if c.name not in HIDDEN]


def _named(raw: bytes):
    """The command or subcommand ("config|get") a client names, None if hidden or unknown."""
    cmd = lookup(raw.decode("latin-1"))
    return None if cmd is None or cmd.name in HIDDEN else cmd


def _command_count(conn, args):
    return len(_visible())


def _command_list(conn, args):
    # Every command and, after a container, its subcommands (as Redis lists them).
    commands = [c for top in _visible() for c in (top, *top.subcommands.values())]
    if len(args) > 2:   # one filter, last: FILTERBY MODULE name | ACLCAT category | PATTERN glob
        kind = args[3].lower() if len(args) == 5 else None
        if args[2].lower() != b"filterby" or kind not in (b"module", b"aclcat", b"pattern"):
            raise CommandError(errors.SYNTAX)
        value = args[4]
        if kind == b"module":
            commands = []   # no modules here
        elif kind == b"aclcat":
            category = value.decode("latin-1").lower()
            commands = [c for c in commands if category in c.acl_categories]
        else:
            commands = [c for c in commands if glob_match(value, c.name.encode(), nocase=True)]
    return [c.name.encode() for c in commands]


def _command_info(conn, args):
    if len(args) == 2:
        return [command_info(c) for c in _visible()]
    return [None if cmd is None else command_info(cmd) for cmd in map(_named, args[2:])]


def _command_docs(conn, args):
    commands = _visible() if len(args) == 2 else [c for c in map(_named, args[2:]) if c is not None]
    return {cmd.name.encode(): command_docs(cmd) for cmd in commands}


def _getkeys_lookup(args: list):
    """The command (or container subcommand) that `COMMAND GETKEYS[ANDFLAGS]
    <args>` asks about, checked in Redis 7.0's order."""
    command_args = args[2:]
    cmd = COMMANDS.get(command_args[0].decode("latin-1").lower())
    if cmd is not None and cmd.name in HIDDEN:
        cmd = None   # tenantkv's HTTP guards are not commands
    if cmd is not None and cmd.subcommands and len(command_args) > 1:
        cmd = cmd.subcommands.get(command_args[1].lower())
    if cmd is None:
        raise CommandError(errors.GETKEYS_INVALID_COMMAND)
    if not cmd.has_keys():
        raise CommandError(errors.GETKEYS_NO_KEYS)
    if not cmd.arity_ok(len(command_args)):
        raise CommandError(errors.GETKEYS_ARITY)
    found = cmd.keys_and_flags(command_args)
    if not found and "no_mandatory_keys" not in cmd.flags:
        raise CommandError(errors.GETKEYS_INVALID_ARGUMENTS)
    return command_args, found


def _command_getkeys(conn, args):
    command_args, found = _getkeys_lookup(args)
    return [command_args[position] for position, _ in found]


def _command_getkeysandflags(conn, args):
    command_args, found = _getkeys_lookup(args)
    return [[command_args[position], SetReply([Status(f) for f in flags])] for position, flags in found]


COMMAND_HELP = [
    "(no subcommand)", "    Return details about all Redis commands.",
    "COUNT", "    Return the total number of commands in this Redis server.",
    "LIST", "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]", "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]", "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>", "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>", "    Return the keys and the access flags from a full Redis command.",
]


def _command_all(conn, args):
    return [command_info(c) for c in _visible()]


container("command", help=COMMAND_HELP, bare=_command_all)
for _name, _handler in (("count", _command_count), ("list", _command_list),
                        ("info", _command_info), ("docs", _command_docs),
                        ("getkeys", _command_getkeys),
                        ("getkeysandflags", _command_getkeysandflags)):
    subcommand("command", _name)(_handler)


# tenantkv's own command (the article's HELP), so declared in full.
@command("help", arity=-1, flags="no_auth loading stale", acl_categories="@slow", group="server",
         since="0.1.0", complexity="O(N) where N is the number of commands",
         summary="List the available commands, or show one command's syntax, summary and group",
         arguments=[{"name": "command", "type": "string", "flags": ["optional"]}])
def help_(conn, args):
    if len(args) > 1:
        cmd = _named(args[1].replace(b" ", b"|"))
        if cmd is None:
            raise CommandError(errors.help_unknown_command(args[1]))
        return [_help_syntax(cmd).encode(), ("summary: " + cmd.summary).encode(),
                ("group: " + cmd.group).encode()]
    lines = ["Available commands:"]
    for top in sorted(_visible(), key=lambda c: (c.group, c.name)):
        for cmd in (top, *top.subcommands.values()):
            lines.append("%s - %s" % (_help_syntax(cmd), cmd.summary))
    return [Status(line) for line in lines]


def _help_syntax(cmd) -> str:
    """`CONFIG GET parameter [parameter ...]`: the name as typed, then the arguments."""
    return ("%s %s" % (cmd.name.replace("|", " ").upper(), cmd.syntax)).strip()


# -- misc --------------------------------------------------------------------------

@command("time")
def time_(conn, args):
    now = time.time_ns() // 1000
    return [b"%d" % (now // 1000000), b"%d" % (now % 1000000)]


@command("shutdown")
def shutdown(conn, args):
    for option in args[1:]:
        if option.lower() not in (b"nosave", b"save", b"now", b"force", b"abort"):
            raise CommandError(errors.SYNTAX)
    options = {o.lower() for o in args[1:]}
    if b"abort" in options:
        raise CommandError(errors.NO_SHUTDOWN)
    if b"save" in options and b"nosave" in options:
        raise CommandError(errors.SYNTAX)
    save = True if b"save" in options else False if b"nosave" in options else None
    done = conn.server.shutdown(save=save, force=b"force" in options)
    audit("shutdown", by=conn.user, addr=conn.addr,
          options=" ".join(o.decode().lower() for o in args[1:]), done=int(done))
    if not done:
        raise CommandError(errors.SHUTDOWN_FAILED)
    conn.close_after_reply = True   # nothing after it in the pipeline runs, as in Redis
    return NO_REPLY   # Redis closes the connection without a reply


DEBUG_HELP = [
    "OBJECT <key>", "    Show low-level info about the <key> and associated value.",
    "SLEEP <seconds>", "    Stop the server for <seconds>. Decimals allowed.",
    "SET-ACTIVE-EXPIRE <0|1>", "    Setting it to 0 disables expiring keys in background when they are not accessed.",
    "PAUSE-CRON <0|1>", "    Stop periodic cron job processing.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "SET-DISABLE-DENY-SCRIPTS <0|1>",
    "    Let scripts call the commands Redis refuses in scripts (for Redis's tests).",
    "QUICKLIST-PACKED-THRESHOLD <size>",
    "    Accepted for Redis's tests: tenantkv's lists have no packed and plain nodes.",
    "ERROR <string>",
    "    Return a Redis protocol error with <string> as message. Useful for clients",
    "    unit tests to simulate Redis errors.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "CHANGE-REPL-ID",
    "    Accepted for Redis's tests: tenantkv has no replication IDs to change.",
    "REPLYBUFFER PEAK-RESET-TIME <NEVER||RESET|time>",
    "REPLYBUFFER RESIZING <0|1>",
    "    Accepted for Redis's tests: tenantkv's reply buffers are not resized.",
    "STRINGMATCH-TEST",
    "    Accepted for Redis's tests: tests/test_glob.py tests the matcher.",
    *persistence.DEBUG_HELP,
]


# DEBUG is root-only (Redis flags it "admin") but for OBJECT, DIGEST and
# DIGEST-VALUE, which read the caller's own tenant: any user may run those
# when its rules allow them (+debug, +@all, or Redis 7.0's first-argument
# rule +debug|object). DEBUG has no subcommands in Redis's COMMAND INFO, so
# it has none here: -debug|digest is refused, as in Redis.
@command("debug", open_firstargs=(b"object", *persistence.DEBUG_OPEN))
def debug(conn, args):
    sub = args[1].lower()
    if sub == b"help" and len(args) == 2:
        return help_reply("debug", DEBUG_HELP)
    if sub == b"sleep" and len(args) == 3:
        seconds = parse_float(args[2])
        if seconds is None:
            raise CommandError(errors.NOT_FLOAT)
        time.sleep(max(0.0, seconds))   # blocks the server on purpose, as in Redis
        return OK
    if sub == b"set-active-expire" and len(args) == 3:
        flag = parse_int(args[2])
        if flag is None:
            raise CommandError(errors.NOT_INTEGER)
        conn.server.active_expire_enabled = bool(flag)
        return OK
    if sub == b"set-disable-deny-scripts" and len(args) == 3:
        # Redis's switch for its tests (DEBUG PROTOCOL from a script): the
        # server's, so root's alone, as all of DEBUG but OBJECT and DIGEST.
        # Its argument is read as Redis's atoi: a leading integer, else 0.
        digits = re.match(rb"\s*[+-]?\d+", args[2])
        conn.server.script_deny_disabled = digits is not None and int(digits.group()) != 0
        return OK
    if sub == b"pause-cron" and len(args) == 3:
        # Redis 7.0's switch for its tests: the cron (active expiry, idle
        # clients, output limits, memory, saves) skips its work while set.
        flag = parse_int(args[2])
        if flag is None:
            raise CommandError(errors.NOT_INTEGER)
        conn.server.cron_paused = bool(flag)
        return OK
    if sub == b"protocol" and len(args) == 3:
        return _debug_protocol(conn, args[2].lower())
    if sub == b"quicklist-packed-threshold" and len(args) == 3:
        # Redis's size above which a list element gets a node of its own.
        # tenantkv's lists keep every element alike: the value is only checked.
        try:
            size = parse_memory(args[2].decode("latin-1"))
        except ValueError:
            size = -1
        if not 0 <= size <= (1 << 32) - (1 << 20):
            raise CommandError(errors.DEBUG_MEMORY_VALUE)
        return OK
    if sub == b"error" and len(args) == 3:
        # The argument as the error line, as Redis: clients' test suites
        # use it to see how they report an error (no CR/LF inside).
        return Raw(b"-%s\r\n" % args[2].replace(b"\r", b" ").replace(b"\n", b" "))
    if sub == b"log" and len(args) == 3:
        _debug_log.warning("DEBUG LOG: %s", errors.arg_text(args[2]))
        return OK
    if sub == b"change-repl-id" and len(args) == 2:
        return OK
    if sub == b"stringmatch-test" and len(args) == 2:
        return Status("Apparently Redis did not crash: test passed")
    if sub == b"replybuffer" and len(args) == 4:
        return _debug_replybuffer(args[1], args[2].lower(), args[3])
    if sub == b"object" and len(args) == 3:
        db = conn.db
        value = db.data.get(args[2])   # as Redis: an expired key is not deleted by a look
        if value is None:
            raise CommandError(errors.NO_SUCH_KEY)
        kind = db.marked_encoding(args[2], value) or encoding(value)
        return Status("Value at:0x0 refcount:1 encoding:%s serializedlength:%d lru:0 lru_seconds_idle:0"
                      % (kind, len(value)))
    if sub in persistence.DEBUG_SUBCOMMANDS:
        return persistence.debug(conn, args)
    raise CommandError(errors.subcommand_syntax(args[1], "DEBUG"))


_debug_log = logging.getLogger("tenantkv.debug")


def _script_lines(conn) -> list:
    """INFO memory's number_of_cached_scripts: the caller's tenant's own, as
    a tenant sees only its own scripts. (No used_memory_lua: a tenant's Lua
    state holds ~3 MB of pure-Lua libraries where Redis's are C, so the
    figure would not compare with Redis's, whose tests bound it at 100 KB.)"""
    scripts = conn.tenant.scripts
    return ["number_of_cached_scripts:%d" % (0 if scripts is None else len(scripts.bodies))]


def _debug_replybuffer(sub: bytes, what: bytes, value: bytes):
    """DEBUG REPLYBUFFER: Redis's argument checks; tenantkv's reply buffers
    have no peak-reset timer nor resizing to tune, so nothing else."""
    if what == b"peak-reset-time":
        if value.lower() not in (b"never", b"reset") and parse_int(value) is None:
            raise CommandError(errors.NOT_INTEGER)
        return OK
    if what == b"resizing":
        return OK
    raise CommandError(errors.subcommand_syntax(sub, "DEBUG"))


def _debug_protocol(conn, name: bytes):
    """DEBUG PROTOCOL <type>: one reply of each RESP3 type, as Redis's debug.c."""
    if name == b"push":
        if not conn.resp3:
            raise CommandError(errors.DEBUG_PROTOCOL_RESP2)
        # A push is not a reply: a real one follows, for clients that drop pushes.
        return Raw(encode(Push([b"server-cpu-usage", 42]), True)
                   + encode(b"Some real reply following the push reply", True))
    reply = _DEBUG_PROTOCOL.get(name, _DEBUG_PROTOCOL)
    if reply is _DEBUG_PROTOCOL:
        raise CommandError(errors.DEBUG_PROTOCOL_TYPE)
    return reply


_DEBUG_PROTOCOL = {
    b"string": b"Hello World",
    b"integer": 12345,
    b"double": 3.141,
    b"bignum": BigNumber(b"1234567999999999999999999999999999999"),
    b"null": None,
    b"array": [0, 1, 2],
    b"set": SetReply([0, 1, 2]),
    b"map": {0: False, 1: True, 2: False},
    b"attrib": Attributed({b"key-popularity": [b"key:123", 90]},
                          b"Some real reply following the attribute"),
    b"verbatim": Verbatim(b"This is a verbatim\nstring"),
    b"true": True,
    b"false": False,
}



def _tracking_clients(server, conn) -> int:
    """INFO's tracking_clients: the server's for root, else the tenant's."""
    tracker = server.events.tracker
    if tracker is None:
        return 0
    if conn.root:
        return tracker.clients
    table = conn.tenant.tracking
    return table.clients if table is not None else 0


def _tracking_totals(tenants) -> list:
    """INFO's client-side caching figures over `tenants` (dispatch/tracking.py):
    keys remembered, client ids under them, BCAST prefixes."""
    tables = [tenant.tracking for tenant in tenants if tenant.tracking is not None]
    return ["tracking_total_keys:%d" % sum(len(table.keys) for table in tables),
            "tracking_total_items:%d" % sum(table.items for table in tables),
            "tracking_total_prefixes:%d" % sum(len(table.prefixes) for table in tables)]
