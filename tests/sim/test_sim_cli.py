"""``paddock sim consensus``: summaries, failure reports, exact replays."""

from __future__ import annotations

import shlex

from typer.testing import CliRunner

from paddock.cli.main import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, ["sim", "consensus", *args])


def test_passing_sweep_prints_one_line_per_seed_and_totals():
    r = _run("--seeds", "4", "--seed-start", "30")
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert [ln.split()[1] for ln in lines[:4]] == ["30", "31", "32", "33"]
    assert all("int:ok" in ln and "ext:ok" in ln for ln in lines[:4])
    assert lines[-1].startswith("all 8 runs passed")


def test_liveness_five_nodes_one_election():
    r = _run("--seeds", "2", "--nodes", "5", "--mode", "liveness", "--election", "external")
    assert r.exit_code == 0, r.output
    assert "ext:ok" in r.output and "int:" not in r.output


def test_failure_exits_nonzero_with_seed_invariant_and_replay_command():
    r = _run("--seeds", "50", "--election", "internal", "--bug", "commit_without_quorum")
    assert r.exit_code == 1
    out = r.output
    assert "FAILED seed" in out and "minority commit" in out
    replay_line = next(ln for ln in out.splitlines() if ln.startswith("replay: "))
    cmd = shlex.split(replay_line.removeprefix("replay: "))
    assert cmd[:3] == ["paddock", "sim", "consensus"]
    assert "--bug" in cmd and "commit_without_quorum" in cmd
    # The printed command reproduces the failure, with a trace, identically twice.
    first = runner.invoke(app, cmd[1:])
    second = runner.invoke(app, cmd[1:])
    assert first.exit_code == 1
    assert "FAILED" in first.output and "minority commit" in first.output
    assert first.output == second.output
    assert "trace-hash=" in first.output


def test_replay_prints_a_readable_trace():
    r = _run("--replay", "3", "--election", "external")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert len(lines) > 500
    assert any(" recv ELECT " in ln for ln in lines)
    assert any("ms  n" in ln for ln in lines)
    assert lines[-1].startswith("seed 3 ext:ok")


def test_bad_arguments_are_rejected_clearly():
    r = _run("--seeds", "1", "--nodes", "4")
    assert r.exit_code == 2 and "3 or 5" in r.output
    r = _run("--seeds", "1", "--bug", "no_such_bug")
    assert r.exit_code == 2 and "no_such_bug" in r.output
