"""The README's command list is the command table's, not a hand-kept copy."""

import pathlib
import re

from tenantkv.commands import COMMANDS

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
HIDDEN = {"post", "host:"}   # HTTP guards, not commands a user calls


def documented() -> str:
    groups: dict = {}
    for cmd in COMMANDS.values():
        if cmd.name not in HIDDEN:
            groups.setdefault(cmd.group, []).append(cmd.name.upper())
    return "\n".join("- **%s**: %s" % (group, ", ".join(sorted(names)))
                     for group, names in sorted(groups.items()))


def test_readme_lists_every_command():
    text = README.read_text()
    match = re.search(r"<!-- commands:begin -->\n(.*?)<!-- commands:end -->", text, re.S)
    assert match, "README lacks the commands markers"
    assert match.group(1).strip() == documented(), (
        "README command list is stale; regenerate with: python tests/test_readme.py")


if __name__ == "__main__":
    text = README.read_text()
    text = re.sub(r"(<!-- commands:begin -->\n).*?(<!-- commands:end -->)",
                  lambda m: m.group(1) + documented() + "\n" + m.group(2), text, flags=re.S)
    README.write_text(text)
