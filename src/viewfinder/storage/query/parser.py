"""Tokenizer and recursive-descent parser: filter text to a typed, checked AST."""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from viewfinder.errors import FilterSyntaxError
from viewfinder.storage.query.fields import FIELDS, NAMESPACES, SAMPLE, FieldType
from viewfinder.storage.query.nodes import (
    And, Comparison, Contains, Count, Field, InList, Literal, Node, Not, Or, Quantifier,
)

MAX_LENGTH = 10_000
"""Longest expression accepted, in characters."""
MAX_DEPTH = 100
"""Deepest nesting of parentheses, ``not`` and any()/all()/count() accepted."""
_ORDER_OPS = ("<", "<=", ">", ">=")


# ---------------------------------------------------------------------------------------
# Tokenizer


@dataclass(frozen=True)
class _Token:
    kind: str        # name op ( ) [ ] , string number keyword end
    value: object    # name: tuple of segments; keyword: lower-case word; else the text/value
    column: int
    text: str


_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null", "any", "all", "count"})
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NUMBER_START_RE = re.compile(r"-?\.?[0-9]")
_SPACE_RE = re.compile(r"\s+")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r",
            "b": "\b", "f": "\f", "0": "\0"}
_HEX4_RE = re.compile(r"[0-9A-Fa-f]{4}")
_INT64 = 2**63
_MISTAKES = {"=": "use '==' to compare", "!": "use 'not'", "&&": "use 'and'", "&": "use 'and'",
             "||": "use 'or'", "|": "use 'or'", "<>": "use '!='"}


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text

    def error(self, message: str, index: int) -> FilterSyntaxError:
        return FilterSyntaxError(message, expression=self.text, column=index + 1)

    def tokens(self) -> list[_Token]:
        text, i, out = self.text, 0, []
        n = len(text)
        while True:
            m = _SPACE_RE.match(text, i)
            if m:
                i = m.end()
            if i >= n:
                out.append(_Token("end", None, n + 1, "end of expression"))
                return out
            c = text[i]
            two = text[i:i + 2]
            if two in ("&&", "||", "<>"):
                raise self.error(f"unexpected '{two}'; {_MISTAKES[two]}", i)
            if two in ("==", "!=", "<=", ">="):
                out.append(_Token("op", two, i + 1, two))
                i += 2
            elif c in "<>":
                out.append(_Token("op", c, i + 1, c))
                i += 1
            elif c in "()[],":
                out.append(_Token(c, c, i + 1, c))
                i += 1
            elif c in "\"'":
                value, end = self.string(i)
                out.append(_Token("string", value, i + 1, text[i:end]))
                i = end
            elif _NUMBER_START_RE.match(text, i):
                out.append(self.number(i))
                i += len(out[-1].text)
            elif _NAME_RE.match(text, i):
                token, i = self.name(i)
                out.append(token)
            elif c in _MISTAKES:
                raise self.error(f"unexpected '{c}'; {_MISTAKES[c]}", i)
            else:
                raise self.error(f"unexpected character {c!r}", i)

    def string(self, start: int) -> tuple[str, int]:
        text, quote, i, parts = self.text, self.text[start], start + 1, []
        n = len(text)
        while i < n:
            j = i
            while j < n and text[j] != quote and text[j] != "\\":
                j += 1
            parts.append(text[i:j])
            if j >= n:
                break
            if text[j] == quote:
                return "".join(parts), j + 1
            esc = text[j + 1:j + 2]
            if esc in _ESCAPES:
                parts.append(_ESCAPES[esc])
                i = j + 2
            elif esc == "u" and _HEX4_RE.fullmatch(text, j + 2, j + 6):
                parts.append(chr(int(text[j + 2:j + 6], 16)))
                i = j + 6
            elif esc == "":
                break
            else:
                raise self.error(f"unknown escape '\\{esc}' in string (use \\\\ for a "
                                 "backslash)", j)
        raise self.error("unterminated string: no closing " + quote, start)

    def number(self, start: int) -> _Token:
        m = _NUMBER_RE.match(self.text, start)
        if m is None:
            raise self.error("invalid number", start)
        end = m.end()
        if end < len(self.text) and (self.text[end].isalnum() or self.text[end] in "_."):
            raise self.error(f"invalid number {self.text[start:end + 1]!r}", start)
        raw = m.group()
        if re.fullmatch(r"-?[0-9]+", raw):
            value: int | float = int(raw)
            if not -_INT64 <= value < _INT64:
                raise self.error(f"number {raw} is out of range (64-bit integers)", start)
        else:
            value = float(raw)
            if math.isinf(value):
                raise self.error(f"number {raw} is out of range", start)
        return _Token("number", value, start + 1, raw)

    def name(self, start: int) -> tuple[_Token, int]:
        text = self.text
        m = _NAME_RE.match(text, start)
        assert m is not None
        segments, i = [m.group()], m.end()
        while i < len(text) and text[i] == ".":
            i += 1
            if i < len(text) and text[i] in "\"'":
                key, i = self.string(i)
                segments.append(key)
                continue
            k = _KEY_RE.match(text, i)
            if k is None:
                raise self.error(f"expected a field name after '{text[start:i]}'", i)
            segments.append(k.group())
            i = k.end()
        if len(segments) == 1 and segments[0].lower() in _KEYWORDS:
            word = segments[0].lower()
            return _Token("keyword", word, start + 1, text[start:i]), i
        return _Token("name", tuple(segments), start + 1, text[start:i]), i


# ---------------------------------------------------------------------------------------
# Parser


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "end of expression"
    text = token.text if len(token.text) <= 40 else token.text[:37] + "..."
    return f"'{text}'"


def _suggest(name: str) -> str | None:
    """Closest known field name, preferring one whose last part starts like ``name``'s."""
    last = name.rsplit(".", 1)[-1]
    if name == last:  # an unqualified label field: `class` -> `label.class`
        for namespace in NAMESPACES:
            if f"{namespace}.{name}" in FIELDS:
                return f"{namespace}.{name}"
    close = difflib.get_close_matches(name, list(FIELDS), n=3, cutoff=0.6)
    for candidate in close:
        if last[:1].lower() == candidate.rsplit(".", 1)[-1][:1]:
            return candidate
    return close[0] if close else None


def _scope_of(operands: tuple[Node, ...]) -> str:
    scopes = {o.scope for o in operands}
    return scopes.pop() if len(scopes) == 1 else SAMPLE


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _Lexer(text).tokens()
        self.pos = 0
        self.depth = 0
        self.in_function = False  # inside any()/all()/count(), `not` negates one row

    # -- helpers
    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def advance(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def at_keyword(self, word: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.value == word

    def error(self, message: str, column: int) -> FilterSyntaxError:
        return FilterSyntaxError(message, expression=self.text, column=column)

    def unexpected(self, expected: str) -> FilterSyntaxError:
        token = self.tok
        return self.error(f"unexpected {_describe(token)}; expected {expected}", token.column)

    def expect(self, kind: str, expected: str) -> _Token:
        if self.tok.kind != kind:
            raise self.unexpected(expected)
        return self.advance()

    def enter(self, column: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nests deeper than {MAX_DEPTH} levels", column)

    # -- grammar
    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.error("empty filter expression", 1)
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.unexpected("'and', 'or' or end of expression")
        return node

    def or_expr(self) -> Node:
        first = self.tok.column
        operands = self.flat(Or, self.and_expr())
        while self.at_keyword("or"):
            self.advance()
            operands += self.flat(Or, self.and_expr())
        if len(operands) == 1:
            return operands[0]
        return Or(tuple(operands), _scope_of(tuple(operands)), first)

    def and_expr(self) -> Node:
        first = self.tok.column
        operands = self.flat(And, self.not_expr())
        while self.at_keyword("and"):
            self.advance()
            operands += self.flat(And, self.not_expr())
        if len(operands) == 1:
            return operands[0]
        return And(tuple(operands), _scope_of(tuple(operands)), first)

    @staticmethod
    def flat(kind: type, node: Node) -> list[Node]:
        return list(node.operands) if isinstance(node, kind) else [node]  # type: ignore[union-attr]

    def not_expr(self) -> Node:
        if self.at_keyword("not"):
            token = self.advance()
            self.enter(token.column)
            operand = self.not_expr()
            self.depth -= 1
            return Not(operand, operand.scope if self.in_function else SAMPLE, token.column)
        return self.primary()

    def primary(self) -> Node:
        token = self.tok
        if token.kind == "(":
            self.advance()
            self.enter(token.column)
            node = self.or_expr()
            self.expect(")", "')' or an operator")
            self.depth -= 1
            return node
        if token.kind == "keyword" and token.value in ("any", "all", "count"):
            return self.function()
        if token.kind == "name":
            return self.field_predicate(self.field())
        if token.kind in ("string", "number") or (
                token.kind == "keyword" and token.value in ("true", "false", "null")):
            return self.contains()
        raise self.unexpected("a field, 'not', '(', any(), all() or count()")

    def function(self) -> Node:
        token = self.advance()
        name = str(token.value)
        self.enter(token.column)
        self.expect("(", f"'(' after '{name}'")
        operand: Node | None = None
        if not (name == "count" and self.tok.kind == ")"):
            outer, self.in_function = self.in_function, True
            operand = self.or_expr()
            self.in_function = outer
        self.expect(")", f"')' to close '{name}('")
        self.depth -= 1
        namespace = "label" if operand is None else self.namespace_of(name, operand)
        if name != "count":
            assert operand is not None
            return Quantifier(name, namespace, operand, column=token.column)
        if self.tok.kind != "op":
            raise self.unexpected(f"a comparison after '{name}(...)', e.g. count() > 0")
        op = self.advance().value
        value = self.literal()
        if value.kind != "number":
            raise self.error(f"count() is compared with a number, not a {value.kind}",
                             value.column)
        return Count(namespace, operand, str(op), value, token.column)

    def namespace_of(self, function: str, operand: Node) -> str:
        if operand.scope != SAMPLE:
            return operand.scope
        bad = _first_sample_leaf(operand)
        if isinstance(bad, (Quantifier, Count)):
            message = f"{function}() cannot contain any(), all() or count()"
        elif isinstance(bad, (Comparison, InList, Contains)) and bad.scope == SAMPLE:
            used = _first_namespace(operand)
            namespace = used or next(iter(NAMESPACES))
            message = (f"{function}() takes {namespace} fields only; '{bad.field}' is a sample "
                       "field (put it outside the parentheses)")
            others = [n for n in NAMESPACES if n != namespace]
            if used is None and others:
                message += (f"; any(), all() and count() over {' or '.join(others)} fields "
                            "work the same way")
        else:
            message = f"{function}() cannot mix fields of different namespaces"
        raise self.error(message, bad.column if bad is not None else operand.column)

    def field(self) -> Field:
        token = self.advance()
        segments: tuple[str, ...] = token.value  # type: ignore[assignment]
        for cut in range(len(segments), 0, -1):
            name = ".".join(segments[:cut])
            spec = FIELDS.get(name)
            if spec is None or tuple(name.split(".")) != segments[:cut]:
                continue  # (a quoted key holding a "." must not match a field name)
            path = segments[cut:]
            if spec.type is FieldType.JSON:
                if not path:
                    raise self.error(f"'{name}' needs a key, e.g. {name}.region",
                                     token.column)
                return Field(name, path, token.column)
            if path:
                raise self.error(f"'{name}' has no sub-fields", token.column)
            return Field(name, (), token.column)
        wrong = ".".join(segments)
        guess = _suggest(wrong)
        hint = f"did you mean '{guess}'?" if guess else "known fields: " + ", ".join(
            f"{n}.<key>" if s.type is FieldType.JSON else n for n, s in FIELDS.items())
        raise self.error(f"unknown field '{wrong}'; {hint}", token.column)

    def literal(self) -> Literal:
        token = self.tok
        if token.kind in ("string", "number"):
            self.advance()
            return Literal(token.value, token.column)  # type: ignore[arg-type]
        if token.kind == "keyword" and token.value in ("true", "false", "null"):
            self.advance()
            return Literal({"true": True, "false": False, "null": None}[str(token.value)],
                           token.column)
        if token.kind == "name":
            raise self.error(f"expected a value, got the field '{token.text}' (compare a "
                             "field with a literal value)", token.column)
        raise self.unexpected("a value (string, number, true, false or null)")

    def in_operator(self) -> bool | None:
        """Consume ``in`` / ``not in``; return negated, or None when neither is next."""
        if self.at_keyword("in"):
            self.advance()
            return False
        if self.at_keyword("not") and self.tokens[self.pos + 1].kind == "keyword" \
                and self.tokens[self.pos + 1].value == "in":
            self.pos += 2
            return True
        return None

    def field_predicate(self, field: Field) -> Node:
        spec = field.spec
        negated = self.in_operator()
        if negated is not None:
            if self.tok.kind != "[":
                if spec.type is FieldType.STRING_LIST:
                    raise self.error(f"write '\"value\" in {field}' to test a list field",
                                     field.column)
                raise self.unexpected(f"a list after 'in', e.g. {field} in [\"a\", \"b\"]")
            values = self.list_literal()
            if spec.type is FieldType.STRING_LIST:
                raise self.error(f"write '\"value\" in {field}' to test a list field",
                                 field.column)
            kinds = {v.kind for v in values if v.kind != "null"}
            if len(kinds) > 1:
                raise self.error("list mixes values of different types", values[0].column)
            for v in values:
                _check_type(self, field, "==", v)
            return InList(field, tuple(values), negated, field.column)
        if self.tok.kind != "op":
            if self.tok.kind == "end" or self.at_keyword("and") or self.at_keyword("or") \
                    or self.tok.kind == ")":
                raise self.error(f"'{field}' needs a comparison, e.g. {field} == ...",
                                 field.column)
            raise self.unexpected("a comparison operator (== != < <= > >= in)")
        op = str(self.advance().value)
        value = self.literal()
        _check_type(self, field, op, value)
        if self.tok.kind == "op":
            raise self.error("comparisons cannot be chained; join them with 'and'",
                             self.tok.column)
        return Comparison(field, op, value, field.column)

    def list_literal(self) -> list[Literal]:
        open_token = self.expect("[", "'['")
        values: list[Literal] = []
        while self.tok.kind != "]":
            if self.tok.kind == "end":
                raise self.error("unclosed '['", open_token.column)
            values.append(self.literal())
            if self.tok.kind == ",":
                self.advance()
            elif self.tok.kind != "]":
                raise self.unexpected("',' or ']'")
        self.advance()
        return values

    def contains(self) -> Node:
        value = self.literal()
        negated = self.in_operator()
        if negated is None:
            raise self.unexpected("'in' after a value (a comparison starts with the field, "
                                  "e.g. width > 10)")
        if self.tok.kind != "name":
            raise self.unexpected("a list field after 'in', e.g. \"night\" in tags")
        field = self.field()
        if field.spec.type is not FieldType.STRING_LIST:
            raise self.error(f"'in' needs a list on the right, but '{field}' holds one "
                             f"{field.spec.type.value}", field.column)
        if value.kind != "string":
            raise self.error(f"'{field}' holds strings; got a {value.kind}", value.column)
        return Contains(value, field, negated, value.column)


def _check_type(parser: _Parser, field: Field, op: str, value: Literal) -> None:
    ftype, kind = field.spec.type, value.kind
    if kind == "null":
        if op not in ("==", "!="):
            raise parser.error(f"'{op}' cannot be used with null; use == null or != null",
                               value.column)
        return
    if ftype is FieldType.STRING_LIST:
        raise parser.error(f"'{field}' is a list; test it with '\"value\" in {field}'",
                           field.column)
    if kind == "boolean" and op in _ORDER_OPS:
        raise parser.error(f"'{op}' cannot be used with a boolean", value.column)
    if ftype is FieldType.JSON:
        return
    ok = {FieldType.STRING: "string", FieldType.INTEGER: "number",
          FieldType.FLOAT: "number", FieldType.BOOLEAN: "boolean"}[ftype]
    if kind != ok:
        raise parser.error(f"cannot compare '{field}' ({ftype.value}) with a {kind} "
                           f"{value}", value.column)
    if ftype is FieldType.BOOLEAN and op in _ORDER_OPS:
        raise parser.error(f"'{op}' cannot be used with the boolean field '{field}'",
                           field.column)


def _first_namespace(node: Node) -> str | None:
    """The namespace of the first namespaced comparison below ``node``, if any."""
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (Comparison, InList, Contains)) and current.scope != SAMPLE:
            return current.scope
        if isinstance(current, Not):
            stack.append(current.operand)
        elif isinstance(current, (And, Or)):
            stack.extend(reversed(current.operands))
    return None


def _first_sample_leaf(node: Node) -> Node | None:
    """First (leftmost) node below ``node`` that is evaluated per sample, for errors."""
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (Quantifier, Count)):
            return current
        if isinstance(current, (Comparison, InList, Contains)):
            if current.scope == SAMPLE:
                return current
            continue
        if isinstance(current, Not):
            stack.append(current.operand)
        elif isinstance(current, (And, Or)):
            stack.extend(reversed(current.operands))
    return None


def parse(expression: str) -> Node:
    """Parse a filter expression into its AST.

    Args:
        expression: the filter, e.g. ``'"night" in tags and width >= 640'``.

    Returns:
        The root node; label groups are not yet made explicit (see :func:`explain`).

    Raises:
        FilterSyntaxError: bad syntax, unknown field, type mismatch, too long or too deep;
            ``column`` is the 1-based position where the problem starts.

    Example:
        >>> str(parse("split=='val' AND (width > 10)"))
        'split == "val" and width > 10'
    """
    if len(expression) > MAX_LENGTH:
        raise FilterSyntaxError(f"filter expression is longer than {MAX_LENGTH} characters",
                                expression=expression, column=MAX_LENGTH + 1)
    return _Parser(expression).parse()
