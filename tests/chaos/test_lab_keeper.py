"""A short chaos run: keeper on 3 network-namespace hosts under partitions,
kill -9, pauses and slow links for 30 s — zero anomalies, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from paddock.chaos.hosts import (
    PREFIX,
    Lab,
    connect_in_namespace,
    list_namespaces,
    socket_in_namespace,
    unavailable_reason,
)
from paddock.chaos.runner import RunConfig, run

_reason = unavailable_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")


def _reaches(lab, port):
    try:
        connect_in_namespace(lab.ns(1), (lab.address(2), port), 1.0).close()
        return True
    except OSError:
        return False


def test_lab_hosts_reach_each_other_and_partitions_cut():
    with Lab(2) as lab:
        listener = socket_in_namespace(lab.ns(2))
        try:
            listener.bind((lab.address(2), 0))
            listener.listen(8)
            port = listener.getsockname()[1]
            assert _reaches(lab, port)
            lab.partition([[1], [2]])
            assert not _reaches(lab, port)
            lab.heal()
            assert _reaches(lab, port)
            lab.drop_from(1, [2])  # one way: 2 does not hear 1's answers
            assert not _reaches(lab, port)
            lab.heal()
            assert "tbf" in lab.slow(2, 50, 10, 5.0) or "netem" in lab.slow(2, 50, 10, 5.0)
            lab.heal()
            assert _reaches(lab, port)
        finally:
            listener.close()
        assert lab.ns(1) in list_namespaces()
    assert not list_namespaces(lab.prefix + "-")


@pytest.mark.timeout(240)
def test_short_keeper_run_has_no_anomalies(tmp_path):
    res = run(RunConfig(hosts=3, time=30, seed=11, out=tmp_path / "run", quiet=True))
    assert res.check.ok, res.check.anomalies[:10]
    assert res.figures["faults"] >= 3
    assert res.figures["leader_links_s"] is not None  # the leader's links were checked, all up
    assert res.figures["ok"] > 500
    assert res.check.creates_acknowledged > 0
    assert res.check.creates_found >= res.check.creates_acknowledged
    assert (tmp_path / "run" / "report.html").read_text().count("<svg") == 1
    assert not list_namespaces(f"{PREFIX}{os.getpid()}-")
    assert "<svg" in (tmp_path / "run" / "report.html").read_text()


@pytest.mark.timeout(120)
def test_sigterm_mid_run_removes_every_namespace_and_process(tmp_path):
    argv = [sys.executable, "-m", "paddock.cli.main", "chaos", "run", "--hosts", "2"]
    argv += ["--time", "60", "--seed", "5", "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        for line in proc.stdout:
            if "workload started" in line or time.monotonic() > deadline:
                break
        mine = f"{PREFIX}{proc.pid}-"
        assert list_namespaces(mine), "the lab should be up"
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, rest
    assert "interrupted" in rest
    assert not list_namespaces(mine)
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert left.stdout.strip() == ""
