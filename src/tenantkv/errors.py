"""Every error text a client can see, in one place, worded as Redis words them."""


class CommandError(Exception):
    """Raised by a command; the message is sent as a RESP error (with its prefix)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProtocolError(Exception):
    """A malformed request: reply with the message, then close the connection."""


class QueryBufferExceeded(ProtocolError):
    """A client holds more unfinished input than allowed: closed without a reply."""


SYNTAX = "ERR syntax error"
NOT_IN_MULTI = "ERR Command not allowed inside a transaction"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NO_SUCH_KEY = "ERR no such key"
DB_INDEX = "ERR DB index is out of range"
INT_RANGE = "ERR value is out of range, value must between -2147483648 and 2147483647"
OVERFLOW = "ERR increment or decrement would overflow"
INCR_NAN = "ERR increment would produce NaN or Infinity"
INVALID_EXPIRE = "ERR invalid expire time in '%s' command"
STRING_TOO_LONG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
OFFSET_RANGE = "ERR offset is out of range"
SAME_OBJECT = "ERR source and destination objects are the same"
NEGATIVE_TIMEOUT = "ERR timeout is negative"
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
NOAUTH = "NOAUTH Authentication required."
NOAUTH_HELLO = ("NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                "HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
                "the RESP protocol version at the same time")
AUTH_WITHOUT_PASSWORD = ("ERR AUTH <password> called without any password configured for the "
                         "default user. Are you sure your configuration is correct?")

# Writes refused because the data can no longer be persisted (Redis's
# shared.bgsaveerr and writeCommandsGetDiskErrorMessage, server.c).
MISCONF_RDB = ("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to "
               "persist to disk. Commands that may modify the data set are disabled, because this "
               "instance is configured to report errors during writes if RDB snapshotting fails "
               "(stop-writes-on-bgsave-error option). Please check the Redis logs for details "
               "about the RDB error.")


def misconf_aof(strerror: str) -> str:
    """`strerror`: the C library's text of the failed write's errno (os.strerror)."""
    return "MISCONF Errors writing to the AOF file: %s" % strerror


def execabort_because(message: str) -> str:
    """EXEC refused as a whole before it ran (Redis's execCommandAbort)."""
    return "EXECABORT Transaction discarded because of: %s" % message


# Redis's own words (and typo), sent to a non-loopback client of a server whose
# default user needs no password.
PROTECTED_MODE = (
    b"-DENIED Redis is running in protected mode because protected mode is enabled and no "
    b"password is set for the default user. In this mode connections are only accepted from "
    b"the loopback interface. If you want to connect from external computers to Redis you may "
    b"adopt one of the following solutions: 1) Just disable protected mode sending the command "
    b"'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from "
    b"the same host the server is running, however MAKE SURE Redis is not publicly accessible "
    b"from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) "
    b"Alternatively you can just disable the protected mode by editing the Redis configuration "
    b"file, and setting the protected mode option to 'no', and then restarting the server. 3) "
    b"If you started the server manually just for testing, restart it with the "
    b"'--protected-mode no' option. 4) Setup a an authentication password for the default "
    b"user. NOTE: You only need to do one of the above things in order for the server to start "
    b"accepting connections from the outside.\r\n")


def noperm(name: str) -> str:
    """`name`: the command, or "command|subcommand" (Redis's full name)."""
    return "NOPERM this user has no permissions to run the '%s' command" % name


# A queued command the user's rules no longer allow when EXEC runs it (Redis 7's text).
NOPERM_CHANGED_IN_EXEC = (
    "NOPERM ACLs rules changed between the moment the transaction was accumulated and the "
    "EXEC call. This command is no longer allowed for the following reason: no permission "
    "to execute the command or subcommand")


def wrong_arity(name: str) -> str:
    return "ERR wrong number of arguments for '%s' command" % name


def internal_error(name: str, exc: Exception) -> str:
    """A command's bug (never Redis's answer: each one is a tenantkv bug)."""
    return "ERR internal error in '%s': %s" % (name, type(exc).__name__)


def not_in_multi_tenantkv(name: str) -> str:
    """A command that would wait (AUTH's hashing) queued in MULTI: tenantkv refuses it."""
    return "ERR %s is not supported inside MULTI in tenantkv" % name.upper()


def unknown_command(args: list) -> str:
    # Redis: the name cut at 128 bytes, then arguments while the list is under
    # 128 bytes, each cut so the list stays within 128.
    shown = ""
    for arg in args[1:]:
        if len(shown) >= 128:
            break
        shown += "'%s' " % arg_text(arg)[: 128 - len(shown)]
    return "ERR unknown command '%s', with args beginning with: %s" % (
        arg_text(args[0])[:128], shown,
    )


def unknown_subcommand(command: bytes, sub: bytes) -> str:
    return "ERR unknown subcommand '%s'. Try %s HELP." % (
        _truncate(arg_text(sub)), command.decode().upper(),
    )


def arg_text(arg: bytes) -> str:
    """A client's argument as Redis prints it in an error: a C string (cut at
    the first NUL byte), on one line (Redis maps CR and LF to spaces)."""
    return arg.split(b"\0", 1)[0].decode("latin-1").replace("\r", " ").replace("\n", " ")


def _truncate(text: str) -> str:
    return text[:128]
