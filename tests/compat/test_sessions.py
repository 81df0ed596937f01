"""Differential tests: every session in tests/compat/sessions/ must get byte-identical
replies from tenantkv and from a real redis-server (see harness.py for the format)."""

import os

import pytest

from compat import harness

if harness.redis_server_path() is None:
    pytest.skip("redis-server is not installed: the differential tests need Debian's "
                "redis-server as the reference (`make redis-tools`)", allow_module_level=True)


@pytest.mark.parametrize("session", harness.session_files())
def test_session(session, compat_servers):
    redis_port, tenantkv_port = compat_servers
    outcome = harness.run_session(os.path.join(harness.SESSIONS_DIR, session), redis_port, tenantkv_port)
    harness.OUTCOMES.append(outcome)
    if outcome.mismatches:
        pytest.fail(harness.format_mismatches(outcome), pytrace=False)
    assert outcome.compared > 0
