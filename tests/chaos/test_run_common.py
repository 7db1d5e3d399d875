"""The parts both chaos runs share (runner_common, report_common), without a lab:
teardown whatever happens, torn history lines, the gap figure, the report's page."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from paddock.chaos import report_common, runner_common
from paddock.chaos.checker import Anomaly


class FakeLab:
    def __init__(self):
        self.destroyed = False

    def destroy(self):
        self.destroyed = True


class FakeCluster:
    def __init__(self):
        self.stopped = False

    def stop_all(self):
        self.stopped = True


def test_lab_session_stops_everything_after_a_failure_and_restores_sigterm():
    lab, cluster, workers = FakeLab(), FakeCluster(), []
    before = signal.getsignal(signal.SIGTERM)
    with (
        pytest.raises(RuntimeError, match="boom"),
        runner_common.lab_session(lab, cluster, workers),
    ):
        assert signal.getsignal(signal.SIGTERM) is not before
        workers.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        raise RuntimeError("boom")
    assert workers[0].poll() is not None  # killed and reaped
    assert lab.destroyed and cluster.stopped
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_inside_a_lab_session_is_a_keyboard_interrupt():
    lab, cluster = FakeLab(), FakeCluster()
    with (
        pytest.raises(KeyboardInterrupt),
        runner_common.lab_session(lab, cluster, []),
    ):
        signal.raise_signal(signal.SIGTERM)
    assert lab.destroyed and cluster.stopped


def test_read_events_skips_a_torn_line_and_shifts_times(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(
        json.dumps({"t": 1_500, "type": "invoke"})
        + "\n"
        + json.dumps({"t": 2_500, "type": "ok"})
        + '\n{"t": 3_5'
    )
    assert list(runner_common.read_events(path, 500)) == [
        {"t": 1_000, "type": "invoke"},
        {"t": 2_000, "type": "ok"},
    ]


def test_longest_gap_counts_the_start_and_the_end_of_the_run():
    assert runner_common.longest_gap_between([2.0, 3.0], 10.0) == 7.0
    assert runner_common.longest_gap_between([6.5], 10.0) == 6.5
    assert runner_common.longest_gap_between([], 4.0) == 4.0
    assert runner_common.longest_gap_between([-1.0, 12.0], 10.0) == 10.0  # clamped


@dataclass
class FakeCheck:
    anomalies: list[Anomaly] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self):
        return not self.anomalies

    def to_json(self):
        return {"ok": self.ok}


@dataclass
class FakeRun:
    out: object
    check: FakeCheck
    faults: list
    figures: dict

    @property
    def ok(self):
        return self.check.ok


def test_summary_lines_list_at_most_50_anomalies():
    check = FakeCheck([Anomaly("x", f"d{i}") for i in range(53)])
    lines = report_common.verdict_lines(check)
    assert lines[0] == "anomalies: 53"
    assert lines[1:3] == ["  x: d0", "  x: d1"]
    assert lines[-2:] == ["  ... 3 more in check.json", "RESULT: ANOMALIES FOUND"]
    assert report_common.verdict_lines(FakeCheck())[-1] == "RESULT: OK"


def test_page_escapes_fault_details_and_has_every_section(tmp_path):
    fault = {"kind": "partition", "variant": "a<b", "detail": "x & y", "start": 1.0}
    fault |= {"end": None, "hosts": [1]}
    rr = FakeRun(tmp_path, FakeCheck(), [fault], {"operations": 3, "ok": 2})
    tl = report_common.Timeline(10.0, 100, left=70)
    tl.faults(rr.faults, 2, 20, 10.0)
    svg = tl.render()
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "partition/a&lt;b: x &amp; y (1.0-10.0s)" in svg  # open fault: lasts to the end
    page = report_common.page(rr, ("t", "h"), svg, "summary <1>", "<h2>More</h2>")
    for part in ("<title>t</title>", "<h1>h</h1>", "OK: no anomalies", "<h2>Summary</h2>"):
        assert part in page
    assert "summary &lt;1&gt;" in page and "<td>x &amp; y</td>" in page
    assert page.index("<h2>Faults</h2>") < page.index("<h2>More</h2>")
    assert report_common.run_lines(rr)[:2] == [
        "faults injected: 1 partition/a<b 1",
        "operations: 3 invoked, 2 ok",
    ]
    report_common.write(rr, "summary", page, {"extra.json": [1]})
    assert (tmp_path / "report.html").read_text() == page
    assert (tmp_path / "report.txt").read_text() == "summary\n"
    assert json.loads((tmp_path / "extra.json").read_text()) == [1]
