"""Logging as redis-server does it: four levels and its line format.

    1234:M 25 Nov 2026 05:46:57.360 * Ready to accept connections

The marker after the time is the level: `.` debug, `-` verbose, `*` notice,
`#` warning. Python has no "notice" level, so we add one between INFO
(used for verbose) and WARNING.

`log-format json` makes every line a JSON object instead (one per line:
time, pid, level, logger, message), for log collectors.

The audit log: one line per security-relevant event (`audit()`), on the
`audit` logger: in the main log, or its own file (`audit-log-file`). Its
fields are quoted (JSON strings), so a user name or value a client chose
cannot forge a line; the callers never pass a password or a hash. Events a
client can repeat at will (a throttled AUTH, a refused connection) are
rate-limited per event, the lines left out counted in the next one.
"""

import json
import logging
import time

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

LEVELS = {"debug": logging.DEBUG, "verbose": logging.INFO, "notice": NOTICE,
          "warning": logging.WARNING, "nothing": logging.CRITICAL + 10}
_MARKERS = {logging.DEBUG: ".", logging.INFO: "-", NOTICE: "*", logging.WARNING: "#",
            logging.ERROR: "#", logging.CRITICAL: "#"}


# The role letter of Redis's lines: M (primary) or S (replica), set by
# replication/core.py.
ROLE = ["M"]


def set_role(letter: str) -> None:
    ROLE[0] = letter


class RedisFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%d %b %Y %H:%M:%S", time.localtime(record.created))
        line = "%d:%s %s.%03d %s %s" % (record.process, ROLE[0], stamp, record.msecs,
                                        _MARKERS.get(record.levelno, "*"), record.getMessage())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


_LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "verbose", NOTICE: "notice",
                logging.WARNING: "warning", logging.ERROR: "warning", logging.CRITICAL: "warning"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; an audit line's fields are keys of their own."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                + ".%03dZ" % record.msecs,
                "pid": record.process, "level": _LEVEL_NAMES.get(record.levelno, "notice"),
                "logger": record.name}
        line["message"] = record.getMessage()
        fields = getattr(record, "audit", None)
        if fields is not None:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


FORMATTERS = {"text": RedisFormatter, "json": JsonFormatter}
AUDIT = logging.getLogger("audit")
# Audit lines are kept whatever the loglevel (short of "nothing").
AUDIT.setLevel(NOTICE)
_state = {"format": "text"}


def set_level(level: str) -> None:
    logging.getLogger().setLevel(LEVELS[level])
    AUDIT.disabled = level == "nothing"


def set_format(name: str) -> None:
    """log-format: text | json, for every handler (main log and audit file)."""
    _state["format"] = name
    for logger in (logging.getLogger(), AUDIT):
        for handler in logger.handlers:
            handler.setFormatter(FORMATTERS[name]())


def setup(level: str, filename: str = "", log_format: str = "text", audit_file: str = "") -> None:
    handler = logging.FileHandler(filename) if filename else logging.StreamHandler()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # The audit logger's own file, or (propagating) the main log.
    AUDIT.handlers[:] = [logging.FileHandler(audit_file)] if audit_file else []
    AUDIT.propagate = not audit_file
    AUDIT.disabled = level == "nothing"
    set_format(log_format)


def _quote(value) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    return json.dumps(value if isinstance(value, str) else str(value))


# Repeatable events: at most _BURST lines at once, refilled at _RATE a second,
# per event; the others are counted and reported by the next line let through.
_RATE, _BURST = 5.0, 20.0
_buckets: dict = {}


# The most characters of one field an audit line shows (as SLOWLOG cuts its
# arguments): the rest is counted, not written.
AUDIT_FIELD_MAX = 1024


def audit(event: str, noisy: bool = False, **fields) -> None:
    """One audit line: `audit <event> key="value" ...`. `noisy`: an event a
    client can repeat at will (rate-limited, so it cannot flood the log)."""
    if AUDIT.disabled:
        return
    if noisy:
        now = time.monotonic()
        tokens, then, dropped = _buckets.get(event, (_BURST, now, 0))
        tokens = min(_BURST, tokens + (now - then) * _RATE)
        if tokens < 1.0:
            _buckets[event] = (tokens, now, dropped + 1)
            return
        _buckets[event] = (tokens - 1.0, now, 0)
        if dropped:
            fields["suppressed"] = dropped
    record = {"event": event}
    for key, value in fields.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "backslashreplace")
        if isinstance(value, str) and len(value) > AUDIT_FIELD_MAX:
            # a client-sized value (a CONFIG SET of 50 MB): the line stays a line
            value = "%s... (%d more characters)" % (value[:AUDIT_FIELD_MAX],
                                                   len(value) - AUDIT_FIELD_MAX)
        fields[key] = record[key] = value
    AUDIT.log(NOTICE, "audit %s%s", event,
              "".join(" %s=%s" % (key, _quote(value)) for key, value in fields.items()),
              extra={"audit": record})
