"""The audit log (logs.audit): one line per security-relevant event, in the
main log or its own file (audit-log-file), text or JSON (log-format); never
a password or a hash, anywhere in the log."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest
import redis

from conftest import ServerProcess, add_user, login, read_reply, resp

ROOT_PW = "root-Secret-4471"
ALICE_PW = "alice-Secret-9902"
WRONG_PW = "wrong-Guess-3318"
CAROL_PW = "carol-Secret-5127"
CAROL_PW2 = "carol-Other-6640"
SECRETS = (ROOT_PW, ALICE_PW, WRONG_PW, CAROL_PW, CAROL_PW2)


def audit_lines(path: str) -> list:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return [line for line in handle if " audit " in line or '"logger": "audit"' in line]


def fields(line: str) -> dict:
    """The key="value" fields of a text audit line."""
    text = line.split(" audit ", 1)[1]
    event, _, rest = text.partition(" ")
    found = {"event": event.strip()}
    for key, value in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|-?\d+)', rest):
        found[key] = json.loads(value)
    return found


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def events(path: str, name: str, parse=fields) -> list:
    return [parse(line) for line in audit_lines(path) if parse(line)["event"] == name]


def assert_no_secret(*paths: str) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            data = handle.read()
        for secret in SECRETS:
            assert secret.encode() not in data, (path, secret)
        assert b"$argon2" not in data, path


def locked(data_dir, *flags: str) -> ServerProcess:
    add_user(data_dir, "root", ROOT_PW, "--root")
    add_user(data_dir, "alice", ALICE_PW)
    return ServerProcess(data_dir, *flags, env={"TENANTKV_AUTH__DEFAULT_USER": "off"},
                         passwords={"root": ROOT_PW, "alice": ALICE_PW})


def test_security_events_in_the_main_log(tmp_path):
    """AUTH/HELLO failures, ACL changes, CONFIG SET, KDB IMPORT/LOAD and
    SHUTDOWN each leave one line naming who and what; no password, no hash."""
    with locked(tmp_path) as server:
        with pytest.raises(redis.AuthenticationError):
            server.client(username="alice", password=WRONG_PW, single_connection_client=True).ping()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(resp("HELLO", "3", "AUTH", "nobody", WRONG_PW))
            assert read_reply(sock, timeout=10).startswith(b"-WRONGPASS")
        root = login(server, "root")
        root.execute_command("ACL", "SETUSER", "carol", "on", ">" + CAROL_PW, "+@all")
        root.execute_command("ACL", "SETUSER", "carol", "<" + CAROL_PW, ">" + CAROL_PW2)
        root.execute_command("ACL", "DELUSER", "carol")
        root.config_set("maxmemory-samples", 7)
        root.execute_command("CONFIG", "SET", "requirepass", "")
        alice = login(server, "alice")
        alice.set("k", "v")
        payload = alice.execute_command("KDB", "EXPORT")
        assert alice.execute_command("KDB", "IMPORT", payload, "REPLACE") == 1
        root.execute_command("KDB", "SAVE")
        root.execute_command("KDB", "LOAD")
        with pytest.raises(redis.ConnectionError):
            root.execute_command("SHUTDOWN", "NOSAVE")
        assert server.process.wait(10) == 0
    log = server.log_path

    failed = events(log, "auth-failed")
    assert {(e["user"], e["addr"].rsplit(":", 1)[0]) for e in failed} >= {
        ("alice", "127.0.0.1"), ("nobody", "127.0.0.1")}
    setusers = events(log, "acl-setuser")
    assert [(e["by"], e["user"], e["created"]) for e in setusers] == [
        ("root", "carol", 1), ("root", "carol", 0)]
    assert setusers[0]["rules"] == "on ><redacted> +@all"
    assert setusers[1]["rules"] == "<<redacted> ><redacted>"
    assert [(e["by"], e["user"]) for e in events(log, "acl-deluser")] == [("root", "carol")]
    changes = [e["changes"] for e in events(log, "config-set")]
    assert changes == ["maxmemory-samples=7", "requirepass=<redacted>"]
    imports = events(log, "kdb-import")
    assert [(e["by"], e["replace"]) for e in imports] == [("alice", 1)]
    assert imports[0]["bytes"] == len(payload)
    loads = events(log, "kdb-load")
    assert [(e["by"], e["keys"]) for e in loads] == [("root", 1)]
    assert [(e["by"], e["options"], e["done"]) for e in events(log, "shutdown")] == [
        ("root", "nosave", 1)]
    assert_no_secret(log)


def test_signal_shutdown_and_admin_cli(tmp_path):
    """SIGTERM is audited; the admin CLI's user changes go to the audit file
    named by the config, with the operating-system account."""
    audit_file = str(tmp_path / "audit.log")
    config = tmp_path / "tenantkv.toml"
    config.write_text('[logging]\naudit_file = "%s"\n' % audit_file)
    subprocess.run([sys.executable, "-m", "tenantkv.cli.admin", "--config", str(config),
                    "--data-dir", str(tmp_path), "user", "add", "dave", "--password-stdin"],
                   input=CAROL_PW.encode() + b"\n", check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "tenantkv.cli.admin", "--config", str(config),
                    "--data-dir", str(tmp_path), "user", "del", "dave"],
                   check=True, capture_output=True)
    with ServerProcess(tmp_path, "--config", str(config)) as server:
        pass
    assert server.process.returncode == 0
    got = [fields(line) for line in audit_lines(audit_file)]
    assert [(e["event"], e.get("user"), e.get("via")) for e in got[:2]] == [
        ("user-add", "dave", "tenantkv user"), ("user-del", "dave", "tenantkv user")]
    assert got[0]["by"]
    assert [e.get("signal") for e in got if e["event"] == "shutdown"] == ["SIGTERM"]
    assert_no_secret(audit_file, server.log_path)


def test_json_lines_and_own_audit_file(tmp_path):
    """log-format json: every line of both logs is a JSON object; the audit
    lines go to audit-log-file only; CONFIG SET log-format switches at once."""
    audit_file = str(tmp_path / "audit.log")
    with locked(tmp_path, "--log-format", "json", "--audit-log-file", audit_file) as server:
        with pytest.raises(redis.AuthenticationError):
            server.client(username="alice", password=WRONG_PW, single_connection_client=True).ping()
        root = login(server, "root")
        assert root.config_get("log-format") == {"log-format": "json"}
        root.config_set("log-format", "text")
        root.execute_command("ACL", "SETUSER", "carol", "on", ">" + CAROL_PW)
        root.config_set("log-format", "json")
        root.execute_command("ACL", "DELUSER", "carol")
    with open(server.log_path) as handle:
        main = [json.loads(line) for line in handle if line.strip()]
    assert main and all({"time", "pid", "level", "logger", "message"} <= set(e) for e in main)
    assert not [e for e in main if e["logger"] == "audit"]
    with open(audit_file) as handle:
        lines = handle.read().splitlines()
    first = json.loads(lines[0])
    assert (first["logger"], first["event"], first["user"]) == ("audit", "auth-failed", "alice")
    # (redis-py retries a failed AUTH: several auth-failed lines)
    shown = [json.loads(line)["event"] if line.startswith("{") else "text " + fields(line)["event"]
             for line in lines]
    assert [e for e in shown if e != "auth-failed"] == [
        # the switch to text is itself logged in text, the one back in JSON
        "text config-set", "text acl-setuser", "config-set", "acl-deluser", "shutdown"]
    assert_no_secret(server.log_path, audit_file)


def test_hostile_names_cannot_forge_lines(tmp_path):
    """A user name a client chose is quoted: a newline in it cannot start a
    line of its own, in text or in JSON."""
    with locked(tmp_path) as server:
        forged = 'x"\n1:M 01 Jan 2026 00:00:00.000 * audit acl-setuser by="root'
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(resp("AUTH", forged, WRONG_PW))
            assert read_reply(sock, timeout=10).startswith(b"-WRONGPASS")
        wait_for(lambda: events(server.log_path, "auth-failed"))
    lines = audit_lines(server.log_path)
    assert [fields(line)["event"] for line in lines] == ["auth-failed", "shutdown"]
    assert fields(lines[0])["user"] == forged
    assert_no_secret(server.log_path)


def test_a_huge_value_is_cut_in_its_audit_line(tmp_path):
    """A CONFIG SET of 5 MB: its audit line shows the first 1,024 characters
    and counts the rest (a client-sized value must not make a 5 MB line)."""
    with locked(tmp_path) as server:
        root = login(server, "root")
        value = "KEA" * (5 * 1024 * 1024 // 3)
        assert root.config_set("notify-keyspace-events", value) is True
        root.config_set("notify-keyspace-events", "")
        wait_for(lambda: len(events(server.log_path, "config-set")) == 2)
    first = events(server.log_path, "config-set")[0]
    shown = "notify-keyspace-events=" + value
    assert first["changes"] == "%s... (%d more characters)" % (shown[:1024], len(shown) - 1024)
    assert max(len(line) for line in audit_lines(server.log_path)) < 2048


def test_refused_clients_are_rate_limited(tmp_path):
    """Clients refused at maxclients are audited, but a flood of them writes
    a bounded number of lines; the next line says how many were left out."""
    with ServerProcess(tmp_path, "--maxclients", "1") as server:
        holder = server.client(single_connection_client=True)
        holder.ping()
        for _ in range(60):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                assert b"max number of clients" in read_reply(sock, timeout=10)
        time.sleep(1.0)   # the bucket refills
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            read_reply(sock, timeout=10)
        refused = wait_for(lambda: len(events(server.log_path, "client-refused")) > 20 and
                           events(server.log_path, "client-refused"))
        holder.close()
    assert 20 < len(refused) < 40
    assert refused[0]["reason"] == "-ERR max number of clients reached"
    # (61 or more: redis-py may retry the holder's first connection once,
    # while the server has not yet seen the start-up probe's close.)
    assert refused[-1].get("suppressed", 0) > 0
    assert sum(e.get("suppressed", 0) for e in refused) + len(refused) in (61, 62)


def test_output_buffer_close_is_audited(tmp_path):
    with ServerProcess(tmp_path) as server:
        client = server.client()
        client.config_set("client-output-buffer-limit", "normal 100000 0 0")
        client.set("big", b"x" * 50000)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(resp("GET", "big") * 200)
            closed = wait_for(lambda: events(server.log_path, "client-closed"))
        assert [(e["limit"], e["user"]) for e in closed] == [("output buffer", "default")]
        assert server.alive()


def test_throttled_auth_is_audited(tmp_path):
    """Guessing one user's password from one address ends in refusals
    (server/auth.py's throttle), each audited with the limit named."""
    with locked(tmp_path) as server:
        refusal = None
        with server.raw() as sock:
            for i in range(60):
                sock.sendall(resp("AUTH", "alice", "%s-%d" % (WRONG_PW, i)))
                line = read_reply(sock, timeout=30)
                if not line.startswith(b"-WRONGPASS"):
                    refusal = line
                    break
        assert refusal is not None and b"for this user name" in refusal
        throttled = wait_for(lambda: events(server.log_path, "auth-throttled"))
        assert [(e["user"], e["limit"]) for e in throttled] == [("alice", "for this user name")]
        assert len(events(server.log_path, "auth-failed")) == i
    assert_no_secret(server.log_path)
