"""tenantkv: a Redis-compatible, secure, multi-tenant key-value server."""

__version__ = "0.1.0"
# What we tell clients we are compatible with: RQ, Sidekiq and others check
# redis_version in INFO and HELLO before they agree to work.
REDIS_COMPAT_VERSION = "7.2.4"
