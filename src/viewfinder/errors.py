"""Viewfinder's one error hierarchy.

Every error a user can see is a :class:`ViewfinderError`. Lower-layer errors (SQL, S3,
Lance, OS) are translated at the storage boundary into one of these.

::

    ViewfinderError
    ├── ConfigError                      bad settings, missing workspace, bad URL
    │   └── WorkspaceNotFound (LookupError)
    ├── NotFound (LookupError)
    │   ├── DatasetNotFound
    │   ├── RefNotFound                  unknown version id, tag or branch
    │   └── FormatNotFound
    ├── AlreadyExists                     dataset, tag or branch name taken
    ├── AuthenticationFailed              wrong password, bad/expired/revoked token
    │   └── RateLimited                   too many login attempts; ``retry_after`` seconds
    ├── PermissionDenied                  the caller may see the resource, not do this
    ├── InvalidInput (ValueError)         user-supplied value is wrong
    │   ├── FilterSyntaxError             carries ``expression`` and ``column``
    │   └── ImportFailed                  carries every ``Problem`` found in the source
    ├── ConflictError                     concurrent write or merge conflict
    │   ├── MergeConflict                 carries the conflicting sample/label ids
    │   └── ReleaseBlocked                the check suite failed; carries the report
    ├── StorageError                      catalog, table or blob store failed
    └── MissingDependency (ImportError)   optional extra not installed
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ViewfinderError(Exception):
    """Base of every error Viewfinder raises on purpose."""

    def __init__(self, message: str, *, path: str | None = None, record: str | None = None,
                 dataset: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.record = record
        self.dataset = dataset

    def __str__(self) -> str:
        where = ", ".join(p for p in (self.path, self.record) if p)
        return f"{self.message} ({where})" if where else self.message


class ConfigError(ViewfinderError):
    """The workspace or a setting is wrong or missing."""


class WorkspaceNotFound(ConfigError, LookupError):
    """No workspace at the given path (or in the environment / current directory)."""


class NotFound(ViewfinderError, LookupError):
    """Something named by the user does not exist."""


class DatasetNotFound(NotFound):
    """No dataset with that name in the workspace."""


class RefNotFound(NotFound):
    """No version, tag or branch with that name in the dataset."""


class FormatNotFound(NotFound):
    """No format with that name in the registry, or ``auto`` could not detect one."""


class AlreadyExists(ViewfinderError):
    """A dataset, tag or branch with that name already exists."""


class AuthenticationFailed(ViewfinderError):
    """Who the caller is could not be established: wrong password, bad or expired token.

    The message never says which part was wrong (user name or password).
    """


class RateLimited(AuthenticationFailed):
    """Too many attempts; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermissionDenied(ViewfinderError, PermissionError):
    """The caller may see the resource but not perform this action on it.

    A resource the caller may not see at all raises a :class:`NotFound` instead, so its
    existence is not revealed.
    """


class InvalidInput(ViewfinderError, ValueError):
    """A value supplied by the user is wrong."""


class FilterSyntaxError(InvalidInput):
    """A filter expression does not parse or names an unknown field.

    ``column`` is the 1-based position in ``expression`` where the problem starts.
    """

    def __init__(self, message: str, *, expression: str, column: int) -> None:
        super().__init__(message)
        self.expression = expression
        self.column = column

    def __str__(self) -> str:
        pointer = " " * (self.column - 1) + "^"
        return f"{self.message} at column {self.column}\n  {self.expression}\n  {pointer}"


@dataclass(frozen=True)
class Problem:
    """One problem found in a source: which file, which record, what is wrong."""

    path: str
    message: str
    record: str | None = None

    def __str__(self) -> str:
        return f"{self.path}{f' [{self.record}]' if self.record else ''}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "record": self.record, "message": self.message}


class ImportFailed(InvalidInput):
    """The source has problems; nothing was imported. ``problems`` lists every one."""

    def __init__(self, problems: list[Problem], *, dataset: str | None = None) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(
            f"import failed: {len(self.problems)} problem(s) in the source; no version was "
            f"created (use --on-error skip to import the rest)\n{shown}{more}",
            dataset=dataset,
        )


class ConflictError(ViewfinderError):
    """A write lost a race or two edits disagree."""


@dataclass
class MergeConflictDetail:
    table: str  # "samples" or "labels"
    id: str
    ours: str  # "changed" | "removed" | "added"
    theirs: str


class MergeConflict(ConflictError):
    """Both sides of a merge changed the same sample or label differently."""

    def __init__(self, conflicts: list[MergeConflictDetail], *, dataset: str | None = None) -> None:
        self.conflicts = conflicts
        lines = "\n".join(f"  - {c.table[:-1]} {c.id}: ours {c.ours}, theirs {c.theirs}"
                          for c in conflicts[:50])
        super().__init__(f"merge has {len(conflicts)} conflict(s); nothing was merged\n{lines}",
                         dataset=dataset)


class ReleaseBlocked(ConflictError):
    """A release was refused because error-severity checks failed. ``report`` is the
    check report (a dict) that blocked it."""

    def __init__(self, message: str, *, report: dict[str, Any], dataset: str | None = None) -> None:
        super().__init__(message, dataset=dataset)
        self.report = report


class StorageError(ViewfinderError):
    """The catalog, a table or the blob store failed."""


class MissingDependency(ViewfinderError, ImportError):
    """An optional extra is needed for this feature."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed: pip install 'viewfinder[{extra}]'")


__all__ = [
    "AlreadyExists", "AuthenticationFailed", "ConfigError", "ConflictError", "DatasetNotFound", "FilterSyntaxError",
    "FormatNotFound", "ImportFailed", "InvalidInput", "MergeConflict", "MergeConflictDetail",
    "MissingDependency", "NotFound", "PermissionDenied", "Problem", "RateLimited", "RefNotFound",
    "ReleaseBlocked", "StorageError",
    "ViewfinderError", "WorkspaceNotFound",
]
