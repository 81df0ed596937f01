"""Periodic backups of the user database (auth.backup_interval), on a real server."""

import os
import sqlite3
import stat
import time

from conftest import ServerProcess, add_user



def start(data_dir, monkeypatch, **settings) -> ServerProcess:
    monkeypatch.setenv("TENANTKV_AUTH__DEFAULT_USER", "off")
    for name, value in settings.items():
        monkeypatch.setenv("TENANTKV_AUTH__" + name.upper(), str(value))
    return ServerProcess(data_dir)


def backups(directory) -> list:
    if not os.path.isdir(directory):
        return []
    return sorted(n for n in os.listdir(directory) if n.startswith("users-") and n.endswith(".db"))


def test_user_database_is_backed_up_every_interval_keeping_the_newest(tmp_path, monkeypatch):
    add_user(tmp_path, "root", "root-pw", "--root")
    add_user(tmp_path, "alice", "alice-pw")
    directory = tmp_path / "backups"
    with start(tmp_path, monkeypatch, backup_interval=1, backup_keep=2) as proc:
        seen = set()
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and len(seen) < 3:
            names = backups(directory)
            # Rotation keeps backup_keep; for a moment, between writing the new
            # backup and removing the oldest (the safe order), there is one more.
            assert len(names) <= 3
            seen.update(names)
            time.sleep(0.1)
        assert len(seen) >= 3, seen
        assert proc.alive()
        newest = directory / backups(directory)[-1]
    assert len(backups(directory)) <= 2
    assert stat.S_IMODE(os.stat(newest).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    db = sqlite3.connect("file:%s?mode=ro" % newest, uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = dict(db.execute("SELECT username, password FROM users"))
    finally:
        db.close()
    assert set(rows) == {"root", "alice"}
    assert all(h.startswith("$argon2id$") for h in rows.values())


def test_a_failed_backup_is_logged_and_the_server_goes_on(tmp_path, monkeypatch):
    add_user(tmp_path, "root", "root-pw", "--root")
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    with start(tmp_path, monkeypatch, backup_interval=1, backup_dir=blocker / "backups") as proc:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(proc.log_path, "rb") as handle:
                if b"User database backup" in handle.read():
                    break
            time.sleep(0.1)
        client = proc.client(username="root", password="root-pw")
        assert client.ping() is True
    with open(proc.log_path, "rb") as handle:
        log = handle.read()
    assert b"User database backup into" in log and b"failed" in log


def test_backups_are_off_with_interval_zero(tmp_path, monkeypatch):
    add_user(tmp_path, "root", "root-pw", "--root")
    with start(tmp_path, monkeypatch, backup_interval=0) as proc:
        time.sleep(1.2)
        assert proc.client(username="root", password="root-pw").ping() is True
    assert backups(tmp_path / "backups") == []
