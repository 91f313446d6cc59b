"""From AST to SQL: make label groups explicit, then emit DuckDB SQL with parameters."""

from __future__ import annotations

from dataclasses import dataclass

from viewfinder.storage.query.fields import NAMESPACES, SAMPLE, FieldType
from viewfinder.storage.query.nodes import (
    And, Comparison, Contains, Count, Field, InList, Literal, Node, Not, Or, Quantifier,
)
from viewfinder.storage.query.parser import parse

# ---------------------------------------------------------------------------------------
# Grouping: make the implicit "some label matches" explicit.


def _group(node: Node) -> Node:
    """Wrap every maximal namespace-scoped subexpression in an implicit ``any()``."""
    if node.scope != SAMPLE:
        return Quantifier("any", node.scope, node, implicit=True, column=node.column)
    if isinstance(node, Not):
        return Not(_group(node.operand), SAMPLE, node.column)
    if isinstance(node, (And, Or)):
        kind = type(node)
        out: list[Node | str] = []
        members: dict[str, list[Node]] = {}
        for operand in node.operands:
            if operand.scope == SAMPLE:
                out.append(_group(operand))
            else:
                if operand.scope not in members:
                    out.append(operand.scope)  # placeholder where the group goes
                    members[operand.scope] = []
                members[operand.scope].append(operand)
        grouped: list[Node] = []
        for item in out:
            if isinstance(item, str):
                parts = members[item]
                inner = parts[0] if len(parts) == 1 else kind(tuple(parts), item,
                                                              parts[0].column)
                grouped.append(Quantifier("any", item, inner, implicit=True,
                                          column=inner.column))
            else:
                grouped.append(item)
        return kind(tuple(grouped), SAMPLE, node.column)
    return node


# ---------------------------------------------------------------------------------------
# Compiler


@dataclass(frozen=True)
class CompiledFilter:
    """A filter as SQL: ``SELECT s.* FROM samples AS s WHERE {where}`` with ``params``."""

    where: str            # SQL boolean expression over alias `s` (samples)
    params: list[object]  # positional parameters for the `?` placeholders, in order
    uses_labels: bool     # True if it references the labels table


_SQL_TYPE = {"string": "VARCHAR", "boolean": "BOOLEAN"}
_SQL_OP = {"==": "=", "!=": "IS DISTINCT FROM", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class _Compiler:
    def __init__(self) -> None:
        self.params: list[object] = []
        self.namespaces: set[str] = set()
        self.join: tuple[str, str] | None = None

    def param(self, value: Literal) -> str:
        self.params.append(value.value)
        if value.kind == "number":
            return "CAST(? AS BIGINT)" if isinstance(value.value, int) else "CAST(? AS DOUBLE)"
        return f"CAST(? AS {_SQL_TYPE[value.kind]})"

    def column(self, field: Field, kind: str) -> str:
        """SQL for the field's value; JSON values are converted to the literal's ``kind``."""
        spec = field.spec
        alias = "s" if spec.namespace == SAMPLE else NAMESPACES[spec.namespace].alias
        sql = f"{alias}.{spec.column}"
        if spec.type is not FieldType.JSON:
            return sql
        pointer = "".join("/" + k.replace("~", "~0").replace("/", "~1") for k in field.path)
        self.params.append(pointer)
        text = f"json_extract_string({sql}, CAST(? AS VARCHAR))"
        if kind == "number":
            return f"TRY_CAST({text} AS DOUBLE)"
        if kind == "boolean":
            return f"TRY_CAST({text} AS BOOLEAN)"
        return text

    def value(self, field: Field, value: Literal) -> str:
        """A parameter; numbers compared with JSON values are always DOUBLE."""
        if field.spec.type is FieldType.JSON and value.kind == "number":
            self.params.append(float(value.value))  # type: ignore[arg-type]
            return "CAST(? AS DOUBLE)"
        return self.param(value)

    def node(self, node: Node) -> str:
        if isinstance(node, Comparison):
            column = self.column(node.field, node.value.kind)
            if node.value.kind == "null":
                return f"({column} IS {'NOT ' if node.op == '!=' else ''}NULL)"
            return f"({column} {_SQL_OP[node.op]} {self.value(node.field, node.value)})"
        if isinstance(node, InList):
            kinds = [v.kind for v in node.values if v.kind != "null"]
            tests = []
            if kinds:
                column = self.column(node.field, kinds[0])
                values = [self.value(node.field, v) for v in node.values if v.kind != "null"]
                tests.append(f"{column} IN ({', '.join(values)})")
            if len(kinds) < len(node.values):  # null in the list
                tests.append(f"{self.column(node.field, 'null')} IS NULL")
            sql = f"({' OR '.join(tests)})" if tests else "FALSE"
            return f"(NOT COALESCE({sql}, FALSE))" if node.negated else sql
        if isinstance(node, Contains):
            column = self.column(node.field, "string")
            sql = f"list_contains({column}, {self.param(node.value)})"
            return f"(NOT COALESCE({sql}, FALSE))" if node.negated else f"({sql})"
        if isinstance(node, Not):
            return f"(NOT COALESCE({self.node(node.operand)}, FALSE))"
        if isinstance(node, (And, Or)):
            joiner = " AND " if isinstance(node, And) else " OR "
            return "(" + joiner.join(self.node(o) for o in node.operands) + ")"
        if isinstance(node, Quantifier):
            self.namespaces.add(node.namespace)
            inner = self.node(node.operand)
            if node.kind == "any":
                return f"EXISTS ({self.rows(node.namespace, '1')} AND {inner})"
            return (f"NOT EXISTS ({self.rows(node.namespace, '1')} "
                    f"AND NOT COALESCE({inner}, FALSE))")
        if isinstance(node, Count):
            self.namespaces.add(node.namespace)
            sql = self.rows(node.namespace, "count(*)")
            if node.operand is not None:
                sql += f" AND {self.node(node.operand)}"
            return f"(({sql}) {_SQL_OP[node.op]} {self.param(node.value)})"
        raise TypeError(f"not a filter node: {node!r}")  # pragma: no cover

    def rows(self, namespace: str, what: str) -> str:
        ns = NAMESPACES[namespace]
        key, sample_col = (self.join if ns.ranked else None) or (ns.sample_key, "id")
        return (f"SELECT {what} FROM {ns.table} {ns.alias} "
                f"WHERE {ns.alias}.{key} = s.{sample_col}")


SAMPLE_JOINS = {"id": None, "rank": ("_sample_rank", "_rank")}
"""How label rows reach their sample: by id (the tables), or by the integer rank that the
query cache adds to both (``storage.query_cache``), which joins several times faster.
Namespaces the cache does not rank (``Namespace.ranked`` false: findings) join by id."""


def compile_filter(expression: str | None, *, join: str = "id") -> CompiledFilter:
    """Compile a filter expression to a DuckDB ``WHERE`` fragment with bound parameters.

    Args:
        expression: the filter; ``None`` or blank selects every sample.

    Returns:
        The SQL over alias ``s`` (samples; labels are reached through the ``labels``
        relation), its positional parameters, and whether it reads labels.

    Raises:
        FilterSyntaxError: the expression does not parse (see :func:`parse`).

    Example:
        >>> f = compile_filter('"night" in tags')
        >>> f.where, f.params
        ('(list_contains(s.tags, CAST(? AS VARCHAR)))', ['night'])
    """
    if expression is None or not expression.strip():
        return CompiledFilter("TRUE", [], False)
    compiler = _Compiler()
    compiler.join = SAMPLE_JOINS[join]  # KeyError for an unknown join is a programming error
    where = compiler.node(_group(parse(expression)))
    return CompiledFilter(where, compiler.params, "label" in compiler.namespaces)


# ---------------------------------------------------------------------------------------
# explain


def explain(expression: str, *, sql: bool = False) -> str:
    """Pretty-print the AST of a filter, with implicit label groups made visible.

    Args:
        expression: the filter.
        sql: also print the compiled SQL and its parameters.

    Raises:
        FilterSyntaxError: the expression does not parse.

    Example:
        >>> print(explain('label.class == "car" and label.area < 10 and split == "val"'))
        and
        ├── any label (implicit: one label must match all of this)
        │   └── and
        │       ├── label.class == "car"
        │       └── label.area < 10
        └── split == "val"
    """
    root = _group(parse(expression))
    lines: list[str] = []

    def walk(node: Node, prefix: str, connector: str, child_prefix: str) -> None:
        children: list[Node] = []
        if isinstance(node, (And, Or)):
            title = "and" if isinstance(node, And) else "or"
            children = list(node.operands)
        elif isinstance(node, Not):
            title, children = "not", [node.operand]
        elif isinstance(node, Quantifier):
            note = (f" (implicit: one {node.namespace} must match all of this)"
                    if node.implicit else "")
            title, children = f"{node.kind} {node.namespace}{note}", [node.operand]
        elif isinstance(node, Count):
            title = f"count {node.namespace} {node.op} {node.value}"
            children = [] if node.operand is None else [node.operand]
        else:
            title = str(node)
        lines.append(prefix + connector + title)
        for i, child in enumerate(children):
            last = i == len(children) - 1
            walk(child, prefix + child_prefix, "└── " if last else "├── ",
                 "    " if last else "│   ")

    walk(root, "", "", "")
    if sql:
        compiled = compile_filter(expression)
        lines += ["", "SQL: " + compiled.where, "params: " + repr(compiled.params)]
    return "\n".join(lines)
