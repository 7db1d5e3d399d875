"""Differential test: one scripted kazoo workload, the same transcript on every server.

The transcript from real Apache ZooKeeper 3.8 is checked against the reviewed
golden copy in golden/differential.json (so a change of ZooKeeper or of the
workload is noticed), and keeper's transcript must equal ZooKeeper's, step by
step. Regenerate the golden file after a deliberate workload change with
``PADDOCK_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import KINDS, SUPER_DIGEST, start_or_skip
from .differential_workload import run_workload

GOLDEN = Path(__file__).parent / "golden" / "differential.json"


def _transcript(kind: str) -> list:
    ensemble = start_or_skip(kind, 3, super_digest=SUPER_DIGEST)
    try:
        return json.loads(json.dumps(run_workload(ensemble.hosts)))
    finally:
        ensemble.stop()


@pytest.fixture(scope="module")
def zookeeper_transcript() -> list:
    return _transcript("zookeeper")


def _first_difference(expected: list, actual: list) -> str:
    for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
        if e != a:
            return f"step {i}:\n  expected {e}\n  actual   {a}"
    return f"lengths differ: {len(expected)} vs {len(actual)}"


def test_zookeeper_matches_golden(zookeeper_transcript):
    if os.environ.get("PADDOCK_UPDATE_GOLDEN"):
        GOLDEN.write_text(
            "[\n"
            + ",\n".join(json.dumps(s, ensure_ascii=False) for s in zookeeper_transcript)
            + "\n]\n"
        )
    golden = json.loads(GOLDEN.read_text())
    assert zookeeper_transcript == golden, _first_difference(golden, zookeeper_transcript)


def test_zookeeper_is_deterministic(zookeeper_transcript):
    # The workload is only a useful oracle if a second run on a fresh ensemble agrees.
    assert _transcript("zookeeper") == zookeeper_transcript


@pytest.mark.skipif("keeper" not in KINDS, reason="PADDOCK_COMPAT_KINDS excludes keeper")
def test_keeper_matches_zookeeper(zookeeper_transcript):
    keeper = _transcript("keeper")
    assert keeper == zookeeper_transcript, _first_difference(zookeeper_transcript, keeper)
