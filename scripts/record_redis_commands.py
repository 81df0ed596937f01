#!/usr/bin/env python3
"""Record what redis-server says about every one of its commands.

    scripts/record_redis_commands.py [--port PORT] [--server PATH]

Starts Debian's redis-server (or asks the one already on --port), sends
`COMMAND INFO` and `COMMAND DOCS` in RESP3 and writes
src/tenantkv/dispatch/redis_commands.jsonl: a first line naming the Redis
version, then one line per command, sorted by name, so that a re-recording
reads well as a diff. Every command Redis has is recorded, not only those
tenantkv implements: a new family finds its metadata waiting.

A line merges the two replies into one JSON object (dispatch/record.py
reads it, dispatch/table.py fills the command table from it):

    name, arity, flags, first_key, last_key, step, acl_categories, tips,
    key_specs                                   -- COMMAND INFO, by field
    summary, since, group, complexity, doc_flags, deprecated_since,
    replaced_by, history, arguments            -- COMMAND DOCS (those present)
    subcommands                                 -- a container's: the same
                                                   objects, sorted by name

RESP3 maps become JSON objects (their order kept), sets and arrays lists,
simple strings strings: the reply shapes are fixed by Redis's code, so
COMMAND INFO / DOCS are rebuilt from these byte for byte (tests/
test_command_metadata.py compares them with a live redis-server).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "src", "tenantkv", "dispatch", "redis_commands.jsonl")
INFO_FIELDS = ("name", "arity", "flags", "first_key", "last_key", "step",
               "acl_categories", "tips", "key_specs", "subcommands")


class Reader:
    """Just enough of RESP3 for COMMAND INFO / DOCS and INFO."""

    def __init__(self, sock):
        self.file = sock.makefile("rb")

    def read(self):
        line = self.file.readline()[:-2]
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind in (b"$", b"="):
            data = self.file.read(int(rest) + 2)[:-2]
            return data.decode()[4:] if kind == b"=" else data.decode()
        if kind == b"_":
            return None
        if kind in (b"*", b"~"):
            return [self.read() for _ in range(int(rest))]
        if kind == b"%":
            return {self.read(): self.read() for _ in range(int(rest))}
        raise RuntimeError("unexpected reply type %r" % kind)


def request(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def merge(info: list, docs: dict) -> dict:
    """One command's COMMAND INFO entry and COMMAND DOCS map as one object."""
    record = dict(zip(INFO_FIELDS, info))
    subinfo = record.pop("subcommands")
    record.update((k, v) for k, v in docs.items() if k != "subcommands")
    subdocs = docs.get("subcommands", {})
    if subinfo:
        # Redis lists them in its hash table's order, seeded per process: by name here.
        record["subcommands"] = sorted((merge(s, subdocs[s[0]]) for s in subinfo),
                                       key=lambda r: r["name"])
    return record


def start_server(path: str):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="record-redis-")
    proc = subprocess.Popen([path, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir],
                            stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, port, workdir
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError("redis-server did not start on port %d" % port)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="ask the redis-server already on this port")
    parser.add_argument("--server", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    args = parser.parse_args()
    proc = workdir = None
    port = args.port
    if port is None:
        proc, port, workdir = start_server(args.server)
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            reader = Reader(sock)
            sock.sendall(request("HELLO", "3"))
            version = reader.read()["version"]
            sock.sendall(request("COMMAND", "INFO"))
            infos = reader.read()
            sock.sendall(request("COMMAND", "DOCS"))
            docs = reader.read()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
            shutil.rmtree(workdir, ignore_errors=True)
    records = sorted((merge(info, docs[info[0]]) for info in infos), key=lambda r: r["name"])
    with open(OUT, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"redis_version": version}) + "\n")
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    print("recorded %d commands from redis-server %s into %s"
          % (len(records), version, os.path.relpath(OUT, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
