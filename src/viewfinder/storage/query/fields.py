"""The whitelist of everything a filter may name: namespaces and fields.

A namespace is a per-sample child table (``label.`` over ``labels``, ``finding.`` over the
version's ``findings``). To add one, add one :class:`Namespace` to :data:`NAMESPACES` and
one :class:`FieldSpec` per column to :data:`FIELDS`; any()/all()/count() and the implicit
grouping work per namespace, and the reader must register the namespace's relation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

SAMPLE = "sample"
"""Scope of a node evaluated once per sample (as opposed to a namespace such as ``label``)."""


class FieldType(enum.Enum):
    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    STRING_LIST = "list of strings"
    JSON = "JSON object"


@dataclass(frozen=True)
class Namespace:
    """A per-sample child table that filters reach through ``<name>.`` fields."""

    name: str        # prefix in the language, e.g. "label"
    table: str       # relation registered in the connection
    alias: str       # SQL alias inside the correlated subquery
    sample_key: str  # column holding the sample id
    ranked: bool = False  # the query cache gives its rows `_sample_rank` (a faster join)


@dataclass(frozen=True)
class FieldSpec:
    """One field of the language and the column it reads."""

    column: str
    type: FieldType
    namespace: str = SAMPLE


NAMESPACES: dict[str, Namespace] = {
    "label": Namespace("label", table="labels", alias="l", sample_key="sample_id", ranked=True),
    "finding": Namespace("finding", table="findings", alias="f", sample_key="sample_id"),
}

FIELDS: dict[str, FieldSpec] = {
    "id": FieldSpec("id", FieldType.STRING),
    "key": FieldSpec("key", FieldType.STRING),
    "hash": FieldSpec("content_hash", FieldType.STRING),
    "width": FieldSpec("width", FieldType.INTEGER),
    "height": FieldSpec("height", FieldType.INTEGER),
    "size_bytes": FieldSpec("size_bytes", FieldType.INTEGER),
    "media_type": FieldSpec("media_type", FieldType.STRING),
    "split": FieldSpec("split", FieldType.STRING),
    "tags": FieldSpec("tags", FieldType.STRING_LIST),
    "metadata": FieldSpec("metadata", FieldType.JSON),
    "label.id": FieldSpec("id", FieldType.STRING, "label"),
    "label.class": FieldSpec("class_name", FieldType.STRING, "label"),
    "label.kind": FieldSpec("kind", FieldType.STRING, "label"),
    "label.area": FieldSpec("area", FieldType.FLOAT, "label"),
    "label.width": FieldSpec("w", FieldType.FLOAT, "label"),
    "label.height": FieldSpec("h", FieldType.FLOAT, "label"),
    "label.x": FieldSpec("x", FieldType.FLOAT, "label"),
    "label.y": FieldSpec("y", FieldType.FLOAT, "label"),
    "label.iscrowd": FieldSpec("iscrowd", FieldType.BOOLEAN, "label"),
    "label.score": FieldSpec("score", FieldType.FLOAT, "label"),
    "label.source": FieldSpec("source", FieldType.STRING, "label"),
    "label.attributes": FieldSpec("attributes", FieldType.JSON, "label"),
    # findings of this version (see storage.findings): "some finding of the sample matches"
    "finding.kind": FieldSpec("kind", FieldType.STRING, "finding"),
    "finding.score": FieldSpec("score", FieldType.FLOAT, "finding"),
    "finding.detector": FieldSpec("detector", FieldType.STRING, "finding"),
    "finding.evidence": FieldSpec("evidence", FieldType.JSON, "finding"),
}
