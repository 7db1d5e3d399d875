"""A short chaos run of the cluster workload: keepers, masters, marathons and agents
on 3 network-namespace hosts, Marathon apps deployed, scaled and restarted under
partitions, kill -9, pauses and slow links — zero anomalies, nothing left behind."""

from __future__ import annotations

import os
import subprocess

import pytest

from paddock.chaos.cluster_procs import placement
from paddock.chaos.hosts import PREFIX, list_namespaces, unavailable_reason
from paddock.chaos.runner import RunConfig, run

_reason = unavailable_reason()


def test_placement_follows_the_ocf():
    assert placement(5) == ([1, 2, 3], [4, 5])
    assert placement(7) == ([1, 2, 3], [4, 5, 6, 7])
    assert placement(3) == ([1, 2, 3], [1, 2, 3])  # too few hosts: agents everywhere
    assert placement(4) == ([1, 2, 3], [1, 2, 3, 4])
    assert placement(2) == ([1], [1, 2])


@pytest.mark.skipif(_reason is not None, reason=_reason or "")
@pytest.mark.timeout(420)
def test_short_cluster_run_has_no_anomalies(tmp_path):
    out = tmp_path / "run"
    res = run(
        RunConfig(
            hosts=3, time=60, seed=3, out=out, workload="cluster", recovery_timeout=90, quiet=True
        )
    )
    assert res.check.ok, [a.detail for a in res.check.anomalies[:10]]
    assert res.figures["faults"] >= 5
    assert res.figures["ok"] >= 10  # requests acknowledged under faults
    assert res.check.tasks_seen > 0
    assert res.figures["recovery_s"] is not None
    assert res.figures["leader_changes"]["master"] >= 1
    assert res.figures["leader_changes"]["marathon"] >= 1
    assert "<svg" in (out / "report.html").read_text()
    # everything removed: no namespace of this process, no daemon or task left
    assert not list_namespaces(f"{PREFIX}{os.getpid()}-")
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert left.stdout.strip() == ""
    assert _running_in(tmp_path) == []  # tasks (sleep) run in sandboxes under tmp_path


def _running_in(path):
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if cwd.startswith(str(path)):
                found.append((pid, cwd))
    return found
