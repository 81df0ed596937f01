"""util/options.py, the one option parser: its rules on their own, then what
they changed for clients (the byte-for-byte cases are in compat/sessions/options.txt)."""

import pytest
import redis

from conftest import read_reply, resp
from tenantkv import errors
from tenantkv.errors import CommandError
from tenantkv.util.options import NUMKEYS, REST, Flag, Options, Value, choice


def args(*items):
    return [item.encode() if isinstance(item, str) else item for item in items]


def refused(spec, *items, start=0, **kw) -> str:
    with pytest.raises(CommandError) as caught:
        spec.parse(args(*items), start, **kw)
    return caught.value.message


SPEC = Options(Flag("NX", dest="condition"), Flag("XX", dest="condition"), Flag("GET"),
               Flag("REV", once=True), Value("EX", dest="expire"), Value("PX", dest="expire"),
               Value("LIMIT", 2, parse=int), exclusive=[("NX", "XX"), ("EX", "PX")])


def test_names_compare_case_insensitively_as_c_strings():
    assert SPEC.parse(args("nX", b"get\0junk", "Ex", "10"), 0) == {
        "nx": True, "condition": "nx", "get": True, "ex": True, "expire": ("ex", b"10")}
    assert refused(SPEC, b"\0nx") == errors.SYNTAX


def test_repeats_keep_the_last_value_unless_once():
    assert SPEC.parse(args("EX", "1", "EX", "2", "NX", "NX"), 0)["expire"] == ("ex", b"2")
    assert SPEC.parse(args("LIMIT", "1", "2", "LIMIT", "3", "4"), 0)["limit"] == (3, 4)
    assert refused(SPEC, "REV", "REV") == errors.SYNTAX


def test_an_exclusive_option_is_refused_where_it_stands():
    assert refused(SPEC, "NX", "XX") == errors.SYNTAX
    # Before a later option's value is read: the first bad token answers.
    assert refused(SPEC, "EX", "1", "PX", "1", "LIMIT", "a", "b") == errors.SYNTAX
    with pytest.raises(ValueError):   # int("a"): LIMIT's values were read first
        SPEC.parse(args("LIMIT", "a", "b", "EX", "1", "PX", "1"), 0)


def test_missing_values_and_unknown_tokens():
    assert refused(SPEC, "EX") == errors.SYNTAX
    assert refused(SPEC, "LIMIT", "1") == errors.SYNTAX
    assert refused(SPEC, "FOO") == errors.SYNTAX
    custom = Options(Flag("NX"), unknown=errors.expire_unsupported_option)
    assert refused(custom, "a\r\nb\0c") == "ERR Unsupported option a  b"


def test_incompatible_rules_are_checked_after_the_tokens_in_order():
    spec = Options(Flag("NX"), Flag("XX"), Flag("GT"), Flag("LT"),
                   incompatible=[(("NX", "XX"), "ERR first"), (("GT", "LT", "NX"), "ERR second")])
    assert refused(spec, "GT", "LT", "NX", "XX") == "ERR first"
    assert refused(spec, "LT", "GT") == "ERR second"
    assert spec.parse(args("XX", "GT"), 0) == {"xx": True, "gt": True}
    found, end = spec.parse_prefix(args("k", "NX", "XX", "1", "a"), 1)
    assert (found, end) == ({"nx": True, "xx": True}, 3)   # rules left to check()
    with pytest.raises(CommandError):
        spec.check(found)


def test_numkeys_rest_choice_and_context():
    spec = Options(Value("WEIGHTS", NUMKEYS, parse=float), Value("ID", REST, parse=int),
                   Value("AGGREGATE", parse=choice("SUM", "MAX")),
                   Value("USER", parse=lambda raw, ctx: (raw, ctx), context=True))
    assert spec.parse(args("WEIGHTS", "1", "2", "AGGREGATE", "max"), 0, numkeys=2) == {
        "weights": [1.0, 2.0], "aggregate": "max"}
    assert refused(spec, "WEIGHTS", "1", numkeys=2) == errors.SYNTAX
    assert refused(spec, "AGGREGATE", "avg") == errors.SYNTAX
    assert spec.parse(args("ID", "1", "2", "2"), 0) == {"id": [1, 2, 2]}
    assert refused(spec, "ID") == errors.SYNTAX
    assert spec.parse(args("USER", "u"), 0, context="conn") == {"user": (b"u", "conn")}


def test_a_spec_must_name_its_own_options():
    with pytest.raises(ValueError):
        Options(Flag("NX"), exclusive=[("NX", "XX")])
    with pytest.raises(ValueError):
        Options(Flag("NX"), incompatible=[(("NX", "XX"), "ERR x")])


# -- through the server ---------------------------------------------------------------

def test_client_list_id_lists_in_the_order_asked_with_repeats(server):
    sock = server.raw()
    sock.sendall(resp("CLIENT", "ID"))
    me = read_reply(sock)[1:-2].decode()
    sock.sendall(resp("CLIENT", "LIST", "ID", me, "0", "-3", "999999", me))
    reply = read_reply(sock)
    lines = reply[reply.index(b"\r\n") + 2:-2].decode().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["id=" + me, "id=" + me]
    sock.close()


def test_client_kill_takes_the_last_of_a_repeated_filter(server):
    victim = server.raw()
    victim.sendall(resp("CLIENT", "INFO"))
    addr = read_reply(victim).split(b" addr=", 1)[1].split(b" ", 1)[0].decode()
    r = server.client()
    assert r.execute_command("CLIENT", "KILL", "ADDR", addr, "ADDR", "1.2.3.4:5") == 0
    assert r.execute_command("CLIENT", "KILL", "ADDR", "1.2.3.4:5", "ADDR", addr) == 1
    victim.close()


def test_a_quoted_argument_cannot_break_the_reply(server):
    sock = server.raw()
    sock.sendall(resp("HELLO", "2", "a\r\nb") + resp("PING"))
    assert read_reply(sock) == b"-ERR Syntax error in HELLO option 'a  b'\r\n+PONG\r\n"
    sock.close()


def test_set_with_and_without_options(server, r):
    assert r.set("k", "v") is True   # SET k v: the fast path, no parser
    with pytest.raises(redis.ResponseError, match="^syntax error$"):
        r.execute_command("SET", "k", "v", "EX", "1", "KEEPTTL")
    sock = server.raw()
    sock.sendall(resp("SET", "k", "w", "ex", "100", "Ex", "200", "GET"))
    assert read_reply(sock) == b"$1\r\nv\r\n"
    assert 190 < r.ttl("k") <= 200
    sock.close()
