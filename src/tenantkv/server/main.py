"""tenantkv-server: parse the command line, load the config, run the server."""

import asyncio
import logging
import os
import sys

from tenantkv import __version__, config as config_module, logs

USAGE = """usage: tenantkv-server [config.toml] [--config FILE] [--port N] [--bind ADDR]
                       [--dir PATH] [--loglevel LEVEL] [--<redis-parameter> VALUE ...]

Redis-compatible, secure, multi-tenant key-value server.
Any Redis configuration parameter is accepted as --name value (e.g. --maxmemory 100mb)."""


class UsageError(Exception):
    pass


# glibc's mallopt parameter number for the mmap threshold (malloc.h).
_M_MMAP_THRESHOLD = -3
_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_TRIM_THRESHOLD_",
               "MALLOC_MMAP_MAX_", "GLIBC_TUNABLES")


def pin_mmap_threshold() -> None:
    """Keep glibc's mmap threshold at its 128 KB default.

    glibc raises the threshold to the size of each mmapped block it frees
    (up to 32 MB): after the keyspace dict's first resize, or one big read,
    every later buffer below that size (a 256 KB read, a joined batch of
    replies, the strict parser's joined input) comes from the heap instead,
    and once freed stays resident between the small objects that outlive it
    (the heap only shrinks from its top). Loading 100,000 small strings
    through `redis-cli --pipe` left ~130 B of such holes per key: 300 B of RSS
    per key instead of 167 (bench/strings_memory.py). Pinning the threshold
    (which turns the adjustment off) sends big buffers to mmap and back to
    the system when freed; they are few (one per big read), so the extra
    mmap/munmap calls cost nothing measurable. An operator's own MALLOC_*
    settings win; other C libraries are left alone."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _MALLOC_ENV):
        return
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


def parse_args(argv: list) -> tuple:
    """(config file, {redis-parameter: value}) from redis-server-style arguments."""
    path = None
    flags = {}
    i = 0
    if argv and not argv[0].startswith("-"):
        path = argv[0]
        i = 1
    while i < len(argv):
        item = argv[i]
        if item in ("-h", "--help"):
            print(USAGE)
            raise SystemExit(0)
        if item in ("-v", "--version"):
            print("tenantkv " + __version__)
            raise SystemExit(0)
        if not item.startswith("--") or len(item) == 2:
            raise UsageError("unexpected argument %r" % item)
        name = item[2:]
        if "=" in name:
            name, value = name.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(argv):
                raise UsageError("option %s needs a value" % item)
            value = argv[i + 1]
            i += 2
        name = name.replace("_", "-").lower()
        if name == "config":
            path = value
        else:
            flags[name] = value
    return path, flags


def main(argv: list | None = None) -> int:
    pin_mmap_threshold()
    try:
        path, flags = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print("tenantkv-server: %s\n%s" % (exc, USAGE), file=sys.stderr)
        return 2
    try:
        config = config_module.load(path, flags=flags)
    except config_module.ConfigError as exc:
        print("tenantkv-server: configuration error: %s" % exc, file=sys.stderr)
        return 2
    # Every file the server writes holds tenants' data or secrets (snapshots,
    # the append-only log, users.db, its backups, the log): owner-only, from
    # the first byte (a chmod afterwards would leave a window). Redis leaves
    # its RDB and AOF world-readable with the usual umask 022; in a
    # multi-tenant server that would give any local account every tenant's data.
    os.umask(0o077)
    logs.setup(config["logging.level"], config["logging.file"])
    config.listeners.setdefault("loglevel", []).append(logs.set_level)
    os.makedirs(config["data.dir"], exist_ok=True)

    from tenantkv.server.app import Server   # imports every command family

    server = Server(config)
    server.config_file = path
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:   # uvloop is a dependency; this only helps odd platforms
        runner = asyncio.run
    try:
        return runner(server.serve())
    except OSError as exc:
        logging.getLogger("tenantkv").error("cannot start: %s", exc)
        return 1
