"""Typed settings: embedded defaults < TOML file < TENANTKV_SECTION__KEY env < flags.

Each setting also has its Redis parameter name, so CONFIG GET/SET and
`tenantkv-server --maxmemory 100mb` speak the names Redis users know.
"""

import os
import re
import tomllib
from dataclasses import dataclass, field


class ConfigError(Exception):
    pass


def parse_memory(text: str) -> int:
    """Redis memory units: 1k = 1000, 1kb = 1024, ... ; plain numbers are bytes."""
    match = re.fullmatch(r"(-?\d+)(k|kb|m|mb|g|gb)?", text.strip().lower())
    if not match:
        raise ValueError("argument must be a memory value")
    number, unit = int(match.group(1)), match.group(2) or ""
    scale = {"": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2,
             "g": 1000**3, "gb": 1024**3}[unit]
    return number * scale


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
    if isinstance(value, bool):
        raise ValueError("argument couldn't be parsed into an integer")
    if isinstance(value, int):
        return value
    if not re.fullmatch(r"-?\d+", str(value)):
        raise ValueError("argument couldn't be parsed into an integer")
    return int(value)


def _mem(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else parse_memory(str(value))


def _str(value) -> str:
    return str(value)


def _loglevel(value) -> str:
    level = str(value).lower()
    if level not in ("debug", "verbose", "notice", "warning", "nothing"):
        raise ValueError("argument(s) must be one of the following: debug, verbose, notice, warning, nothing")
    return level


def _choice(*options):
    def check(value) -> str:
        text = str(value).lower()
        if text not in options:
            raise ValueError("argument(s) must be one of the following: " + ", ".join(options))
        return text
    return check


@dataclass
class Setting:
    section: str
    key: str
    redis_name: str | None
    convert: object
    default: object
    mutable: bool = True
    help: str = ""


SETTINGS = [
    Setting("network", "bind", "bind", _str, "127.0.0.1", False, "address(es) to listen on, space separated"),
    Setting("network", "port", "port", _int, 6379, False, "TCP port"),
    Setting("network", "timeout", "timeout", _int, 0, True, "close idle clients after N seconds (0 = never)"),
    Setting("network", "tcp_keepalive", "tcp-keepalive", _int, 300, True, "TCP keepalive seconds"),
    Setting("network", "maxclients", "maxclients", _int, 10000, True, "most simultaneous clients"),
    Setting("network", "protected_mode", "protected-mode", parse_bool, True, True, "refuse non-loopback clients without auth"),
    Setting("data", "dir", "dir", _str, "./data", False, "data directory (snapshots, logs, users)"),
    Setting("data", "dbfilename", "dbfilename", _str, "dump.kdb", True, "snapshot file name"),
    Setting("data", "save", "save", _str, "3600 1 300 100 60 10000", True, "snapshot rules: seconds changes ..."),
    Setting("data", "appendonly", "appendonly", parse_bool, False, True, "append-only log on/off"),
    Setting("data", "appendfsync", "appendfsync", _choice("always", "everysec", "no"), "everysec", True, "always | everysec | no"),
    Setting("data", "appendfilename", "appendfilename", _str, "appendonly.aof", False, "append-only log file name"),
    Setting("limits", "maxmemory", "maxmemory", _mem, 0, True, "memory limit in bytes (0 = none)"),
    Setting("limits", "maxmemory_policy", "maxmemory-policy", _str, "noeviction", True, "eviction policy"),
    Setting("limits", "proto_max_bulk_len", "proto-max-bulk-len", _mem, 512 * 1024 * 1024, True, "largest bulk string a client may send"),
    Setting("limits", "client_query_buffer_limit", "client-query-buffer-limit", _mem, 1024**3, True, "most buffered input per client"),
    Setting("limits", "client_output_buffer_limit", None, _mem, 1024**3, True, "most unsent output per client before it is closed"),
    Setting("limits", "databases", "databases", _int, 16, False, "databases per tenant"),
    Setting("expiry", "hz", "hz", _int, 10, True, "background task frequency (active expiry)"),
    Setting("expiry", "active_expire", None, parse_bool, True, True, "active expiry cycle on/off"),
    Setting("logging", "level", "loglevel", _loglevel, "notice", True, "debug | verbose | notice | warning | nothing"),
    Setting("logging", "file", "logfile", _str, "", False, "log file (empty = stderr)"),
    Setting("auth", "default_user", None, _choice("off", "nopass"), "nopass", False, "password-less default user: off | nopass"),
]

# The article's config keys, accepted as aliases of ours.
ALIASES = {
    ("server.network", "host"): ("network", "bind"),
    ("server.network", "port"): ("network", "port"),
    ("server.db", "path"): ("data", "dir"),
}
# Keys the article defines that later issues give meaning to; accepted now.
ACCEPTED_LATER = {("server.db", "backup_path"), ("server.db", "backup_interval"),
                  ("server.network", "root_user")}

BY_PATH = {(s.section, s.key): s for s in SETTINGS}
BY_REDIS_NAME = {s.redis_name: s for s in SETTINGS if s.redis_name}


@dataclass
class Config:
    values: dict = field(default_factory=dict)
    # Redis parameter name -> callables run with the new value after CONFIG SET,
    # for settings whose owner must act on a change (the log level, say).
    listeners: dict = field(default_factory=dict)

    def __getitem__(self, path: str):
        section, key = path.split(".")
        return self.values[(section, key)]

    def set_path(self, section: str, key: str, raw, origin: str) -> None:
        setting = BY_PATH.get((section, key))
        if setting is None:
            raise ConfigError("%s: unknown setting '%s.%s'" % (origin, section, key))
        try:
            self.values[(section, key)] = setting.convert(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError("%s: bad value for '%s.%s': %r (%s)" % (origin, section, key, raw, exc))

    def set_redis(self, name: str, raw: str) -> None:
        """CONFIG SET / --name value. Raises ValueError with Redis's reason."""
        setting = BY_REDIS_NAME[name]
        value = setting.convert(raw)
        self.values[(setting.section, setting.key)] = value
        for listener in self.listeners.get(name, ()):
            listener(value)

    def get_redis(self, name: str) -> str:
        setting = BY_REDIS_NAME[name]
        value = self.values[(setting.section, setting.key)]
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)


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
        config.set_path(setting.section, setting.key, raw, "option --" + name)
    return config


def _apply_document(config: Config, document: dict, origin: str) -> None:
    for section, table in document.items():
        if not isinstance(table, dict):
            raise ConfigError("%s: '%s' must be a table" % (origin, section))
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
