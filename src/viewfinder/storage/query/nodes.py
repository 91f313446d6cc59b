"""The filter AST: frozen dataclasses; ``str(node)`` prints it back as filter text.

``column`` (1-based position in the expression) is left out of equality, so two parses of
the same filter written differently compare equal. ``scope`` is ``SAMPLE`` for a node
evaluated once per sample, or a namespace (``"label"``) for one evaluated per label.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field as dc_field
from typing import Union

from viewfinder.storage.query.fields import FIELDS, SAMPLE, FieldSpec

Value = Union[str, int, float, bool, None]


def _render_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _render_value(key)


def _render_value(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


@dataclass(frozen=True)
class Field:
    """A whitelisted field, plus the JSON keys below it for ``metadata``/``attributes``."""

    name: str                    # key of FIELDS, e.g. "label.class" or "metadata"
    path: tuple[str, ...] = ()   # JSON keys, only for JSON fields
    column: int = dc_field(default=0, compare=False)

    @property
    def spec(self) -> FieldSpec:
        return FIELDS[self.name]

    @property
    def scope(self) -> str:
        return self.spec.namespace

    def __str__(self) -> str:
        return ".".join([self.name, *map(_render_key, self.path)])


@dataclass(frozen=True)
class Literal:
    value: Value
    column: int = dc_field(default=0, compare=False)

    @property
    def kind(self) -> str:
        """``string``, ``number``, ``boolean`` or ``null``."""
        if self.value is None:
            return "null"
        if isinstance(self.value, bool):
            return "boolean"
        return "string" if isinstance(self.value, str) else "number"

    def __str__(self) -> str:
        return _render_value(self.value)


@dataclass(frozen=True)
class Comparison:
    """``field op value``; ``op`` is one of ``== != < <= > >=``."""

    field: Field
    op: str
    value: Literal
    column: int = dc_field(default=0, compare=False)

    @property
    def scope(self) -> str:
        return self.field.scope

    def __str__(self) -> str:
        return f"{self.field} {self.op} {self.value}"


@dataclass(frozen=True)
class InList:
    """``field [not] in [v1, v2, ...]``."""

    field: Field
    values: tuple[Literal, ...]
    negated: bool = False
    column: int = dc_field(default=0, compare=False)

    @property
    def scope(self) -> str:
        return self.field.scope

    def __str__(self) -> str:
        items = ", ".join(map(str, self.values))
        return f"{self.field} {'not in' if self.negated else 'in'} [{items}]"


@dataclass(frozen=True)
class Contains:
    """``value [not] in list_field``, e.g. ``"night" in tags``."""

    value: Literal
    field: Field
    negated: bool = False
    column: int = dc_field(default=0, compare=False)

    @property
    def scope(self) -> str:
        return self.field.scope

    def __str__(self) -> str:
        return f"{self.value} {'not in' if self.negated else 'in'} {self.field}"


@dataclass(frozen=True)
class Not:
    operand: Node
    scope: str = SAMPLE
    column: int = dc_field(default=0, compare=False)

    def __str__(self) -> str:
        return f"not {_wrap(self.operand)}"


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]
    scope: str = SAMPLE
    column: int = dc_field(default=0, compare=False)

    def __str__(self) -> str:
        return " and ".join(_wrap(o) for o in self.operands)


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]
    scope: str = SAMPLE
    column: int = dc_field(default=0, compare=False)

    def __str__(self) -> str:
        return " or ".join(_wrap(o) for o in self.operands)


@dataclass(frozen=True)
class Quantifier:
    """``any(e)`` / ``all(e)`` over the rows of a namespace (``implicit``: made by grouping)."""

    kind: str          # "any" or "all"
    namespace: str
    operand: Node
    implicit: bool = False
    column: int = dc_field(default=0, compare=False)
    scope: str = SAMPLE

    def __str__(self) -> str:
        return str(self.operand) if self.implicit else f"{self.kind}({self.operand})"


@dataclass(frozen=True)
class Count:
    """``count([e]) op value``: the number of rows of a namespace (matching ``e``)."""

    namespace: str
    operand: Node | None
    op: str
    value: Literal
    column: int = dc_field(default=0, compare=False)
    scope: str = SAMPLE

    def __str__(self) -> str:
        return f"count({'' if self.operand is None else self.operand}) {self.op} {self.value}"


Node = Union[Comparison, InList, Contains, Not, And, Or, Quantifier, Count]


def _wrap(node: Node) -> str:
    return f"({node})" if isinstance(node, (And, Or)) else str(node)
