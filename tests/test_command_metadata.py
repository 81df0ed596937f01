"""One source of command metadata: COMMAND INFO, COMMAND DOCS and HELP say the
same about every command, and what they say is what redis-server 7.0 says,
except for the deliberate differences listed here (each declared, with its
reason, where the command is declared).

The comparison with Redis is byte for byte, in RESP2 and RESP3, against a
redis-server this module starts (as tests/compat does). A container (CONFIG,
CLIENT, ...) lists only the subcommands tenantkv implements, each compared
with Redis's entry of the same name (Redis lists them in its hash table's
order, tenantkv by name)."""

import pytest

from compat import harness
from tenantkv.cli.commands_doc import doc_from_reply
from tenantkv.commands import COMMANDS
from tenantkv.dispatch.record import redis_command
from tenantkv.dispatch.table import DOC_FIELDS

# Commands and subcommands Redis 7.0 does not have.
TENANTKV_ONLY = {
    "kdb": "tenantkv's snapshot files",
    "kdb|save": "", "kdb|load": "", "kdb|export": "", "kdb|import": "", "kdb|help": "",
    "kdb|orphans": "", "kdb|export-orphan": "", "kdb|drop-orphan": "",
    "tenant": "per-tenant usage and quotas (issue 15)",
    "tenant|list": "", "tenant|info": "", "tenant|help": "",
    "help": "the article's HELP",
    "client|setinfo": "Redis 7.2's (clients send it on connect)",
    "client|no-touch": "Redis 7.2's",
}
# Fields of Redis's metadata tenantkv declares differently (COMMAND INFO's
# arity; COMMAND DOCS's keys).
DIFFERENT = {
    "zrank": {"arity", "history", "arguments"},      # Redis 7.2's WITHSCORE
    "zrevrank": {"arity", "history", "arguments"},
}
# Commands Redis 7.0 documents without a complexity (COMMAND DOCS).
NO_COMPLEXITY = {"monitor", "lolwut", "psync", "sync"}
# Redis's own metadata where the arity does not follow from the arguments
# (DEBUG: "a container" with no subcommands or arguments documented; GEOPOS and
# GEOHASH: arity -2, a key alone is accepted, though the members are documented required;
# XREAD/XREADGROUP: the arity counts the STREAMS token, which the docs tree
# nests inside its block; PFMERGE: arity -2, PFMERGE dest alone works, but 7.0
# documents sourcekey as required)
REDIS_ARITY_QUIRKS = {"client|kill", "command|getkeys", "command|getkeysandflags", "debug",
                      "geopos", "geohash", "xread", "xreadgroup", "pfmerge"}


# -- raw replies ------------------------------------------------------------------

def value(node):
    """A parsed reply (harness.Node) as Python values: maps as dicts (in order)."""
    kind = node.kind
    if kind == b"+":
        return node.head.decode()
    if kind == b"$":
        if node.head == b"-1":
            return None
        return node.raw[len(b"$\r\n") + len(node.head):-2].decode()
    if kind == b":":
        return int(node.head)
    if kind == b"_":
        return None
    if kind == b"-":
        raise AssertionError("error reply: %r" % node.raw)
    if kind == b"%":
        items = node.children
        return {value(k): value(v) for k, v in zip(items[::2], items[1::2])}
    return [value(child) for child in node.children]


def call(conn, *args):
    node, _ = harness.parse_reply(conn.call([a.encode() if isinstance(a, str) else a for a in args]))
    return node


def pairs(node) -> list:
    """A map's (key, value) nodes: RESP3's map, or RESP2's flat array."""
    items = node.children
    return [(value(k), v) for k, v in zip(items[::2], items[1::2])]


@pytest.fixture(scope="module")
def tenantkv(server):
    conn = harness.RawConnection(server.port)
    yield conn
    conn.close()


def listed(conn) -> list:
    return value(call(conn, "COMMAND", "LIST"))


# -- tenantkv agrees with itself -------------------------------------------------------

def test_command_docs_info_and_help_agree_for_every_command(tenantkv):
    call(tenantkv, "HELLO", "3")
    names = listed(tenantkv)
    assert len(names) == len(set(names)) > 170
    for name in names:
        (info,) = value(call(tenantkv, "COMMAND", "INFO", name))
        docs = value(call(tenantkv, "COMMAND", "DOCS", name))
        syntax, summary, group = value(call(tenantkv, "HELP", name))
        assert info[0] == name and list(docs) == [name], name
        doc = docs[name]
        assert summary == "summary: " + doc["summary"] and group == "group: " + doc["group"], name
        assert doc["since"] and (doc.get("complexity") or name in NO_COMPLEXITY), name
        # HELP's syntax line is what tenantkv-cli's hints render from COMMAND DOCS
        cli = doc_from_reply(name, doc)
        assert syntax == ("%s %s" % (cli.name, cli.syntax)).strip(), name
        # one list of subcommands, in the same order
        assert [sub[0] for sub in info[9]] == list(doc.get("subcommands", {})), name
        assert all(sub in names for sub in doc.get("subcommands", {})), name
        # a key argument names one of the command's key specs
        indexes = [arg["key_spec_index"] for arg in _walk(doc.get("arguments", ()))
                   if "key_spec_index" in arg]
        assert all(0 <= i < len(info[8]) for i in indexes), name
        # the arity is what the arguments need, after the command's name (or
        # names); a container's, the subcommand (COMMAND alone runs too)
        if info[9]:
            assert info[1] == (-1 if name == "command" else -2), name
        elif name not in REDIS_ARITY_QUIRKS:
            words = 2 if "|" in name else 1
            assert abs(info[1]) == words + _required(doc.get("arguments", ())), name
    call(tenantkv, "HELLO", "2")


def test_the_listings_agree(tenantkv):
    names = listed(tenantkv)
    top = [n for n in names if "|" not in n]
    assert value(call(tenantkv, "COMMAND", "COUNT")) == len(top)
    assert [entry[0] for entry in value(call(tenantkv, "COMMAND"))] == top
    assert [entry[0] for entry in value(call(tenantkv, "COMMAND", "INFO"))] == top
    assert [key for key, _ in pairs(call(tenantkv, "COMMAND", "DOCS"))] == top
    assert len(value(call(tenantkv, "HELP"))) == 1 + len(names)
    for hidden in ("post", "host:"):
        assert hidden not in names
        assert value(call(tenantkv, "COMMAND", "INFO", hidden)) == [None]
        assert pairs(call(tenantkv, "COMMAND", "DOCS", hidden)) == []


def test_only_the_listed_differences_from_the_record():
    """The table itself (no server) holds Redis's record but for DIFFERENT and TENANTKV_ONLY."""
    seen = set()
    for cmd in COMMANDS.values():
        for entry in (cmd, *cmd.subcommands.values()):
            record = redis_command(entry.name)
            if record is None:
                assert entry.name in TENANTKV_ONLY or entry.name in ("post", "host:"), entry.name
                continue
            ours = {"arity": entry.arity, "flags": sorted(entry.flags),
                    "keys": [entry.first_key, entry.last_key, entry.step],
                    "acl_categories": ["@" + c for c in entry.acl_categories],
                    "tips": list(entry.tips), "key_specs": len(entry.key_specs)}
            theirs = {"arity": record["arity"], "flags": sorted(record["flags"]),
                      "keys": [record["first_key"], record["last_key"], record["step"]],
                      "acl_categories": record["acl_categories"], "tips": record["tips"],
                      "key_specs": len(record["key_specs"])}
            for name in ("summary", "since", "group", "complexity", *DOC_FIELDS):
                ours[name] = getattr(entry, name, None) or entry.docs.get(name)
                theirs[name] = record.get(name)
            differ = {name for name in ours if ours[name] != theirs[name]}
            assert differ == DIFFERENT.get(entry.name, set()), entry.name
            seen.add(entry.name)
    assert set(DIFFERENT) <= seen


# -- tenantkv agrees with redis-server -------------------------------------------------

@pytest.mark.parametrize("protocol", ["2", "3"])
def test_command_info_and_docs_are_redis_s(tenantkv, redis_server, protocol):
    reference = harness.RawConnection(redis_server.port)
    try:
        for conn in (reference, tenantkv):
            call(conn, "HELLO", protocol)
        names = [n for n in listed(tenantkv) if "|" not in n and n not in TENANTKV_ONLY]
        assert len(names) > 160
        for name in names:
            _compare_info(name, call(reference, "COMMAND", "INFO", name).children[0],
                          call(tenantkv, "COMMAND", "INFO", name).children[0])
            ((_, redis_docs),) = pairs(call(reference, "COMMAND", "DOCS", name))
            ((_, our_docs),) = pairs(call(tenantkv, "COMMAND", "DOCS", name))
            _compare_docs(name, redis_docs, our_docs)
        # and Redis has none of tenantkv's own
        for name in TENANTKV_ONLY:
            if "|" not in name:
                assert value(call(reference, "COMMAND", "INFO", name)) == [None]
    finally:
        call(tenantkv, "HELLO", "2")
        reference.close()


def _compare_info(name, redis_entry, our_entry):
    """One COMMAND INFO entry: its ten fields byte for byte, the subcommands by name."""
    fields = ["name", "arity", "flags", "first_key", "last_key", "step", "acl_categories",
              "tips", "key_specs"]
    for i, field in enumerate(fields):
        same = redis_entry.children[i].raw == our_entry.children[i].raw
        assert same != (field in DIFFERENT.get(name, ())), (name, field, redis_entry.children[i].raw,
                                                            our_entry.children[i].raw)
    ours = {value(sub.children[0]): sub for sub in our_entry.children[9].children}
    theirs = {value(sub.children[0]): sub for sub in redis_entry.children[9].children}
    if not ours:
        assert our_entry.children[9].raw == redis_entry.children[9].raw, name   # empty set / array
    assert ours.keys() - TENANTKV_ONLY.keys() <= theirs.keys(), name
    for sub, entry in ours.items():
        if sub not in TENANTKV_ONLY:
            _compare_info(sub, theirs[sub], entry)


def _compare_docs(name, redis_docs, our_docs):
    """One COMMAND DOCS map: its fields byte for byte, the subcommands by name."""
    different = DIFFERENT.get(name, set())
    theirs, ours = dict(pairs(redis_docs)), dict(pairs(our_docs))
    assert [k for k in pairs_keys(redis_docs) if k not in different] == \
        [k for k in pairs_keys(our_docs) if k not in different], name
    for key, node in ours.items():
        if key == "subcommands":
            subs, redis_subs = dict(pairs(node)), dict(pairs(theirs[key]))
            assert subs.keys() - TENANTKV_ONLY.keys() <= redis_subs.keys(), name
            for sub, sub_docs in subs.items():
                if sub not in TENANTKV_ONLY:
                    _compare_docs(sub, redis_subs[sub], sub_docs)
        elif key not in different:
            assert node.raw == theirs[key].raw, (name, key, theirs[key].raw, node.raw)
        else:
            assert key not in theirs or node.raw != theirs[key].raw, (name, key, "now the same")


def pairs_keys(node) -> list:
    return [key for key, _ in pairs(node)]


def _walk(arguments):
    for arg in arguments:
        yield arg
        yield from _walk(arg.get("arguments", ()))


def _required(arguments) -> int:
    """How many words the argument tree needs at least."""
    count = 0
    for arg in arguments:
        if "optional" in arg.get("flags", ()):
            continue
        if arg["type"] == "oneof":
            count += min(_required([child]) for child in arg["arguments"])
        elif arg["type"] == "block":
            count += _required(arg["arguments"])
        else:
            count += 2 if arg.get("token") and arg["type"] != "pure-token" else 1
    return count
