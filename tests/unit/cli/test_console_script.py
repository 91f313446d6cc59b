"""The installed ``viewfinder`` command as a process: it leaves without the interpreter's
teardown (see ``cli.main._leave``), so what a shell sees must still be right: output, exit
status, exit handlers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from viewfinder.synthetic import make_coco

EXE = Path(sys.executable).with_name("viewfinder")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
"""Output to a pipe is then block-buffered, as for most users: a leave that forgot to
flush would lose it."""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), *args], check=False, capture_output=True, text=True, timeout=300, env=ENV)


@pytest.fixture(autouse=True)
def _installed() -> None:
    if not EXE.exists():
        pytest.skip(f"console script not installed at {EXE}")


def test_a_session_in_a_shell_sees_output_and_statuses(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    assert run("init", ws).returncode == 0
    src = make_coco(tmp_path / "src", n_images=6, seed=2)
    imported = run("import", str(src), "-d", "street", "-w", ws, "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["samples"] == 6
    log = run("log", "street", "-w", ws, "--json")
    assert log.returncode == 0 and len(json.loads(log.stdout)) == 2  # all of it, flushed
    missing = run("log", "nosuch", "-w", ws)
    assert missing.returncode != 0 and "nosuch" in missing.stderr
    assert run("no-such-command").returncode == 2  # a usage error, as click says it
    # a reader that stops early (| head) is no crash
    head = subprocess.run(f"'{EXE}' log street -w '{ws}' | head -1", check=False, shell=True,
                          capture_output=True, text=True, timeout=120, env=ENV)
    assert head.returncode == 0 and head.stdout.startswith("version") and "Traceback" not in head.stderr


def test_exit_handlers_still_run(tmp_path: Path) -> None:
    """multiprocessing, logging and temporary files clean up in exit handlers: those run."""
    marker = tmp_path / "ran"
    script = textwrap.dedent(f"""
        import atexit, sys
        from viewfinder.cli import main as m
        atexit.register(lambda: open({str(marker)!r}, "w").write("yes"))
        sys.argv = ["viewfinder", "formats"]
        m.main()
    """)
    r = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120, env=ENV)
    assert r.returncode == 0 and "coco" in r.stdout
    assert marker.read_text() == "yes"


def test_the_script_builds_only_the_command_it_runs() -> None:
    """Typer would build all ~40 commands to run one; help and errors stay whole."""
    from typer.testing import CliRunner

    from viewfinder.cli.main import app, invoked_only

    everything = len(app.registered_commands) + len(app.registered_groups)
    only = invoked_only(app, ["-v", "export", "b", "out", "--format", "yolo"])
    assert [c.name for c in only.registered_commands] == ["export"] and not only.registered_groups
    assert [g.name for g in invoked_only(app, ["user", "token", "list"]).registered_groups] == ["user"]
    assert len(app.registered_commands) + len(app.registered_groups) == everything  # a copy
    for whole in (["--help"], ["-v"], ["exprot"], []):
        assert invoked_only(app, whole) is app
    runner = CliRunner()
    assert runner.invoke(only, ["export", "--help"]).output == runner.invoke(app, ["export", "--help"]).output
    assert run("-v", "formats").stdout == run("formats").stdout != ""
    misspelt = run("exprot")
    assert misspelt.returncode == 2 and "No such command 'exprot'" in misspelt.stderr
