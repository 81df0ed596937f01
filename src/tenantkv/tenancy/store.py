"""The user store: one SQLite file (WAL, synchronous=FULL) through `sqlite3`.

Every method is synchronous and may block (disk, fsync, argon2): the server
calls them from a worker thread. One connection is shared by those threads
(check_same_thread=False), and a lock makes each operation a unit. Hashing
happens outside the lock, so one slow hash does not hold up other look-ups.

Only argon2id hashes reach the `password` column (set_hash refuses anything
else), and nothing here logs a password.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass

from tenantkv.tenancy import hashing

NAME_MAX = 128

# Schema migrations, in order: MIGRATIONS[i] takes the schema from version i to
# i + 1. Never edit a released step; append a new one.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE users (
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               username TEXT UNIQUE NOT NULL,
               password TEXT NOT NULL,
               created_at INTEGER,
               updated_at INTEGER,
               root_user INTEGER NOT NULL DEFAULT 0,
               enabled INTEGER NOT NULL DEFAULT 1,
               namespace TEXT NULL
           )""",
    ],
    # 2: ACL command rules per user (NULL: the default rules, see
    # tenancy.permissions), and whether the user has a password at all (a user
    # made by ACL SETUSER without >password holds the hash of a random secret
    # nobody knows, so AUTH checks it like any other and always fails).
    [
        "ALTER TABLE users ADD COLUMN rules TEXT NULL",
        "ALTER TABLE users ADD COLUMN password_set INTEGER NOT NULL DEFAULT 1",
    ],
    # 3: the key of the user's own tenant, unique forever. Until now it was
    # "user:<id>", and a restored older users.db hands the ids of users made
    # after the backup (and with them their data) to new users. Existing users
    # keep "user:<id>", so no data moves; new users get a random 128-bit key
    # (new_tenant_key), which no restore can hand out again.
    [
        "ALTER TABLE users ADD COLUMN tenant TEXT NULL",
        "UPDATE users SET tenant = 'user:' || id WHERE tenant IS NULL",
        "CREATE UNIQUE INDEX IF NOT EXISTS users_tenant ON users (tenant)",
    ],
    # 4: the user's quota overrides (issue 15): NULL, or "field=N ..." for the
    # fields root set (keyspace/quota.py, overrides_text); the others follow
    # the config's [quotas] defaults.
    [
        "ALTER TABLE users ADD COLUMN quota TEXT NULL",
    ],
    # 5: the user's ACL channel patterns (issue 16): NULL for allchannels
    # (&*, what every user had so far), else the patterns separated by
    # spaces ("" for resetchannels: none).
    [
        "ALTER TABLE users ADD COLUMN channels TEXT NULL",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = ("id, username, password, root_user, enabled, namespace, created_at, updated_at, rules,"
            " password_set, tenant, quota, channels")
TENANT_PREFIX = "tenant:"


def new_tenant_key() -> str:
    """A fresh tenant key: random 128 bits, so no two users ever share one,
    whatever happens to users.db (a restore, a copy between servers). The
    ':' keeps it apart from namespaces (validate_namespace refuses ':')."""
    return TENANT_PREFIX + secrets.token_hex(16)
_ADD_COLUMN = re.compile(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", re.I)


class UserStoreError(Exception):
    pass


class UserExists(UserStoreError):
    def __init__(self, username: str) -> None:
        super().__init__("user '%s' already exists" % username)
        self.username = username


class NoSuchUser(UserStoreError):
    def __init__(self, username: str) -> None:
        super().__init__("no such user '%s'" % username)
        self.username = username


class SchemaTooNew(UserStoreError):
    pass


@dataclass(frozen=True)
class User:
    id: int
    username: str
    password: str          # the argon2id hash, never the password
    root: bool
    enabled: bool
    namespace: str | None
    created_at: int        # Unix seconds
    updated_at: int
    rules: str | None = None   # ACL command rules; None: the default (tenancy.permissions)
    has_password: bool = True  # False: no password can log in (ACL SETUSER without >pw)
    # The key of the user's own tenant: "user:<id>" for users made before
    # schema 3, else new_tenant_key(). Never the name (reused after a delete)
    # nor the password hash (changes with the password).
    own_tenant: str = ""
    # Quota overrides set by root, "field=N ..." (keyspace/quota.py), or None.
    quota: str | None = None
    # ACL channel patterns, space-separated (tenancy.permissions.channel_rules),
    # or None: all channels (of its own tenant).
    channels: str | None = None

    @property
    def tenant_key(self) -> str:
        """The key of the Tenant this user works in: its namespace when bound
        to one, else its own tenant."""
        return self.namespace if self.namespace is not None else self.own_tenant

    def __repr__(self) -> str:   # keeps the hash out of logs and tracebacks
        return ("User(id=%d, username=%r, root=%r, enabled=%r, namespace=%r)"
                % (self.id, self.username, self.root, self.enabled, self.namespace))


def _printable_ascii(text: str) -> bool:
    return all(0x21 <= ord(c) <= 0x7E for c in text)


def validate_username(username: str) -> str:
    """`username` if acceptable, else ValueError naming the rule.

    Redis (ACL SETUSER) refuses only names containing whitespace or NUL
    ("Usernames can't contain spaces or null characters"). We accept a subset:
    1..128 bytes of printable ASCII (0x21-0x7E), so names are safe to show in
    ACL LIST, logs and the admin CLI. ':' is allowed, as in Redis."""
    if not isinstance(username, str):
        raise ValueError("username must be a string")
    if not 1 <= len(username) <= NAME_MAX:
        raise ValueError("username must be 1 to %d characters long" % NAME_MAX)
    if not _printable_ascii(username):
        raise ValueError("username must be printable ASCII without spaces or control characters "
                         "(Redis: usernames can't contain spaces or null characters)")
    return username


def validate_namespace(namespace: str) -> str:
    """A namespace is a tenant key shared by several users: the username rules,
    and no ':' at all, so it can never be mistaken for a user's own tenant key
    ("user:<id>", "tenant:<hex>") nor the default tenant (":default")."""
    if not isinstance(namespace, str):
        raise ValueError("namespace must be a string")
    if not 1 <= len(namespace) <= NAME_MAX:
        raise ValueError("namespace must be 1 to %d characters long" % NAME_MAX)
    if not _printable_ascii(namespace) or ":" in namespace:
        raise ValueError("namespace must be printable ASCII without spaces, control characters or ':'")
    return namespace


def _name(username) -> str:
    if isinstance(username, (bytes, bytearray, memoryview)):
        return bytes(username).decode("utf-8", "surrogateescape")
    return username


def _row(row) -> User | None:
    if row is None:
        return None
    return User(id=row[0], username=row[1], password=row[2], root=bool(row[3]), enabled=bool(row[4]),
                namespace=row[5], created_at=row[6] or 0, updated_at=row[7] or 0, rules=row[8],
                has_password=bool(row[9]), own_tenant=row[10], quota=row[11],
                channels=row[12])


def _create_private(path: str) -> None:
    """Create `path` with mode 0600 if missing (SQLite gives its -wal and -shm
    files the database file's mode); tighten an existing file to 0600."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class UserStore:
    def __init__(self, path: str) -> None:
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise FileNotFoundError("directory of the user database does not exist: %s" % parent)
        _create_private(path)
        self._lock = threading.Lock()
        # isolation_level=None: no implicit transactions; we BEGIN ourselves.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            self._conn.execute("PRAGMA foreign_keys=ON")
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise UserStoreError("cannot put %s in WAL mode (got %s)" % (path, mode))
            self._conn.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- schema ----------------------------------------------------------------

    def _migrate(self) -> None:
        with self._lock, self._transaction():
            conn = self._conn
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > SCHEMA_VERSION:
                raise SchemaTooNew("%s has schema version %d; this tenantkv knows up to %d"
                                   % (self.path, current, SCHEMA_VERSION))
            if current == SCHEMA_VERSION:
                return
            for steps in MIGRATIONS[current:]:
                for sql in steps:
                    if self._column_exists(sql):
                        continue   # idempotent even if a version row was lost
                    conn.execute(sql)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    def _column_exists(self, sql: str) -> bool:
        match = _ADD_COLUMN.match(sql.strip())
        if match is None:
            return False
        table, column = match.groups()
        return any(row[1] == column for row in self._conn.execute("PRAGMA table_info(%s)" % table))

    def schema_version(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0

    @contextlib.contextmanager
    def _transaction(self):
        # BEGIN IMMEDIATE takes the write lock up front, so another process
        # (the offline CLI) waits on busy_timeout instead of failing mid-way.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- reads -----------------------------------------------------------------

    def _get(self, username: str) -> User | None:
        return _row(self._conn.execute("SELECT %s FROM users WHERE username = ?" % _COLUMNS,
                                       (username,)).fetchone())

    def get(self, username) -> User | None:
        with self._lock:
            return self._get(_name(username))

    def get_by_id(self, id: int) -> User | None:
        with self._lock:
            return _row(self._conn.execute("SELECT %s FROM users WHERE id = ?" % _COLUMNS,
                                           (id,)).fetchone())

    def list(self) -> list[User]:
        """Every user, ordered by username (byte order)."""
        with self._lock:
            rows = self._conn.execute("SELECT %s FROM users ORDER BY username" % _COLUMNS).fetchall()
        return [_row(row) for row in rows]

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]

    def owned_tenants(self) -> set:
        """Every tenant key some user owns: each user's own tenant (kept also
        while the user is bound to a namespace) and each namespace in use."""
        with self._lock:
            rows = self._conn.execute("SELECT tenant, namespace FROM users").fetchall()
        return {key for row in rows for key in row if key is not None}

    def users_in(self, namespace: str) -> list[User]:
        """Users bound to `namespace`, ordered by username."""
        with self._lock:
            rows = self._conn.execute("SELECT %s FROM users WHERE namespace = ? ORDER BY username"
                                      % _COLUMNS, (namespace,)).fetchall()
        return [_row(row) for row in rows]

    # -- writes ----------------------------------------------------------------

    def add(self, username, password: bytes, root: bool = False, enabled: bool = True,
            namespace: str | None = None) -> User:
        """Create a user; UserExists if the name is taken, ValueError for a bad
        name or namespace."""
        username = validate_username(_name(username))
        if namespace is not None:
            validate_namespace(namespace)
        if self.get(username) is not None:   # spare the hash for the common case
            raise UserExists(username)
        stored = hashing.hash_password(password)
        now = int(time.time())
        with self._lock:
            try:
                with self._transaction():
                    cursor = self._conn.execute(
                        "INSERT INTO users (username, password, created_at, updated_at, root_user, enabled,"
                        " namespace, tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (username, stored, now, now, int(bool(root)), int(bool(enabled)), namespace,
                         new_tenant_key()))
            except sqlite3.IntegrityError:
                raise UserExists(username) from None
            return _row(self._conn.execute("SELECT %s FROM users WHERE id = ?" % _COLUMNS,
                                           (cursor.lastrowid,)).fetchone())

    def _update(self, username, column: str, value, only_if_password: str | None = None) -> User | None:
        username = _name(username)
        sql = "UPDATE users SET %s = ?, updated_at = ? WHERE username = ?" % column
        params = [value, int(time.time()), username]
        if only_if_password is not None:
            sql += " AND password = ?"
            params.append(only_if_password)
        with self._lock:
            with self._transaction():
                changed = self._conn.execute(sql, params).rowcount
            return self._get(username) if changed else None

    def _must(self, username, user: User | None) -> User:
        if user is None:
            raise NoSuchUser(_name(username))
        return user

    def set_password(self, username, password: bytes) -> User:
        """Store a new hash of `password`; NoSuchUser if absent."""
        if self.get(username) is None:
            raise NoSuchUser(_name(username))
        stored = hashing.hash_password(password)
        return self.apply(username, {"password": stored})[0]

    def set_hash(self, username, stored: str, expected: str | None = None) -> bool:
        """Replace the stored hash with `stored` (an argon2 hash string; the
        transparent re-hash after a login). With `expected`, only if the
        current hash is still `expected`, so a re-hash racing a password change
        cannot bring back the old password. True if a row changed."""
        if not hashing.is_hash(stored):
            raise ValueError("set_hash takes an argon2 hash string, not a password")
        return self._update(username, "password", stored, only_if_password=expected) is not None

    def set_enabled(self, username, enabled: bool) -> User:
        return self._must(username, self._update(username, "enabled", int(bool(enabled))))

    def set_root(self, username, root: bool) -> User:
        return self._must(username, self._update(username, "root_user", int(bool(root))))

    def set_namespace(self, username, namespace: str | None) -> User:
        """Bind the user to a shared namespace, or back to its own tenant (None)."""
        if namespace is not None:
            validate_namespace(namespace)
        return self._must(username, self._update(username, "namespace", namespace))

    def set_rules(self, username, rules: str | None) -> User:
        """Store the user's ACL command rules (None: the default rules)."""
        return self._must(username, self._update(username, "rules", rules))

    def set_quota(self, username, overrides: str | None) -> User:
        """Store the user's quota overrides ("memory=N rate=N", as
        keyspace/quota.overrides_text makes it; None: the defaults)."""
        return self._must(username, self._update(username, "quota", overrides))

    def clear_password(self, username) -> User:
        """No password logs this user in any more (ACL SETUSER resetpass)."""
        return self.apply(username, {"password": None})[0]

    _APPLY_COLUMNS = {"password": "password", "enabled": "enabled", "root": "root_user",
                      "namespace": "namespace", "rules": "rules", "quota": "quota",
                      "channels": "channels"}

    def apply(self, username, changes: dict, create: bool = False) -> tuple:
        """Change several attributes of a user in one transaction (ACL
        SETUSER is all or nothing): (User, created). `changes` keys: password
        (an argon2 hash string, or None for "no password"), enabled, root,
        namespace (None: the user's own tenant), rules, quota (overrides
        text, None: none; see set_quota). With `create`, a
        missing user is created first: disabled, without password, default
        rules, unless `changes` says otherwise; else NoSuchUser."""
        username = validate_username(_name(username))
        if changes.get("namespace") is not None:
            validate_namespace(changes["namespace"])
        if "password" in changes and changes["password"] is not None \
                and not hashing.is_hash(changes["password"]):
            raise ValueError("apply takes an argon2 hash string, not a password")
        # The hash of a random secret, for a user left without a password:
        # AUTH checks it like any other hash (same time) and it never matches.
        # Made only when needed (about 30 ms of CPU), outside the lock.
        unusable = None
        if changes.get("password", "") is None or (create and self.get(username) is None):
            unusable = hashing.hash_password(secrets.token_bytes(32))
        now = int(time.time())
        with self._lock:
            with self._transaction():
                user = self._get(username)
                created = False
                if user is None:
                    if not create:
                        raise NoSuchUser(username)
                    if unusable is None:   # deleted since the look-up above (rare)
                        unusable = hashing.hash_password(secrets.token_bytes(32))
                    self._conn.execute(
                        "INSERT INTO users (username, password, created_at, updated_at, root_user,"
                        " enabled, namespace, rules, password_set, tenant)"
                        " VALUES (?, ?, ?, ?, 0, 0, NULL, NULL, 0, ?)",
                        (username, unusable, now, now, new_tenant_key()))
                    created = True
                sets, params = ["updated_at = ?"], [now]
                for key, value in changes.items():
                    column = self._APPLY_COLUMNS[key]
                    if key == "password":
                        sets.append("password_set = ?")
                        params.append(int(value is not None))
                        value = value if value is not None else unusable
                    elif key in ("enabled", "root"):
                        value = int(bool(value))
                    sets.append("%s = ?" % column)
                    params.append(value)
                params.append(username)
                self._conn.execute("UPDATE users SET %s WHERE username = ?" % ", ".join(sets), params)
                return self._get(username), created

    def delete(self, username) -> User | None:
        """Remove the user; the removed User, or None if there was none. Its
        tenant key is never given to another user (new_tenant_key), even if a
        restored older users.db hands its id out again."""
        username = _name(username)
        with self._lock:
            with self._transaction():
                user = self._get(username)
                if user is not None:
                    self._conn.execute("DELETE FROM users WHERE id = ?", (user.id,))
            return user

    # -- replication (replication/users.py) ----------------------------------------

    def rows(self) -> list:
        """Every user row as a dict of its columns (hashes included): what a
        primary ships to its replicas."""
        names = [name.strip() for name in _COLUMNS.split(",")]
        with self._lock:
            found = self._conn.execute("SELECT %s FROM users ORDER BY id" % _COLUMNS).fetchall()
        return [dict(zip(names, row)) for row in found]

    def replace_rows(self, rows: list) -> None:
        """Make the users exactly `rows` (a replica's full sync), in one
        transaction: the primary's ids, hashes and tenant keys."""
        with self._lock:
            with self._transaction():
                self._conn.execute("DELETE FROM users")
                for row in rows:
                    self._put(row)

    def put_row(self, row: dict) -> None:
        """Insert or replace one user row as the primary has it now."""
        with self._lock:
            with self._transaction():
                self._put(row)

    def delete_row(self, username: str) -> None:
        with self._lock:
            with self._transaction():
                self._conn.execute("DELETE FROM users WHERE username = ?", (username,))

    def _put(self, row: dict) -> None:
        names = [name.strip() for name in _COLUMNS.split(",")]
        values = [row.get(name) for name in names]
        if type(values[0]) is not int or type(values[1]) is not str or type(values[2]) is not str:
            raise UserStoreError("bad user row from the primary")
        # INSERT OR REPLACE drops any row that conflicts on id, username or
        # tenant key: the primary's row wins.
        self._conn.execute("INSERT OR REPLACE INTO users (%s) VALUES (%s)"
                           % (_COLUMNS, ", ".join("?" * len(names))), values)

    # -- maintenance -----------------------------------------------------------

    def backup(self, dest_path: str) -> None:
        """A consistent copy of the database at `dest_path` (mode 0600), made
        with SQLite's online backup API while the store stays usable. The copy
        is written beside the destination and renamed over it, so
        `dest_path` is always either absent or complete; it is a single file
        (rollback-journal mode), ready to be copied back as users.db."""
        tmp = "%s.tmp-%d-%d" % (dest_path, os.getpid(), threading.get_ident())
        for leftover in (tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"):
            if os.path.exists(leftover):
                os.unlink(leftover)
        _create_private(tmp)
        try:
            dest = sqlite3.connect(tmp, isolation_level=None)
            try:
                with self._lock:
                    self._conn.backup(dest)
                dest.execute("PRAGMA journal_mode=DELETE")
            finally:
                dest.close()
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, dest_path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        directory = os.open(os.path.dirname(os.path.abspath(dest_path)), os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def backup_rotate(self, backup_dir: str, keep: int) -> str:
        """Back up into `backup_dir` (created, mode 0700) as
        users-<UTC time>.db and remove all but the newest `keep` such files
        (keep <= 0 keeps all). Returns the new file's path."""
        os.makedirs(backup_dir, mode=0o700, exist_ok=True)
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + "%06dZ" % int(now % 1 * 1e6)
        path = os.path.join(backup_dir, "users-%s.db" % stamp)
        self.backup(path)
        if keep > 0:
            backups = sorted(name for name in os.listdir(backup_dir)
                             if name.startswith("users-") and name.endswith(".db"))
            for name in backups[:-keep]:
                os.unlink(os.path.join(backup_dir, name))
        return path

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> UserStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
