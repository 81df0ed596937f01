"""tenantkv-cli: the interactive client (issue 6). Being built."""

import sys


def main(argv=None) -> int:
    print("tenantkv-cli: not built yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
