"""Typed settings: embedded defaults < TOML file < TENANTKV_SECTION__KEY env < flags.

Each setting also has its Redis parameter name, so CONFIG GET/SET and
`tenantkv-server --maxmemory 100mb` speak the names Redis users know.
"""

import os
import re
import tomllib
from dataclasses import dataclass, field

from tenantkv import errors
from tenantkv.util.keyspace_events import parse_flags, render_flags
from tenantkv.util.numbers import parse_int


class ConfigError(Exception):
    pass


INT_MIN, INT_MAX = -2**31, 2**31 - 1
UINT_MAX = 2**32 - 1
LLONG_MAX = 2**63 - 1
ULLONG_MAX = 2**64 - 1

_MEMORY = re.compile(r"([0-9]*)(b|k|kb|m|mb|g|gb)?", re.IGNORECASE)
_SCALE = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2,
          "g": 1000**3, "gb": 1024**3}


def parse_memory(text: str) -> int:
    """Redis's memtoull: digits and an optional unit (1k = 1000, 1kb = 1024, ...,
    any case); no sign, no spaces; "" is 0; too many digits saturate and the
    unit's product wraps, as in C."""
    match = _MEMORY.fullmatch(text)
    if not match or len(match.group(1)) >= 128:
        raise ValueError("argument must be a memory value")
    number = min(int(match.group(1) or 0), ULLONG_MAX)
    return number * _SCALE[(match.group(2) or "").lower()] % 2**64


def parse_bool(text) -> bool:
    if isinstance(text, bool):
        return text
    lowered = str(text).lower()
    if lowered in ("yes", "true", "on", "1"):
        return True
    if lowered in ("no", "false", "off", "0"):
        return False
    raise ValueError("argument must be 'yes' or 'no'")


def _int(value) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = None if isinstance(value, bool) else parse_int(str(value).encode("utf-8", "surrogateescape"))
    if number is None:
        raise ValueError("argument couldn't be parsed into an integer")
    return number


def _mem(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else parse_memory(str(value))


def _str(value) -> str:
    return str(value)


def parse_save(text: str) -> list:
    """The `save` setting: "3600 1 300 100" -> [(3600, 1), (300, 100)]; "" -> [].
    Raises ValueError as CONFIG SET's "Invalid save parameters"."""
    # Split on single spaces, as Redis: "  3600 1" has empty words and is refused.
    words = text.split(" ") if text else []
    if len(words) % 2:
        raise ValueError("Invalid save parameters")
    rules = []
    for i in range(0, len(words), 2):
        try:
            seconds, changes = int(words[i]), int(words[i + 1])
        except ValueError:
            raise ValueError("Invalid save parameters") from None
        if seconds < 1 or changes < 0:
            raise ValueError("Invalid save parameters")
        rules.append((seconds, changes))
    return rules


# client-output-buffer-limit: Redis's client classes, in CONFIG GET's order.
OBUF_CLASSES = ("normal", "slave", "pubsub")
OBUF_NORMAL, OBUF_REPLICA, OBUF_PUBSUB = 0, 1, 2
_OBUF_CLASS_BY_NAME = {"normal": 0, "slave": 1, "replica": 1, "pubsub": 2}
OBUF_DEFAULT = ((0, 0, 0), (256 * 1024**2, 64 * 1024**2, 60), (32 * 1024**2, 8 * 1024**2, 60))
_STRTOLL = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)")


def _strtoll_int(text: str) -> int | None:
    """C's `int x = strtoll(text, &end, 10)` with `*end == '\\0'` required,
    as Redis reads the soft seconds: leading blanks skipped, saturation at
    the long long bounds, then truncation to a 32-bit int; "" is 0. None
    where Redis refuses the text."""
    if text == "":
        return 0
    match = _STRTOLL.fullmatch(text)
    if match is None:
        return None
    number = int(match.group(2)) * (-1 if match.group(1) == "-" else 1)
    number = max(-2**63, min(2**63 - 1, number)) & 0xFFFFFFFF
    return number - 2**32 if number >= 2**31 else number


def parse_obuf_limits(value) -> dict:
    """A client-output-buffer-limit value, as Redis's
    updateClientOutputBufferLimit reads it: `<class> <hard> <soft> <seconds>`
    repeated, split on single spaces; all checked before any is taken.
    -> {class index: (hard, soft, seconds)}, only the classes named (the
    others keep their limits: see merge_obuf_limits)."""
    if isinstance(value, (tuple, list)):   # the stored form (a reload of the defaults)
        return dict(enumerate(value))
    text = str(value)
    words = text.split(" ") if text else []
    if len(words) % 4:
        raise ValueError(errors.OBUF_LIMIT_ARGS)
    limits = {}
    for i in range(0, len(words), 4):
        index = _OBUF_CLASS_BY_NAME.get(words[i].lower())
        if index is None:   # "master" too: its limits are the normal class's
            raise ValueError(errors.OBUF_LIMIT_CLASS)
        seconds = _strtoll_int(words[i + 3])
        try:
            hard, soft = parse_memory(words[i + 1]), parse_memory(words[i + 2])
        except ValueError:
            seconds = None
        if seconds is None or seconds < 0:
            raise ValueError(errors.OBUF_LIMIT_VALUE)
        limits[index] = (hard, soft, seconds)
    return limits


def merge_obuf_limits(old: tuple, new: dict) -> tuple:
    return tuple(new.get(index, limits) for index, limits in enumerate(old))


def show_obuf_limits(value: tuple) -> str:
    return " ".join("%s %d %d %d" % (name, *limits) for name, limits in zip(OBUF_CLASSES, value))


def _save(value) -> str:
    text = str(value)
    parse_save(text)
    return text


def _replicaof(value) -> str:
    """replicaof: "host port" of the primary to follow, or "" (none)."""
    text = " ".join(str(value).split())
    if not text or text.lower() == "no one":
        return ""
    parts = text.split(" ")
    port = parse_int(parts[-1].encode()) if len(parts) == 2 else None
    if port is None or not 0 < port <= 65535:
        raise ValueError("replicaof must be \"host port\"")
    return text


def parse_notify(value) -> int:
    """notify-keyspace-events: the class bits (util/keyspace_events.py) of
    Redis's letters; an int is the stored form."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    flags = parse_flags(str(value))
    if flags is None:
        raise ValueError(errors.NOTIFY_CLASS)
    return flags


def _username(value) -> str:
    from tenantkv.tenancy.store import validate_username   # the store's rule, one copy
    return validate_username(str(value))


# Redis's numeric parameters: parsed, then checked against the parameter's
# range (some are then clamped, as hz); enums compare without case.

def _bounded(parse, low: int, high: int, clamp: tuple | None = None):
    def convert(value) -> int:
        number = parse(value)
        if not low <= number <= high:
            raise ValueError("argument must be between %d and %d inclusive" % (low, high))
        return number if clamp is None else max(clamp[0], min(clamp[1], number))
    return convert


def parse_percentiles(value) -> tuple:
    """latency-tracking-info-percentiles: numbers in [0, 100], space separated."""
    if isinstance(value, (list, tuple)):
        words = [str(v) for v in value]
    else:
        words = str(value).split()
    try:
        numbers = tuple(float(w) for w in words)
    except ValueError:
        raise ValueError("Invalid latency-tracking-info-percentiles parameters")
    if any(not 0.0 <= n <= 100.0 or n != n for n in numbers):
        raise ValueError("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]")
    return numbers


def show_percentiles(value: tuple) -> str:
    return " ".join("%g" % v if v != int(v) else "%d" % v for v in value)


def integer(low: int = 0, high: int = LLONG_MAX, clamp: tuple | None = None):
    return _bounded(_int, low, high, clamp)


def memory(low: int = 0, high: int = LLONG_MAX):
    return _bounded(_mem, low, high)


def memory_or_percent(low: int = 0, high: int = LLONG_MAX, max_percent: int = 100):
    """Redis's MEMORY_CONFIG | PERCENT_CONFIG (maxmemory-clients): a memory
    value, or "N%" of maxmemory. Kept as CONFIG GET shows it: "N%" or bytes."""
    bounded = memory(low, high)

    def convert(value) -> str:
        text = str(value)
        try:
            return str(bounded(text))
        except ValueError as exc:
            if "between" in str(exc):
                raise
        number = parse_int(text[:-1].encode("utf-8", "surrogateescape")) \
            if len(text) > 1 and text.endswith("%") else None
        if number is None or number < 0:
            raise ValueError("argument must be a memory or percent value")
        if number > max_percent:
            raise ValueError("percentage argument must be less or equal to %d" % max_percent)
        return "%d%%" % number if number else "0"
    return convert


def enum(*options):
    def convert(value) -> str:
        text = str(value).lower()
        if text not in options:
            raise ValueError("argument(s) must be one of the following: " + ", ".join(options))
        return text
    return convert


def _empty_only(reason: str):
    def convert(value):
        if str(value) != "":
            raise ValueError(reason)
        return ""
    return convert


@dataclass
class Setting:
    section: str | None   # None: a Redis parameter only, not in the config file
    key: str
    redis_name: str | None
    convert: object
    default: object
    mutable: bool = True
    help: str = ""
    alias: str | None = None     # Redis's other name for it (the pre-7.0 one)
    protected: bool = False      # Redis refuses CONFIG SET (enable-protected-configs no)
    # A change nobody listens to (config.listeners) is refused with this reason.
    needs_listener: str = ""
    secret: bool = False         # never shown: not in CONFIG GET, repr or logs
    hidden: bool = False         # Redis's HIDDEN_CONFIG: CONFIG GET by exact name only
    # A value that sets only part of the setting (client-output-buffer-limit
    # names some classes): merge(old, converted) gives the whole new value,
    # show(value) its CONFIG GET text.
    merge: object = None
    show: object = None


def _redis(name, convert, default, mutable=True, alias=None, hidden=False) -> Setting:
    return Setting(None, name, name, convert, default, mutable, alias=alias, hidden=hidden)


SETTINGS = [
    Setting("network", "bind", "bind", _str, "127.0.0.1", True, "address(es) to listen on, space separated",
            needs_listener="Failed to bind to specified addresses."),
    Setting("network", "port", "port", integer(0, 65535), 6379, True, "TCP port",
            needs_listener="Unable to listen on this port"),
    Setting("network", "timeout", "timeout", integer(0, INT_MAX), 0, True, "close idle clients after N seconds (0 = never)"),
    Setting("network", "tcp_keepalive", "tcp-keepalive", integer(0, INT_MAX), 300, True, "TCP keepalive seconds"),
    Setting("network", "maxclients", "maxclients", integer(1, UINT_MAX), 10000, True, "most simultaneous clients"),
    Setting("network", "protected_mode", "protected-mode", parse_bool, True, True, "refuse non-loopback clients without auth"),
    Setting("data", "dir", "dir", _str, "./data", True, "data directory (snapshots, logs, users)", protected=True),
    Setting("data", "dbfilename", "dbfilename", _str, "dump.kdb", True, "snapshot file name", protected=True),
    Setting("data", "save", "save", _save, "3600 1 300 100 60 10000", True,
            "snapshot rules: seconds changes ... (empty = no automatic snapshots)"),
    Setting("data", "stop_writes_on_bgsave_error", "stop-writes-on-bgsave-error", parse_bool, True, True,
            "refuse writes (MISCONF) while the last background save failed, if save rules are set"),
    Setting("data", "appendonly", "appendonly", parse_bool, False, True, "append-only log on/off"),
    Setting("data", "appendfsync", "appendfsync", enum("everysec", "always", "no"), "everysec", True, "always | everysec | no"),
    Setting("data", "appendfilename", "appendfilename", _str, "appendonly.aof", False, "append-only log file name"),
    Setting("data", "appenddirname", "appenddirname", _str, "appendonlydir", False, "directory (in data.dir) of the append-only log files"),
    Setting("data", "aof_use_rdb_preamble", "aof-use-rdb-preamble", parse_bool, True, True, "write the log's base as a .kdb snapshot (no: as AOF records)"),
    Setting("data", "aof_load_truncated", "aof-load-truncated", parse_bool, True, True, "load a log whose tail is torn (truncating it) instead of refusing to start"),
    Setting("data", "auto_aof_rewrite_percentage", "auto-aof-rewrite-percentage", integer(0, INT_MAX), 100, True,
            "rewrite the log by itself when it grew by this % over its size after the last rewrite (0 = never)"),
    Setting("data", "auto_aof_rewrite_min_size", "auto-aof-rewrite-min-size", memory(0, LLONG_MAX), 64 * 1024**2, True,
            "no automatic rewrite of a log smaller than this (bytes, or 64mb...)"),
    Setting("limits", "maxmemory", "maxmemory", memory(0, ULLONG_MAX), 0, True, "memory limit in bytes (0 = none)"),
    Setting("limits", "maxmemory_policy", "maxmemory-policy",
            enum("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
                 "allkeys-lru", "allkeys-lfu", "allkeys-random", "noeviction"),
            "noeviction", True, "eviction policy"),
    Setting("limits", "proto_max_bulk_len", "proto-max-bulk-len", memory(1024**2), 512 * 1024**2, True,
            "largest bulk string a client may send"),
    Setting("limits", "client_query_buffer_limit", "client-query-buffer-limit", memory(1024**2), 1024**3, True,
            "most buffered input per client"),
    # Redis's classes and defaults; "normal 0 0 0" is no limit for normal
    # clients, which tenant-client-output-limit bounds for non-root tenants.
    Setting("limits", "client_output_buffer_limit", "client-output-buffer-limit", parse_obuf_limits,
            OBUF_DEFAULT, True, "per client class: <class> <hard> <soft> <seconds> (Redis's syntax); "
            "a client over its hard limit, or over its soft limit for longer than the seconds, is closed",
            merge=merge_obuf_limits, show=show_obuf_limits),
    # Client-side caching (dispatch/tracking.py): Redis's setting, server-wide
    # there, the bound of each tenant's table here.
    Setting("limits", "tracking_table_max_keys", "tracking-table-max-keys", integer(0, LLONG_MAX),
            1_000_000, True, "keys a tenant's client-side caching table remembers; past it the "
            "oldest are invalidated (0 = no limit)"),
    Setting("limits", "tenant_client_output_limit", "tenant-client-output-limit", memory(), 64 * 1024**2,
            True, "hard output limit of the normal clients of non-root tenants, over the normal "
            "class's (0 = only client-output-buffer-limit)"),
    # Before AUTH (server/connection.py): connections not authenticated yet,
    # in total (0 = maxclients minus a tenth, kept for those who log in) and
    # per client address (IPv6 by /64).
    Setting("limits", "unauthenticated_maxclients", "unauthenticated-maxclients", integer(0, UINT_MAX), 0,
            True, "most connections not yet authenticated (0 = 90% of maxclients); at it the "
            "oldest is closed to let a newcomer in"),
    Setting("limits", "unauthenticated_maxclients_per_address", "unauthenticated-maxclients-per-address",
            integer(0, UINT_MAX), 1000, True,
            "most connections not yet authenticated from one address, IPv6 by /64 (0 = no limit)"),
    Setting("limits", "databases", "databases", integer(1, INT_MAX), 16, False, "databases per tenant"),
    # Per-tenant limits (keyspace/quota.py), the defaults of every tenant
    # without an override of its own (0 = no limit). tenantkv's own names.
    Setting("quotas", "memory", "tenant-quota-memory", memory(), 0, True,
            "bytes of memory one tenant may use (0 = no limit)"),
    Setting("quotas", "keys", "tenant-quota-keys", integer(0, LLONG_MAX), 0, True,
            "keys one tenant may hold over all its databases (0 = no limit)"),
    Setting("quotas", "connections", "tenant-quota-connections", integer(0, INT_MAX), 0, True,
            "simultaneous connections of one tenant (0 = no limit)"),
    Setting("quotas", "rate", "tenant-quota-rate", integer(0, INT_MAX), 0, True,
            "commands per second of one tenant (0 = no limit)"),
    # Keyspace notifications (dispatch/notify.py): the server's classes, which
    # every tenant without its own setting follows (a non-root CONFIG SET
    # sets its tenant's own: commands/server.py).
    Setting("notify", "keyspace_events", "notify-keyspace-events", parse_notify, 0, True,
            "keyspace notification classes, Redis's letters (e.g. \"Ex\"; empty = none)",
            show=render_flags),
    # TLS (server/tls.py): Redis 7's names and defaults. tls-port 0 is off;
    # with port 0 it is the only listener. A change of the files or the
    # protocol settings builds a new context for new connections (live ones
    # keep theirs); a context that cannot be built refuses the CONFIG SET.
    # (Set at start-up only, for now: Redis also moves the listener at runtime.)
    Setting("tls", "port", "tls-port", integer(0, 65535), 0, False, "TLS port (0 = no TLS listener)"),
    Setting("tls", "cert_file", "tls-cert-file", _str, "", True, "server certificate (PEM, with its chain)",
            needs_listener="Unable to update TLS configuration."),
    Setting("tls", "key_file", "tls-key-file", _str, "", True, "server private key (PEM)",
            needs_listener="Unable to update TLS configuration."),
    Setting("tls", "key_file_pass", "tls-key-file-pass", _str, "", True,
            "passphrase of tls-key-file, if encrypted", secret=True,
            needs_listener="Unable to update TLS configuration."),
    Setting("tls", "ca_cert_file", "tls-ca-cert-file", _str, "", True,
            "CA certificates (PEM) that client certificates must chain to",
            needs_listener="Unable to update TLS configuration."),
    Setting("tls", "ca_cert_dir", "tls-ca-cert-dir", _str, "", True,
            "directory of CA certificates (c_rehash layout)",
            needs_listener="Unable to update TLS configuration."),
    Setting("tls", "auth_clients", "tls-auth-clients", enum("yes", "no", "optional"), "yes", True,
            "client certificates: yes (required) | optional (verified if sent) | no",
            needs_listener="Unable to update TLS configuration."),
    Setting("tls", "protocols", "tls-protocols", _str, "", True,
            "allowed versions, e.g. \"TLSv1.2 TLSv1.3\" (empty = TLSv1.2 and TLSv1.3)",
            needs_listener="Unable to update TLS configuration."),
    Setting("tls", "ciphers", "tls-ciphers", _str, "", True,
            "OpenSSL cipher list for TLSv1.2 and below (empty = OpenSSL's default)",
            needs_listener="Unable to update TLS configuration."),
    Setting("tls", "ciphersuites", "tls-ciphersuites", _str, "", True,
            "TLSv1.3 cipher suites, colon separated (empty = OpenSSL's default)",
            needs_listener="Unable to update TLS configuration."),
    Setting("tls", "prefer_server_ciphers", "tls-prefer-server-ciphers", parse_bool, False, True,
            "choose the cipher by the server's order, not the client's",
            needs_listener="Unable to update TLS configuration."),
    # tenantkv's own: a verified client certificate's subject CN names the
    # user the connection is logged in as, with no password (server/tls.py).
    Setting("tls", "client_cert_user", "tls-client-cert-user", parse_bool, False, True,
            "log a TLS connection in as the user named by its verified client "
            "certificate's subject CN (yes | no)"),
    # Replication (replication/): the primary this server follows. CONFIG
    # SET cannot change replicaof (Redis: immutable); REPLICAOF does, and
    # CONFIG REWRITE writes what it set. masteruser must be a root user of
    # the primary; after the first sync the replica has the primary's users.
    Setting("replication", "replicaof", "replicaof", _replicaof, "", False,
            "primary to follow: \"host port\" (empty = this server is a primary)",
            alias="slaveof"),
    Setting("replication", "masteruser", "masteruser", _str, "", True,
            "root user of the primary that this replica logs in as"),
    Setting("replication", "masterauth", "masterauth", _str, "", True,
            "password of masteruser on the primary", secret=True),
    Setting("tls", "replication", "tls-replication", parse_bool, False, True,
            "replicas connect to their primary with TLS (yes | no)"),
    Setting("tls", "client_cert_file", "tls-client-cert-file", _str, "", True,
            "certificate a replica presents to its primary (empty = tls-cert-file)"),
    Setting("tls", "client_key_file", "tls-client-key-file", _str, "", True,
            "private key of tls-client-cert-file (empty = tls-key-file)"),
    # The Prometheus endpoint (server/metrics.py), on the addresses of `bind`.
    Setting("metrics", "port", "metrics-port", integer(0, 65535), 0, False,
            "HTTP port of the Prometheus metrics endpoint (0 = off)"),
    Setting("metrics", "max_tenants", "metrics-max-tenants", integer(0, 100_000), 100, True,
            "most active tenants with series of their own; the others are summed as tenant=\"other\""),
    Setting("metrics", "user", None, _str, "", False, "HTTP basic auth user of the metrics endpoint"),
    Setting("metrics", "password", None, _str, "", False,
            "HTTP basic auth password of the metrics endpoint (empty with no user = no auth)",
            secret=True),
    Setting("expiry", "hz", "hz", integer(0, INT_MAX, clamp=(1, 500)), 10, True, "background task frequency (active expiry)"),
    Setting("expiry", "active_expire", None, parse_bool, True, True, "active expiry cycle on/off"),
    Setting("logging", "level", "loglevel", enum("debug", "verbose", "notice", "warning", "nothing"), "notice", True,
            "debug | verbose | notice | warning | nothing"),
    Setting("logging", "file", "logfile", _str, "", False, "log file (empty = stderr)"),
    Setting("logging", "format", "log-format", enum("text", "json"), "text", True,
            "text (redis-server's lines) | json (one JSON object per line)"),
    Setting("logging", "audit_file", "audit-log-file", _str, "", False,
            "audit log file (empty = the main log, logger name \"audit\")"),
    Setting("auth", "default_user", None, enum("off", "nopass"), "off", False,
            "password-less default user with root rights (development mode): off | nopass"),
    # The user store. None of these has a Redis name, so CONFIG GET/SET cannot
    # reach them (root_password above all: it must never be shown).
    Setting("auth", "users_db", None, _str, "", False, "user database file (empty = <data.dir>/users.db)"),
    Setting("auth", "root_user", None, _username, "root", False, "name of the root user created on first start"),
    Setting("auth", "root_password", None, _str, "", False,
            "first start's root password (empty = TENANTKV_ROOT_PASSWORD, else generated into <dir>/root.password)",
            secret=True),
    Setting("auth", "auth_timeout", None, integer(1, INT_MAX), 10, False,
            "seconds a new client has to authenticate"),
    Setting("auth", "backup_dir", None, _str, "", False, "user database backups (empty = <data.dir>/backups)"),
    Setting("auth", "backup_interval", None, integer(0, INT_MAX), 3600, False,
            "seconds between user database backups (0 = off)"),
    Setting("auth", "backup_keep", None, integer(0, INT_MAX), 7, False, "user database backups kept (0 = all)"),
    Setting("acl", "log_max_len", "acllog-max-len", integer(0, LLONG_MAX), 128, True,
            "entries ACL LOG keeps (failed AUTHs, refused commands)"),
    # Redis parameters clients and tools read; kept and answered, not acted on.
    _redis("lazyfree-lazy-user-del", parse_bool, False),
    _redis("lazyfree-lazy-user-flush", parse_bool, False),
    _redis("list-max-listpack-size", integer(INT_MIN, INT_MAX), -2, alias="list-max-ziplist-size"),
    _redis("list-compress-depth", integer(0, INT_MAX), 0),
    _redis("hash-max-listpack-entries", integer(), 512, alias="hash-max-ziplist-entries"),
    _redis("hash-max-listpack-value", memory(), 64, alias="hash-max-ziplist-value"),
    _redis("set-max-intset-entries", integer(), 512),
    _redis("set-max-listpack-entries", integer(), 128),
    _redis("set-max-listpack-value", memory(), 64),
    _redis("zset-max-listpack-entries", integer(), 128, alias="zset-max-ziplist-entries"),
    _redis("zset-max-listpack-value", memory(), 64, alias="zset-max-ziplist-value"),
    _redis("stream-node-max-bytes", memory(), 4096),
    # The sparse HyperLogLog size (header included) past which PFADD/PFMERGE make it dense.
    _redis("hll-sparse-max-bytes", memory(), 3000),
    _redis("stream-node-max-entries", integer(), 100),
    # SLOWLOG, LATENCY and the latency histograms: acted on (server/app.py
    # listens; dispatch/slowlog.py, dispatch/latency.py).
    _redis("slowlog-log-slower-than", integer(-1), 10000),
    _redis("slowlog-max-len", integer(), 128),
    _redis("latency-tracking", parse_bool, True),
    _redis("latency-monitor-threshold", integer(), 0),
    Setting(None, "latency-tracking-info-percentiles", "latency-tracking-info-percentiles",
            parse_percentiles, (50.0, 99.0, 99.9), show=show_percentiles),
    _redis("busy-reply-threshold", integer(), 5000, alias="lua-time-limit"),
    _redis("maxmemory-samples", integer(1, INT_MAX), 5),
    _redis("maxmemory-eviction-tenacity", integer(0, 100), 10),
    _redis("lfu-log-factor", integer(0, INT_MAX), 10),
    _redis("lfu-decay-time", integer(0, INT_MAX), 1),
    # Secrets with no effect here: only "" (none) is accepted, so nothing is
    # stored or shown in clear and nobody believes a password protects them.
    _redis("requirepass", _empty_only(errors.REQUIREPASS_UNSUPPORTED), ""),
    _redis("replica-read-only", parse_bool, True, alias="slave-read-only"),
    _redis("min-replicas-to-write", integer(0, INT_MAX), 0, alias="min-slaves-to-write"),
    _redis("activedefrag", parse_bool, False),
    _redis("cluster-enabled", parse_bool, False, mutable=False),
    _redis("daemonize", parse_bool, False, mutable=False),
    _redis("supervised", enum("upstart", "systemd", "auto", "no"), "no", mutable=False),
    _redis("io-threads", integer(1, 128), 1, mutable=False),
    _redis("rdb-key-save-delay", integer(INT_MIN, INT_MAX), 0, hidden=True),   # microseconds per key (tests)
    _redis("key-load-delay", integer(INT_MIN, INT_MAX), 0, hidden=True),
    _redis("maxmemory-clients", memory_or_percent(-100, LLONG_MAX), "0"),
    # Redis raises a backlog size under 16 KB to 16 KB.
    _redis("repl-backlog-size", _bounded(_mem, 1, LLONG_MAX, (16 * 1024, LLONG_MAX)), 1024**2),
    _redis("enable-debug-command", enum("no", "yes", "local"), "yes", mutable=False),
    # Redis's runtime tuning with nothing to tune here (no rehashing steps,
    # no jemalloc, no compression of snapshots, no defragmentation): accepted
    # so that configs and tools that set them keep working; Redis's ranges.
    _redis("activerehashing", parse_bool, True),
    _redis("rdbcompression", parse_bool, True),
    _redis("rdb-save-incremental-fsync", parse_bool, True),
    _redis("aof-rewrite-incremental-fsync", parse_bool, True),
    _redis("dynamic-hz", parse_bool, True),
    _redis("active-expire-effort", integer(1, 10), 1),
    _redis("jemalloc-bg-thread", parse_bool, True),
    _redis("crash-log-enabled", parse_bool, True),
    _redis("crash-memcheck-enabled", parse_bool, True),
    _redis("lazyfree-lazy-eviction", parse_bool, False),
    _redis("lazyfree-lazy-expire", parse_bool, False),
    _redis("lazyfree-lazy-server-del", parse_bool, False),
    _redis("active-defrag-cycle-min", integer(1, 99), 1),
    _redis("active-defrag-cycle-max", integer(1, 99), 25),
    _redis("active-defrag-threshold-lower", integer(0, 1000), 10),
    _redis("active-defrag-threshold-upper", integer(0, 1000), 100),
    _redis("active-defrag-ignore-bytes", memory(1, LLONG_MAX), 100 * 1024**2),
    _redis("active-defrag-max-scan-fields", integer(1, LLONG_MAX), 1000),
    # Replication settings, which a master without replicas (tenantkv's
    # INFO replication) ignores in Redis too.
    _redis("repl-backlog-ttl", integer(0, LLONG_MAX), 3600),
    _redis("repl-timeout", integer(1, INT_MAX), 60),
    _redis("repl-ping-replica-period", integer(1, INT_MAX), 10, alias="repl-ping-slave-period"),
    _redis("repl-diskless-sync", parse_bool, True),
    _redis("repl-diskless-sync-delay", integer(0, INT_MAX), 5),
    _redis("repl-diskless-sync-max-replicas", integer(0, INT_MAX), 0),
    _redis("replica-serve-stale-data", parse_bool, True, alias="slave-serve-stale-data"),
    _redis("replica-priority", integer(0, INT_MAX), 100, alias="slave-priority"),
    _redis("replica-lazy-flush", parse_bool, False, alias="slave-lazy-flush"),
    _redis("replica-ignore-maxmemory", parse_bool, True, alias="slave-ignore-maxmemory"),
    _redis("min-replicas-max-lag", integer(0, INT_MAX), 10, alias="min-slaves-max-lag"),
]

# The article's config keys, accepted as aliases of ours.
ALIASES = {
    ("server.network", "host"): ("network", "bind"),
    ("server.network", "port"): ("network", "port"),
    ("server.db", "path"): ("data", "dir"),
    ("server.db", "backup_path"): ("auth", "backup_dir"),
    ("server.db", "backup_interval"): ("auth", "backup_interval"),
    ("server.network", "root_user"): ("auth", "root_user"),
}
# Keys the article defines that later issues give meaning to; accepted now.
ACCEPTED_LATER: set = set()

BY_PATH = {(s.section, s.key): s for s in SETTINGS if s.section}
SECRETS = {(s.section, s.key) for s in SETTINGS if s.secret}
# Every name CONFIG GET/SET know, aliases included (lower case) -> Setting
BY_REDIS_NAME = {name: s for s in SETTINGS for name in (s.redis_name, s.alias) if name}


# Words of a parameter name whose value is a secret (masterauth, requirepass,
# tls-key-file-pass, any *password*): never written to the log.
# (Not every "auth": tls-auth-clients is no secret.)
_SECRET_WORDS = ("pass", "secret", "masterauth", "basic-auth")


def is_secret(name: str) -> bool:
    """A parameter whose value the audit log must not show."""
    setting = BY_REDIS_NAME.get(name.lower())
    return (setting is not None and setting.secret) or any(w in name.lower() for w in _SECRET_WORDS)


class ConfigSetError(Exception):
    """CONFIG SET refused: `name` as Redis names it in the error, and why
    (reason None: no such parameter)."""

    def __init__(self, name: str, reason: str | None = None) -> None:
        super().__init__(name, reason)
        self.name, self.reason = name, reason


@dataclass
class Config:
    values: dict = field(default_factory=dict)
    # Redis parameter name -> callables run with the new value after CONFIG SET,
    # for settings whose owner must act on a change (the log level, say).
    listeners: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = {"%s.%s" % path if path[0] else path[1]:
                 "<secret>" if path in SECRETS and value else value
                 for path, value in self.values.items()}
        return "Config(%r)" % shown

    def __getitem__(self, path: str):
        section, key = path.split(".")
        return self.values[(section, key)]

    def set_path(self, section: str, key: str, raw, origin: str) -> None:
        setting = BY_PATH.get((section, key))
        if setting is None:
            raise ConfigError("%s: unknown setting '%s.%s'" % (origin, section, key))
        self.set_setting(setting, raw, origin)

    def set_setting(self, setting: Setting, raw, origin: str) -> None:
        path = (setting.section, setting.key)
        try:
            value = setting.convert(raw)
            if setting.merge is not None:
                value = setting.merge(self.values[path], value)
            self.values[path] = value
        except (ValueError, TypeError) as exc:
            name = "%s.%s" % (setting.section, setting.key) if setting.section else setting.key
            raise ConfigError("%s: bad value for '%s': %r (%s)" % (origin, name, raw, exc))

    def set_redis(self, pairs: list) -> None:
        """CONFIG SET name value [name value ...]: all or nothing, checked in
        Redis's order (every name, then every value); the first error raises
        ConfigSetError."""
        chosen = []
        for name, raw in pairs:
            setting = BY_REDIS_NAME.get(name.lower())
            if setting is None:
                raise ConfigSetError(name)
            if not setting.mutable or setting.protected:
                raise ConfigSetError(name, "can't set %s config"
                                     % ("immutable" if not setting.mutable else "protected"))
            if any(other == name.lower() for other, _, _ in chosen):
                raise ConfigSetError(name, "duplicate parameter")
            chosen.append((name.lower(), setting, raw))
        updates = []
        for name, setting, raw in chosen:
            path = (setting.section, setting.key)
            try:
                value = setting.convert(raw)
            except (ValueError, TypeError) as exc:
                raise ConfigSetError(name, str(exc))
            if setting.merge is not None:
                value = setting.merge(self.values[path], value)
            if (setting.needs_listener and value != self.values[path]
                    and not self.listeners.get(setting.redis_name)):
                raise ConfigSetError(name, setting.needs_listener)
            updates.append((name, setting, value))
        # Every value is in place before any owner acts, as Redis's apply
        # functions run after all are set: a listener that reads several
        # settings (the TLS context: a new certificate with its new key)
        # sees the whole call, not half of it.
        applied = []
        for name, setting, value in updates:
            path = (setting.section, setting.key)
            applied.append((setting, self.values[path]))
            self.values[path] = value
        try:
            for name, setting, value in updates:
                for listener in self.listeners.get(setting.redis_name, ()):
                    listener(value)   # may refuse: ConfigSetError (maxclients, say)
        except ConfigSetError:
            # As Redis: a change its owner cannot apply undoes the whole call.
            for setting, old in reversed(applied):
                self.values[(setting.section, setting.key)] = old
            for setting, old in reversed(applied):
                for listener in self.listeners.get(setting.redis_name, ()):
                    try:
                        listener(old)
                    except ConfigSetError:
                        pass
            raise

    def get_redis(self, name: str) -> str:
        setting = BY_REDIS_NAME[name]
        value = self.values[(setting.section, setting.key)]
        if setting.show is not None:
            return setting.show(value)
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)


def users_db_path(config: Config) -> str:
    """Where the user database lives: auth.users_db, else <data.dir>/users.db."""
    return config["auth.users_db"] or os.path.join(config["data.dir"], "users.db")


def backup_dir_path(config: Config) -> str:
    """Where user database backups go: auth.backup_dir, else <data.dir>/backups."""
    return config["auth.backup_dir"] or os.path.join(config["data.dir"], "backups")


def load(path: str | None = None, env: dict | None = None, flags: dict | None = None) -> Config:
    config = Config({(s.section, s.key): s.default for s in SETTINGS})
    if path:
        try:
            with open(path, "rb") as handle:
                document = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError("cannot read config file %s: %s" % (path, exc.strerror))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config file %s: %s" % (path, exc))
        _apply_document(config, document, path)
    env = os.environ if env is None else env
    for name, raw in env.items():
        if not name.startswith("TENANTKV_") or "__" not in name:
            continue
        section, _, key = name[len("TENANTKV_"):].lower().partition("__")
        config.set_path(section, key, raw, "environment variable " + name)
    for name, raw in (flags or {}).items():
        setting = BY_REDIS_NAME.get(name)
        if setting is None:
            raise ConfigError("unknown option --%s" % name)
        config.set_setting(setting, raw, "option --" + name)
    return config


def _apply_document(config: Config, document: dict, origin: str) -> None:
    for section, table in document.items():
        if not isinstance(table, dict):
            raise ConfigError("%s: '%s' must be a table" % (origin, section))
        if section == REDIS_SECTION:
            for key, value in table.items():
                setting = BY_REDIS_NAME.get(key.lower())
                if setting is None or setting.section is not None:
                    raise ConfigError("%s: unknown setting '%s.%s'" % (origin, section, key))
                config.set_setting(setting, value, origin)
            continue
        if section == "server":
            for sub, subtable in table.items():
                for key, value in subtable.items():
                    path = ("server." + sub, key)
                    if path in ALIASES:
                        config.set_path(*ALIASES[path], value, origin)
                    elif path not in ACCEPTED_LATER:
                        raise ConfigError("%s: unknown setting 'server.%s.%s'" % (origin, sub, key))
            continue
        for key, value in table.items():
            config.set_path(section, key, value, origin)


# -- CONFIG REWRITE ----------------------------------------------------------------
# The Redis parameters that have no place of their own in the file live in
# this table, under their Redis names ("hash-max-listpack-entries" = 512).
REDIS_SECTION = "redis"


def _toml_value(setting: Setting, value):
    if setting.show is not None:
        return setting.show(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
        return str(value)   # past TOML's 64-bit integers: the text converts back
    return value


def _same(setting: Setting, written, value) -> bool:
    """Whether the file's `written` value already means `value` (then its
    text, "100mb" say, is left as the operator wrote it)."""
    if hasattr(written, "unwrap"):   # a tomlkit item: its plain value
        written = written.unwrap()
    try:
        converted = setting.convert(written)
        if setting.merge is not None:
            converted = setting.merge(setting.default, converted)
        return converted == value
    except (ValueError, TypeError):
        return False


def rewrite(config: Config, path: str) -> None:
    """CONFIG REWRITE: the current settings into the TOML file at `path`,
    as Redis rewrites its redis.conf: a key already in the file gets the
    current value (its text kept if it means the same), a setting changed
    from its default and not in the file is added to its table; comments,
    the order and the article's aliases are kept (tomlkit). Secrets
    (auth.root_password) are never written nor changed, nor are the
    settings CONFIG SET cannot change (immutable or protected: dir,
    default_user...): the file keeps what the operator wrote, and a value
    an environment variable gave them is not baked in. Written to a
    temporary file, fsynced and renamed, with the file's mode. Raises
    OSError (the reason for the client) or ConfigError (a file that no
    longer parses)."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError
    real = os.path.realpath(path)
    with open(real, "r", encoding="utf-8") as handle:
        text = handle.read()
    try:
        document = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError("the config file no longer parses: %s" % exc) from None
    aliased = {target: source for source, target in ALIASES.items()}
    for setting in SETTINGS:
        # replicaof: immutable for CONFIG SET, but REPLICAOF changes it and
        # Sentinel's failover rewrites it (MULTI, REPLICAOF, CONFIG REWRITE).
        if setting.secret or setting.protected or (
                not setting.mutable and setting.key != "replicaof"):
            continue
        value = config.values[(setting.section, setting.key)]
        if setting.section is None:
            table_name, key = REDIS_SECTION, setting.redis_name
        else:
            table_name, key = setting.section, setting.key
            alias = aliased.get((setting.section, setting.key))
            if alias is not None and key not in document.get(table_name, {}):
                outer, _, inner = alias[0].partition(".")
                found = document.get(outer, {}).get(inner, {})
                if alias[1] in found:   # the article's spelling: updated there
                    if not _same(setting, found[alias[1]], value):
                        found[alias[1]] = _toml_value(setting, value)
                    continue
        table = document.get(table_name)
        if table is not None and key in table:
            if not _same(setting, table[key], value):
                table[key] = _toml_value(setting, value)
            continue
        if value == setting.default:
            continue
        if table is None:
            table = document[table_name] = tomlkit.table()
        table[key] = _toml_value(setting, value)
    data = tomlkit.dumps(document).encode("utf-8")
    mode = os.stat(real).st_mode & 0o7777
    directory = os.path.dirname(real)
    temp = os.path.join(directory, ".%s.rewrite-%d" % (os.path.basename(real), os.getpid()))
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(fd, mode)   # the umask may have narrowed it
            os.fsync(fd)
        os.replace(temp, real)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
