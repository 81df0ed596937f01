"""Where commands' keys are: Command.keys_of / keys_and_flags and the key-spec
rules behind them (the replies themselves are compared with redis-server in
tests/compat/sessions/getkeys.txt)."""

import pytest

from tenantkv.commands import COMMANDS
from tenantkv.dispatch import keyprocs as keyinfo
from tenantkv.dispatch.record import key_spec, redis_command
from tenantkv.util.keyspecs import c_atoi, find_keys, parse_spec


def recorded_specs(name: str) -> list:
    """Redis's key specs for `name`, from the record (commands tenantkv may not have yet)."""
    return [key_spec(spec) for spec in redis_command(name)["key_specs"]]


def args(text: str) -> list:
    return text.encode().split()


def keys(text: str) -> list:
    words = args(text)
    return [words[i] for i in COMMANDS[words[0].decode().lower()].keys_of(words)]


@pytest.mark.parametrize("command, expected", [
    ("GET k", "k"),
    ("SET k v GET", "k"),
    ("MSET a 1 b 2 c 3", "a b c"),
    ("MSET a 1 b", "a b"),
    ("DEL a b c", "a b c"),
    ("RENAME a b", "a b"),
    ("COPY a b DB 1 REPLACE", "a b"),
    ("LMOVE a b LEFT RIGHT", "a b"),
    ("LCS a b LEN", "a b"),
    ("OBJECT ENCODING k", "k"),
    ("OBJECT HELP", ""),
    ("OBJECT NOSUCH k", ""),
    ("WATCH a b", "a b"),
    # numkeys: destination first, as the key specs list them
    ("ZUNIONSTORE d 2 a b WEIGHTS 1 2", "d a b"),
    ("ZINTERSTORE d 1 a", "d a"),
    ("ZDIFFSTORE d 2 a b", "d a b"),
    ("ZUNION 2 a b WITHSCORES", "a b"),
    ("ZINTER 1 a", "a"),
    ("ZDIFF 3 a b c", "a b c"),
    ("ZINTERCARD 2 a b LIMIT 1", "a b"),
    ("SINTERCARD 1 a", "a"),
    ("LMPOP 2 a b LEFT COUNT 2", "a b"),
    ("ZMPOP 1 a MIN", "a"),
    # the specs take what numkeys says, even an option's name
    ("LMPOP 2 a LEFT", "a LEFT"),
    # numkeys the specs refuse: Redis's procedure reads it with atoi, store key last
    ("ZUNIONSTORE d 2abc a b", "a b d"),
    ("ZUNION 1.5 a b", "a"),
    ("LMPOP 01 a LEFT", "a"),
    # numkeys that names no keys
    ("ZUNION 0 a", ""),
    ("ZUNION 3 a b", ""),
    ("ZUNIONSTORE d x a", ""),
    ("LMPOP -1 a LEFT", ""),
    ("SINTERCARD 5 a", ""),
])
def test_keys_of(command, expected):
    assert keys(command) == args(expected)


def test_keys_and_flags():
    def flags(text):
        words = args(text)
        return COMMANDS[words[0].decode().lower()].keys_and_flags(words)
    assert flags("ZUNIONSTORE d 2 a b") == [(1, ("OW", "update")), (3, ("RO", "access")),
                                             (4, ("RO", "access"))]
    assert flags("ZUNIONSTORE d 2abc a b") == [(3, ()), (4, ()), (1, ())]
    assert flags("SET k v") == [(1, ("OW", "update"))]
    assert flags("SET k v get") == [(1, ("RW", "access", "update"))]
    assert flags("LMOVE a b LEFT RIGHT") == [(1, ("RW", "access", "delete")), (2, ("RW", "insert"))]


def test_movablekeys_follows_the_key_specs():
    movable = {name for name, cmd in COMMANDS.items() if "movablekeys" in cmd.flags}
    assert movable == {"zunion", "zinter", "zdiff", "zunionstore", "zinterstore", "zdiffstore",
                       "zintercard", "sintercard", "lmpop", "zmpop",
                       "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro",
                       "xread", "georadius", "georadiusbymember", "sort", "sort_ro"} | (
        movable & {"blmpop", "bzmpop", "xreadgroup"})


@pytest.mark.parametrize("name, command, expected", [
    # straight from Redis's record, whether or not tenantkv has the command
    ("blpop", "BLPOP a b 0", [1, 2]),
    ("blpop", "BLPOP a 0", [1]),
    ("brpop", "BRPOP a b c 1.5", [1, 2, 3]),
    ("bzpopmin", "BZPOPMIN a b 0", [1, 2]),
    ("bzpopmax", "BZPOPMAX a 0", [1]),
    ("blmove", "BLMOVE a b LEFT RIGHT 0", [1, 2]),
    ("brpoplpush", "BRPOPLPUSH a b 0", [1, 2]),
    ("blmpop", "BLMPOP 0 2 a b LEFT", [3, 4]),
    ("blmpop", "BLMPOP 0 3 a b LEFT", [3, 4, 5]),
    ("bzmpop", "BZMPOP 1.5 1 a MIN COUNT 2", [3]),
    ("bitop", "BITOP AND d a b", [2, 3, 4]),
])
def test_recorded_key_specs(name, command, expected):
    specs = recorded_specs(name)
    words = args(command)
    assert [position for position, _ in find_keys(specs, words, -2)] == expected


def test_pending_numkeys_procedures():
    assert keyinfo.PROCEDURES["blmpop"](args("BLMPOP 0 2abc a b LEFT")) == [(3, ()), (4, ())]
    assert keyinfo.PROCEDURES["bzmpop"](args("BZMPOP 0 0 a MIN")) == []
    assert find_keys(recorded_specs("blmpop"), args("BLMPOP 0 2abc a b LEFT"), -5) is None


def test_procedures_are_redis_commands():
    assert all(redis_command(name) is not None for name in keyinfo.PROCEDURES)


def test_unknown_key_specs_leave_it_to_the_procedure():
    # Redis gives SORT specs it cannot follow (BY/GET patterns, STORE anywhere)
    specs = recorded_specs("sort")
    assert [s.begin for s in specs] == [("index", 1), ("unknown",), ("unknown",)]
    assert find_keys(specs, args("SORT k BY w_*"), -2) is None


def test_keyword_spec():
    spec = parse_spec("RO access | keyword STREAMS 1 | range -1 1 2")
    assert find_keys([spec], args("XREAD COUNT 2 STREAMS a b 0 0"), -4) == \
        [(4, ("RO", "access")), (5, ("RO", "access"))]
    assert find_keys([spec], args("XREAD COUNT 2"), -4) == []   # no keyword: no keys
    spec = parse_spec("OW update | keyword STORE -1 | range 0 1 0")
    assert find_keys([spec], args("SORT k STORE d"), -2) == [(3, ("OW", "update"))]


def test_parse_spec_refuses_bad_text():
    for text in ("RW | index 1", "XX | index 1 | range 0 1 0", "RW | at 1 | range 0 1 0",
                 "RW | index 1 | range 0 1", "RW | index 1 | range 0 1 0 | why"):
        with pytest.raises(ValueError):
            parse_spec(text)


@pytest.mark.parametrize("raw, value", [
    (b"2", 2), (b"2abc", 2), (b" \t\n2", 2), (b"+2", 2), (b"-3", -3), (b"02", 2), (b"", 0), (b"x", 0),
    (b"1\x002", 1), (b"1.5", 1), (b"2147483647", 2147483647), (b"2147483649", -2147483647),
    (b"4294967298", 2), (b"99999999999", 1215752191), (b"9223372036854775808", -1),
    (b"-9223372036854775809", 0),
])
def test_c_atoi(raw, value):
    assert c_atoi(raw) == value
