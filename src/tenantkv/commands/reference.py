"""What redis-server itself says about the commands tenantkv has.

redis_docs.json is recorded from Debian's redis-server 7.0 by
scripts/record_command_docs.py: COMMAND DOCS (argument trees, history,
complexity) and the ACL categories of COMMAND INFO. COMMAND DOCS serves the
former; the ACL rules and COMMAND INFO use the latter, so that `-@dangerous`
or `+@keyspace` cover exactly the commands they cover in Redis.
"""

import json
import os

_RECORD: dict = {}


def _record() -> dict:
    if not _RECORD:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "redis_docs.json")
        with open(path, encoding="utf-8") as handle:
            _RECORD.update(json.load(handle))
    return _RECORD


def redis_docs() -> dict:
    """Command name -> its COMMAND DOCS entry (RESP3 types tagged, see the script)."""
    return _record()["docs"]


def redis_categories(name: str):
    """Redis's ACL categories of a command without subcommands (names without
    '@', in Redis's order), or None: not a Redis command, or a container
    (CONFIG, CLIENT, ACL, ...), whose categories in Redis belong to its
    subcommands while tenantkv's rules apply to the container as a whole."""
    record = _record()
    docs = record["docs"].get(name)
    if docs is None or any(key == "subcommands" for key, _ in docs["%"]):
        return None
    return record.get("acl_categories", {}).get(name)
