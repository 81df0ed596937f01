"""tenantkv: offline administration of the user database.

    tenantkv [--config FILE] [--data-dir DIR] [--db PATH] user add NAME [--root] [--password-stdin]
    tenantkv user del NAME | list | passwd NAME [--password-stdin] | set-root NAME on|off
    tenantkv user set-quota NAME [--memory M] [--keys N] [--connections N] [--rate N]
                                 (a figure, 0 for no limit, or "default")
    tenantkv check-aof [--fix [--yes]] FILE      (the .manifest, its directory, or one log file)
    tenantkv export --user NAME FILE            one user's data from the snapshot into FILE
    tenantkv import --user NAME FILE [--replace]  FILE's keys into that user's data in the snapshot
    tenantkv cli [tenantkv-cli options and command]   (the client, tenantkv.cli.client)

Works on the SQLite file directly (WAL makes this safe beside a running
server, but a running server keeps its own copy of users until it re-reads
them; online changes go through ACL SETUSER). Passwords are read from stdin
(one line) or asked twice at the terminal, never taken from the command line,
where `ps` and shell history would show them.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time

from tenantkv import config as config_module


class CliError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenantkv", description="Offline administration of the tenantkv user database.")
    parser.add_argument("--config", metavar="PATH", help="config file (TOML), as tenantkv-server's")
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (overrides data.dir)")
    parser.add_argument("--db", metavar="PATH",
                        help="user database file (default: auth.users_db, else <data dir>/users.db)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser("cli", help="the client, as tenantkv-cli (tenantkv cli --help)",
                        description="The client: tenantkv cli ARGS is tenantkv-cli ARGS.",
                        add_help=False)
    user = commands.add_parser("user", help="manage users", description="Manage users.")
    actions = user.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="create a user", description="Create a user.")
    add.add_argument("name")
    add.add_argument("--root", action="store_true", help="give the user root rights")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of stdin")

    delete = actions.add_parser("del", help="delete a user", description="Delete a user.")
    delete.add_argument("name")

    actions.add_parser("list", help="list users", description="List users.")

    passwd = actions.add_parser("passwd", help="set a user's password",
                                description="Set a user's password.")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of stdin")

    set_root = actions.add_parser("set-root", help="grant or revoke root rights",
                                  description="Grant (on) or revoke (off) root rights.")
    set_root.add_argument("name")
    set_root.add_argument("state", choices=["on", "off"])

    set_quota = actions.add_parser(
        "set-quota", help="set or drop a user's quota overrides",
        description="Set a user's quotas (ACL SETUSER NAME quota:FIELD=VALUE offline). Each "
                    "value is a figure (memory takes units: 100mb, 1gb), 0 for no limit, or "
                    "'default' to follow the server's [quotas] setting again; a quota not "
                    "named is left as it is. Without any, shows the user's overrides. A "
                    "running server applies the change at its next ACL LOAD or restart.")
    set_quota.add_argument("name")
    for field in ("memory", "keys", "connections", "rate"):
        set_quota.add_argument("--" + field, metavar="VALUE")

    check = commands.add_parser(
        "check-aof", help="check (and repair) an append-only log",
        description="Check the append-only log: the manifest and every file it names (or one "
                    "file), as the server checks them at start-up. With --fix, truncate damaged "
                    "bytes at the end of the last incremental file (a torn tail) at the last good "
                    "record; nothing else can be repaired automatically.")
    check.add_argument("file", help="the appendonlydir's .manifest (or that directory), or one "
                                    "log file")
    check.add_argument("--fix", action="store_true",
                       help="truncate the last incremental file at its last good record")
    check.add_argument("--yes", action="store_true", help="do not ask before truncating")

    export = commands.add_parser(
        "export", help="write one user's data from the snapshot to a file",
        description="Write one user's data, read from the snapshot (<data dir>/dump.kdb), "
                    "to FILE: a one-tenant .kdb file, as KDB EXPORT replies.")
    export.add_argument("--user", required=True, metavar="NAME")
    export.add_argument("file", metavar="FILE")
    import_ = commands.add_parser(
        "import", help="add a file's keys to one user's data in the snapshot",
        description="Add the keys of FILE (from `tenantkv export` or KDB EXPORT) to one user's "
                    "data in the snapshot. Run it with the server stopped: a running server "
                    "overwrites the snapshot when it next saves.")
    import_.add_argument("--user", required=True, metavar="NAME")
    import_.add_argument("file", metavar="FILE")
    import_.add_argument("--replace", action="store_true", help="overwrite keys that exist")
    return parser


def check_aof(args) -> int:
    """0: every file is valid (or was fixed); 1: damage left (persistence/aof/checkaof.py)."""
    from tenantkv import commands  # noqa: F401  (registers every command: the checks know the table)
    from tenantkv.persistence.aof import checkaof
    config = load_config(args)

    def ask(prompt: str) -> str:
        if not sys.stdin.isatty():
            print("%s(no terminal to confirm: add --yes)" % prompt)
            return ""
        return input(prompt)
    return checkaof.check(args.file, fix=args.fix, yes=args.yes,
                          databases=config["limits.databases"],
                          appendfilename=config["data.appendfilename"], ask=ask)


def load_config(args):
    flags = {"dir": args.data_dir} if args.data_dir else None
    try:
        return config_module.load(args.config, flags=flags)
    except config_module.ConfigError as exc:
        raise CliError("configuration error: %s" % exc)


def audit(args, event: str, via: str = "tenantkv user", **fields) -> None:
    """An audit line for a change made offline, where the server would put
    it: audit.file, else the log file, else standard error; `by` is the
    operating-system account that ran the command."""
    from tenantkv import logs
    try:
        config = load_config(args)
        logs.setup("notice", config["logging.file"], config["logging.format"],
                   config["logging.audit_file"])
    except (CliError, OSError):
        logs.setup("notice")
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = str(os.getuid())
    logs.audit(event, by=who, via=via, **fields)


def run_data(args) -> None:
    """export / import: the snapshot file, offline."""
    from tenantkv.persistence.kdb import format as kdb
    config = load_config(args)
    store = open_store(args, create=False)
    try:
        user = store.get(args.user)
    finally:
        store.close()
    if user is None:
        raise CliError("no such user '%s'" % args.user)
    key = user.tenant_key
    snapshot = os.path.join(config["data.dir"], config["data.dbfilename"])
    databases = config["limits.databases"]
    now = int(time.time() * 1000)
    tenants = {}
    if os.path.exists(snapshot):
        try:
            tenants = kdb.read_file(snapshot, now, databases).tenants
        except kdb.KdbError as exc:
            raise CliError("%s: %s" % (snapshot, exc))
    if args.command == "export":
        keys = kdb.write_snapshot({key: tenants.get(key, [])}, args.file, now)
        print("exported %d keys of '%s' to %s" % (keys, args.user, args.file))
        return
    try:
        loaded = kdb.read_file(args.file, now, databases).tenants
    except kdb.KdbError as exc:
        raise CliError("%s: %s" % (args.file, exc))
    if len(loaded) > 1:
        raise CliError("%s holds %d tenants; import takes one tenant's export" % (args.file, len(loaded)))
    incoming = next(iter(loaded.values()), [])
    target = tenants.setdefault(key, [({}, {}) for _ in range(databases)])
    while len(target) < databases:
        target.append(({}, {}))
    clashes = sum(1 for index, (data, _) in enumerate(incoming) for k in data if k in target[index][0])
    if clashes and not args.replace:
        raise CliError("%d keys already exist in the data of '%s' (--replace overwrites them)"
                       % (clashes, args.user))
    count = 0
    for index, (data, expires) in enumerate(incoming):
        values, deadlines = target[index]
        for k in data:
            deadlines.pop(k, None)
        values.update(data)
        deadlines.update(expires)
        count += len(data)
    kdb.write_snapshot(tenants, snapshot, now)
    audit(args, "kdb-import", via="tenantkv import", user=args.user, file=os.path.abspath(args.file),
          keys=count, replace=int(bool(args.replace)))
    print("imported %d keys into the data of '%s' (%s)" % (count, args.user, snapshot))


def db_path(args) -> str:
    """The server's resolution: --db, else auth.users_db, else <data dir>/users.db,
    the config coming from --config, TENANTKV_* variables and --data-dir."""
    if args.db:
        return args.db
    flags = {"dir": args.data_dir} if args.data_dir else None
    try:
        config = config_module.load(args.config, flags=flags)
    except config_module.ConfigError as exc:
        raise CliError("configuration error: %s" % exc)
    return config_module.users_db_path(config)


def read_password(from_stdin: bool) -> bytes:
    if from_stdin:
        line = sys.stdin.buffer.readline()
        password = line[:-1] if line.endswith(b"\n") else line
        if password.endswith(b"\r"):
            password = password[:-1]
    else:
        if not sys.stdin.isatty():
            raise CliError("no terminal to ask for the password: use --password-stdin")
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise CliError("passwords do not match")
        password = first.encode("utf-8")
    if not password:
        raise CliError("empty password")
    return password


def open_store(args, create: bool):
    from tenantkv.tenancy import UserStore
    path = db_path(args)
    if not create and not os.path.exists(path):
        raise CliError("no user database at %s" % path)
    directory = os.path.dirname(os.path.abspath(path))
    if create:
        os.makedirs(directory, exist_ok=True)
    return UserStore(path)


def _time(stamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp)) if stamp else "-"


def run(args) -> None:
    from tenantkv.tenancy import NoSuchUser, UserExists
    if args.command in ("export", "import"):
        run_data(args)
        return
    action = args.action
    if action == "add":
        from tenantkv.tenancy import validate_username
        try:
            validate_username(args.name)
        except ValueError as exc:
            raise CliError("bad user name %r: %s" % (args.name, exc))
        store = open_store(args, create=True)
        try:
            if store.get(args.name) is not None:   # before asking for a password
                raise CliError("user '%s' already exists" % args.name)
            password = read_password(args.password_stdin)
            try:
                user = store.add(args.name, password, root=args.root)
            except UserExists as exc:
                raise CliError(str(exc))
        finally:
            store.close()
        audit(args, "user-add", user=user.username, root=int(user.root))
        print("added user '%s' (id %d%s)" % (user.username, user.id, ", root" if user.root else ""))
        return
    store = open_store(args, create=False)
    try:
        if action == "list":
            users = store.list()
            rows = [("NAME", "ID", "ROOT", "ENABLED", "TENANT", "CREATED (UTC)", "UPDATED (UTC)")]
            rows += [(u.username, str(u.id), "yes" if u.root else "no", "yes" if u.enabled else "no",
                      u.tenant_key, _time(u.created_at), _time(u.updated_at)) for u in users]
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
            for row in rows:
                print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        elif action == "del":
            if store.delete(args.name) is None:
                raise CliError("no such user '%s'" % args.name)
            audit(args, "user-del", user=args.name)
            print("deleted user '%s'" % args.name)
        elif action == "passwd":
            if store.get(args.name) is None:
                raise CliError("no such user '%s'" % args.name)
            password = read_password(args.password_stdin)
            try:
                store.set_password(args.name, password)
            except NoSuchUser as exc:
                raise CliError(str(exc))
            audit(args, "user-passwd", user=args.name)
            print("password of '%s' changed" % args.name)
        elif action == "set-quota":
            set_quota(store, args)
        elif action == "set-root":
            try:
                store.set_root(args.name, args.state == "on")
            except NoSuchUser as exc:
                raise CliError(str(exc))
            audit(args, "user-set-root", user=args.name, root=args.state)
            print("root rights of '%s': %s" % (args.name, args.state))
    finally:
        store.close()


def set_quota(store, args) -> None:
    from tenantkv.keyspace.quota import FIELDS, overrides_text, parse_overrides, parse_value
    user = store.get(args.name)
    if user is None:
        raise CliError("no such user '%s'" % args.name)
    overrides = parse_overrides(user.quota)
    asked = {field: getattr(args, field) for field in FIELDS if getattr(args, field) is not None}
    for field, text in asked.items():
        if text.lower() == "default":
            overrides.pop(field, None)
            continue
        try:
            overrides[field] = parse_value(field, text.lower())
        except ValueError as exc:
            raise CliError(str(exc))
    if asked:
        store.set_quota(args.name, overrides_text(overrides))
        audit(args, "user-set-quota", user=args.name, quota=overrides_text(overrides))
    shown = " ".join("%s=%d" % (field, overrides[field]) for field in FIELDS if field in overrides)
    print("quotas of '%s': %s" % (args.name, shown or "the defaults"))


def main(argv: list | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["cli"]:   # the client shares this entry point (one --help tree)
        from tenantkv.cli import client
        return client.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check-aof":
            return check_aof(args)
        run(args)
    except CliError as exc:
        print("tenantkv: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tenantkv: interrupted", file=sys.stderr)
        return 1
    except Exception as exc:   # sqlite3, OS errors: one line, not a traceback
        print("tenantkv: %s: %s" % (type(exc).__name__, exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
