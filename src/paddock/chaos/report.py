"""The keeper run's report: a text summary and one self-contained HTML page.

Why an HTML page with an inline SVG: a reader should see at a glance when each
fault hit, who led, and what happened to throughput — without any external
asset, so the page can be attached to an issue or archived with the run. What
both workloads' reports share is in :mod:`paddock.chaos.report_common`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paddock.chaos import report_common as common
from paddock.chaos.report_common import throughput

if TYPE_CHECKING:
    from paddock.chaos.runner import RunResult

__all__ = ["page", "svg", "text", "throughput", "write"]


def text(rr: RunResult) -> str:
    fig, chk = rr.figures, rr.check
    lines = [
        f"chaos run: {fig['hosts']} hosts, {fig['time']}s, seed {fig['seed']}",
        *common.run_lines(rr),
        f"linearizability: {chk.registers_checked} registers, {chk.linearizable_ops} "
        f"write/cas/final-read operations, {chk.search_steps} search steps",
        f"sequential creates: {chk.creates_acknowledged} acknowledged, "
        f"{chk.creates_found} found at the end",
    ]
    rec = fig.get("recovery_s")
    lines.append(
        "recovery after the last fault: " + (f"{rec}s" if rec is not None else "DID NOT RECOVER")
    )
    if fig.get("longest_gap_s") is not None:
        lines.append(f"longest time without an acknowledged operation: {fig['longest_gap_s']}s")
    return "\n".join(lines + common.verdict_lines(chk))


def svg(rr: RunResult, events: list[dict[str, Any]]) -> str:
    """Faults per host; each keeper's mode, sampled every second; operations/s."""
    duration = float(rr.figures["time"])
    hosts = int(rr.figures["hosts"])
    row, tp_h = common.Timeline.ROW, 140
    top_f = 20
    top_l = top_f + hosts * row + 30
    top_t = top_l + hosts * row + 30
    tl = common.Timeline(duration, top_t + tp_h + 40, left=70)
    tl.grid(top_f, top_t + tp_h)
    tl.faults(rr.faults, hosts, top_f, duration)
    tl.heading(top_l, "keeper mode (leader = filled)")
    for h in range(1, hosts + 1):
        tl.label(top_l + (h - 1) * row, f"h{h}")
    for s in rr.leaders:
        for hs, mode in s["modes"].items():
            h = int(hs)
            fill = {
                "leader": common.LEADER_COLOURS[(h - 1) % len(common.LEADER_COLOURS)],
                "follower": "#cfd8dc",
                "down": "#222",
            }.get(mode, "#ffcc80")
            y = top_l + (h - 1) * row
            title = f"h{h} {mode} at {s['t']:.1f}s"
            tl.bar((s["t"], s["t"] + 1), y + 3, row - 6, fill, title, min_width=2.0)
    series = throughput(events, duration)
    peak = max([1, *series["ok"], *series["info"], *series["fail"]])
    tl.heading(top_t, f"operations/s (peak {peak})")
    tl.outcomes(series, (top_t, tp_h, peak), width="1.5")
    tl.legend(top_t + 10, common.OUTCOME_COLOURS, spacing=40)
    return tl.render()


def page(rr: RunResult, events: list[dict[str, Any]]) -> str:
    names = ("paddock chaos run", "paddock chaos run")
    return common.page(rr, names, svg(rr, events), text(rr))


def write(rr: RunResult, events: list[dict[str, Any]]) -> None:
    common.write(rr, text(rr), page(rr, events), {"leaders.json": rr.leaders})
