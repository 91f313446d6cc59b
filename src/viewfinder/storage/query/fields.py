"""The whitelist of everything a filter may name: namespaces and fields.

To add a namespace (e.g. ``finding.`` over a ``findings`` table with ``sample_id``,
``kind`` and ``score``), add one :class:`Namespace` to :data:`NAMESPACES` and one
:class:`FieldSpec` per column to :data:`FIELDS`; any()/all()/count() and the implicit
grouping work per namespace.
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


@dataclass(frozen=True)
class FieldSpec:
    """One field of the language and the column it reads."""

    column: str
    type: FieldType
    namespace: str = SAMPLE


NAMESPACES: dict[str, Namespace] = {
    "label": Namespace("label", table="labels", alias="l", sample_key="sample_id"),
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
}
