"""The caller of a use case: a user (by password session), a user's API token, the local
system, or nobody.

``SYSTEM`` is the local CLI acting with direct access to the catalog: it is trusted like
the database owner (whoever can open the catalog can change it anyway), so the policy
allows it everything, and the audit log still records what it did as actor ``system``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PrincipalKind = Literal["user", "token", "system", "anonymous"]


@dataclass(frozen=True)
class Principal:
    """Who is acting.

    Attributes:
        user_id: the user's id (``None`` for the system and anonymous principals).
        username: the name the audit log records as the actor.
        kind: ``user`` (a password session), ``token`` (an API token), ``system`` or
            ``anonymous``.
        scopes: for a token, the scopes it was created with (they narrow the user's
            roles); ``None`` means not narrowed.
    """

    user_id: str | None
    username: str
    kind: PrincipalKind
    scopes: frozenset[str] | None = None

    @property
    def is_system(self) -> bool:
        return self.kind == "system"

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"


SYSTEM = Principal(user_id=None, username="system", kind="system", scopes=None)
ANONYMOUS = Principal(user_id=None, username="anonymous", kind="anonymous", scopes=frozenset())

__all__ = ["ANONYMOUS", "SYSTEM", "Principal", "PrincipalKind"]
