"""Canonical JSON: equal values give equal bytes (row hashes and caches compare them).
Standard library only, so image-reading worker processes can use it."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept, NaN refused, other types as ``str``."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)
