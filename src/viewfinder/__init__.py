"""Viewfinder: versioned, tested, governed computer-vision datasets.

Example:
    >>> import viewfinder as vf
    >>> ws = vf.init_workspace("ws")                              # doctest: +SKIP
    >>> ws.import_source("coco/", "street", format="coco")        # doctest: +SKIP
    >>> ds = ws.dataset("street@main")                            # doctest: +SKIP
    >>> ds.stats()["classes"]                                     # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from viewfinder.errors import (AlreadyExists, ConfigError, ConflictError, DatasetNotFound,
                               FilterSyntaxError, FormatNotFound, ImportFailed, InvalidInput,
                               MergeConflict, NotFound, Problem, RefNotFound, StorageError,
                               ViewfinderError, WorkspaceNotFound)

__all__ = [
    "AlreadyExists", "ConfigError", "ConflictError", "DatasetNotFound", "FilterSyntaxError",
    "FormatNotFound", "ImportFailed", "InvalidInput", "MergeConflict", "NotFound", "Problem",
    "RefNotFound", "StorageError", "ViewfinderError", "WorkspaceNotFound", "__version__",
    "init_workspace", "open_workspace",
]


def __getattr__(name: str):  # lazy: `import viewfinder` stays cheap
    if name in ("init_workspace", "open_workspace", "Workspace", "DatasetView"):
        from viewfinder import api

        return getattr(api, name)
    raise AttributeError(name)
