"""Logging as redis-server does it: four levels and its line format.

    1234:M 25 Nov 2026 05:46:57.360 * Ready to accept connections

The marker after the time is the level: `.` debug, `-` verbose, `*` notice,
`#` warning. Python has no "notice" level, so we add one between INFO
(used for verbose) and WARNING.
"""

import logging
import time

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

LEVELS = {"debug": logging.DEBUG, "verbose": logging.INFO, "notice": NOTICE,
          "warning": logging.WARNING, "nothing": logging.CRITICAL + 10}
_MARKERS = {logging.DEBUG: ".", logging.INFO: "-", NOTICE: "*", logging.WARNING: "#",
            logging.ERROR: "#", logging.CRITICAL: "#"}


class RedisFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%d %b %Y %H:%M:%S", time.localtime(record.created))
        line = "%d:M %s.%03d %s %s" % (record.process, stamp, record.msecs,
                                       _MARKERS.get(record.levelno, "*"), record.getMessage())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def set_level(level: str) -> None:
    logging.getLogger().setLevel(LEVELS[level])


def setup(level: str, filename: str = "") -> None:
    handler = logging.FileHandler(filename) if filename else logging.StreamHandler()
    handler.setFormatter(RedisFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
