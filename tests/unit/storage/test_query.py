"""The filter language: which samples an expression selects, and how it fails."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from viewfinder.errors import FilterSyntaxError
from viewfinder.storage.query import (
    MAX_DEPTH,
    MAX_LENGTH,
    CompiledFilter,
    compile_filter,
    explain,
    parse,
)
from viewfinder.storage.schema import LABELS, SAMPLES

# ---------------------------------------------------------------------------------------
# Builders


def make_samples(*rows: dict[str, Any]) -> pa.Table:
    """A SAMPLES table; ``metadata`` may be a dict, required columns get dummy values."""
    filled = []
    for row in rows:
        r = {"key": f"{row['id']}.jpg", "content_hash": f"sha-{row['id']}", "row_hash": "x",
             **row}
        if isinstance(r.get("metadata"), dict):
            r["metadata"] = json.dumps(r["metadata"], sort_keys=True, separators=(",", ":"))
        filled.append(r)
    return pa.Table.from_pylist(filled, schema=SAMPLES)


def make_labels(*rows: dict[str, Any]) -> pa.Table:
    """A LABELS table; ``attributes`` may be a dict, required columns get dummy values."""
    filled = []
    for i, row in enumerate(rows):
        r = {"id": f"l{i}", "kind": "box", "class_name": "thing", "source": "ground_truth",
             "row_hash": "x", **row}
        if isinstance(r.get("attributes"), dict):
            r["attributes"] = json.dumps(r["attributes"], sort_keys=True,
                                         separators=(",", ":"))
        filled.append(r)
    return pa.Table.from_pylist(filled, schema=LABELS)


SAMPLE_ROWS = [
    # big car + small person: a small car is NOT here
    {"id": "s1", "split": "val", "tags": ["night", "rain"], "width": 640, "height": 480,
     "size_bytes": 1000, "media_type": "image/jpeg",
     "metadata": {"region": "APAC", "score": 0.9, "count": 5, "flag": True,
                  "nested": {"a": {"b": "deep"}}, "my key": "spaced", "a/b~c": 1,
                  "quote\"d": "q"}},
    # one small car, occluded
    {"id": "s2", "split": "train", "tags": ["day"], "width": 1920, "height": 1080,
     "size_bytes": 5000, "media_type": "image/png",
     "metadata": {"region": "EU", "count": "12", "flag": False}},
    # nothing known, no labels
    {"id": "s3", "split": None, "tags": None, "width": None, "height": None,
     "metadata": None},
    # one crowd person without score
    {"id": "s4", "split": "val", "tags": [], "width": 100, "height": 100,
     "metadata": {"region": "APAC", "boxes": [10, 20], "flag": None}},
    # two small cars from a model
    {"id": "s5", "split": "test", "tags": ["night"], "width": 640, "height": 640,
     "metadata": {"region": "x' OR 1=1 --"}},
]
LABEL_ROWS = [
    {"id": "l1", "sample_id": "s1", "class_name": "car", "area": 100.0, "w": 10.0,
     "h": 10.0, "x": 0.0, "y": 0.0, "score": 0.99, "iscrowd": False,
     "attributes": {"color": "blue"}},
    {"id": "l2", "sample_id": "s1", "class_name": "person", "area": 5.0, "score": 0.4,
     "iscrowd": False},
    {"id": "l3", "sample_id": "s2", "class_name": "car", "area": 5.0, "score": 0.9,
     "iscrowd": False, "attributes": {"occluded": True, "color": "red", "parts": 3}},
    {"id": "l4", "sample_id": "s4", "class_name": "person", "kind": "polygon",
     "area": 50.0, "iscrowd": True, "score": None},
    {"id": "l5", "sample_id": "s5", "class_name": "car", "area": 8.0, "score": 0.7,
     "source": "model-a"},
    {"id": "l6", "sample_id": "s5", "class_name": "car", "area": 9.0, "score": 0.8,
     "source": "model-a"},
]
ALL = ["s1", "s2", "s3", "s4", "s5"]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.register("samples", make_samples(*SAMPLE_ROWS))
    connection.register("labels", make_labels(*LABEL_ROWS))
    yield connection
    connection.close()


def select(connection: duckdb.DuckDBPyConnection, expression: str | None) -> list[str]:
    f = compile_filter(expression)
    assert f.where.count("?") == len(f.params)
    sql = f"SELECT s.id FROM samples AS s WHERE {f.where} ORDER BY s.id"
    return [row[0] for row in connection.execute(sql, f.params).fetchall()]


def error_of(expression: str) -> FilterSyntaxError:
    with pytest.raises(FilterSyntaxError) as info:
        compile_filter(expression)
    assert info.value.expression == expression
    return info.value


# ---------------------------------------------------------------------------------------
# Selection


@pytest.mark.parametrize(("expression", "expected"), [
    # equality, strings, both quote styles, keywords in any case
    ('split == "val"', ["s1", "s4"]),
    ("split == 'val'", ["s1", "s4"]),
    ('split != "val"', ["s2", "s3", "s5"]),           # != includes the missing split
    ('split == null', ["s3"]),
    ('split != null', ["s1", "s2", "s4", "s5"]),
    ('split == "val" AND NOT width > 300', ["s4"]),
    ('id == "s2"', ["s2"]),
    ('key == "s2.jpg"', ["s2"]),
    ('hash == "sha-s5"', ["s5"]),
    ('media_type == "image/png"', ["s2"]),
    # numbers
    ("width > 640", ["s2"]),
    ("width >= 640", ["s1", "s2", "s5"]),
    ("width < 640", ["s4"]),
    ("width <= 100", ["s4"]),
    ("width != 640", ["s2", "s3", "s4"]),
    ("width < 100.5", ["s4"]),                         # float literal on an int column
    ("width > -1e3", ["s1", "s2", "s4", "s5"]),
    ("size_bytes >= 1000 and size_bytes < 5e3", ["s1"]),
    ("height == 640", ["s5"]),
    # string ordering is lexicographic
    ('split < "train"', ["s5"]),
    # in / not in
    ('split in ["val", "test"]', ["s1", "s4", "s5"]),
    ('split not in ["val", "test"]', ["s2", "s3"]),
    ('split in ["train", null]', ["s2", "s3"]),
    ("split in []", []),
    ("split not in []", ALL),
    ("width in [100, 1920]", ["s2", "s4"]),
    # tags
    ('"night" in tags', ["s1", "s5"]),
    ('"night" not in tags', ["s2", "s3", "s4"]),
    ('tags == null', ["s3"]),
    # or / and / not / parentheses and precedence
    ('split == "train" or split == "test"', ["s2", "s5"]),
    ('split == "train" or split == "val" and width < 200', ["s2", "s4"]),
    ('(split == "train" or split == "val") and width < 1000', ["s1", "s4"]),
    ('not split == "val" and width == 640', ["s5"]),
    ('not (split == "val" or split == "test")', ["s2", "s3"]),
    ("not not width > 640", ["s2"]),
    # metadata: strings, numbers, booleans, nesting, quoted keys, arrays
    ('metadata.region == "APAC"', ["s1", "s4"]),
    ('metadata.region != "APAC"', ["s2", "s3", "s5"]),
    ("metadata.score > 0.5", ["s1"]),
    ("metadata.count == 5", ["s1"]),
    ("metadata.count >= 10", ["s2"]),                  # the JSON string "12" is a number
    ('metadata.count == "12"', ["s2"]),
    ("metadata.region > 1", []),                       # text is never a number
    ("metadata.flag == true", ["s1"]),
    ("metadata.flag == false", ["s2"]),
    ("metadata.flag != true", ["s2", "s3", "s4", "s5"]),
    ("metadata.flag == null", ["s3", "s4", "s5"]),     # JSON null, absent or no metadata
    ('metadata.nested.a.b == "deep"', ["s1"]),
    ('metadata."my key" == "spaced"', ["s1"]),
    ('metadata.nested."a".b == "deep"', ["s1"]),
    ('metadata."a/b~c" == 1', ["s1"]),
    ('metadata."quote\\"d" == "q"', ["s1"]),
    ("metadata.boxes.1 == 20", ["s4"]),
    ('metadata.region in ["EU", "APAC"]', ["s1", "s2", "s4"]),
    ("metadata.count in [5, 12]", ["s1", "s2"]),
    ('metadata.missing == "x"', []),
    ('metadata.region == "x\' OR 1=1 --"', ["s5"]),    # a value, found, never SQL
])
def test_sample_fields(con, expression: str, expected: list[str]) -> None:
    assert select(con, expression) == expected


@pytest.mark.parametrize(("expression", "expected"), [
    ('label.class == "car"', ["s1", "s2", "s5"]),
    ('label.class != "car"', ["s1", "s4"]),            # some label is not a car
    ('any(not label.class == "car")', ["s1", "s4"]),   # same, `not` on one label
    ('not label.class == "car"', ["s3", "s4"]),        # `not` outside: no car at all
    ('not any(label.class == "car")', ["s3", "s4"]),
    ('label.class == "car" and not label.class == "person"', ["s2", "s5"]),
    ('label.class == "car" and not label.area < 10', []),  # every car sample has a small one
    ('any(label.class == "car" and not label.area < 10)', ["s1"]),
    ('label.class == "person" and not label.iscrowd == true', ["s1"]),
    ('all(not label.class == "person")', ["s2", "s3", "s5"]),
    ('count(not label.class == "car") == 1', ["s1", "s4"]),
    ('any(label.class == "car")', ["s1", "s2", "s5"]),
    # one label must satisfy the whole group: s1 has a big car and a small person
    ('label.class == "car" and label.area < 10', ["s2", "s5"]),
    ('any(label.class == "car" and label.area < 10)', ["s2", "s5"]),
    ('any(label.class == "car") and any(label.area < 10)', ["s1", "s2", "s5"]),
    # sample predicates split off; label predicates of the chain still share a label
    ('label.class == "car" and split == "val"', ["s1"]),
    ('label.class == "car" and split == "train" and label.area < 10', ["s2"]),
    ('label.class == "car" and split == "val" and label.area < 10', []),
    ('(label.class == "car" and split == "val") and label.area < 10', []),
    ('label.class == "person" or split == "test"', ["s1", "s4", "s5"]),
    ('label.class == "car" and (label.area < 6 or label.score > 0.95)', ["s1", "s2"]),
    ('label.iscrowd == true', ["s4"]),
    ('label.iscrowd == false', ["s1", "s2"]),
    ('label.iscrowd == null', ["s5"]),
    ('label.score == null', ["s4"]),
    ('label.score >= 0.9', ["s1", "s2"]),
    ('label.kind == "polygon"', ["s4"]),
    ('label.source != "ground_truth"', ["s5"]),
    ('label.id == "l3"', ["s2"]),
    ("label.width == 10 and label.height == 10 and label.x == 0 and label.y == 0", ["s1"]),
    ('label.class in ["person", "bicycle"]', ["s1", "s4"]),
    ('label.attributes.occluded == true', ["s2"]),
    ('label.attributes.color == "blue"', ["s1"]),
    ('label.attributes.parts > 2', ["s2"]),
    ('label.attributes.color == "red" and label.class == "car"', ["s2"]),
    # all(): every label; vacuously true without labels (s3)
    ('all(label.class == "car")', ["s2", "s3", "s5"]),
    ('all(label.class == "car") and count() > 0', ["s2", "s5"]),
    ('all(label.score > 0.5)', ["s2", "s3", "s5"]),    # null score (s4) is not > 0.5
    ('not all(label.class == "car")', ["s1", "s4"]),
    # count()
    ("count() == 0", ["s3"]),
    ("count() >= 2", ["s1", "s5"]),
    ('count(label.class == "car") == 2', ["s5"]),
    ('count(label.class == "car") != 1', ["s3", "s4", "s5"]),
    ('count(label.class == "car" and label.area < 10) >= 1 and split == "test"', ["s5"]),
    ('count(label.class == "person") < 1', ["s2", "s3", "s5"]),
])
def test_label_fields(con, expression: str, expected: list[str]) -> None:
    assert select(con, expression) == expected


@pytest.mark.parametrize("expression", [
    'split == "val"', "width > 600", 'metadata.region == "APAC"', "metadata.flag == true",
    'metadata.count > 6', '"night" in tags', 'split in ["val", null]',
    'label.class == "car" and label.area < 10', 'label.class != "car" or split == "val"',
    'all(label.score > 0.5)', "count() >= 2", 'label.score < 0.8',
    'label.attributes.color == "red"',
])
def test_not_is_the_exact_complement(con, expression: str) -> None:
    """Missing values never make a sample vanish from both X and `not X`."""
    matched = set(select(con, expression))
    negated = set(select(con, f"not ({expression})"))
    assert matched | negated == set(ALL)
    assert not matched & negated


@pytest.mark.parametrize(("equal", "different"), [
    ('split == "val"', 'split != "val"'),
    ("width == 640", "width != 640"),
    ('metadata.region == "EU"', 'metadata.region != "EU"'),
    ('split in ["val"]', 'split not in ["val"]'),
    ('"rain" in tags', '"rain" not in tags'),
])
def test_negated_operators_complement(con, equal: str, different: str) -> None:
    assert sorted(set(ALL) - set(select(con, equal))) == select(con, different)


def test_blank_filter_selects_everything(con) -> None:
    assert compile_filter(None) == CompiledFilter("TRUE", [], False)
    assert compile_filter("  \n") == CompiledFilter("TRUE", [], False)
    assert select(con, None) == ALL


def test_compiled_filter_shape() -> None:
    f = compile_filter('label.class == "car" and label.area < 1024 and split == "val"')
    assert f.params == ["car", 1024, "val"]
    assert f.uses_labels
    assert f.where.startswith("(EXISTS (SELECT 1 FROM labels l WHERE l.sample_id = s.id")
    assert not compile_filter('split == "val"').uses_labels
    assert compile_filter("count() > 1").uses_labels


def test_runs_over_lance_datasets(tmp_path) -> None:
    lance = pytest.importorskip("lance")
    connection = duckdb.connect()
    connection.register("samples", lance.write_dataset(make_samples(*SAMPLE_ROWS),
                                                       tmp_path / "samples.lance"))
    connection.register("labels", lance.write_dataset(make_labels(*LABEL_ROWS),
                                                      tmp_path / "labels.lance"))
    assert select(connection, 'label.class == "car" and label.area < 10') == ["s2", "s5"]
    assert select(connection, 'all(label.class == "car") and metadata.region != "EU"') \
        == ["s3", "s5"]


# ---------------------------------------------------------------------------------------
# Safety


@pytest.mark.parametrize("expression", [
    "split == \"x' OR 1=1 --\"",
    "split == 'x\\' OR \\'1\\'=\\'1'",
    'split == "val\'; DROP TABLE samples; --"',
    'metadata."a\'); DROP TABLE samples; --" == 1',
    'metadata."$.x\') OR (1=1" == "y"',
    'label.attributes."x\' OR 1=1 --" == true',
    '"\'); DROP TABLE samples; --" in tags',
])
def test_injection_is_only_ever_a_value(con, expression: str) -> None:
    f = compile_filter(expression)
    for value in f.params:
        if isinstance(value, str):
            assert value not in f.where
    assert "DROP" not in f.where and "1=1" not in f.where
    assert select(con, expression) == []
    assert select(con, "width > 0") == ["s1", "s2", "s4", "s5"]   # tables still there


@pytest.mark.parametrize(("expression", "column"), [
    ("metadata.a'); DROP TABLE samples; --", 11),
    ("split == \"val\"; DROP TABLE samples", 15),
    ("split == val", 10),
    ("samples.id == 'x'", 1),
    ("width == 1; --", 11),
    ("label.class == \"car\" -- comment", 22),
    ("split == \"a\" /* x */", 14),
])
def test_injection_in_syntax_is_rejected(expression: str, column: int) -> None:
    assert error_of(expression).column == column


def test_sql_names_come_from_the_whitelist_only() -> None:
    f = compile_filter('metadata.DROP == 1 and label.attributes.samples == "x"')
    assert "DROP" not in f.where and "samples" not in f.where.replace("FROM labels", "")
    assert f.params == ["/DROP", 1.0, "/samples", "x"]


# ---------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(("expression", "column", "message"), [
    ('label.colour == "red"', 1, "unknown field 'label.colour'; did you mean 'label.class'?"),
    ('split == "val" and labl.area < 3', 20, "did you mean 'label.area'?"),
    ('class == "car"', 1, "did you mean 'label.class'?"),
    ("splt == 'a'", 1, "did you mean 'split'?"),
    ("zzz == 1", 1, "known fields: id, key"),
    ('split == "val', 10, "unterminated string"),
    ("split == 'val", 10, "unterminated string"),
    ('metadata."key == 1', 10, "unterminated string"),
    ('split == "a\\qb"', 12, "unknown escape"),
    ('width == "abc"', 10, "cannot compare 'width' (integer) with a string"),
    ("split == 3", 10, "cannot compare 'split' (string) with a number"),
    ("label.iscrowd == 1", 18, "cannot compare 'label.iscrowd' (boolean) with a number"),
    ('"x" in width', 8, "'in' needs a list on the right"),
    ("3 in tags", 1, "'tags' holds strings"),
    ('tags == "x"', 1, "'tags' is a list"),
    ('tags in ["x"]', 1, "write '\"value\" in tags'"),
    ('split in "val"', 10, "expected a list after 'in'"),
    ('split in ["a", 1]', 11, "list mixes values"),
    ("width < null", 9, "'<' cannot be used with null"),
    ("metadata.flag > true", 17, "'>' cannot be used with a boolean"),
    ("split ==", 9, "unexpected end of expression"),
    ('split == "a" and', 17, "unexpected end of expression"),
    ('split == "a" split == "b"', 14, "unexpected 'split'"),
    ('(split == "a"', 14, "expected ')'"),
    ('split == "a")', 13, "unexpected ')'"),
    ('split = "a"', 7, "use '==' to compare"),
    ('split == "a" && width > 1', 14, "use 'and'"),
    ('split == "a" || width > 1', 14, "use 'or'"),
    ('split <> "a"', 7, "use '!='"),
    ("width > 1 < 3", 11, "comparisons cannot be chained"),
    ("width", 1, "'width' needs a comparison"),
    ("width 3", 7, "expected a comparison operator"),
    ("width > height", 9, "expected a value, got the field 'height'"),
    ("width > 12abc", 9, "invalid number"),
    ("width > 99999999999999999999", 9, "out of range"),
    ("width > 1e999", 9, "out of range"),
    ("width > -", 9, "unexpected character '-'"),
    ("width > 1 @", 11, "unexpected character '@'"),
    ("metadata == 1", 1, "'metadata' needs a key"),
    ("metadata. == 1", 10, "expected a field name after 'metadata.'"),
    ("split.x == 1", 1, "'split' has no sub-fields"),
    ('any(split == "val")', 5, "any() takes label fields only; 'split' is a sample field"),
    ('all(label.class == "car" or width > 3)', 29, "'width' is a sample field"),
    ('count("x" in tags) > 1', 7, "'tags' is a sample field"),
    ('any(any(label.class == "car"))', 5, "cannot contain any(), all() or count()"),
    ("count() > 'a'", 11, "count() is compared with a number"),
    ("count()", 8, "expected a comparison after 'count(...)'"),
    ("any label.class", 5, "expected '(' after 'any'"),
    ("1 == width", 3, "unexpected '=='; expected 'in' after a value"),
    ("and", 1, "unexpected 'and'"),
])
def test_errors_point_at_the_problem(expression: str, column: int, message: str) -> None:
    error = error_of(expression)
    assert message in error.message
    assert error.column == column
    assert isinstance(error, ValueError)
    assert str(error).endswith(" " * (column - 1) + "^")


@pytest.mark.parametrize("expression", ["", "   \t"])
def test_empty_expression_does_not_parse(expression: str) -> None:
    with pytest.raises(FilterSyntaxError, match="empty filter expression") as info:
        parse(expression)
    assert info.value.column == 1


def test_too_long_is_rejected() -> None:
    clause = 'split == "a" or '
    fits = clause * ((MAX_LENGTH - 20) // len(clause)) + 'split == "b"'
    assert len(fits) <= MAX_LENGTH
    assert len(compile_filter(fits).params) == fits.count("split")
    too_long = fits + " " * (MAX_LENGTH + 1 - len(fits))
    error = error_of(too_long)
    assert error.column == MAX_LENGTH + 1 and "longer than" in error.message


def test_too_deep_is_rejected() -> None:
    assert parse("(" * MAX_DEPTH + "width > 1" + ")" * MAX_DEPTH)
    assert parse("not " * MAX_DEPTH + "width > 1")
    error = error_of("(" * (MAX_DEPTH + 1) + "width > 1" + ")" * (MAX_DEPTH + 1))
    assert error.column == MAX_DEPTH + 1 and "deeper than" in error.message
    error = error_of("not " * (MAX_DEPTH + 1) + "width > 1")
    assert error.column == 4 * MAX_DEPTH + 1
    # hostile nesting of other shapes fails cleanly, never with RecursionError
    error_of("any(" * 5000 + "label.x > 1" + ")" * 5000)
    error_of("[" * 5000)


def test_many_clauses_compile_and_run(con) -> None:
    expression = " or ".join(f'split == "v{i}"' for i in range(500)) + ' or split == "val"'
    assert select(con, expression) == ["s1", "s4"]


# ---------------------------------------------------------------------------------------
# AST and explain


@pytest.mark.parametrize("expression", [
    'label.class == "car" and label.area < 1024 and split == "val"',
    "metadata.region == 'APAC' or not (width >= 1.5e3 and \"a\\nb\" not in tags)",
    'metadata."my key"."x\\"y".z != null and count() > 0',
    'all(label.score > -0.5) or count(label.class in ["a", null, "b"]) <= 2',
])
def test_ast_prints_back_as_the_same_filter(expression: str) -> None:
    tree = parse(expression)
    assert parse(str(tree)) == tree


def test_parentheses_of_the_same_operator_merge() -> None:
    assert parse("(width > 1 and height > 1) and split == 'a'") == \
        parse("width > 1 and height > 1 and split == 'a'")
    assert parse("width > 1 or (height > 1 and split == 'a')") != \
        parse("(width > 1 or height > 1) and split == 'a'")


def test_explain_shows_label_groups() -> None:
    assert explain('label.class == "car" and split == "val" and label.area < 10') == (
        "and\n"
        "├── any label (implicit: one label must match all of this)\n"
        "│   └── and\n"
        "│       ├── label.class == \"car\"\n"
        "│       └── label.area < 10\n"
        "└── split == \"val\""
    )
    text = explain('not any(label.class == "person") or count() == 0', sql=True)
    assert text.splitlines()[:4] == [
        "or", "├── not", "│   └── any label", "│       └── label.class == \"person\"",
    ]
    assert "SQL: " in text and "params: ['person', 0]" in text
