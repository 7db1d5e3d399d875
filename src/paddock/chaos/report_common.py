"""What the keeper run's and the cluster run's reports share.

Both reports are a text summary and one self-contained HTML page with an inline
SVG timeline (faults per host, who led, operations per second), so a reader can
attach the page to an issue or archive it with the run and still see at a
glance when each fault hit and what it did. The workloads differ in what they
check and who leads; the page skeleton, the timeline's axes, fault rows, curves
and legends, and the summary's fault/operation/anomaly lines are the same and
live here, so the two pages cannot drift apart.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from paddock.chaos.checker import Anomaly

FAULT_COLOURS = {
    "partition": "#e4572e",
    "kill": "#6a4c93",
    "pause": "#f3a712",
    "slow": "#29a3a3",
}
LEADER_COLOURS = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
OUTCOME_COLOURS = (("ok", "#2e7d32"), ("fail", "#f9a825"), ("info", "#c62828"))
SHOWN_ANOMALIES = 50
_STYLE = (
    "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
    "pre{background:#f5f5f5;padding:1em}</style>"
)


class Check(Protocol):
    """What a report reads of a checker's result."""

    @property
    def anomalies(self) -> Sequence[Anomaly]: ...
    @property
    def counts(self) -> Mapping[str, Mapping[str, int]]: ...
    @property
    def ok(self) -> bool: ...
    def to_json(self) -> dict[str, Any]: ...


class Run(Protocol):
    """What a report reads of a finished run (keeper or cluster workload)."""

    @property
    def out(self) -> Path: ...
    @property
    def check(self) -> Check: ...
    @property
    def faults(self) -> list[dict[str, Any]]: ...
    @property
    def figures(self) -> dict[str, Any]: ...
    @property
    def ok(self) -> bool: ...


# ------------------------------------------------------------------ text


def count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for i in items:
        out[i] += 1
    return dict(out)


def run_lines(rr: Run) -> list[str]:
    """The faults injected, the operations invoked and their outcomes by type."""
    fig, faults = rr.figures, rr.faults
    kinds = count(f"{f['kind']}/{f['variant']}" for f in faults)
    lines = [
        f"faults injected: {len(faults)} "
        + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
        f"operations: {fig['operations']} invoked, {fig['ok']} ok",
    ]
    for f, c in sorted(rr.check.counts.items()):
        lines.append(f"  {f:10s} " + " ".join(f"{t}={n}" for t, n in sorted(c.items())))
    return lines


def verdict_lines(check: Check) -> list[str]:
    """The anomalies (the first :data:`SHOWN_ANOMALIES`) and the result line."""
    anomalies = check.anomalies
    lines = [f"anomalies: {len(anomalies)}"]
    lines += [f"  {a.kind}: {a.detail}" for a in anomalies[:SHOWN_ANOMALIES]]
    if len(anomalies) > SHOWN_ANOMALIES:
        lines.append(f"  ... {len(anomalies) - SHOWN_ANOMALIES} more in check.json")
    lines.append("RESULT: " + ("OK" if check.ok else "ANOMALIES FOUND"))
    return lines


# ------------------------------------------------------------------ SVG timeline


def throughput(events: list[dict[str, Any]], duration: float) -> dict[str, list[int]]:
    """Completions per second by type (ok/fail/info)."""
    n = max(1, int(duration) + 1)
    series = {t: [0] * n for t in ("ok", "fail", "info")}
    for ev in events:
        if ev["type"] in series:
            i = int(ev["t"] / 1e9)
            if 0 <= i < n:
                series[ev["type"]][i] += 1
    return series


class Timeline:
    """One SVG timeline whose x axis is the run's time, 0 to ``end`` seconds.

    Sections are stacked rows of bars (faults, leaders) and a plot of curves;
    the caller lays them out (their tops) and adds what only its workload has.
    """

    ROW = 18
    WIDTH = 900
    RIGHT = 20

    def __init__(self, end: float, height: int, left: int) -> None:
        self.end = end
        self.left = left
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.WIDTH}" height="{height}" '
            f'font-family="sans-serif" font-size="11">'
        ]

    def x(self, t: float) -> float:
        span = self.WIDTH - self.left - self.RIGHT
        return self.left + span * max(0.0, min(t, self.end)) / max(self.end, 1e-9)

    def grid(self, top: int, bottom: int) -> None:
        """A vertical line and a label every 5/30/120 s (by the run's length)."""
        step = 5 if self.end <= 60 else 30 if self.end <= 600 else 120
        t = 0.0
        while t <= self.end:
            self.parts.append(
                f'<line x1="{self.x(t):.1f}" y1="{top}" x2="{self.x(t):.1f}" y2="{bottom}" '
                f'stroke="#eee"/><text x="{self.x(t):.1f}" y="{bottom + 14}" '
                f'text-anchor="middle">{t:.0f}s</text>'
            )
            t += step

    def heading(self, top: int, text: str) -> None:
        self.parts.append(f'<text x="4" y="{top - 6}" font-weight="bold">{text}</text>')

    def label(self, y: int, text: str) -> None:
        """The name of the row whose top is ``y``."""
        self.parts.append(f'<text x="4" y="{y + 12}">{text}</text>')

    def bar(
        self,
        span: tuple[float, float],
        y: int,
        height: int,
        fill: str,
        title: str,
        *,
        min_width: float = 1.0,
        opacity: str | None = None,
    ) -> None:
        """A bar over ``span`` (start, end in s) at least ``min_width`` px wide."""
        start, end = span
        width = max(min_width, self.x(end) - self.x(start))
        extra = f' opacity="{opacity}"' if opacity is not None else ""
        self.parts.append(
            f'<rect x="{self.x(start):.1f}" y="{y}" width="{width:.1f}" height="{height}" '
            f'fill="{fill}"{extra}><title>{html.escape(title)}</title></rect>'
        )

    def faults(self, faults: list[dict[str, Any]], hosts: int, top: int, duration: float) -> None:
        """One row per host; a fault still on at the end lasts to ``duration``."""
        self.heading(top, "faults (per host)")
        for h in range(1, hosts + 1):
            self.label(top + (h - 1) * self.ROW, f"h{h}")
        for f in faults:
            end = f["end"] if f["end"] is not None else duration
            colour = FAULT_COLOURS.get(f["kind"], "#999")
            title = f"{f['kind']}/{f['variant']}: {f['detail']} ({f['start']:.1f}-{end:.1f}s)"
            for h in f["hosts"] or list(range(1, hosts + 1)):
                y = top + (h - 1) * self.ROW
                self.bar((f["start"], end), y + 2, self.ROW - 4, colour, title, opacity="0.8")

    def curve(
        self, points: Iterable[tuple[float, float]], plot: tuple[int, int, float], **line: str
    ) -> None:
        """A polyline of (time, value); ``plot`` is (top, height, peak value)."""
        top, height, peak = plot
        pts = " ".join(f"{self.x(t):.1f},{top + height - height * v / peak:.1f}" for t, v in points)
        self.parts.append(
            f'<polyline points="{pts}" fill="none" stroke="{line["stroke"]}" '
            f'stroke-width="{line["width"]}"/>'
        )

    def outcomes(
        self, series: dict[str, list[int]], plot: tuple[int, int, float], width: str
    ) -> None:
        """The per-second curves of :func:`throughput`, one per outcome."""
        for name, colour in OUTCOME_COLOURS:
            points = ((i + 0.5, v) for i, v in enumerate(series[name]))
            self.curve(points, plot, stroke=colour, width=width)

    def legend(self, y: int, items: Iterable[tuple[str, str]], spacing: int) -> None:
        """Coloured names (``items``: name, colour) in a line from the left edge."""
        lx = self.left
        for name, colour in items:
            self.parts.append(f'<text x="{lx}" y="{y}" fill="{colour}">{name}</text>')
            lx += spacing

    def render(self) -> str:
        """The SVG, with the fault colours' key at its top."""
        lx = self.left + 200
        for kind, colour in FAULT_COLOURS.items():
            self.parts.append(f'<rect x="{lx}" y="4" width="10" height="10" fill="{colour}"/>')
            self.parts.append(f'<text x="{lx + 14}" y="13">{kind}</text>')
            lx += 80
        return "".join([*self.parts, "</svg>"])


# ------------------------------------------------------------------ HTML page


def table(headers: Sequence[str], rows: str) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    return f"<table><tr>{head}</tr>{rows}</table>"


def fault_rows(faults: list[dict[str, Any]]) -> str:
    return "".join(
        f"<tr><td>{f['start']:.1f}</td>"
        f"<td>{'' if f['end'] is None else format(f['end'], '.1f')}</td>"
        f"<td>{html.escape(f['kind'])}/{html.escape(f['variant'])}</td>"
        f"<td>{html.escape(f['detail'])}</td></tr>"
        for f in faults
    )


def page(rr: Run, names: tuple[str, str], svg: str, summary: str, more: str = "") -> str:
    """The page: ``names`` (title, heading), verdict, timeline, summary, faults, ``more``."""
    title, heading = names
    verdict = "OK: no anomalies" if rr.ok else f"{len(rr.check.anomalies)} ANOMALIES"
    colour = "#2e7d32" if rr.ok else "#c62828"
    faults = table(("start s", "end s", "fault", "detail"), fault_rows(rr.faults))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>{_STYLE}"
        f"</head><body><h1>{heading}</h1><p style='color:{colour};font-weight:bold'>{verdict}</p>"
        f"{svg}<h2>Summary</h2><pre>{html.escape(summary)}</pre><h2>Faults</h2>{faults}"
        f"{more}</body></html>"
    )


def write(rr: Run, summary: str, page_html: str, more: Mapping[str, Any] | None = None) -> None:
    """The run's files in ``rr.out``: check/faults/figures JSON (+ ``more``), reports."""
    out = rr.out
    (out / "check.json").write_text(json.dumps(rr.check.to_json(), indent=1))
    (out / "faults.json").write_text(json.dumps(rr.faults, indent=1))
    for name, value in (more or {}).items():
        (out / name).write_text(json.dumps(value))
    (out / "figures.json").write_text(json.dumps(rr.figures, indent=1))
    (out / "report.txt").write_text(summary + "\n")
    (out / "report.html").write_text(page_html)
