#!/usr/bin/env python3
"""Record redis-server's COMMAND DOCS and ACL categories for tenantkv's commands.

    scripts/record_command_docs.py [--port PORT]

Starts Debian's redis-server 7.0 (or uses one on --port), asks COMMAND DOCS
in RESP3 and writes src/tenantkv/commands/redis_docs.json: for every command
tenantkv registers, Redis's documentation with the RESP3 types kept (maps as
{"%": [[key, value], ...]}, sets as {"~": [...]}, simple strings as {"+": s}),
so that COMMAND DOCS can answer as Redis does, argument trees included (the
CLI builds its hints from them); and each command's ACL categories from
COMMAND INFO, which tenancy/permissions.py uses for commands without
subcommands. Run again after adding commands.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "src", "tenantkv", "commands", "redis_docs.json")


class Reader:
    def __init__(self, sock):
        self.file = sock.makefile("rb")

    def line(self) -> bytes:
        return self.file.readline()[:-2]

    def read(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return {"+": rest.decode()}
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind in (b"$", b"="):
            data = self.file.read(int(rest) + 2)[:-2]
            return data.decode()
        if kind == b"_":
            return None
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        if kind == b"~":
            return {"~": [self.read() for _ in range(int(rest))]}
        if kind == b"%":
            return {"%": [[self.read(), self.read()] for _ in range(int(rest))]}
        raise RuntimeError("unexpected reply type %r" % kind)


def request(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "src"))
    from tenantkv.commands import COMMANDS

    proc = None
    port = args.port
    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        workdir = tempfile.mkdtemp()
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                                 "--appendonly", "no", "--dir", workdir],
                                stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        reader = Reader(sock)
        sock.sendall(request("HELLO", "3"))
        reader.read()
        sock.sendall(request("COMMAND", "DOCS", *sorted(COMMANDS)))
        docs = reader.read()["%"]
        # ACL categories (COMMAND INFO's 7th field), in Redis's order.
        sock.sendall(request("COMMAND", "INFO", *sorted(COMMANDS)))
        categories = {}
        for info in reader.read():
            if info is not None:
                categories[info[0]] = [c["+"].lstrip("@") for c in info[6]["~"]]
        version = None
        sock.sendall(request("INFO", "server"))
        for line in reader.read().splitlines():
            if line.startswith("redis_version:"):
                version = line.split(":", 1)[1]
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
    record = {"redis_version": version, "docs": dict(docs), "acl_categories": categories}
    with open(OUT, "w") as handle:
        json.dump(record, handle, indent=None, separators=(",", ":"), sort_keys=False)
        handle.write("\n")
    print("recorded %d of %d commands from redis %s into %s"
          % (len(docs), len(COMMANDS), version, os.path.relpath(OUT, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
