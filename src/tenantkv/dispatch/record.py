"""What redis-server itself says about its commands: the record the command table is filled from.

redis_commands.jsonl is recorded from Debian's redis-server 7.0 by
scripts/record_redis_commands.py: after a first line naming the Redis version,
one line per command (every command Redis has, not only tenantkv's) merging
its COMMAND INFO entry (arity, flags, first/last/step, ACL categories, tips,
key specs) and its COMMAND DOCS map (summary, since, group, complexity,
history, arguments, ...); a container's subcommands nested, in Redis's order.
dispatch/table.py builds each Command from its record plus whatever the
command's declaration says differently, and COMMAND, HELP, the ACL rules and
the CLI (through COMMAND DOCS) all read that table.
"""

import json
import os

from tenantkv.util.keyspecs import KEY_FLAG_ORDER, KeySpec

RECORD_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "redis_commands.jsonl")

_RECORDS: dict = {}    # name (and "container|sub") -> record
_VERSION: list = []


def _load() -> dict:
    if not _RECORDS:
        with open(RECORD_FILE, encoding="utf-8") as handle:
            _VERSION.append(json.loads(handle.readline())["redis_version"])
            for line in handle:
                record = json.loads(line)
                _RECORDS[record["name"]] = record
                for sub in record.get("subcommands", ()):
                    _RECORDS[sub["name"]] = sub
    return _RECORDS


def redis_version() -> str:
    """The version of the redis-server the record comes from."""
    _load()
    return _VERSION[0]


def redis_command(name: str):
    """The record of command `name` (lower case; "config|get" for a
    subcommand), or None when Redis has no such command."""
    return _load().get(name)


def redis_command_names() -> list:
    """Every top-level command Redis has, by name."""
    return sorted(name for name in _load() if "|" not in name)


# -- a record's parts as the table holds them --------------------------------------

def key_spec(spec: dict):
    """A COMMAND INFO key spec (record form) as a util.keyspecs.KeySpec."""
    begin, find = spec["begin_search"], spec["find_keys"]
    if begin["type"] == "index":
        begin_t = ("index", begin["spec"]["index"])
    elif begin["type"] == "keyword":
        begin_t = ("keyword", begin["spec"]["keyword"], begin["spec"]["startfrom"])
    else:
        begin_t = ("unknown",)
    if find["type"] == "range":
        s = find["spec"]
        find_t = ("range", s["lastkey"], s["keystep"], s["limit"])
    elif find["type"] == "keynum":
        s = find["spec"]
        find_t = ("keynum", s["keynumidx"], s["firstkey"], s["keystep"])
    else:
        find_t = ("unknown",)
    flags = tuple(f for f in KEY_FLAG_ORDER if f in spec["flags"])
    return KeySpec(flags, begin_t, find_t, spec.get("notes", ""))


def render_syntax(arguments) -> str:
    """A COMMAND DOCS argument tree as one line, as redis-cli's hints write it
    (`key value [NX|XX] [GET] ...`); HELP shows it and tenantkv-cli renders
    the same from COMMAND DOCS (cli/commands_doc.py), so the two agree."""
    return " ".join(_render(arg) for arg in arguments or ())


def _render(arg: dict, brackets: bool = True) -> str:
    value = _value(arg)
    token = arg.get("token")
    text = token + (" " + value if value else "") if token else value
    flags = arg.get("flags", ())
    if "multiple" in flags:
        again = value
        if "multiple_token" in flags and token:
            again = token + (" " + again if again else "")
        text += " [%s ...]" % again
    if "optional" in flags and brackets:
        text = "[%s]" % text
    return text


def _value(arg: dict) -> str:
    kind = arg.get("type")
    if kind == "oneof":
        return "|".join(_render(child) for child in arg.get("arguments", ()))
    if kind == "block":
        return " ".join(_render(child) for child in arg.get("arguments", ()))
    if kind == "pure-token":
        return ""
    return arg.get("display_text") or arg["name"]
