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


# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_TRIM_THRESHOLD_",
               "MALLOC_MMAP_MAX_", "GLIBC_TUNABLES")


def pin_malloc_thresholds() -> None:
    """Fix glibc's mmap threshold at 1 MiB and its trim threshold at 2 MiB.

    Left alone, glibc raises the mmap threshold to the size of each mmapped
    block it frees (up to 32 MiB), and the trim threshold to twice that:
    after the keyspace dict's first resizes, the big transient buffers of a
    pipelined load (256 KB reads, joined replies, the strict parser's joined
    input) come from the heap and, once freed, stay resident (the heap is
    given back only from its top, and only past the trim threshold).
    Loading 100,000 20-byte strings through `redis-cli --pipe` kept ~13 MB
    of them: 297 B of RSS per key instead of 163 (bench/strings_memory.py).
    Fixing the thresholds turns the adjustment off. Not glibc's 128 KB
    defaults: every block above the mmap threshold is mapped and unmapped
    each time, which doubled the CPU of SET and GET of 200 KB values; at
    1 MiB only values of 1 MiB or more pay that (about 2x on their SET and
    GET). A higher mmap threshold (4 MiB) or trim threshold (8 MiB) kept
    15-30 B per key more. What the thresholds leave (a big reply's many
    small blocks, freed in the middle of the heap) the cron hands back with
    malloc_trim() when RSS has grown (server/memory.py: measured 0.2-0.5 ms
    with nothing to give back, 24 ms giving back 630 MB, at 1M keys). An
    operator's own MALLOC_* settings win; other C libraries are left alone."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _MALLOC_ENV):
        return
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    mallopt(_M_TRIM_THRESHOLD, 2 << 20)


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
    pin_malloc_thresholds()
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
    logs.setup(config["logging.level"], config["logging.file"], config["logging.format"],
               config["logging.audit_file"])
    config.listeners.setdefault("loglevel", []).append(logs.set_level)
    config.listeners.setdefault("log-format", []).append(logs.set_format)
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
