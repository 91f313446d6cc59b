"""Suites from YAML (with errors that point at the file, line and key) and the reports a
person or a CI reads: terminal table, JSON, JUnit XML and the self-contained HTML file."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit.quality.planted import (
    CUSTOM_SUITE,
    HOSTILE,
    PLANTED,
    label_id,
    sample_id,
)
from viewfinder.cli.main import app
from viewfinder.errors import InvalidInput
from viewfinder.quality.html_report import render_html
from viewfinder.quality.report import CheckReport, junit_xml
from viewfinder.quality.suite import default_suite, load_suite, parse_suite, suite_hash
from viewfinder.services import checks as svc
from viewfinder.storage.workspace import Workspace


# -- suites ------------------------------------------------------------------------------

def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\nchecks:\n  - name: a\n    check: geometry\n   params: [1,\n")
    with pytest.raises(InvalidInput) as e:
        load_suite(p)
    assert str(p) in str(e.value) and "not valid YAML" in str(e.value)
    assert re.search(r"broken\.yaml:\d+", str(e.value))


def test_bad_parameter_names_the_line_and_key(tmp_path: Path) -> None:
    p = tmp_path / "suite.yaml"
    p.write_text("name: x\nchecks:\n  - name: a\n    check: geometry\n"
                 "  - name: b\n    check: geometry\n    params:\n      min_sise: 4\n")
    with pytest.raises(InvalidInput) as e:
        load_suite(p)
    assert f"{p}:8: checks[1].params.min_sise" in str(e.value)


def test_unknown_check_severity_and_duplicate_names_are_errors() -> None:
    with pytest.raises(InvalidInput, match=r"<suite>:4: checks\[0\]\.check: .*unknown check 'geometri'"):
        parse_suite("name: x\nchecks:\n  - name: a\n    check: geometri\n")
    with pytest.raises(InvalidInput, match=r"checks\[0\]\.severity"):
        parse_suite("name: x\nchecks:\n  - {name: a, check: geometry, severity: fatal}\n")
    with pytest.raises(InvalidInput, match="two checks are named 'a'"):
        parse_suite("name: x\nchecks:\n  - {name: a, check: geometry}\n  - {name: a, check: schema}\n")
    with pytest.raises(InvalidInput, match=r"checks\[0\]\.filter"):
        parse_suite("name: x\nchecks:\n  - {name: a, check: geometry, filter: 'split =='}\n")


def test_suite_hash_is_canonical() -> None:
    a = parse_suite("name: s\nchecks:\n  - {name: g, check: geometry}\n")
    b = parse_suite("name: s\nchecks:\n  - name: g\n    check: geometry\n    severity: error\n"
                    "    params: {min_size: 2.0}\n")
    c = parse_suite("name: s\nchecks:\n  - {name: g, check: geometry, params: {min_size: 3}}\n")
    assert suite_hash(a) == suite_hash(b) != suite_hash(c)
    assert suite_hash(parse_suite(a.to_yaml())) == suite_hash(a)
    assert len(default_suite(["car"]).checks) == 9


# -- reports -----------------------------------------------------------------------------

def test_junit_xml_has_one_failure_per_failing_error_check(planted: Workspace) -> None:
    report = svc.run_checks(planted, "street", parse_suite(CUSTOM_SUITE), pixels=False)
    root = ET.fromstring(junit_xml(report))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "7" and suite.get("failures") == "6"
    cases = {tc.get("name"): tc for tc in suite.iter("testcase")}
    assert cases["validation images only"].find("failure") is None
    geo = cases["boxes are sane"].find("failure")
    assert geo is not None
    assert label_id(planted, "street", *PLANTED["tiny"]) in (geo.text or "")
    meta = cases["region recorded"].find("failure")
    assert meta is not None and sample_id(PLANTED["no_region"]) in (meta.text or "")


def test_report_round_trips_through_json(planted: Workspace) -> None:
    report = svc.run_checks(planted, "street", parse_suite(CUSTOM_SUITE), pixels=False)
    again = CheckReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.to_dict() == report.to_dict()


def test_html_is_self_contained_with_thumbnails_and_escapes_class_names(planted: Workspace) -> None:
    report = svc.run_checks(planted, "street", parse_suite(CUSTOM_SUITE), pixels=False)
    html = render_html(planted, report)
    assert HOSTILE not in html                                   # never raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html       # but shown, escaped
    assert "<script" not in html.lower()
    thumbs = re.findall(r'<img src="(data:image/png;base64,[A-Za-z0-9+/=]+)"', html)
    assert len(thumbs) >= 6                                       # one per failing sample
    assert not re.search(r'(src|href)="(https?:|//)', html)       # no external assets
    assert html.count("<svg") >= 3                                # class counts, splits, ...
    assert "labels per class" in html

    # the thumbnail of the sample with the box outside the image shows it outlined in red
    import base64
    import io

    from PIL import Image

    idx = html.index(sample_id(PLANTED["outside"][0]))
    uri = html.rfind('<img src="', 0, idx)
    data = html[uri + len('<img src="data:image/png;base64,'):html.index('"', uri + 10)]
    im = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
    colours = {c: n for n, c in im.getcolors(1 << 16)}
    assert colours.get((230, 30, 30), 0) > 50                  # the failing label's outline
    assert colours.get((40, 200, 80), 0) > 50                  # the sample's other labels


# -- the CLI -----------------------------------------------------------------------------

def test_cli_check_exit_codes_and_outputs(planted: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    w = ["--workspace", str(planted.path)]
    suite = tmp_path / "suite.yaml"
    suite.write_text(CUSTOM_SUITE)
    res = runner.invoke(app, ["check", "street", "--suite", str(suite), "--no-pixels",
                              "--junit", str(tmp_path / "out" / "j.xml"), "--html", str(tmp_path / "r.html"), *w])
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.output and "boxes are sane" in res.output
    assert ET.parse(tmp_path / "out" / "j.xml").getroot().find("testsuite") is not None
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    res = runner.invoke(app, ["check", "street", "--suite", str(suite), "--no-pixels", "--json", *w])
    doc = json.loads(res.stdout)
    assert doc["passed"] is False and doc["counts"]["blocking"] == 6
    res = runner.invoke(app, ["check", "street", "--list", *w])
    assert res.exit_code == 0 and "split_hygiene" in res.output


def test_saved_suite_is_used_when_no_suite_is_given(planted: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    w = ["--workspace", str(planted.path)]
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: only-geometry\nchecks:\n  - {name: boxes, check: geometry, severity: warning}\n")
    res = runner.invoke(app, ["check", "street", "--suite", str(suite), "--save-suite", "--no-pixels", *w])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["check", "street", "--no-pixels", "--json", *w])
    doc = json.loads(res.stdout)
    assert res.exit_code == 0 and doc["suite"] == "only-geometry"
    assert [c["status"] for c in doc["checks"]] == ["failed"]
    assert svc.stored_suite(planted, "street") is not None
