r"""Viewfinder's filter language: parse an expression, compile it to a DuckDB ``WHERE``.

One small language selects samples everywhere (CLI ``--filter``, API, slices of a role
binding). An expression is tokenized, parsed by recursive descent into a typed AST of
frozen dataclasses, then compiled to a SQL boolean expression over the alias ``s``
(samples) whose values travel as bound parameters. Values are never pasted into SQL and
field names come from the whitelist :data:`FIELDS`, never from user text.

Example:
    >>> f = compile_filter('label.class == "car" and label.area < 1024 and split == "val"')
    >>> f.params
    ['car', 1024, 'val']
    >>> f.uses_labels
    True
    >>> sql = f"SELECT s.* FROM samples AS s WHERE {f.where}"   # run with f.params

Grammar (EBNF; keywords are case-insensitive, field names are not)::

    filter     = or_expr ;
    or_expr    = and_expr { "or" and_expr } ;
    and_expr   = not_expr { "and" not_expr } ;
    not_expr   = "not" not_expr | primary ;
    primary    = "(" or_expr ")"
               | ( "any" | "all" ) "(" or_expr ")"
               | "count" "(" [ or_expr ] ")" cmp_op number
               | field cmp_op literal
               | field [ "not" ] "in" list
               | literal [ "not" ] "in" field ;          (* a list field: tags *)
    cmp_op     = "==" | "!=" | "<" | "<=" | ">" | ">=" ;
    field      = name { "." ( key | string ) } ;          (* no spaces around "." *)
    name       = letter { letter | digit | "_" } ;
    key        = ( letter | digit | "_" | "-" ) { letter | digit | "_" | "-" } ;
    list       = "[" [ literal { "," literal } [ "," ] ] "]" ;
    literal    = string | number | "true" | "false" | "null" ;
    string     = '"' { char | escape } '"' | "'" { char | escape } "'" ;
    escape     = "\" ( '"' | "'" | "\" | "/" | "n" | "t" | "r" | "b" | "f" | "0"
                      | "u" hex hex hex hex ) ;
    number     = [ "-" ] ( digits [ "." [ digits ] ] | "." digits )
                 [ ( "e" | "E" ) [ "+" | "-" ] digits ] ;

Precedence, loosest first: ``or``, ``and``, ``not``, comparisons. Comparisons do not chain.

Fields (see :data:`FIELDS`): sample fields ``id key hash width height size_bytes
media_type split tags metadata.<key>...``; label fields ``label.id class kind area width
height x y iscrowd score source attributes.<key>...``; finding fields (the findings of
this version, see ``storage.findings``) ``finding.kind score detector evidence.<key>...``.
A JSON key that is not a plain name is quoted: ``metadata."my key"``; a digit key indexes
a JSON array: ``metadata.boxes.0``.

Semantics:
    * A comparison with a missing value (SQL NULL, absent JSON key) is false, except ``!=``
      and ``not in``, which are the exact complements of ``==`` and ``in``; ``not X`` is the
      exact complement of ``X``. ``field == null`` / ``field != null`` test for missing.
    * ``metadata``/``attributes`` values are compared by the literal's type: numbers after
      ``TRY_CAST(... AS DOUBLE)`` (so the JSON string ``"5"`` equals ``5``; text never
      does), strings as text, booleans after ``TRY_CAST(... AS BOOLEAN)``.
    * A label predicate means "some label of the sample matches". Label predicates joined
      directly by ``and``/``or`` (parentheses of the same operator merge) are evaluated on
      ONE label: ``label.class == "car" and label.area < 10`` needs a small
      car, not a car and some small label. Sample predicates in the same ``and`` are split
      off: ``label.class == "car" and split == "val"``.
    * ``not`` outside any()/all()/count() negates the whole sample-level test, so
      ``not label.class == "car"`` means "no car" (the exact complement), while
      ``label.class != "car"`` means "some label that is not a car". Inside any()/all()/
      count(), ``not`` negates the test of one label: ``any(not label.iscrowd == true)``.
    * ``any(e)``: some label matches ``e``. ``all(e)``: every label matches ``e`` (true for
      a sample without labels). ``count(e) >= 2``, ``count() == 0``: how many labels
      (match ``e``). Their argument names fields of one namespace, label or finding
      (``count()`` alone counts labels).

Finding predicates follow the label rules: ``finding.kind == "dark" and finding.score > 0.8``
needs one finding that is both, ``not finding.kind == "dark"`` means no such finding, and
``count(finding.kind == "near_duplicate") >= 1`` counts them. Adding a namespace is one
entry in :data:`NAMESPACES` and one :class:`FieldSpec` per column in :data:`FIELDS`.
"""

from viewfinder.storage.query.compiler import CompiledFilter, compile_filter, explain
from viewfinder.storage.query.fields import (
    FIELDS, NAMESPACES, SAMPLE, FieldSpec, FieldType, Namespace,
)
from viewfinder.storage.query.nodes import (
    And, Comparison, Contains, Count, Field, InList, Literal, Node, Not, Or, Quantifier,
)
from viewfinder.storage.query.parser import MAX_DEPTH, MAX_LENGTH, parse

__all__ = [
    "FIELDS", "MAX_DEPTH", "MAX_LENGTH", "NAMESPACES", "SAMPLE", "And", "CompiledFilter",
    "Comparison", "Contains", "Count", "Field", "FieldSpec", "FieldType", "InList", "Literal",
    "Namespace", "Node", "Not", "Or", "Quantifier", "compile_filter", "explain", "parse",
]
