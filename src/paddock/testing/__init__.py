"""Test harness for ZooKeeper-compatible servers.

Starts real Apache ZooKeeper (from Debian) or paddock's own keeper as standalone
servers or ensembles on loopback, so the compatibility suites and benchmarks can
run the same clients against both. See ``docs/compatibility.md``.
"""

from __future__ import annotations

from paddock.testing.ensemble import Ensemble, EnsembleError, Member
from paddock.testing.keeper import KeeperEnsemble, KeeperUnavailable, keeper_unavailable_reason
from paddock.testing.zookeeper import ZooKeeperEnsemble, zookeeper_unavailable_reason

__all__ = [
    "Ensemble",
    "EnsembleError",
    "KeeperEnsemble",
    "KeeperUnavailable",
    "Member",
    "ZooKeeperEnsemble",
    "keeper_unavailable_reason",
    "zk_ensemble",
    "zookeeper_unavailable_reason",
]


def zk_ensemble(kind: str = "zookeeper", size: int = 1, **options: object) -> Ensemble:
    """Start an ensemble of ``size`` servers of ``kind`` ("zookeeper" or "keeper").

    The returned object is already serving (every member answered); use it as a
    context manager or call ``stop()``. Options go to the ensemble class
    (``tick_ms``, ``super_digest``, ...).
    """
    ensemble: Ensemble
    if kind == "zookeeper":
        ensemble = ZooKeeperEnsemble(size=size, **options)  # type: ignore[arg-type]
    elif kind == "keeper":
        ensemble = KeeperEnsemble(size=size, **options)  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown ensemble kind {kind!r} (want 'zookeeper' or 'keeper')")
    try:
        ensemble.start()
    except BaseException:
        ensemble.stop()
        raise
    return ensemble
