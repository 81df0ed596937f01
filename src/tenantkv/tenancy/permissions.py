"""What a user may run: its command table, computed once per rule set.

The connection looks commands up in its user's table, so a permission check
costs nothing per command: a command missing from the table goes to the
general path, which answers NOPERM.
"""

from tenantkv.commands.registry import LOOKUP

_USER_TABLE: dict = {}


def command_table(user) -> dict:
    """Root: every command. Others: every command but the admin ones (flag
    "admin"). ACL rules (+@category, -command, ...) refine this per user."""
    if user.root:
        return LOOKUP
    if not _USER_TABLE:
        _USER_TABLE.update((name, cmd) for name, cmd in LOOKUP.items() if "admin" not in cmd.flags)
    return _USER_TABLE
