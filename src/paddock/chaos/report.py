"""The run's report: a text summary and one self-contained HTML page.

Why an HTML page with an inline SVG: a reader should see at a glance when each
fault hit, who led, and what happened to throughput — without any external
asset, so the page can be attached to an issue or archived with the run.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paddock.chaos.runner import RunResult

_COLOURS = {
    "partition": "#e4572e",
    "kill": "#6a4c93",
    "pause": "#f3a712",
    "slow": "#29a3a3",
}
_LEADER_COLOURS = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def text(rr: RunResult) -> str:
    fig, chk = rr.figures, rr.check
    lines = [
        f"chaos run: {fig['hosts']} hosts, {fig['time']}s, seed {fig['seed']}",
        f"faults injected: {len(rr.faults)} "
        + ", ".join(
            f"{k} {n}"
            for k, n in sorted(_count(f"{f['kind']}/{f['variant']}" for f in rr.faults).items())
        ),
        f"operations: {fig['operations']} invoked, {fig['ok']} ok",
    ]
    for f, c in sorted(chk.counts.items()):
        lines.append(f"  {f:10s} " + " ".join(f"{t}={n}" for t, n in sorted(c.items())))
    lines.append(
        f"linearizability: {chk.registers_checked} registers, {chk.linearizable_ops} "
        f"write/cas/final-read operations, {chk.search_steps} search steps"
    )
    lines.append(
        f"sequential creates: {chk.creates_acknowledged} acknowledged, "
        f"{chk.creates_found} found at the end"
    )
    rec = fig.get("recovery_s")
    lines.append(
        "recovery after the last fault: " + (f"{rec}s" if rec is not None else "DID NOT RECOVER")
    )
    if fig.get("longest_gap_s") is not None:
        lines.append(f"longest time without an acknowledged operation: {fig['longest_gap_s']}s")
    lines.append(f"anomalies: {len(chk.anomalies)}")
    for a in chk.anomalies[:50]:
        lines.append(f"  {a.kind}: {a.detail}")
    if len(chk.anomalies) > 50:
        lines.append(f"  ... {len(chk.anomalies) - 50} more in check.json")
    lines.append("RESULT: " + ("OK" if chk.ok else "ANOMALIES FOUND"))
    return "\n".join(lines)


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for i in items:
        out[i] += 1
    return dict(out)


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


def svg(rr: RunResult, events: list[dict[str, Any]]) -> str:
    duration = float(rr.figures["time"])
    hosts = int(rr.figures["hosts"])
    w, left, right = 900, 70, 20
    row = 18
    fault_h = hosts * row
    tp_h = 140
    top_f, top_l = 20, 20 + fault_h + 30
    top_t = top_l + hosts * row + 30
    height = top_t + tp_h + 40

    def x(t: float) -> float:
        return left + (w - left - right) * max(0.0, min(t, duration)) / max(duration, 1e-9)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" '
        f'font-family="sans-serif" font-size="11">'
    ]
    # time axis grid
    step = 5 if duration <= 60 else 30 if duration <= 600 else 120
    t = 0.0
    while t <= duration:
        parts.append(
            f'<line x1="{x(t):.1f}" y1="{top_f}" x2="{x(t):.1f}" y2="{top_t + tp_h}" '
            f'stroke="#eee"/><text x="{x(t):.1f}" y="{top_t + tp_h + 14}" '
            f'text-anchor="middle">{t:.0f}s</text>'
        )
        t += step
    parts.append(f'<text x="4" y="{top_f - 6}" font-weight="bold">faults (per host)</text>')
    for h in range(1, hosts + 1):
        y = top_f + (h - 1) * row
        parts.append(f'<text x="4" y="{y + 12}">h{h}</text>')
    for f in rr.faults:
        end = f["end"] if f["end"] is not None else duration
        colour = _COLOURS.get(f["kind"], "#999")
        title = html.escape(
            f"{f['kind']}/{f['variant']}: {f['detail']} ({f['start']:.1f}-{end:.1f}s)"
        )
        targets = f["hosts"] or list(range(1, hosts + 1))
        for h in targets:
            y = top_f + (h - 1) * row
            parts.append(
                f'<rect x="{x(f["start"]):.1f}" y="{y + 2}" '
                f'width="{max(1.0, x(end) - x(f["start"])):.1f}" '
                f'height="{row - 4}" fill="{colour}" opacity="0.8"><title>{title}</title></rect>'
            )
    parts.append(
        f'<text x="4" y="{top_l - 6}" font-weight="bold">keeper mode (leader = filled)</text>'
    )
    for h in range(1, hosts + 1):
        y = top_l + (h - 1) * row
        parts.append(f'<text x="4" y="{y + 12}">h{h}</text>')
    for s in rr.leaders:
        for hs, mode in s["modes"].items():
            h = int(hs)
            y = top_l + (h - 1) * row
            fill = {
                "leader": _LEADER_COLOURS[(h - 1) % len(_LEADER_COLOURS)],
                "follower": "#cfd8dc",
                "down": "#222",
            }.get(mode, "#ffcc80")
            parts.append(
                f'<rect x="{x(s["t"]):.1f}" y="{y + 3}" '
                f'width="{max(2.0, x(s["t"] + 1) - x(s["t"])):.1f}" '
                f'height="{row - 6}" fill="{fill}"><title>h{h} {html.escape(mode)} '
                f"at {s['t']:.1f}s</title></rect>"
            )
    series = throughput(events, duration)
    peak = max([1, *series["ok"], *series["info"], *series["fail"]])
    parts.append(
        f'<text x="4" y="{top_t - 6}" font-weight="bold">operations/s (peak {peak})</text>'
    )
    for name, colour in (("ok", "#2e7d32"), ("fail", "#f9a825"), ("info", "#c62828")):
        pts = " ".join(
            f"{x(i + 0.5):.1f},{top_t + tp_h - tp_h * v / peak:.1f}"
            for i, v in enumerate(series[name])
        )
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    lx = left
    for name, colour in (("ok", "#2e7d32"), ("fail", "#f9a825"), ("info", "#c62828")):
        parts.append(f'<text x="{lx}" y="{top_t + 10}" fill="{colour}">{name}</text>')
        lx += 40
    lx = left + 200
    for kind, colour in _COLOURS.items():
        parts.append(f'<rect x="{lx}" y="4" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 14}" y="13">{kind}</text>')
        lx += 80
    parts.append("</svg>")
    return "".join(parts)


def page(rr: RunResult, events: list[dict[str, Any]]) -> str:
    verdict = "OK: no anomalies" if rr.ok else f"{len(rr.check.anomalies)} ANOMALIES"
    colour = "#2e7d32" if rr.ok else "#c62828"
    rows = "".join(
        f"<tr><td>{f['start']:.1f}</td>"
        f"<td>{'' if f['end'] is None else format(f['end'], '.1f')}</td>"
        f"<td>{html.escape(f['kind'])}/{html.escape(f['variant'])}</td>"
        f"<td>{html.escape(f['detail'])}</td></tr>"
        for f in rr.faults
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>paddock chaos run</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
        "pre{background:#f5f5f5;padding:1em}</style></head><body>"
        f"<h1>paddock chaos run</h1><p style='color:{colour};font-weight:bold'>{verdict}</p>"
        f"{svg(rr, events)}<h2>Summary</h2><pre>{html.escape(text(rr))}</pre>"
        "<h2>Faults</h2><table><tr><th>start s</th><th>end s</th>"
        "<th>fault</th><th>detail</th></tr>"
        f"{rows}</table></body></html>"
    )


def write(rr: RunResult, events: list[dict[str, Any]]) -> None:
    out = rr.out
    (out / "check.json").write_text(json.dumps(rr.check.to_json(), indent=1))
    (out / "faults.json").write_text(json.dumps(rr.faults, indent=1))
    (out / "leaders.json").write_text(json.dumps(rr.leaders))
    (out / "figures.json").write_text(json.dumps(rr.figures, indent=1))
    (out / "report.txt").write_text(text(rr) + "\n")
    (out / "report.html").write_text(page(rr, events))
