"""The cluster run's report: text summary and one self-contained HTML page.

The timeline shows, per host, the faults; then which host's master and marathon
acted as leader (from their own logs); then the requests per second by outcome and
the tasks Marathon reported running — so a reader sees at a glance whether the apps
survived each fault and how long leadership was vacant. What both workloads'
reports share is in :mod:`paddock.chaos.report_common`.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from paddock.chaos import report_common as common

if TYPE_CHECKING:
    from paddock.chaos.runner_cluster import ClusterRunResult

TASKS_COLOUR = "#1565c0"


def text(rr: ClusterRunResult) -> str:
    fig, chk = rr.figures, rr.check
    lines = [
        f"chaos run (cluster workload): {fig['hosts']} hosts, {fig['time']}s, seed {fig['seed']}",
        f"placement: keeper+master+marathon on hosts {fig['masters']}, agents on {fig['agents']}",
        *common.run_lines(rr),
        f"samples: {chk.samples} (each: /v2/tasks and every agent's /state); "
        f"{chk.tasks_seen} task ids reported RUNNING by Marathon",
        "leadership intervals (from the daemons' logs): "
        + ", ".join(f"{k} {n}" for k, n in fig.get("leader_changes", {}).items()),
    ]
    exits = fig.get("daemon_exits") or []
    by_daemon = sorted(common.count(e["daemon"] for e in exits).items())
    lines.append(
        f"daemons that exited on their own (restarted, as a supervisor would): {len(exits)} "
        + ", ".join(f"{k} {n}" for k, n in by_daemon)
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
    return "\n".join(lines + common.verdict_lines(chk))


def svg(rr: ClusterRunResult, history: list[dict[str, Any]], samples: list[dict[str, Any]]) -> str:
    """Faults per host; the acting master and marathon leaders; requests/s and
    running tasks — to the end of convergence, with a line where faults stop."""
    duration = float(rr.figures["time"])
    end = max([duration, *(s["t"] / 1e9 for s in samples)])
    hosts = int(rr.figures["hosts"])
    row, tp_h = common.Timeline.ROW, 120
    top_f = 20
    top_l = top_f + hosts * row + 30
    top_t = top_l + 2 * row + 30
    tl = common.Timeline(end, top_t + tp_h + 40, left=90)
    tl.grid(top_f, top_t + tp_h)
    x_stop = tl.x(duration)
    tl.parts.append(
        f'<line x1="{x_stop:.1f}" y1="{top_f}" x2="{x_stop:.1f}" y2="{top_t + tp_h}" '
        f'stroke="#000" stroke-dasharray="4,3"><title>faults stop</title></line>'
    )
    tl.faults(rr.faults, hosts, top_f, duration)
    tl.heading(top_l, "acting leader (colour = host)")
    for r, kind in enumerate(("master", "marathon")):
        y = top_l + r * row
        tl.label(y, kind)
        for iv in rr.check.leader_intervals:
            if iv.kind == kind:
                colour = common.LEADER_COLOURS[(iv.host - 1) % len(common.LEADER_COLOURS)]
                title = f"{kind} h{iv.host} {iv.start:.1f}-{iv.end:.1f}s"
                tl.bar((iv.start, iv.end), y + 3, row - 6, colour, title)
    series = common.throughput(history, end)
    running = [
        (s["t"] / 1e9, sum(1 for t in s["tasks"] if t["state"] == "TASK_RUNNING"))
        for s in samples
        if s.get("tasks") is not None
    ]
    peak = max([1, *(v for vs in series.values() for v in vs), *(r for _t, r in running)])
    tl.heading(top_t, f"requests/s by outcome; tasks running (Marathon), peak {peak}")
    tl.outcomes(series, (top_t, tp_h, peak), width="1")
    tl.curve(running, (top_t, tp_h, peak), stroke=TASKS_COLOUR, width="1.5")
    tl.legend(top_t + 10, [*common.OUTCOME_COLOURS, ("tasks", TASKS_COLOUR)], spacing=45)
    return tl.render()


def operation_rows(history: list[dict[str, Any]]) -> str:
    """One row per request: when invoked and completed, what, and its outcome."""
    done: dict[int, dict[str, Any]] = {e["op"]: e for e in history if e["type"] != "invoke"}
    return "".join(
        f"<tr><td>{e['t'] / 1e9:.2f}</td>"
        f"<td>{'' if e['op'] not in done else format(done[e['op']]['t'] / 1e9, '.2f')}</td>"
        f"<td>{html.escape(e['f'])}</td><td>{html.escape(e['app'])}</td>"
        f"<td>{'' if e['value'] is None else e['value']}</td>"
        f"<td>{html.escape(done.get(e['op'], {}).get('type', 'info'))}</td>"
        f"<td>{html.escape(str(done.get(e['op'], {}).get('detail', 'no answer'))[:80])}</td></tr>"
        for e in history
        if e["type"] == "invoke"
    )


def page(rr: ClusterRunResult, history: list[dict[str, Any]], samples: list[dict[str, Any]]) -> str:
    headers = ("invoked s", "completed s", "op", "app", "instances", "outcome", "detail")
    ops = "<h2>Operations</h2>" + common.table(headers, operation_rows(history))
    names = ("paddock chaos run (cluster)", "paddock chaos run: cluster workload")
    return common.page(rr, names, svg(rr, history, samples), text(rr), ops)


def write(
    rr: ClusterRunResult, history: list[dict[str, Any]], samples: list[dict[str, Any]]
) -> None:
    common.write(rr, text(rr), page(rr, history, samples))
