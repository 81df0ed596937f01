"""Fixtures for the differential tests: one redis-server and one tenantkv for the session."""

import pytest

from compat import harness
from conftest import ServerProcess, free_port


@pytest.fixture(scope="session")
def compat_servers(tmp_path_factory):
    """(redis port, tenantkv port): the reference and the subject, both fresh."""
    if harness.redis_server_path() is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; `make redis-tools`)")
    with (harness.RedisServer(free_port(), str(tmp_path_factory.mktemp("redis"))) as reference,
          ServerProcess(tmp_path_factory.mktemp("tenantkv-compat")) as subject):
        yield reference.port, subject.port


def pytest_terminal_summary(terminalreporter):
    """List the replies marked as known differences that were seen in this run."""
    outcomes = harness.OUTCOMES
    rows = [(o.name, step, expected, actual) for o in outcomes for step, expected, actual in o.known_diffs]
    if not rows:
        return
    write = terminalreporter.write_line
    terminalreporter.section("compat: known differences from redis-server (%d)" % len(rows))
    for name, step, expected, actual in rows:
        same = " (now identical: the marker can go)" if expected == actual else ""
        write("%s:%d: %s -- %s%s" % (name, step.lineno, step.text, step.detail, same))
        if expected != actual and terminalreporter.verbosity > 0:
            write("    redis:    %r" % expected[:300])
            write("    tenantkv: %r" % actual[:300])
