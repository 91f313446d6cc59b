"""Findings: what a detector found, per sample or label. Data, never exceptions.

A finding has a ``kind`` (``exact_duplicate``, ``near_duplicate``, ``dark``, ``label_error``,
...), a ``score`` in [0, 1] where higher means more certainly a problem, the ``sample_id``
(and ``label_id`` for label-level findings), an optional ``group_id`` tying findings of one
duplicate group together, and ``evidence``: a small JSON-able dict saying why (the measured
value, the threshold, the neighbor ids, the suggested class).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from viewfinder.storage.schema import FINDINGS as FINDINGS_SCHEMA


@dataclass(frozen=True)
class Finding:
    kind: str
    score: float
    sample_id: str
    label_id: str | None = None
    group_id: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "score": self.score, "sample_id": self.sample_id,
                "label_id": self.label_id, "group_id": self.group_id, "evidence": self.evidence}


def to_table(findings: list[Finding], *, version_id: str, detector: str) -> pa.Table:
    """Findings as rows of :data:`FINDINGS_SCHEMA`."""
    return pa.table({
        "version_id": [version_id] * len(findings),
        "detector": [detector] * len(findings),
        "kind": [f.kind for f in findings],
        "score": [float(f.score) for f in findings],
        "sample_id": [f.sample_id for f in findings],
        "label_id": [f.label_id for f in findings],
        "group_id": [f.group_id for f in findings],
        "evidence": [json.dumps(f.evidence, sort_keys=True, separators=(",", ":"), default=str)
                     for f in findings],
    }, schema=FINDINGS_SCHEMA)
