"""bench/neighbours.py runs, in its --quick mode, so that it cannot rot.

Not a timed assertion (the bench prints numbers; the verdicts are not
checked here): the script must start its server, measure the victim in
every window, report each attack's outcome, and stop the server."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "neighbours.py"
# One of each kind: a single command (a reply skipped, a crafted payload),
# clients that never read, connections that never log in, and the last,
# which empties the attacker's tenant.
ATTACKS = ["lcs", "srandmember", "kdb_import", "zset_dups", "unread", "preauth", "connect_flood",
           "flushall"]


def load_script():
    spec = importlib.util.spec_from_file_location("neighbours", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def running_tenantkv(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"tenantkv" in f.read()
    except OSError:
        return False


@pytest.mark.slow   # ~11 s: three users made (argon2), eight attacks
def test_quick_run_reports_every_attack_and_stops_its_server():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json",
                           "--attacks", ",".join(ATTACKS)],
                          capture_output=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    result = json.loads(proc.stdout)
    rows = {row["attack"]: row for row in result["rows"]}
    assert list(rows) == ATTACKS

    for row in rows.values():
        # The victim was measured all through each window (~1 request per ms
        # when nothing stalls it; a tenth of that on a loaded machine).
        assert row["requests"] >= 10 * row["window_s"], row
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"], row
        assert 20 < row["rss_start_mb"] and row["rss_start_mb"] <= row["rss_max_mb"], row
        assert row["pass"] == (not row["failed"])

    # The outcomes: what each attack got back.
    assert rows["lcs"]["outcome"].startswith("bulk of "), rows["lcs"]
    assert rows["srandmember"]["outcome"].startswith(("array of 100,000 in", "-")), rows
    # 20,000 keys imported (or a refusal naming its reason), from a crafted payload.
    assert rows["kdb_import"]["outcome"].startswith("0.5 MB payload: "), rows["kdb_import"]
    assert rows["zset_dups"]["outcome"].startswith("0.3 MB payload: -"), rows["zset_dups"]
    assert "victim logins" in rows["preauth"]["outcome"]
    assert "200 connects" in rows["connect_flood"]["outcome"]
    assert rows["flushall"]["outcome"].startswith("OK in "), rows["flushall"]

    # The server (and any restart of it) is gone.
    assert result["server_pids"]
    assert not [pid for pid in result["server_pids"] if running_tenantkv(pid)]

    # The Markdown table: a header and one line per attack, with a verdict.
    table = load_script().table(result["rows"]).splitlines()
    assert table[0].startswith("| attack | outcome | victim req | p50 ms |")
    assert len(table) == 2 + len(ATTACKS)
    assert all(line.endswith(("| PASS |", ") |")) for line in table[2:])


def test_unknown_attack_is_refused():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--attacks", "lcs,nosuch"],
                          capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert b"unknown attack(s) nosuch" in proc.stderr
