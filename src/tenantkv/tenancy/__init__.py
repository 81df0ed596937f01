"""Users and tenancy: the SQLite user store, argon2id hashing, root bootstrap."""

from tenantkv.tenancy import hashing
from tenantkv.tenancy.bootstrap import PASSWORD_FILE, BootstrapError, ensure_root
from tenantkv.tenancy.hashing import (dummy_hash, hash_password, is_hash, needs_rehash,
                                      verify_dummy, verify_password)
from tenantkv.tenancy.store import (NAME_MAX, SCHEMA_VERSION, NoSuchUser, SchemaTooNew, User,
                                    UserExists, UserStore, UserStoreError, validate_namespace,
                                    validate_username)

__all__ = [
    "BootstrapError", "DUMMY_HASH", "NAME_MAX", "NoSuchUser", "PASSWORD_FILE", "SCHEMA_VERSION",
    "SchemaTooNew", "User", "UserExists", "UserStore", "UserStoreError", "dummy_hash",
    "ensure_root", "hash_password", "hashing", "is_hash", "needs_rehash", "validate_namespace",
    "validate_username", "verify_dummy", "verify_password",
]


def __getattr__(name: str):
    # DUMMY_HASH costs one argon2 hash: made on first use, not at import.
    if name == "DUMMY_HASH":
        return hashing.dummy_hash()
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
