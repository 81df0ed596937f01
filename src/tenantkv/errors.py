"""Every error text a client can see, in one place, worded as Redis words them.

Fixed texts are constants, texts with a part taken from the request are small
functions; a command raises `CommandError(errors.X)`. Most are Redis's own
words (typos included: compat sessions compare them byte for byte with
redis-server); tenantkv's own say so in their comment.

Not here, on purpose: the reasons of errors raised below the command layer
and shown inside one of these texts (tenancy/store.py's username and namespace
checks, tenancy/permissions.py's rule errors, config.py's CONFIG SET reasons,
persistence's file errors), which the CLI and the logs print as well; and log
lines, which no client sees.
"""


class CommandError(Exception):
    """Raised by a command; the message is sent as a RESP error (with its prefix)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProtocolError(Exception):
    """A malformed request: reply with the message, then close the connection."""


class QueryBufferExceeded(ProtocolError):
    """A client holds more unfinished input than allowed: closed without a reply."""


def arg_text(arg: bytes) -> str:
    """A client's argument as Redis prints it in an error: a C string (cut at
    the first NUL byte), on one line (Redis maps CR and LF to spaces)."""
    return arg.split(b"\0", 1)[0].decode("latin-1").replace("\r", " ").replace("\n", " ")


def _truncate(text: str) -> str:
    return text[:128]


# -- arguments: Redis's shared texts for numbers, syntax and ranges ----------------

SYNTAX = "ERR syntax error"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
OUT_OF_RANGE = "ERR value is out of range"
NOT_POSITIVE = "ERR value is out of range, must be positive"
INT_RANGE = "ERR value is out of range, value must between -2147483648 and 2147483647"
NUMKEYS_POSITIVE = "ERR numkeys should be greater than 0"
NUMKEYS_TOO_MANY = "ERR Number of keys can't be greater than number of args"
COUNT_POSITIVE = "ERR count should be greater than 0"
LIMIT_NEGATIVE = "ERR LIMIT can't be negative"


def out_of_range(low: int, high: int) -> str:
    """getRangeLongFromObjectOrReply's text without a message of the caller's."""
    return "ERR value is out of range, value must between %d and %d" % (low, high)


# -- dispatch: unknown commands, arity, authentication, permissions -----------------

NOT_IN_MULTI = "ERR Command not allowed inside a transaction"
NOAUTH = "NOAUTH Authentication required."
NOAUTH_HELLO = ("NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                "HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
                "the RESP protocol version at the same time")
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
AUTH_WITHOUT_PASSWORD = ("ERR AUTH <password> called without any password configured for the "
                         "default user. Are you sure your configuration is correct?")


def auth_throttled(limit: str, seconds: int) -> str:
    """tenantkv's own (Redis has no login throttle): an AUTH refused before
    its password is checked. `limit`: "for this user name", "from this
    address" or "server-wide from addresses with recent failures". The same
    for names that exist and names that do not."""
    return "ERR too many failed authentication attempts %s, retry in %d s" % (limit, seconds)


def noperm(name: str) -> str:
    """`name`: the command, or "command|subcommand" (Redis's full name)."""
    return "NOPERM this user has no permissions to run the '%s' command" % name


# ACL SETUSER's reason for &pattern after allchannels (Redis 7's words).
MODIFIER_CHANNEL_AFTER_ALL = (
    "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not "
    "have any effect. Try 'resetchannels' to start with an empty list of channels")
# A channel (or pattern) the user's ACL channel rules (&pattern) do not allow.
NOPERM_CHANNEL = "NOPERM this user has no permissions to access one of the channels used as arguments"


def subscribed_context(name: str) -> str:
    """A RESP2 client in pub/sub mode ran `name` (Redis's cmd->fullname)."""
    return ("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
            "RESET are allowed in this context" % name)


def pubsub_limit(what: str, limit: int, unit: str = "") -> str:
    """tenantkv's own: a subscription past a tenant's pub/sub limit
    (dispatch/pubsub.py, README "Pub/sub limits")."""
    if what in ("pattern", "channel"):
        return "ERR pub/sub limit: a %s name is at most %d %s long" % (what, limit, unit)
    return "ERR pub/sub limit: at most %d%s %s per tenant" % (
        limit, " " + unit if unit else "", what)


# A queued command the user's rules no longer allow when EXEC runs it (Redis 7's text).
NOPERM_CHANGED_IN_EXEC = (
    "NOPERM ACLs rules changed between the moment the transaction was accumulated and the "
    "EXEC call. This command is no longer allowed for the following reason: no permission "
    "to execute the command or subcommand")


def wrong_arity(name: str) -> str:
    """`name`: the command, or "command|subcommand" (Redis's full name)."""
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


def subcommand_syntax(sub: bytes, container: str) -> str:
    """addReplySubcommandSyntaxError: an arity Redis checks in the handler
    (`sub` as typed; `container`: "CLIENT", "ACL", "DEBUG")."""
    return "ERR unknown subcommand or wrong number of arguments for '%s'. Try %s HELP." % (
        _truncate(arg_text(sub)), container)


# -- keys and expiry -----------------------------------------------------------------

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NO_SUCH_KEY = "ERR no such key"
DB_INDEX = "ERR DB index is out of range"
SAME_OBJECT = "ERR source and destination objects are the same"
BUSYKEY = "BUSYKEY Target key name already exists."
INVALID_EXPIRE = "ERR invalid expire time in '%s' command"
INVALID_CURSOR = "ERR invalid cursor"
EXPIRE_NX_AND_OTHERS = "ERR NX and XX, GT or LT options at the same time are not compatible"
EXPIRE_GT_AND_LT = "ERR GT and LT options at the same time are not compatible"
OBJECT_FREQ_WITHOUT_LFU = (
    "ERR An LFU maxmemory policy is not selected, access frequency not tracked. "
    "Please note that when switching between policies at runtime LRU and LFU "
    "data will take some time to adjust.")
OBJECT_IDLETIME_WITH_LFU = (
    "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note "
    "that when switching between policies at runtime LRU and LFU data will take "
    "some time to adjust.")


def invalid_expire(name: str) -> str:
    """`name`: the command as Redis names it, lower case ("set", "getex", "expire")."""
    return INVALID_EXPIRE % name


def expire_unsupported_option(option: bytes) -> str:
    """EXPIRE's unknown option, printed as a C string on one line."""
    return "ERR Unsupported option %s" % arg_text(option)


# -- strings and bitmaps -----------------------------------------------------------------

STRING_TOO_LONG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
OFFSET_RANGE = "ERR offset is out of range"
OVERFLOW = "ERR increment or decrement would overflow"
DECR_OVERFLOW = "ERR decrement would overflow"
INCR_NAN = "ERR increment would produce NaN or Infinity"
LCS_NOT_STRINGS = "ERR The specified keys must contain string values"
LCS_LEN_AND_IDX = "ERR If you want both the length and indexes, please just use IDX."
LCS_TOO_BIG = "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
BIT_OFFSET = "ERR bit offset is not an integer or out of range"
BIT_VALUE = "ERR bit is not an integer or out of range"
BIT_ARGUMENT = "ERR The bit argument must be 1 or 0."
BITFIELD_TYPE = ("ERR Invalid bitfield type. Use something like i16 u8. "
                 "Note that u64 is not supported but i64 is.")
OVERFLOW_TYPE = "ERR Invalid OVERFLOW type specified"
BITFIELD_RO_ONLY_GET = "ERR BITFIELD_RO only supports the GET subcommand"
BITOP_NOT_ONE_KEY = "ERR BITOP NOT must be called with a single source key."

# -- hashes ----------------------------------------------------------------------------

HASH_NOT_INTEGER = "ERR hash value is not an integer"
HASH_NOT_FLOAT = "ERR hash value is not a float"
NAN_OR_INFINITY = "ERR value is NaN or Infinity"

# -- lists and blocking pops ----------------------------------------------------------------

INDEX_RANGE = "ERR index out of range"
RANK_ZERO = ("ERR RANK can't be zero: use 1 to start from the first match, 2 from the "
             "second ... or use negative to start from the end of the list")
COUNT_NEGATIVE = "ERR COUNT can't be negative"
MAXLEN_NEGATIVE = "ERR MAXLEN can't be negative"
TIMEOUT_NOT_FLOAT = "ERR timeout is not a float or out of range"
TIMEOUT_RANGE = "ERR timeout is out of range"
NEGATIVE_TIMEOUT = "ERR timeout is negative"
TIMEOUT_NOT_INTEGER = "ERR timeout is not an integer or out of range"
CLIENT_PAUSE_MODE = "ERR CLIENT PAUSE mode must be WRITE or ALL"
UNBLOCKED = "UNBLOCKED client unblocked via CLIENT UNBLOCK"

# -- sorted sets ---------------------------------------------------------------------------

RANGE_NOT_FLOAT = "ERR min or max is not a float"
RANGE_NOT_LEX = "ERR min or max not valid string range item"
NAN_SCORE = "ERR resulting score is not a number (NaN)"
WEIGHT_NOT_FLOAT = "ERR weight value is not a float"
ZADD_XX_AND_NX = "ERR XX and NX options at the same time are not compatible"
ZADD_GT_LT_NX = "ERR GT, LT, and/or NX options at the same time are not compatible"
ZADD_INCR_PAIRS = "ERR INCR option supports a single increment-element pair"
ZRANGE_LIMIT_RANK = ("ERR syntax error, LIMIT is only supported in combination with "
                     "either BYSCORE or BYLEX")
ZRANGE_WITHSCORES_BYLEX = "ERR syntax error, WITHSCORES not supported in combination with BYLEX"


def zsetop_no_keys(name: str) -> str:
    """ZUNION/ZINTER/ZDIFF (and STORE forms) with numkeys < 1; `name` lower case."""
    return "ERR at least 1 input key is needed for '%s' command" % name


# -- transactions ---------------------------------------------------------------------------

MULTI_NESTED = "ERR MULTI calls can not be nested"
DISCARD_WITHOUT_MULTI = "ERR DISCARD without MULTI"
EXEC_WITHOUT_MULTI = "ERR EXEC without MULTI"
WATCH_IN_MULTI = "ERR WATCH inside MULTI is not allowed"
MONITOR_DENY_BLOCKING = "ERR MONITOR isn't allowed for DENY BLOCKING client"
EXECABORT = "EXECABORT Transaction discarded because of previous errors."


def execabort_because(message: str) -> str:
    """EXEC refused as a whole before it ran (Redis's execCommandAbort)."""
    return "EXECABORT Transaction discarded because of: %s" % message


def multi_queue_limit(commands: int, megabytes: int) -> str:
    """A command queued past a transaction's bound (tenantkv's own: Redis has
    none); EXEC then aborts."""
    return ("ERR MULTI queue limit reached: at most %d commands or %d MB of arguments "
            "per transaction" % (commands, megabytes))


# -- bounded commands: no command of a non-root tenant holds the server long --------------

def too_long_in_multi(ms: int) -> str:
    return ("ERR command too long inside MULTI/EXEC for a non-root user (over %d ms of work); "
            "run it outside the transaction" % ms)


def random_count_limit(limit: int) -> str:
    """SRANDMEMBER/HRANDFIELD/ZRANDMEMBER with a negative count beyond the
    non-root limit on the reply's length."""
    return "ERR count is out of range: at most %d random elements per call for a non-root user" % limit


def lcs_limit(limit: int) -> str:
    """LCS's string or IDX form over strings longer than the non-root limit."""
    return ("ERR LCS without LEN is limited to strings of %d bytes together for a non-root "
            "user; LCS ... LEN has no such limit" % limit)


# -- connections: HELLO, CLIENT ------------------------------------------------------------

MAXCLIENTS = b"-ERR max number of clients reached\r\n"   # written before closing
# tenantkv's own: connections that have not authenticated yet are capped in
# total (the oldest is closed with this) and per address (the newcomer is
# refused), below maxclients (server/connection.py).
MAXCLIENTS_UNAUTH = b"-ERR max number of unauthenticated clients reached\r\n"
MAXCLIENTS_UNAUTH_ADDRESS = (b"-ERR max number of unauthenticated clients from this "
                             b"address reached\r\n")
# CONFIG SET client-output-buffer-limit, Redis's texts (config.c).
OBUF_LIMIT_ARGS = "Wrong number of arguments in buffer limit configuration."
# CONFIG SET notify-keyspace-events with a character that is no class (config.c).
NOTIFY_CLASS = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
OBUF_LIMIT_CLASS = "Invalid client class specified in buffer limit configuration."
OBUF_LIMIT_VALUE = "Error in hard, soft or soft_seconds setting in buffer limit configuration."
OOM = "OOM command not allowed when used memory > 'maxmemory'."


# tenantkv's own: a tenant over one of its quotas (keyspace/quota.py). Each
# names the quota and its figure, so the tenant knows what to ask root for.
def quota_memory(limit: int) -> str:
    return "OOM command not allowed when the tenant's used memory > its 'memory' quota (%d bytes)." % limit


def quota_keys(limit: int) -> str:
    return "ERR command not allowed: the tenant has reached its 'keys' quota (%d keys)." % limit


def quota_connections(limit: int) -> str:
    return "ERR max number of clients reached for this tenant ('connections' quota %d)." % limit


def quota_rate(limit: int) -> str:
    return "ERR command not allowed: the tenant is over its 'rate' quota (at most %d a second)." % limit
HELLO_PROTOCOL_NOT_INTEGER = "ERR Protocol version is not an integer or out of range"
NOPROTO = "NOPROTO unsupported protocol version"
CLIENT_NAME_CHARS = "ERR Client names cannot contain spaces, newlines or special characters."
INVALID_CLIENT_ID = "ERR Invalid client ID"
CLIENT_ID_POSITIVE = "ERR client-id should be greater than 0"
NO_SUCH_CLIENT = "ERR No such client"
UNBLOCK_REASON = "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"


# CLIENT TRACKING / CACHING (client-side caching, dispatch/tracking.py): Redis's texts.
TRACKING_REDIRECT_TWICE = "ERR A client can only redirect to a single other client"
TRACKING_NO_REDIRECT_CLIENT = "ERR The client ID you want redirect to does not exist"
TRACKING_PREFIX_WITHOUT_BCAST = "ERR PREFIX option requires BCAST mode to be enabled"
TRACKING_BCAST_SWITCH = ("ERR You can't switch BCAST mode on/off before disabling tracking for "
                         "this client, and then re-enabling it with a different mode.")
TRACKING_OPT_WITH_BCAST = "ERR OPTIN and OPTOUT are not compatible with BCAST"
TRACKING_OPTIN_AND_OPTOUT = "ERR You can't specify both OPTIN mode and OPTOUT mode"
TRACKING_OPT_SWITCH = ("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for "
                       "this client, and then re-enabling it with a different mode.")
CACHING_WITHOUT_TRACKING = ("ERR CLIENT CACHING can be called only when the client is in "
                            "tracking mode with OPTIN or OPTOUT mode enabled")
CACHING_YES_WITHOUT_OPTIN = ("ERR CLIENT CACHING YES is only valid when tracking is enabled in "
                             "OPTIN mode.")
CACHING_NO_WITHOUT_OPTOUT = ("ERR CLIENT CACHING NO is only valid when tracking is enabled in "
                             "OPTOUT mode.")


def tracking_prefix_overlap(prefix: bytes, existing: bytes) -> str:
    """A new BCAST prefix overlapping one the client has already."""
    return ("ERR Prefix '%s' overlaps with an existing prefix '%s'. Prefixes for a single "
            "client must not overlap." % (arg_text(prefix), arg_text(existing)))


def tracking_prefix_overlap_given(prefix: bytes, other: bytes) -> str:
    """Two prefixes of one CLIENT TRACKING overlapping each other."""
    return ("ERR Prefix '%s' overlaps with another provided prefix '%s'. Prefixes for a "
            "single client must not overlap." % (arg_text(prefix), arg_text(other)))


def tracking_prefixes_limit(limit: int, size: int) -> str:
    """tenantkv's own: every write of a tenant is checked against its BCAST
    prefixes, so their number and size are bounded per tenant."""
    return ("ERR too many client tracking prefixes in this tenant (at most %d BCAST "
            "prefixes, %d bytes in all)" % (limit, size))


def hello_option(option: bytes) -> str:
    return "ERR Syntax error in HELLO option '%s'" % arg_text(option)


def client_setinfo_option(option: bytes) -> str:
    return "ERR Unrecognized option '%s'" % arg_text(option)


def client_setinfo_chars(attr: str) -> str:
    """`attr`: "lib-name" or "lib-ver"."""
    return "ERR %s cannot contain spaces, newlines or special characters." % attr


def unknown_client_type(name: bytes) -> str:
    return "ERR Unknown client type '%s'" % arg_text(name)


def no_such_user(name: bytes) -> str:
    """CLIENT KILL USER of a user that does not exist."""
    return "ERR No such user '%s'" % arg_text(name)


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

# -- the request reader: a protocol error closes the connection after its reply ----------------

PROTOCOL_INLINE_TOO_BIG = "ERR Protocol error: too big inline request"
PROTOCOL_UNBALANCED_QUOTES = "ERR Protocol error: unbalanced quotes in request"
PROTOCOL_MBULK_COUNT_TOO_BIG = "ERR Protocol error: too big mbulk count string"
PROTOCOL_MBULK_LENGTH = "ERR Protocol error: invalid multibulk length"
PROTOCOL_MBULK_UNAUTHENTICATED = "ERR Protocol error: unauthenticated multibulk length"
PROTOCOL_BULK_COUNT_TOO_BIG = "ERR Protocol error: too big bulk count string"
PROTOCOL_BULK_LENGTH = "ERR Protocol error: invalid bulk length"
PROTOCOL_BULK_UNAUTHENTICATED = "ERR Protocol error: unauthenticated bulk length"


def protocol_unauthenticated_size(limit: int) -> str:
    """tenantkv's own: more input held before AUTH than allowed (one request,
    or what follows an AUTH in one read)."""
    return "ERR Protocol error: unauthenticated request too big (over %d bytes before AUTH)" % limit


def protocol_expected_dollar(got: str) -> str:
    """`got`: the byte found instead of '$', as one character."""
    return "ERR Protocol error: expected '$', got '%s'" % got


# -- server: CONFIG, COMMAND, HELP, SHUTDOWN, DEBUG -------------------------------------------

CONFIG_NO_FILE = "ERR The server is running without a config file"


def config_rewrite_failed(reason: str) -> str:
    # One line: a parser's message may hold several.
    return "ERR Rewriting config file: " + " ".join(reason.split())
GETKEYS_INVALID_COMMAND = "ERR Invalid command specified"
GETKEYS_NO_KEYS = "ERR The command has no key arguments"
GETKEYS_ARITY = "ERR Invalid number of arguments specified for command"
GETKEYS_INVALID_ARGUMENTS = "ERR Invalid arguments specified for command"
NO_SHUTDOWN = "ERR No shutdown in progress."
SHUTDOWN_FAILED = "ERR Errors trying to SHUTDOWN. Check logs."
DEBUG_MEMORY_VALUE = "ERR argument must be a memory value bigger than 1 and smaller than 4gb"
DEBUG_PROTOCOL_RESP2 = "ERR RESP2 is not supported by this command"
DEBUG_PROTOCOL_TYPE = ("ERR Wrong protocol type name. Please use one of the following: "
                       "string|integer|double|bignum|null|array|set|map|attrib|push|"
                       "verbatim|true|false")
DEBUG_RELOAD_OPTIONS = "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options."
DEBUG_RELOAD_FAILED = "ERR Error trying to load the RDB dump"


def config_set_unknown(name: str) -> str:
    return "ERR Unknown option or number of arguments for CONFIG SET - '%s'" % name


# CONFIG SET of a secret tenantkv has no use for: refused rather than kept
# (and shown by CONFIG GET) in clear while doing nothing. An empty value is
# what they already are, and is accepted.
REQUIREPASS_UNSUPPORTED = ("tenantkv has no requirepass: every user has its own password, "
                           "set with ACL SETUSER <user> on >password (or tenantkv user passwd)")
# Replication (replication/, commands/replication.py): Redis's texts.
READONLY = "READONLY You can't write against a read only replica."
NOREPLICAS = "NOREPLICAS Not enough good replicas to write."
NOMASTERLINK = "NOMASTERLINK Can't SYNC while not connected with my master"
CHAINED_REPLICATION = ("ERR tenantkv replicas do not serve replicas of their own: "
                       "replicate from the primary")
INVALID_MASTER_PORT = "ERR Invalid master port"
WAIT_ON_REPLICA = ("ERR WAIT cannot be used with replica instances. Please also note that "
                   "since Redis 4.0 if a replica is configured to be writable (which is not "
                   "the default) writes to replicas are just local and are not propagated.")
REPLICAOF_NO_MASTERAUTH = ("ERR masterauth is not set: a replica logs in to its primary as a "
                           "root user of it (CONFIG SET masteruser <user> masterauth <password> "
                           "first)")
UNBLOCKED_STATE_CHANGED = ("UNBLOCKED force unblock from blocking operation, instance state "
                           "changed (master -> replica?)")


def config_set_failed(name: str, reason: str) -> str:
    """`reason`: config.py's (or the log's) words for the refused value."""
    return "ERR CONFIG SET failed (possibly related to argument '%s') - %s" % (name, reason)


def help_unknown_command(name: bytes) -> str:
    """tenantkv's HELP <command> for a command it does not have."""
    return "ERR unknown command '%s'" % arg_text(name).lower()


# -- persistence: SAVE/BGSAVE, the append-only log, KDB --------------------------------------

# Redis's bare "-ERR": SAVE that failed (the log says why).
BARE = "ERR"
BGSAVE_IN_PROGRESS = "ERR Background save already in progress"
BGSAVE_OTHER_CHILD = ("ERR Another child process is active (AOF?): can't BGSAVE right now. "
                      "Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.")
REWRITE_IN_PROGRESS = "ERR Background append only file rewriting already in progress"
CANT_REWRITE = ("ERR Can't execute an AOF background rewriting. "
                "Please check the server logs for more information.")
# tenantkv's: DEBUG LOADAOF where Redis would exit.
AOF_BEING_CREATED = "ERR The append only file is being created (its first rewrite is in progress)"
AOF_MISSING = "ERR There is no append only file to load"
# tenantkv's KDB: paths confined to the data directory.
KDB_PATH_INVALID = "ERR invalid KDB path"
KDB_PATH_DOTDOT = "ERR KDB paths may not contain '..'"
KDB_PATH_SUFFIX = "ERR KDB paths must end in .kdb"
KDB_PATH_OUTSIDE = "ERR KDB paths must be inside the data directory"
# tenantkv's KDB EXPORT-ORPHAN / DROP-ORPHAN: the name is not echoed (any bytes).
KDB_NO_ORPHAN = "ERR no such orphaned tenant (KDB ORPHANS lists them)"
# Not followed or replaced: a symlink planted in the data directory (evil.kdb ->
# users.db), a directory, a FIFO or a device.
KDB_PATH_NOT_FILE = ("ERR KDB paths must name a regular file inside the data directory "
                     "(not a symbolic link, a directory or a special file)")
KDB_PATH_RESERVED = "ERR KDB paths may not be inside the append-only log's directory"
# The reason in kdb_load_failed when the file changed into something else
# between the check and the open.
KDB_NOT_REGULAR_REASON = "not a regular file"

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


def aof_load_failed(reason) -> str:
    return "ERR Error trying to load the append only file: %s" % reason


def kdb_save_failed(reason: str) -> str:
    return "ERR KDB SAVE failed: %s" % reason


def kdb_load_refused(filename: str, reason) -> str:
    """The file is there but is not a snapshot tenantkv can load (`reason`: KdbError)."""
    return "ERR KDB LOAD refused %s: %s" % (filename, reason)


def kdb_load_failed(reason: str) -> str:
    return "ERR KDB LOAD failed: %s" % reason


def kdb_payload_invalid(reason) -> str:
    return "ERR invalid KDB payload: %s" % reason


def kdb_import_tenants(count: int) -> str:
    return ("ERR KDB IMPORT takes one tenant's export (KDB EXPORT), "
            "this payload holds %d tenants" % count)


# -- ACL -------------------------------------------------------------------------------

USERNAME_CHARS = "ERR Usernames can't contain spaces or null characters"
# tenantkv's: the last root user keeps the server manageable.
LAST_ROOT = "ERR cannot remove, disable or demote the last enabled root user"
DEFAULT_USER_BY_CONFIG = ("ERR the password-less default user is set by the server configuration "
                          "(auth.default_user), not by ACL SETUSER")
DEFAULT_USER_UNDELETABLE = "ERR The 'default' user cannot be removed"
GENPASS_BITS = ("ERR ACL GENPASS argument must be the number of bits for the output "
                "password, a positive number up to 4096")
# Reasons of acl_modifier (Redis's words, then tenantkv's own).
MODIFIER_SYNTAX = "Syntax error"
MODIFIER_QUOTA = ("a quota is quota:<field>=<value>: field memory, keys, connections or rate; "
                  "value a figure (0: no limit) or 'default'")
MODIFIER_HASH = ("The password hash must be exactly 64 characters and "
                 "contain only lowercase hexadecimal characters")
MODIFIER_NO_SUCH_PASSWORD = "The password you are trying to remove from the user does not exist"
MODIFIER_SHA256 = "tenantkv stores argon2id hashes, not SHA-256: set the password with >password"
MODIFIER_NOPASS = ("tenantkv users always have a password "
                   "(use >password, or resetpass to disable password login)")
MODIFIER_SELECTORS = "selectors are not supported by tenantkv"


def acl_modifier(token: bytes, reason: str) -> str:
    return "ERR Error in ACL SETUSER modifier '%s': %s" % (arg_text(token), reason)


def invalid_username(reason) -> str:
    return "ERR Invalid username: %s" % reason


def acl_refused(reason) -> str:
    """The user store refused a change (`reason`: its ValueError)."""
    return "ERR %s" % reason


def unknown_category(name: bytes) -> str:
    return "ERR Unknown category '%s'" % arg_text(name)


def tenant_not_found(name: bytes) -> str:
    return "ERR no such user or tenant '%s'" % arg_text(name)


def user_not_found(name: bytes) -> str:
    return "ERR User '%s' not found" % arg_text(name)


def command_not_found(name: bytes) -> str:
    return "ERR Command '%s' not found" % arg_text(name)


# -- scripting (scripting/engine.py, commands/scripting.py): Redis 7.0's texts --
NOSCRIPT = "NOSCRIPT No matching script. Please use EVAL."
NOTBUSY = "NOTBUSY No scripts in execution right now."
SCRIPT_UNKILLABLE = ("UNKILLABLE Sorry the script already executed write commands against the "
                     "dataset. You can either wait the script termination or kill the server in "
                     "a hard way using the SHUTDOWN NOSAVE command.")
BUSY_SCRIPT = ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or "
               "SHUTDOWN NOSAVE.")
SCRIPT_KILLED = "ERR Script killed by user with SCRIPT KILL..."
SCRIPT_OOM = "ERR tenantkv: the script's Lua state is over its memory limit"
SCRIPT_CALL_TOO_LONG = ("ERR tenantkv: a pattern search or sort this large may run for "
                        "seconds, refused in a script that has written (a script whose "
                        "code names the function runs it on a thread)")
NUMKEYS_NEGATIVE = "ERR Number of keys can't be negative"
NUMKEYS_TOO_MANY = "ERR Number of keys can't be greater than number of args"
# FUNCTION libraries' bounds per tenant (scripting/functions.py)
FUNCTIONS_CODE_LIMIT = "ERR tenantkv: the libraries' code would pass %d bytes (per tenant)"
FUNCTIONS_COUNT_LIMIT = "ERR tenantkv: more than %d function libraries (per tenant)"
FUNCTIONS_MANY = "ERR tenantkv: more than %d functions (per tenant)"
BUSY_FUNCTION = ("BUSY Redis is busy running a script. You can only call FUNCTION KILL or "
                 "SHUTDOWN NOSAVE.")
SCRIPT_IN_SCRIPT = "ERR This Redis command is not allowed from script"


# -- streams (commands/streams.py): Redis 7.0's t_stream.c texts --
STREAM_BAD_ID = "ERR Invalid stream ID specified as stream command argument"
STREAM_XADD_ZERO = "ERR The ID specified in XADD must be greater than 0-0"
STREAM_XADD_SMALL = "ERR The ID specified in XADD is equal or smaller than the target stream top item"
STREAM_TOO_LARGE = "ERR Elements are too large to be stored"
STREAM_EXHAUSTED = ("ERR The stream has exhausted the last possible ID, unable to add more "
                    "items")
STREAM_MAXLEN_MINID = ("ERR syntax error, MAXLEN and MINID options at the same time are not "
                       "compatible")
STREAM_MAXLEN_NEGATIVE = "ERR The MAXLEN argument must be >= 0."
STREAM_LIMIT_NEGATIVE = "ERR The LIMIT argument must be >= 0."
STREAM_LIMIT_NO_STRATEGY = ("ERR syntax error, LIMIT cannot be used without specifying a "
                            "trimming strategy")
STREAM_XTRIM_NO_STRATEGY = "ERR syntax error, XTRIM must be called with a trimming strategy"
STREAM_LIMIT_NOT_APPROX = "ERR syntax error, LIMIT cannot be used without the special ~ option"
STREAM_BAD_START = "ERR invalid start ID for the interval"
STREAM_BAD_END = "ERR invalid end ID for the interval"
STREAM_ENTRIES_ADDED_NEGATIVE = "ERR entries_added must be positive"
STREAM_XSETID_BELOW_DELETED = ("ERR The ID specified in XSETID is smaller than the provided "
                               "max_deleted_entry_id")
STREAM_XSETID_SMALL = "ERR The ID specified in XSETID is smaller than the target stream top item"
STREAM_XSETID_ENTRIES_ADDED = ("ERR The entries_added specified in XSETID is smaller than the "
                               "target stream length")
STREAM_UNBALANCED = ("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' "
                     "must be specified.")
STREAM_GROUP_OPTION = "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
STREAM_NOACK_OPTION = "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
STREAM_MISSING_GROUP = "ERR Missing GROUP option for XREADGROUP"
STREAM_GT_ID = ("ERR The > ID can be specified only when calling XREADGROUP using the GROUP "
                "<group> <consumer> option.")


def stream_block_in_script(name: bytes) -> str:
    return "ERR %s command is not allowed with BLOCK option from scripts" % arg_text(name)


# -- GEO (commands/geo.py): Redis 7.0's geo.c texts --
GEO_UNIT = "ERR unsupported unit provided. please use M, KM, FT, MI"
GEO_NEED_RADIUS = "ERR need numeric radius"
GEO_NEGATIVE_RADIUS = "ERR radius cannot be negative"
GEO_NEED_WIDTH = "ERR need numeric width"
GEO_NEED_HEIGHT = "ERR need numeric height"
GEO_NEGATIVE_BOX = "ERR height or width cannot be negative"
GEO_MEMBER = "ERR could not decode requested zset member"
GEO_COUNT = "ERR COUNT must be > 0"
GEO_ANY_COUNT = "ERR the ANY argument requires COUNT argument"


def geo_invalid_pair(longitude: float, latitude: float) -> str:
    return "ERR invalid longitude,latitude pair %f,%f" % (longitude, latitude)


def geo_store_options(geosearchstore: bool) -> str:
    return "ERR %s is not compatible with WITHDIST, WITHHASH and WITHCOORD options" % (
        "GEOSEARCHSTORE" if geosearchstore else "STORE option in GEORADIUS")


def geo_exactly_one_from(name: bytes) -> str:
    return "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for %s" % arg_text(name)


def geo_exactly_one_by(name: bytes) -> str:
    return "ERR exactly one of BYRADIUS and BYBOX can be specified for %s" % arg_text(name)


# -- SORT / SORT_RO (commands/sort.py), SWAPDB (commands/keys.py) --
SORT_NOT_DOUBLE = "ERR One or more scores can't be converted into double"
# tenantkv's own bound: each GET pattern is a lookup per element sorted
SORT_TOO_MANY_GETS = "ERR tenantkv: SORT takes at most %d GET patterns"
SWAPDB_FIRST_INDEX = "ERR invalid first DB index"
SWAPDB_SECOND_INDEX = "ERR invalid second DB index"
# tenantkv's own bound: LOLWUT draws in Python (commands/lolwut.py)
LOLWUT_TOO_BIG = "ERR tenantkv: LOLWUT draws at most %d pixels"


# HyperLogLog (commands/hll.py), Redis's texts.
HLL_WRONGTYPE = "WRONGTYPE Key is not a valid HyperLogLog string value."
HLL_INVALID = "INVALIDOBJ Corrupted HLL object detected"
PFDEBUG_NO_KEY = "ERR The specified key does not exist"
PFDEBUG_NOT_SPARSE = "ERR HLL encoding is not sparse"


def pfdebug_unknown(sub: bytes) -> str:
    return f"ERR Unknown PFDEBUG subcommand '{arg_text(sub)}'"


def pfselftest_failed(what: str) -> str:
    return f"TESTFAILED {what}"


# -- stream consumer groups (commands/streamgroups.py): Redis 7.0's texts ---------
XGROUP_NO_KEY = ("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE "
                 "you may want to use the MKSTREAM option to create an empty stream "
                 "automatically.")
BUSYGROUP = "BUSYGROUP Consumer Group name already exists"
ENTRIESREAD_RANGE = "ERR value for ENTRIESREAD must be positive or -1"
XREADGROUP_DOLLAR = ("ERR The $ ID is meaningless in the context of XREADGROUP: you want to "
                     "read the history of this consumer by specifying a proper ID, or use the "
                     "> ID to get new messages. The $ ID would just return an empty result set.")
XCLAIM_MIN_IDLE = "ERR Invalid min-idle-time argument for XCLAIM"
XCLAIM_IDLE = "ERR Invalid IDLE option argument for XCLAIM"
XCLAIM_TIME = "ERR Invalid TIME option argument for XCLAIM"
XCLAIM_RETRYCOUNT = "ERR Invalid RETRYCOUNT option argument for XCLAIM"
XAUTOCLAIM_MIN_IDLE = "ERR Invalid min-idle-time argument for XAUTOCLAIM"
XAUTOCLAIM_COUNT = "ERR COUNT must be > 0"
# A blocked XREADGROUP whose group or key went away (blocked.c)
NOGROUP_BLOCKED = "NOGROUP the consumer group this client was blocked on no longer exists"
UNBLOCKED_STREAM_GONE = "UNBLOCKED the stream key no longer exists"


def xclaim_option(option: bytes) -> str:
    return "ERR Unrecognized XCLAIM option '%s'" % arg_text(option)


def nogroup_of_key(group: bytes, key: bytes) -> str:
    return "NOGROUP No such consumer group '%s' for key name '%s'" % (arg_text(group), arg_text(key))


def nogroup_key_or_group(key: bytes, group: bytes) -> str:
    return "NOGROUP No such key '%s' or consumer group '%s'" % (arg_text(key), arg_text(group))


def nogroup_readgroup(key: bytes, group: bytes) -> str:
    return ("NOGROUP No such key '%s' or consumer group '%s' in XREADGROUP with GROUP option"
            % (arg_text(key), arg_text(group)))


def group_limit(what: str, limit: int) -> str:
    """tenantkv's own: a stream's groups / a group's consumers are bounded."""
    return "ERR tenantkv: more than %d %s (per %s)" % (
        limit, what, "stream" if what == "groups" else "consumer group")


# -- DUMP / RESTORE (commands/dump.py), Redis's texts (cluster.c restoreCommand) --
DUMP_PAYLOAD_WRONG = "ERR DUMP payload version or checksum are wrong"
BAD_DATA_FORMAT = "ERR Bad data format"
RESTORE_INVALID_TTL = "ERR Invalid TTL value, must be >= 0"
RESTORE_INVALID_IDLETIME = "ERR Invalid IDLETIME value, must be >= 0"
RESTORE_INVALID_FREQ = "ERR Invalid FREQ value, must be >= 0 and <= 255"


# -- SLOWLOG and LATENCY ---------------------------------------------------------------

SLOWLOG_COUNT = "ERR count should be greater than or equal to -1"


def latency_no_samples(event: str) -> str:
    return "ERR No samples available for event '%s'" % event
