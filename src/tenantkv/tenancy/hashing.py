"""Password hashing: argon2id, parameters and salt stored in the hash string.

The article hashed with unsalted Keccak-256, which a stolen database gives up to
a GPU in hours; argon2id is memory-hard, so each guess costs 19 MiB and two
passes. The parameters are OWASP's minimum for argon2id; a stored hash made
with other parameters still verifies, and `needs_rehash` tells the caller to
store a fresh one (transparent re-hash on the next successful login).

All of these take tens of milliseconds of CPU: call them from a worker thread,
never from the event loop.
"""

import secrets
import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import ARGON2_VERSION

TIME_COST = 2            # passes
MEMORY_COST = 19456      # KiB = 19 MiB
PARALLELISM = 1
HASH_LEN = 32
SALT_LEN = 16

_hasher = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST, parallelism=PARALLELISM,
                         hash_len=HASH_LEN, salt_len=SALT_LEN, type=Type.ID)


def _check(password) -> bytes:
    # bytes only: Redis passwords are binary-safe, and a str would need an
    # encoding choice that the caller, not this module, should make.
    if not isinstance(password, (bytes, bytearray, memoryview)):
        raise TypeError("password must be bytes, not %s" % type(password).__name__)
    return bytes(password)


def hash_password(password: bytes) -> str:
    """A new argon2id hash of `password` with a fresh 16-byte salt:
    '$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>'."""
    return _hasher.hash(_check(password))


def verify_password(stored: str, password: bytes) -> bool:
    """True when `password` matches `stored`; False on a mismatch or when
    `stored` is not a valid argon2 hash (never raises for those)."""
    password = _check(password)
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
    except (ValueError, TypeError):   # stored is not even a str
        return False


def needs_rehash(stored: str) -> bool:
    """True when `stored` was made with other parameters (or another argon2
    variant) than the current ones, or is not a valid argon2 hash at all."""
    try:
        return _hasher.check_needs_rehash(stored)
    except (InvalidHashError, ValueError, TypeError):
        return True


def is_hash(stored) -> bool:
    """True when `stored` parses as an argon2 hash string; guards against a
    plain password ever reaching the password column."""
    from argon2 import extract_parameters
    if not isinstance(stored, str) or not stored.startswith("$argon2"):
        return False
    try:
        extract_parameters(stored)
    except (InvalidHashError, ValueError):
        return False
    return True


def parameters() -> dict:
    """The current parameters, for INFO or tests."""
    return {"type": "argon2id", "version": ARGON2_VERSION, "memory_cost": MEMORY_COST,
            "time_cost": TIME_COST, "parallelism": PARALLELISM, "salt_len": SALT_LEN,
            "hash_len": HASH_LEN}


# An unknown user's password is checked against this hash, so that "no such
# user" costs the same time as "wrong password". Made once, on first use
# (importing the module stays cheap), from a random password nobody knows.
_dummy_hash: str | None = None
_dummy_lock = threading.Lock()


def dummy_hash() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        with _dummy_lock:
            if _dummy_hash is None:
                _dummy_hash = hash_password(secrets.token_bytes(32))
    return _dummy_hash


def verify_dummy(password: bytes) -> bool:
    """Spend the time of one verification and return False (unknown user)."""
    verify_password(dummy_hash(), password)
    return False


def __getattr__(name: str):
    # `hashing.DUMMY_HASH` / `from ...hashing import DUMMY_HASH`: computed lazily.
    if name == "DUMMY_HASH":
        return dummy_hash()
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
