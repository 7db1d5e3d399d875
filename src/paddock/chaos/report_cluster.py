"""The cluster run's report: text summary and one self-contained HTML page.

The timeline shows, per host, the faults; then which host's master and marathon
acted as leader (from their own logs); then the requests per second by outcome and
the tasks Marathon reported running — so a reader sees at a glance whether the apps
survived each fault and how long leadership was vacant.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from paddock.chaos.report import _COLOURS, _LEADER_COLOURS, _count

if TYPE_CHECKING:
    from paddock.chaos.runner_cluster import ClusterRunResult


def text(rr: ClusterRunResult) -> str:
    fig, chk = rr.figures, rr.check
    lines = [
        f"chaos run (cluster workload): {fig['hosts']} hosts, {fig['time']}s, seed {fig['seed']}",
        f"placement: keeper+master+marathon on hosts {fig['masters']}, agents on {fig['agents']}",
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
        f"samples: {chk.samples} (each: /v2/tasks and every agent's /state); "
        f"{chk.tasks_seen} task ids reported RUNNING by Marathon"
    )
    lines.append(
        "leadership intervals (from the daemons' logs): "
        + ", ".join(f"{k} {n}" for k, n in fig.get("leader_changes", {}).items())
    )
    exits = fig.get("daemon_exits") or []
    lines.append(
        f"daemons that exited on their own (restarted, as a supervisor would): {len(exits)} "
        + ", ".join(f"{k} {n}" for k, n in sorted(_count(e["daemon"] for e in exits).items()))
    )
    if fig.get("after_fault_max_s") is not None:
        lines.append(
            f"after each fault, the next acknowledged request: median "
            f"{fig['after_fault_median_s']}s, max {fig['after_fault_max_s']}s; longest time "
            f"without an acknowledged request: {fig['longest_gap_s']}s"
        )
    rec = fig.get("recovery_s")
    lines.append(
        "converged after the faults stopped: "
        + (f"{rec}s" if rec is not None else "DID NOT CONVERGE")
    )
    lines.append(f"anomalies: {len(chk.anomalies)}")
    for a in chk.anomalies[:50]:
        lines.append(f"  {a.kind}: {a.detail}")
    if len(chk.anomalies) > 50:
        lines.append(f"  ... {len(chk.anomalies) - 50} more in check.json")
    lines.append("RESULT: " + ("OK" if chk.ok else "ANOMALIES FOUND"))
    return "\n".join(lines)


def svg(rr: ClusterRunResult, history: list[dict[str, Any]], samples: list[dict[str, Any]]) -> str:
    duration = float(rr.figures["time"])
    end = max([duration, *(s["t"] / 1e9 for s in samples)])
    hosts = int(rr.figures["hosts"])
    w, left, right, row = 900, 90, 20, 18
    top_f = 20
    top_l = top_f + hosts * row + 30
    top_t = top_l + 2 * row + 30
    tp_h = 120
    height = top_t + tp_h + 40

    def x(t: float) -> float:
        return left + (w - left - right) * max(0.0, min(t, end)) / max(end, 1e-9)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" '
        f'font-family="sans-serif" font-size="11">'
    ]
    step = 5 if end <= 60 else 30 if end <= 600 else 120
    t = 0.0
    while t <= end:
        parts.append(
            f'<line x1="{x(t):.1f}" y1="{top_f}" x2="{x(t):.1f}" y2="{top_t + tp_h}" '
            f'stroke="#eee"/><text x="{x(t):.1f}" y="{top_t + tp_h + 14}" '
            f'text-anchor="middle">{t:.0f}s</text>'
        )
        t += step
    parts.append(
        f'<line x1="{x(duration):.1f}" y1="{top_f}" x2="{x(duration):.1f}" '
        f'y2="{top_t + tp_h}" stroke="#000" stroke-dasharray="4,3"><title>faults stop'
        "</title></line>"
    )
    parts.append(f'<text x="4" y="{top_f - 6}" font-weight="bold">faults (per host)</text>')
    for h in range(1, hosts + 1):
        parts.append(f'<text x="4" y="{top_f + (h - 1) * row + 12}">h{h}</text>')
    for f in rr.faults:
        fend = f["end"] if f["end"] is not None else duration
        colour = _COLOURS.get(f["kind"], "#999")
        title = html.escape(
            f"{f['kind']}/{f['variant']}: {f['detail']} ({f['start']:.1f}-{fend:.1f}s)"
        )
        for h in f["hosts"] or list(range(1, hosts + 1)):
            y = top_f + (h - 1) * row
            parts.append(
                f'<rect x="{x(f["start"]):.1f}" y="{y + 2}" '
                f'width="{max(1.0, x(fend) - x(f["start"])):.1f}" height="{row - 4}" '
                f'fill="{colour}" opacity="0.8"><title>{title}</title></rect>'
            )
    parts.append(
        f'<text x="4" y="{top_l - 6}" font-weight="bold">acting leader (colour = host)</text>'
    )
    for r, kind in enumerate(("master", "marathon")):
        y = top_l + r * row
        parts.append(f'<text x="4" y="{y + 12}">{kind}</text>')
        for iv in rr.check.leader_intervals:
            if iv.kind != kind:
                continue
            colour = _LEADER_COLOURS[(iv.host - 1) % len(_LEADER_COLOURS)]
            parts.append(
                f'<rect x="{x(iv.start):.1f}" y="{y + 3}" '
                f'width="{max(1.0, x(iv.end) - x(iv.start)):.1f}" height="{row - 6}" '
                f'fill="{colour}"><title>{kind} h{iv.host} {iv.start:.1f}-{iv.end:.1f}s'
                "</title></rect>"
            )
    n = max(1, int(end) + 1)
    series: dict[str, list[int]] = {k: [0] * n for k in ("ok", "fail", "info")}
    for ev in history:
        i = int(ev["t"] / 1e9)
        if ev["type"] in series and 0 <= i < n:
            series[ev["type"]][i] += 1
    running = [
        (s["t"] / 1e9, sum(1 for t in s["tasks"] if t["state"] == "TASK_RUNNING"))
        for s in samples
        if s.get("tasks") is not None
    ]
    peak = max([1, *(v for vs in series.values() for v in vs), *(r for _t, r in running)])
    parts.append(
        f'<text x="4" y="{top_t - 6}" font-weight="bold">requests/s by outcome; '
        f"tasks running (Marathon), peak {peak}</text>"
    )
    for name, colour in (("ok", "#2e7d32"), ("fail", "#f9a825"), ("info", "#c62828")):
        pts = " ".join(
            f"{x(i + 0.5):.1f},{top_t + tp_h - tp_h * v / peak:.1f}"
            for i, v in enumerate(series[name])
        )
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1"/>')
    pts = " ".join(f"{x(t):.1f},{top_t + tp_h - tp_h * v / peak:.1f}" for t, v in running)
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#1565c0" stroke-width="1.5"/>')
    lx = left
    for name, colour in (("ok", "#2e7d32"), ("fail", "#f9a825"), ("info", "#c62828"),
                         ("tasks", "#1565c0")):  # fmt: skip
        parts.append(f'<text x="{lx}" y="{top_t + 10}" fill="{colour}">{name}</text>')
        lx += 45
    lx = left + 200
    for kind, colour in _COLOURS.items():
        parts.append(f'<rect x="{lx}" y="4" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 14}" y="13">{kind}</text>')
        lx += 80
    parts.append("</svg>")
    return "".join(parts)


def page(rr: ClusterRunResult, history: list[dict[str, Any]], samples: list[dict[str, Any]]) -> str:
    verdict = "OK: no anomalies" if rr.ok else f"{len(rr.check.anomalies)} ANOMALIES"
    colour = "#2e7d32" if rr.ok else "#c62828"
    faults = "".join(
        f"<tr><td>{f['start']:.1f}</td>"
        f"<td>{'' if f['end'] is None else format(f['end'], '.1f')}</td>"
        f"<td>{html.escape(f['kind'])}/{html.escape(f['variant'])}</td>"
        f"<td>{html.escape(f['detail'])}</td></tr>"
        for f in rr.faults
    )
    done: dict[int, dict[str, Any]] = {e["op"]: e for e in history if e["type"] != "invoke"}
    ops = "".join(
        f"<tr><td>{e['t'] / 1e9:.2f}</td>"
        f"<td>{'' if e['op'] not in done else format(done[e['op']]['t'] / 1e9, '.2f')}</td>"
        f"<td>{html.escape(e['f'])}</td><td>{html.escape(e['app'])}</td>"
        f"<td>{'' if e['value'] is None else e['value']}</td>"
        f"<td>{html.escape(done.get(e['op'], {}).get('type', 'info'))}</td>"
        f"<td>{html.escape(str(done.get(e['op'], {}).get('detail', 'no answer'))[:80])}</td></tr>"
        for e in history
        if e["type"] == "invoke"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>paddock chaos run (cluster)"
        "</title><style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;"
        "text-align:left}pre{background:#f5f5f5;padding:1em}</style></head><body>"
        f"<h1>paddock chaos run: cluster workload</h1>"
        f"<p style='color:{colour};font-weight:bold'>{verdict}</p>"
        f"{svg(rr, history, samples)}<h2>Summary</h2><pre>{html.escape(text(rr))}</pre>"
        "<h2>Faults</h2><table><tr><th>start s</th><th>end s</th><th>fault</th>"
        f"<th>detail</th></tr>{faults}</table>"
        "<h2>Operations</h2><table><tr><th>invoked s</th><th>completed s</th><th>op</th>"
        f"<th>app</th><th>instances</th><th>outcome</th><th>detail</th></tr>{ops}</table>"
        "</body></html>"
    )


def write(
    rr: ClusterRunResult, history: list[dict[str, Any]], samples: list[dict[str, Any]]
) -> None:
    out = rr.out
    (out / "check.json").write_text(json.dumps(rr.check.to_json(), indent=1))
    (out / "faults.json").write_text(json.dumps(rr.faults, indent=1))
    (out / "figures.json").write_text(json.dumps(rr.figures, indent=1))
    (out / "report.txt").write_text(text(rr) + "\n")
    (out / "report.html").write_text(page(rr, history, samples))
