"""Permissions per command and per subcommand, through the one command path
(dispatch/call.py), against a real server whose users live in its store.

Every command and subcommand the server lists (COMMAND INFO) is tried by a
user with -@all (refused, with Redis's NOPERM naming `cmd` or `cmd|sub`) and
by a user with exactly `+cmd` / `+cmd|sub` (it gets past the permission
check); ACL DRYRUN must agree with what running the command does; KDB and
DEBUG keep the user's rules; INFO commandstats counts per subcommand as
Redis 7 does (compared with a redis-server). One probe user is reused:
root changes its rules live (ACL SETUSER applies them to its connection at
once), which spares an argon2 login per command.
"""

import pytest

from compat import harness
from conftest import free_port, locked_server

ROOT_PASSWORD = "perm-root-secret"
PROBE_PASSWORD = "perm-probe-pw"
# Redis flags these "admin"; tenantkv lets a user run them on its own tenant.
TENANT_SCOPED = {"client|list", "client|kill", "client|unblock", "client|no-evict",
                 "client|pause", "client|unpause", "monitor",
                 # SLOWLOG and LATENCY: the caller's own tenant's (commands/latency.py)
                 "slowlog|get", "slowlog|len", "slowlog|reset", "latency|latest",
                 "latency|history", "latency|reset", "latency|graph", "latency|doctor",
                 "latency|histogram"}
# DEBUG is root-only but for these first arguments (the caller's own tenant).
DEBUG_OPEN = ("object", "digest", "digest-value")
# Runs whatever the rules say, as in Redis (flag no_auth).
NO_AUTH = {"auth", "hello", "quit", "reset", "help"}


def noperm(name: str) -> bytes:
    return b"-NOPERM this user has no permissions to run the '%s' command\r\n" % name.encode()


def dry_denied(name: str) -> bytes:
    """ACL DRYRUN's answer for a command the user may not run (a bulk string)."""
    message = b"This user has no permissions to run the '%s' command" % name.encode()
    return b"$%d\r\n%s\r\n" % (len(message), message)


def parse(raw: bytes):
    return harness.parse_reply(raw)[0]


def text(node) -> str:
    return node.raw[len(node.head) + 3:-2].decode() if node.kind == b"$" else node.head.decode()


class Conn:
    """A raw connection logged in as `user` (None: no AUTH), logged in again
    after a command that logs it out (RESET, QUIT) or leaves it in a
    transaction (MULTI)."""

    def __init__(self, port: int, user: str | None, password: str = "") -> None:
        self.port, self.user, self.password = port, user, password
        self.conn = None
        self._connect()

    def _connect(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = harness.RawConnection(self.port)
        if self.user is not None:
            assert self.call("AUTH", self.user, self.password) == b"+OK\r\n"

    def call(self, *args) -> bytes:
        return self.conn.call([a if isinstance(a, bytes) else str(a).encode() for a in args])

    def run(self, argv: list) -> bytes:
        reply = self.call(*argv)
        name = argv[0].lower()
        if name == "quit":
            self._connect()
        elif name in ("reset", "auth") or (name in ("multi", "monitor") and reply == b"+OK\r\n"):
            self.call("RESET")
            assert self.call("AUTH", self.user, self.password) == b"+OK\r\n"
        return reply

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    proc = locked_server(tmp_path_factory.mktemp("permissions"), {}, ROOT_PASSWORD)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def root(srv):
    conn = Conn(srv.port, "root", ROOT_PASSWORD)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def probe(srv, root):
    assert root.call("ACL", "SETUSER", "probe", "on", ">" + PROBE_PASSWORD, "-@all") == b"+OK\r\n"
    conn = Conn(srv.port, "probe", PROBE_PASSWORD)
    yield conn
    conn.close()


def set_rules(root, *rules) -> None:
    reply = root.call("ACL", "SETUSER", "probe", "-@all", *rules)
    assert reply == b"+OK\r\n", (rules, reply)


class Entry:
    """A command or subcommand as COMMAND INFO describes it, and arguments
    that reach its handler (the arity it declares, filled with 'x')."""

    def __init__(self, node) -> None:
        self.name = text(node.children[0])
        self.arity = int(node.children[1].head)
        self.flags = {text(f) for f in node.children[2].children}
        self.subcommands = [Entry(sub) for sub in node.children[9].children]
        words = self.name.split("|")
        self.argv = words + ["x"] * (abs(self.arity) - len(words))
        if self.name == "auth":
            self.argv = ["auth", "probe", PROBE_PASSWORD]
        self.root_only = "admin" in self.flags and self.name not in TENANT_SCOPED

    def __repr__(self) -> str:
        return self.name


@pytest.fixture(scope="module")
def entries(root):
    """Every command and subcommand (a container itself only when it runs
    without a subcommand: COMMAND)."""
    tops = [Entry(node) for node in parse(root.call("COMMAND", "INFO")).children]
    listed = {text(n) for n in parse(root.call("COMMAND", "LIST")).children}
    found = []
    for top in tops:
        if top.subcommands:
            found += top.subcommands
            if top.arity == -1:
                found.append(top)
        else:
            found.append(top)
    assert {e.name for e in found} | {t.name for t in tops if t.subcommands} == listed
    assert len(found) > 200
    return found


# -- (a) every command and subcommand: -@all refuses, +cmd / +cmd|sub allows ---------

def test_minus_all_refuses_every_command_and_subcommand(root, probe, entries):
    set_rules(root)
    for entry in entries:
        reply = probe.run(entry.argv)
        if entry.name in NO_AUTH:
            assert not reply.startswith(b"-NOPERM"), (entry, reply)
        else:
            assert reply == noperm(entry.name), (entry, reply)


def test_own_rule_allows_every_command_and_subcommand(root, probe, entries):
    for entry in entries:
        set_rules(root, "+" + entry.name)
        reply = probe.run(entry.argv)
        if entry.root_only:
            assert reply == noperm(entry.name), (entry, reply)
        else:
            assert not reply.startswith(b"-NOPERM"), (entry, reply)
    # +@all does not open a root-only command or subcommand either
    set_rules(root, "+@all")
    for entry in entries:
        if entry.root_only:
            assert probe.run(entry.argv) == noperm(entry.name), entry


def test_container_rule_allows_its_subcommands(root, probe):
    set_rules(root, "+client")
    assert parse(probe.call("CLIENT", "ID")).kind == b":"
    assert probe.call("CLIENT", "SETNAME", "p") == b"+OK\r\n"
    assert b"name=p " in probe.call("CLIENT", "LIST")
    set_rules(root, "+client", "-client|list")
    assert probe.call("CLIENT", "LIST") == noperm("client|list")
    assert parse(probe.call("CLIENT", "ID")).kind == b":"
    set_rules(root, "+command|count")
    assert probe.call("COMMAND") == noperm("command")
    assert parse(probe.call("COMMAND", "COUNT")).kind == b":"
    # unknown subcommand and arity come first, as in Redis
    set_rules(root)
    assert probe.call("CLIENT", "NOSUCH") == b"-ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP.\r\n"
    assert probe.call("CLIENT", "ID", "x") == \
        b"-ERR wrong number of arguments for 'client|id' command\r\n"
    assert probe.call("CLIENT") == b"-ERR wrong number of arguments for 'client' command\r\n"


def test_first_argument_rules(root, probe):
    set_rules(root, "+select|0", "+SELECT|3")
    assert probe.call("SELECT", "0") == b"+OK\r\n"
    assert probe.call("select", "3") == b"+OK\r\n"
    assert probe.call("SELECT", "1") == noperm("select")
    assert probe.call("GET", "k") == noperm("get")
    set_rules(root, "+select|0", "-select")   # -select forgets the first arguments
    assert probe.call("SELECT", "0") == noperm("select")
    # refused forms, with Redis 7.0's reasons
    for rule, reason in (("-select|0", "Unknown command or category name in ACL"),
                         ("+config|get|x", "Allowing first-arg of a subcommand is not supported"),
                         ("+select|", "Syntax error"),
                         ("+config|nosuch", "Unknown command or category name in ACL")):
        assert root.call("ACL", "SETUSER", "probe", rule) == \
            b"-ERR Error in ACL SETUSER modifier '%s': %s\r\n" % (rule.encode(), reason.encode())


# -- (b) KDB EXPORT/IMPORT and DEBUG's open first arguments keep the user's rules --------

def test_kdb_and_debug_follow_the_rules(root, probe):
    set_rules(root, "+@all")
    # The walks over every command before this one leave keys ("x") behind.
    assert probe.call("FLUSHALL") == b"+OK\r\n"
    assert probe.call("SET", "k", "v") == b"+OK\r\n"
    payload = parse(probe.call("KDB", "EXPORT"))
    assert payload.kind == b"$"
    dump = payload.raw[len(payload.head) + 3:-2]
    assert probe.call("KDB", "IMPORT", dump, "REPLACE") == b":1\r\n"
    assert probe.call("DEBUG", "DIGEST").startswith(b"+")
    assert probe.call("DEBUG", "DIGEST-VALUE", "k").startswith(b"*1\r\n+")
    assert probe.call("DEBUG", "OBJECT", "k").startswith(b"+Value at:")
    for args, name in ((("DEBUG", "SLEEP", "0"), "debug"), (("KDB", "SAVE"), "kdb|save"),
                       (("KDB", "LOAD"), "kdb|load")):
        assert probe.call(*args) == noperm(name), args
    refused = {
        # -kdb: the whole container
        ("+@all", "-kdb"): [(("KDB", "EXPORT"), "kdb|export"),
                            (("KDB", "IMPORT", dump, "REPLACE"), "kdb|import")],
        # +@read: a read (EXPORT is @read, as DUMP and KEYS), never a write
        ("+@read",): [(("KDB", "IMPORT", dump, "REPLACE"), "kdb|import"),
                      (("DEBUG", "DIGEST"), "debug"), (("DEBUG", "DIGEST-VALUE", "k"), "debug"),
                      (("DEBUG", "OBJECT", "k"), "debug")],
        ("+set",): [(("KDB", "EXPORT"), "kdb|export"), (("DEBUG", "OBJECT", "k"), "debug")],
        ("+@all", "-kdb|import"): [(("KDB", "IMPORT", dump, "REPLACE"), "kdb|import")],
        ("+@all", "-@dangerous"): [(("KDB", "EXPORT"), "kdb|export"), (("DEBUG", "DIGEST"), "debug")],
        ("+@all", "-debug"): [(("DEBUG", "DIGEST"), "debug"), (("DEBUG", "OBJECT", "k"), "debug")],
        ("+@all", "-debug", "+debug|object"): [(("DEBUG", "DIGEST"), "debug"),
                                               (("DEBUG", "SLEEP", "0"), "debug")],
        ("+debug|sleep", "+debug|digest"): [(("DEBUG", "SLEEP", "0"), "debug")],
    }
    allowed = {
        ("+@read",): [("KDB", "EXPORT")],
        ("+@all", "-kdb|import"): [("KDB", "EXPORT")],
        ("+kdb|export",): [("KDB", "EXPORT")],
        ("+kdb|import",): [("KDB", "IMPORT", dump, "REPLACE")],
        ("+@all", "-debug", "+debug|object"): [("DEBUG", "OBJECT", "k")],
        ("+debug|sleep", "+debug|digest"): [("DEBUG", "DIGEST")],
        ("+debug",): [("DEBUG", "DIGEST-VALUE", "k"), ("DEBUG", "OBJECT", "k")],
    }
    for rules in refused.keys() | allowed.keys():
        set_rules(root, *rules)
        for args, name in refused.get(rules, ()):
            assert probe.call(*args) == noperm(name), (rules, args)
            assert root.call("ACL", "DRYRUN", "probe", *args) == dry_denied(name), (rules, args)
        for args in allowed.get(rules, ()):
            assert not probe.call(*args).startswith(b"-NOPERM"), (rules, args)
            assert root.call("ACL", "DRYRUN", "probe", *args) == b"+OK\r\n", (rules, args)
    # Redis 7.0 cannot take a first argument away: -debug|digest is refused.
    assert root.call("ACL", "SETUSER", "probe", "-debug|digest") == \
        b"-ERR Error in ACL SETUSER modifier '-debug|digest': Unknown command or category name in ACL\r\n"


def test_transactions_check_subcommands_when_queued_and_at_exec(root, probe):
    set_rules(root, "+set")   # MEMORY USAGE below answers an integer for a key that exists
    assert probe.call("SET", "k", "v") == b"+OK\r\n"
    set_rules(root, "+multi", "+exec", "+@read")
    assert probe.call("MULTI") == b"+OK\r\n"
    assert probe.call("KDB", "IMPORT", "x") == noperm("kdb|import")
    assert probe.call("OBJECT", "ENCODING", "k") == b"+QUEUED\r\n"
    assert probe.call("EXEC") == b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    assert probe.call("MULTI") == b"+OK\r\n"
    assert probe.call("MEMORY", "USAGE", "k") == b"+QUEUED\r\n"
    assert probe.call("OBJECT", "ENCODING", "k") == b"+QUEUED\r\n"
    assert root.call("ACL", "SETUSER", "probe", "-object|encoding") == b"+OK\r\n"
    reply = parse(probe.call("EXEC"))
    assert [child.kind for child in reply.children] == [b":", b"-"]
    assert reply.children[1].head.startswith(b"NOPERM ACLs rules changed between the moment")


# -- (c) ACL DRYRUN agrees with what happens ---------------------------------------------

RULE_SETS = [("+@read",), ("+@all", "-@dangerous"), ("+client|list", "+config|get"),
             ("+select|0", "+debug|object", "+@connection")]
EXTRA_ARGVS = [["select", "0"], ["debug", "object", "x"], ["debug", "digest"], ["client", "list"]]


def test_dryrun_agrees_with_what_happens(root, probe, entries):
    argvs = [e.argv for e in entries] + EXTRA_ARGVS
    for rules in RULE_SETS:
        set_rules(root, *rules)
        for argv in argvs:
            dry = root.call("ACL", "DRYRUN", "probe", *argv)
            reply = probe.run(argv)
            if dry == b"+OK\r\n":
                assert not reply.startswith(b"-NOPERM"), (rules, argv, reply)
            else:
                name = reply[len(b"-NOPERM this user has no permissions to run the '"):].split(b"'")[0]
                assert reply.startswith(b"-NOPERM"), (rules, argv, dry, reply)
                assert dry == dry_denied(name.decode()), (rules, argv, dry, reply)
                assert name.decode() in (argv[0], "|".join(argv[:2])), (argv, name)


# -- (d) INFO commandstats per subcommand, as redis-server counts ------------------------------

def commandstats(conn) -> dict:
    node = parse(conn.call("INFO", "commandstats"))
    stats = {}
    for line in text(node).splitlines():
        if line.startswith("cmdstat_"):
            name, _, values = line[len("cmdstat_"):].partition(":")
            fields = dict(item.split("=") for item in values.split(","))
            stats[name] = (int(fields["calls"]), int(fields["rejected_calls"]),
                           int(fields["failed_calls"]))
    return stats


def test_commandstats_per_subcommand_as_redis(srv, root, tmp_path):
    if harness.redis_server_path() is None:
        pytest.skip("redis-server is not installed")
    reference = harness.RedisServer(free_port(), str(tmp_path))
    try:
        redis_conn = Conn(reference.port, None)
        sequences = []
        for conn, port in ((redis_conn, reference.port), (root, srv.port)):
            calls = [conn.call(*args) for args in (("CONFIG", "RESETSTAT"), ("ACL", "SETUSER", "st", "reset", "on",
                                                            ">st-pw", "~*", "+client|id"),
                                  ("CLIENT", "ID"), ("CLIENT", "ID"), ("CLIENT", "LIST"),
                                  ("CLIENT", "LIST", "TYPE", "bogus"), ("CLIENT", "ID", "extra"),
                                  ("CLIENT", "NOSUCH"), ("CONFIG",), ("CONFIG", "GET", "maxclients"),
                                  ("OBJECT", "ENCODING", "nokey"), ("COMMAND", "COUNT"), ("COMMAND",),
                                  ("MEMORY", "USAGE", "nokey"), ("OBJECT", "HELP"))]
            restricted = Conn(port, "st", "st-pw")
            calls += [restricted.call("CLIENT", "LIST"), restricted.call("CLIENT", "ID"),
                      restricted.call("CLIENT", "KILL", "1.2.3.4:5")]
            restricted.close()
            sequences.append([c[:1] for c in calls])
            assert sequences[-1] == sequences[0]
        expected, actual = commandstats(redis_conn), commandstats(root)
        redis_conn.close()
    finally:
        reference.stop()
    names = ["client|id", "client|list", "client|kill", "config", "config|get", "config|resetstat",
             "object|encoding", "object|help", "command", "command|count", "memory|usage",
             "acl|setuser", "auth"]
    assert {n: actual.get(n) for n in names} == {n: expected.get(n) for n in names}
    assert actual["client|id"] == (3, 1, 0) and actual["client|list"] == (2, 1, 1)
    assert "client" not in actual and "object" not in actual


# -- the normalised rules ACL GETUSER shows (and the store keeps) mean the same -----------

@pytest.mark.parametrize("rules", [
    "-@all +@read", "+@all -@dangerous", "-@all +client|list +config|get", "-@all +@read -object",
    "-@all +@read +@write -@dangerous", "+@all -select +select|0 +select|1", "-@all +SELECT|Abc",
    "-@all +client -client|kill +@hash -hset", "+@all -@slow +@admin -debug +debug|object",
    "-@all +@slow -config +config|get +get +set", "+@all -kdb +kdb|export", "-@all",
])
def test_described_rules_mean_the_same(rules):
    from tenantkv import commands  # noqa: F401  (registers every command)
    from tenantkv.tenancy import permissions

    normalised = permissions.rules_text([permissions.check_rule(r) for r in rules.split()])
    described = permissions.describe(normalised)
    before, after = permissions.Access(normalised), permissions.Access(described)
    assert (before.allowed, before.future) == (after.allowed, after.future), described
    assert {k: [a.lower() for a in v] for k, v in before.firstargs.items() if k not in before.allowed} \
        == {k: [a.lower() for a in v] for k, v in after.firstargs.items()}, described
    assert permissions.describe(described) == described
