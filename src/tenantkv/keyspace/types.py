"""What TYPE and OBJECT ENCODING say about a value, and how COPY copies it.

Each family module registers its value class here (`register_type`), so this
module does not need to know every family.
"""

from tenantkv.keyspace.intset import IntSet
from tenantkv.util.numbers import parse_int

_NAMES: dict = {bytes: "string", dict: "hash", set: "set"}
_ENCODINGS: dict = {IntSet: lambda value: "intset"}
_NAMES[IntSet] = "set"


def register_type(kind: type, name: str, encoding) -> None:
    _NAMES[kind] = name
    _ENCODINGS[kind] = encoding


def type_name(value) -> str:
    return _NAMES.get(type(value), "none")


def encoding(value) -> str:
    kind = type(value)
    if kind is bytes:
        if len(value) <= 20 and parse_int(value) is not None:
            return "int"
        return "embstr" if len(value) <= 44 else "raw"
    if kind is dict:
        # a small hash is a PackedHash ("listpack", registered by commands/hashes.py);
        # a dict is one converted past the limits, for good, as Redis's hashtable
        return "hashtable"
    if kind is set:
        # an intset is an IntSet (registered below), a small set a PackedSet
        # ("listpack", registered by commands/sets.py): a set is a hashtable
        return "hashtable"
    return _ENCODINGS[kind](value)


def copy_value(value):
    kind = type(value)
    if kind is bytes:
        return value
    if kind in (dict, set):
        return kind(value)
    return value.copy()
