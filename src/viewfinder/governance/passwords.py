"""Password hashing with argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile).

Example:
    >>> h = hash_password("correct horse battery")
    >>> h.startswith("$argon2id$")
    True
    >>> verify_password(h, "correct horse battery"), verify_password(h, "wrong")
    (True, False)
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from viewfinder.errors import InvalidInput

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_LENGTH = 10
MAX_LENGTH = 1024  # argon2 hashes any length; this only bounds the work per attempt


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher, Type

    return PasswordHasher(type=Type.ID)


def check_strength(password: str) -> None:
    """Refuse passwords that are too short or absurdly long.

    Raises:
        InvalidInput: the password is shorter than :data:`MIN_LENGTH` or longer than
            :data:`MAX_LENGTH` characters.
    """
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"password must have at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string with its own salt and parameters) of ``password``."""
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (constant time in the password)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than the current ones."""
    return _hasher().check_needs_rehash(password_hash)


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so that a login for an
    unknown name takes as long as one with a wrong password."""
    return hash_password("viewfinder-no-such-user-placeholder")
