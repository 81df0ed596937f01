"""ACL: users, their passwords and command rules, managed online by root.

Every subcommand that reads or writes the user store runs in the
authenticator's worker pool (SQLite and argon2id block) and answers through
a Deferred, so it is refused inside MULTI (`waits`, dispatch/call.py). A
write reaches the live sessions of its users as soon as it is in the
store, before its reply, whether or not its sender is still there
(`_write_in_pool`; server/auth.py's `_login` for an AUTH in flight). The
subcommands Redis flags "admin" (SETUSER, DELUSER, USERS,
LIST, GETUSER, LOG, SAVE, LOAD, DRYRUN) are root-only (tenancy/permissions.py):
anyone else gets Redis's NOPERM for 'acl|<sub>', recorded in ACL LOG. WHOAMI,
CAT, GENPASS and HELP run for every user whose rules allow them.

Deliberate differences from Redis (README, "Security model"):
- one password per user: `>pw` replaces it (Redis adds one more); `<pw`
  removes it if it is the current one; `#hash`/`!hash` and `nopass` are
  refused (hashes are argon2id, and every user needs a password);
- key patterns (~*, %R~, allkeys, ...) are accepted and ignored: isolation
  is the tenant, and a user reaches only its own; channel patterns (&pattern,
  allchannels, resetchannels) apply, within the user's tenant, as Redis 7's;
  a user never given one has allchannels (its tenant's channels only), and
  `reset` gives resetchannels as Redis 7's acl-pubsub-default;
- extensions: `root`/`noroot` (all commands, user management),
  `namespace:NAME` (share the tenant NAME with other users; `namespace:`
  alone goes back to the user's own tenant) and `quota:FIELD=VALUE`
  (FIELD memory, keys, connections or rate; VALUE a figure, 0 for no
  limit, or `default` to follow the config's [quotas] again; memory takes
  units, 100mb; `reset` drops them all), shown in the flags;
- a new user gets the default rules (+@all: every non-admin command) when
  SETUSER names no command rule, and starts from -@all, as in Redis, when it
  does; admin commands are root-only whatever the rules.

Neither passwords nor SETUSER arguments are ever logged.
"""

import asyncio
import hashlib
import logging
import secrets
import threading
import time

from tenantkv import errors
from tenantkv.dispatch.call import allowed
from tenantkv.dispatch.table import HIDDEN, container, find, subcommand
from tenantkv.errors import CommandError
from tenantkv.logs import audit
from tenantkv.keyspace.quota import overrides_text, parse_overrides, parse_value
from tenantkv.protocol.encoder import OK, SetReply
from tenantkv.dispatch.replies import Deferred
from tenantkv.tenancy import hashing, permissions
from tenantkv.tenancy.permissions import RuleError
from tenantkv.tenancy.store import NoSuchUser, validate_namespace, validate_username
from tenantkv.util.numbers import parse_int

log = logging.getLogger("tenantkv.acl")

# One ACL write at a time: the last-root checks read then write the store.
_WRITE_LOCK = threading.Lock()
_LOG_IDS = [0]   # next ACL LOG entry-id (assigned when first shown, oldest first)

ACL_HELP = [
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the user database (tenantkv).",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Back up the user database to the backup directory (tenantkv).",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
]

IGNORED = {"allkeys", "resetkeys", "sanitize-payload", "skip-sanitize-payload"}


container("acl", help=ACL_HELP)


def _in_pool(conn, fn, finish, *args) -> Deferred:
    server = conn.server
    return Deferred(server.loop.run_in_executor(server.auth.pool, fn, *args), finish)


def _write_in_pool(conn, work, apply, finish, *args) -> Deferred:
    """An ACL write (or LOAD): `work(*args)` in the pool commits it to the
    store; then, on the loop, in one step, the authenticator's revision
    moves (an AUTH in flight re-reads its user, server/auth.py) and
    `apply(result)` gives live sessions their new rights; then
    `finish(result)` makes the reply.

    `apply` does not hang on the reply: it runs as soon as the work is
    done, also when the client that sent the command has gone (the
    connection skips `finish` once closed; a revocation must not depend on
    the admin's connection staying open) or the reply's future was
    cancelled. And it runs before the reply leaves: whoever has the reply
    knows every session has the new rights."""
    server = conn.server
    loop = server.loop
    auth = server.auth
    work_done = auth.pool.submit(work, *args)

    def landed(future) -> None:
        if future.cancelled():   # never started (shutdown): nothing changed
            return
        auth.users_changed()     # also after an error: a part may have committed
        if future.exception() is None:
            apply(future.result())

    def in_loop(future) -> None:   # in the worker thread
        try:
            loop.call_soon_threadsafe(landed, future)
        except RuntimeError:   # the loop is closed: the server is gone
            pass

    # Added before wrap_future adds its own: a concurrent future runs its
    # callbacks in order, so `landed` is queued on the loop before the
    # reply's future can be resolved (and its `finish` run).
    work_done.add_done_callback(in_loop)
    return Deferred(asyncio.wrap_future(work_done, loop=loop), finish)


def _text(arg: bytes) -> str:
    return arg.decode("utf-8", "surrogateescape")


def _default_open(conn) -> bool:
    return conn.server.default_user_open


def _modifier_error(token: bytes, reason: str) -> CommandError:
    return CommandError(errors.acl_modifier(token, reason))


def _username(arg: bytes) -> str:
    if b" " in arg or b"\0" in arg:
        raise CommandError(errors.USERNAME_CHARS)
    name = _text(arg)
    try:
        return validate_username(name)
    except ValueError as exc:
        raise CommandError(errors.invalid_username(exc)) from None


# -- SETUSER -------------------------------------------------------------------------

def _parse_setuser(args: list) -> dict:
    """The SETUSER plan, checked entirely before anything changes (Redis
    applies all or nothing): {changes, password_ops, rules}."""
    changes: dict = {}
    password_ops: list = []   # ("set", pw) | ("remove", pw) | ("reset",)
    rules = None              # list of normalised rules, or None: unchanged
    quota: dict = {}          # field -> figure, or None: back to the default
    channels: list = []       # ("all",) | ("reset",) | ("add", pattern), in order
    for token in args[3:]:
        text = _text(token)
        low = text.lower()
        if low == "on":
            changes["enabled"] = True
        elif low == "off":
            changes["enabled"] = False
        elif text.startswith(">"):
            password_ops.append(("set", token[1:]))
        elif text.startswith("<"):
            password_ops.append(("remove", token[1:]))
        elif text[:1] in ("#", "!"):
            digest = text[1:]
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise _modifier_error(token, errors.MODIFIER_HASH)
            raise _modifier_error(token, errors.MODIFIER_SHA256)
        elif low == "nopass":
            raise _modifier_error(token, errors.MODIFIER_NOPASS)
        elif low == "resetpass":
            password_ops.append(("reset",))
        elif low == "root":
            changes["root"] = True
        elif low == "noroot":
            changes["root"] = False
        elif low.startswith("namespace:"):
            namespace = text[len("namespace:"):] or None
            if namespace is not None:
                try:
                    validate_namespace(namespace)
                except ValueError as exc:
                    raise _modifier_error(token, str(exc)) from None
            changes["namespace"] = namespace
        elif low.startswith("quota:"):
            field, equals, figure = low[len("quota:"):].partition("=")
            if not equals:
                raise _modifier_error(token, errors.MODIFIER_QUOTA)
            try:
                quota[field] = None if figure == "default" else parse_value(field, figure)
            except ValueError as exc:
                raise _modifier_error(token, str(exc)) from None
        elif low == "reset":
            password_ops.append(("reset",))
            changes["enabled"] = False
            changes["root"] = False
            rules = ["-@all"]
            quota = {"reset": True}
            channels.append(("reset",))
        elif low == "allchannels" or text == "&*":
            channels.append(("all",))
        elif low == "resetchannels":
            channels.append(("reset",))
        elif text[:1] == "&":
            if any(c.isspace() for c in text) or "\0" in text:
                # Stored as words, as the command rules' first arguments.
                raise _modifier_error(token, "a channel pattern with spaces is not supported "
                                             "by tenantkv")
            channels.append(("add", text[1:]))
        elif low in IGNORED or text[:1] in ("~", "%"):
            pass   # key patterns: isolation is the tenant
        elif low in ("allcommands", "nocommands") or text[:1] in ("+", "-"):
            try:
                rule = permissions.check_rule(text)
            except RuleError as exc:
                raise _modifier_error(token, str(exc)) from None
            rules = permissions.add_rule(rules if rules is not None else [], rule)
        elif low == "clearselectors" or text.startswith("("):
            raise _modifier_error(token, errors.MODIFIER_SELECTORS)
        else:
            raise _modifier_error(token, errors.MODIFIER_SYNTAX)
    return {"changes": changes, "password_ops": password_ops, "rules": rules, "quota": quota,
            "channels": channels}


def _channels_after(current, ops: list):
    """The user's channel patterns after SETUSER's channel `ops`, stored as
    User.channels is (None: allchannels; else space-separated patterns);
    Redis's error for a pattern added after allchannels."""
    state = current.channels if current is not None else None
    patterns = None if state is None else state.split()
    for op in ops:
        if op[0] == "all":
            patterns = None
        elif op[0] == "reset":
            patterns = []
        else:
            if patterns is None:
                raise _modifier_error(("&" + op[1]).encode("utf-8", "surrogateescape"),
                                      errors.MODIFIER_CHANNEL_AFTER_ALL)
            if op[1] not in patterns:
                patterns.append(op[1])
    return None if patterns is None else " ".join(patterns)


def _enabled_roots(store, excluding: set) -> int:
    return sum(1 for u in store.list() if u.root and u.enabled and u.username not in excluding)


def _setuser_work(store, name: str, plan: dict):
    """In a worker thread: apply the plan; the new User."""
    with _WRITE_LOCK:
        current = store.get(name)
        changes = dict(plan["changes"])
        # Rules are relative to the user's current rules; a new user given
        # command rules starts from -@all (Redis), else keeps the default.
        if plan["rules"] is not None:
            if plan["rules"][0] in ("+@all", "-@all"):
                rules = plan["rules"]
            elif current is not None:
                rules = permissions.user_rules(current).split() + plan["rules"]
            else:
                rules = ["-@all"] + plan["rules"]
            # Stored as Redis shows them (ACL GETUSER): the same commands, and
            # the text does not grow with every SETUSER.
            changes["rules"] = permissions.describe(permissions.rules_text(rules))
        # Quota overrides, relative to the user's current ones (`reset`
        # drops them all, as it makes the user as new).
        if plan["quota"]:
            overrides = dict(parse_overrides(current.quota)) if current is not None else {}
            for field, figure in plan["quota"].items():
                if field == "reset":
                    overrides.clear()
                elif figure is None:
                    overrides.pop(field, None)
                else:
                    overrides[field] = figure
            changes["quota"] = overrides_text(overrides)
        if plan["channels"]:
            changes["channels"] = _channels_after(current, plan["channels"])
        # Passwords, in order: only the last state counts.
        state = "keep"
        new_password = None
        for op in plan["password_ops"]:
            if op[0] == "set":
                state, new_password = "set", op[1]
            elif op[0] == "reset":
                state, new_password = "none", None
            else:
                if state == "set":
                    found = secrets.compare_digest(new_password, op[1])
                elif state == "keep":
                    found = (current is not None and current.has_password
                             and hashing.verify_password(current.password, op[1]))
                else:
                    found = False
                if not found:
                    raise _modifier_error(b"<" + op[1], errors.MODIFIER_NO_SUCH_PASSWORD)
                state, new_password = "none", None
        if state == "set":
            changes["password"] = hashing.hash_password(new_password)
        elif state == "none":
            changes["password"] = None
        if current is not None and current.root and current.enabled and \
                (changes.get("root") is False or changes.get("enabled") is False) and \
                _enabled_roots(store, {name}) == 0:
            raise CommandError(errors.LAST_ROOT)
        try:
            user, created = store.apply(name, changes, create=True)
        except ValueError as exc:
            raise CommandError(errors.acl_refused(exc)) from None
        return user, created


def redacted_rules(tokens: list) -> str:
    """SETUSER's rules for the audit log: passwords and hashes (>, <, #, !)
    replaced by their marker alone."""
    shown = []
    for token in tokens:
        text = _text(token)
        shown.append(text[0] + "<redacted>" if text[:1] in (">", "<", "#", "!") else text)
    return " ".join(shown)


@subcommand("acl", "setuser", waits=True)
def _acl_setuser(conn, args):
    name = _username(args[2])
    if name == "default" and _default_open(conn):
        raise CommandError(errors.DEFAULT_USER_BY_CONFIG)
    plan = _parse_setuser(args)
    server = conn.server
    who, addr = conn.user, conn.addr

    def apply(result):
        user, created = result
        server.quotas.user_changed(user)   # before the sessions move (a namespace)
        _refresh(server, {user.username: user})
        audit("acl-setuser", by=who, addr=addr, user=user.username, created=int(created),
              rules=redacted_rules(args[3:]))

    return _write_in_pool(conn, _setuser_work, apply, _ok, server.auth.store, name, plan)


def _ok(result):
    return OK


def _user_conns(server, name: str) -> list:
    open_default = server.default_user_open and name == "default"
    return [c for c in list(server.clients.values())
            if c.authenticated and c.user == name and not open_default and not c.closing]


def _refresh(server, users: dict) -> None:
    """Live connections of `users` (name -> User) take their new rules, root
    flag and namespace now; a password change leaves them be, and so does
    `off` (as Redis: `off` stops new logins, it does not end sessions;
    ACL DELUSER does)."""
    for name, user in users.items():
        for conn in _user_conns(server, name):
            conn.login(user)


# -- DELUSER -------------------------------------------------------------------------

def _deluser_work(store, names: list):
    with _WRITE_LOCK:
        found = [u for u in (store.get(n) for n in dict.fromkeys(names)) if u is not None]
        gone = {u.username for u in found}
        if any(u.root and u.enabled for u in found) and _enabled_roots(store, gone) == 0:
            raise CommandError(errors.LAST_ROOT)
        result = []
        for user in found:
            if store.delete(user.username) is None:
                continue
            drop = [user.own_tenant]   # its own tenant (also when bound elsewhere)
            if user.namespace is not None and not store.users_in(user.namespace):
                drop.append(user.namespace)
            result.append((user, drop))
        return result


@subcommand("acl", "deluser", waits=True)
def _acl_deluser(conn, args):
    names = [_text(a) for a in args[2:]]
    if "default" in names and _default_open(conn):
        raise CommandError(errors.DEFAULT_USER_UNDELETABLE)
    server = conn.server
    who, addr = conn.user, conn.addr

    def apply(result):
        for user, drop in result:
            audit("acl-deluser", by=who, addr=addr, user=user.username)
            for other in _user_conns(server, user.username):
                if other is conn:
                    conn.close_after_reply = True   # the reply goes out first
                else:
                    other.close()
            for key in drop:
                tenant = server.tenants.pop(key, None)
                if tenant is not None and server.events.journal is not None:
                    server.events.journal.dropped_tenant(key)
                if tenant is not None:
                    for db in tenant.dbs:
                        db.clear()
            server.quotas.user_deleted(user.username)
            log.info("ACL DELUSER: user '%s' deleted", user.username)

    return _write_in_pool(conn, _deluser_work, apply, len, server.auth.store, names)


# -- USERS, LIST, GETUSER -----------------------------------------------------------

def _password_digest(user) -> str:
    # Never the password: a SHA-256 of the stored argon2id hash (it changes
    # with every password change, as Redis's #<sha256> does).
    return hashlib.sha256(user.password.encode()).hexdigest()


def _flags(user) -> list:
    flags = ["on" if user.enabled else "off"]
    if user.root:
        flags.append("root")
    if user.namespace is not None:
        flags.append("namespace:" + user.namespace)
    # Quota overrides, as SETUSER takes them (keyspace/quota.py).
    flags += ["quota:%s=%d" % item for item in parse_overrides(user.quota).items()]
    return flags


def _command_rules(user) -> str:
    return "+@all" if user.root else permissions.describe(permissions.user_rules(user))


def _channels_words(user) -> list:
    """The user's channel rules as ACL LIST shows them (Redis 7)."""
    if user.root or user.channels is None:
        return ["&*"]
    return ["resetchannels"] + ["&" + p for p in user.channels.split()]


def acl_line(user) -> str:
    parts = ["user", user.username] + _flags(user)
    if user.has_password:
        parts.append("#" + _password_digest(user))
    parts += ["~*", *_channels_words(user), _command_rules(user)]
    return " ".join(parts)


DEFAULT_LINE = "user default on nopass ~* &* +@all"


def _all_users(store):
    return store.list()


def _with_default(conn, users: list) -> list:
    """(name, line-or-user) pairs, with the password-less default user when
    the configuration opens it."""
    names = {u.username for u in users}
    rows = [(u.username, u) for u in users]
    if _default_open(conn) and "default" not in names:
        rows.append(("default", None))
    rows.sort(key=lambda row: row[0].encode("utf-8", "surrogateescape"))
    return rows


@subcommand("acl", "users", waits=True)
def _acl_users(conn, args):
    def finish(users):
        return [name.encode("utf-8", "surrogateescape") for name, _ in _with_default(conn, users)]
    return _in_pool(conn, _all_users, finish, conn.server.auth.store)


@subcommand("acl", "list", waits=True)
def _acl_list(conn, args):
    def finish(users):
        return [(DEFAULT_LINE if user is None else acl_line(user)).encode("utf-8", "surrogateescape")
                for _, user in _with_default(conn, users)]
    return _in_pool(conn, _all_users, finish, conn.server.auth.store)


def _getuser_reply(user) -> dict:
    if user is None:   # the password-less default user
        flags, passwords, rules = ["on", "nopass"], [], "+@all"
        channels = "&*"
    else:
        flags = _flags(user)
        passwords = [_password_digest(user).encode()] if user.has_password else []
        rules = _command_rules(user)
        words = _channels_words(user)
        channels = " ".join(words[1:] if words[0] == "resetchannels" else words)
    return {
        b"flags": SetReply([f.encode("utf-8", "surrogateescape") for f in flags]),
        b"passwords": passwords,
        b"commands": rules.encode(),
        b"keys": b"~*",
        b"channels": channels.encode("utf-8", "surrogateescape"),
        b"selectors": [],
    }


def _get_user(store, name: str):
    return store.get(name)


@subcommand("acl", "getuser", waits=True)
def _acl_getuser(conn, args):
    name = _text(args[2])

    def finish(user):
        if user is None:
            if name == "default" and _default_open(conn):
                return _getuser_reply(None)
            return None
        return _getuser_reply(user)
    return _in_pool(conn, _get_user, finish, conn.server.auth.store, name)


# -- WHOAMI, CAT, GENPASS -------------------------------------------------------------

@subcommand("acl", "whoami")
def _acl_whoami(conn, args):
    return conn.user.encode("utf-8", "surrogateescape")


@subcommand("acl", "cat")
def _acl_cat(conn, args):
    if len(args) == 2:
        return [c.encode() for c in permissions.CATEGORY_ORDER]
    if len(args) > 3:
        raise CommandError(errors.subcommand_syntax(args[1], "ACL"))
    category = _text(args[2]).lower()
    if category not in permissions.CATEGORY_ORDER:
        raise CommandError(errors.unknown_category(args[2]))
    return [c.name.encode() for c in permissions.commands_in(category)]


@subcommand("acl", "genpass")
def _acl_genpass(conn, args):
    bits = 256
    if len(args) > 3:
        raise CommandError(errors.subcommand_syntax(args[1], "ACL"))
    if len(args) == 3:
        bits = parse_int(args[2])
        if bits is None:
            raise CommandError(errors.NOT_INTEGER)
        if not 0 < bits <= 4096:
            raise CommandError(errors.GENPASS_BITS)
    chars = (bits + 3) // 4
    return secrets.token_hex((chars + 1) // 2)[:chars].encode()


# -- LOG -------------------------------------------------------------------------------

def _log_entry(entry: dict, now: float) -> dict:
    if "entry-id" not in entry:
        entry["entry-id"] = _LOG_IDS[0]
        _LOG_IDS[0] += 1
    created = int(entry["timestamp-created"] * 1000)
    updated = int(entry["timestamp-last-updated"] * 1000)
    return {
        b"count": entry["count"],
        b"reason": entry["reason"].encode(),
        b"context": entry["context"].encode(),
        b"object": entry["object"].encode("utf-8", "surrogateescape"),
        b"username": entry["username"].encode("utf-8", "surrogateescape"),
        b"age-seconds": max(0, int(now * 1000) - updated) / 1000,
        b"client-info": entry["client-info"].encode("utf-8", "surrogateescape"),
        b"entry-id": entry["entry-id"],
        b"timestamp-created": created,
        b"timestamp-last-updated": updated,
    }


@subcommand("acl", "log")
def _acl_log(conn, args):
    entries = conn.server.auth.acl_log
    if len(args) > 3:
        raise CommandError(errors.subcommand_syntax(args[1], "ACL"))
    count = 10   # Redis's default
    if len(args) == 3:
        if args[2].lower() == b"reset":
            entries.clear()
            return OK
        count = parse_int(args[2])
        if count is None:
            raise CommandError(errors.NOT_INTEGER)
    for entry in reversed(entries):   # ids in order of creation, oldest first
        if "entry-id" not in entry:
            entry["entry-id"] = _LOG_IDS[0]
            _LOG_IDS[0] += 1
    now = time.time()
    return [_log_entry(entry, now) for entry in list(entries)[:max(0, count)]]


# -- SAVE, LOAD, DRYRUN -----------------------------------------------------------------

@subcommand("acl", "save", waits=True)
def _acl_save(conn, args):
    from tenantkv.config import backup_dir_path
    config = conn.server.config
    directory, keep = backup_dir_path(config), config["auth.backup_keep"]

    def work(store):
        return store.backup_rotate(directory, keep)

    def finish(path):
        log.info("ACL SAVE: user database backed up to %s", path)
        return OK
    return _in_pool(conn, work, finish, conn.server.auth.store)


@subcommand("acl", "load", waits=True)
def _acl_load(conn, args):
    server = conn.server
    who, addr = conn.user, conn.addr

    def apply(users):
        audit("acl-load", by=who, addr=addr, users=len(users))
        server.quotas.load(users)   # quota overrides changed offline (tenantkv user set-quota)
        by_name = {u.username: u for u in users}
        for other in list(server.clients.values()):
            if not other.authenticated or other.closing:
                continue
            if other.user == "default" and server.default_user_open:
                continue
            user = by_name.get(other.user)
            if user is None:   # deleted meanwhile (offline CLI): as ACL LOAD in Redis
                if other is conn:
                    conn.close_after_reply = True
                else:
                    other.close()
            else:
                other.login(user)
        # Users deleted or namespaces given up offline leave orphans (INFO)
        server.check_orphans({key for u in users for key in (u.own_tenant, u.namespace) if key})
    return _write_in_pool(conn, _all_users, apply, _ok, server.auth.store)


@subcommand("acl", "dryrun", waits=True)
def _acl_dryrun(conn, args):
    name = _text(args[2])

    def finish(user):
        if user is None and not (name == "default" and _default_open(conn)):
            raise CommandError(errors.user_not_found(args[2]))
        # Redis's lookupCommand, then the arity, then the check call() makes.
        command_args = args[3:]
        cmd = find(command_args[0])
        if cmd is not None and cmd.subcommands and len(command_args) > 1:
            cmd = cmd.subcommands.get(command_args[1].lower())
        if cmd is None or cmd.name in HIDDEN:
            raise CommandError(errors.command_not_found(args[3]))
        if not cmd.arity_ok(len(command_args)):
            raise CommandError(errors.wrong_arity(cmd.name))
        if user is None or allowed(permissions.command_table(user), cmd, command_args):
            return OK
        return ("This user has no permissions to run the '%s' command" % cmd.name).encode()
    return _in_pool(conn, _get_user, finish, conn.server.auth.store, name)


__all__ = ["acl_line", "NoSuchUser"]
