"""What the keeper run and the cluster run share: the run's log, bounded waits,
one ``try/finally`` around lab and processes, the fault phase, the histories.

Why one place: the guarantees of a run — everything it started is gone when it
ends, whatever happened (SIGTERM included), and every wait is bounded — must
hold for every workload, so they are written once (:func:`lab_session`,
:func:`wait_for`) rather than once per runner.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from paddock.chaos.cluster_procs import _die_with_parent
from paddock.chaos.nemesis import Cluster, Nemesis, plan

if TYPE_CHECKING:
    from paddock.chaos.hosts import Lab
    from paddock.chaos.runner import RunConfig


class LabCluster(Cluster, Protocol):
    """What a run needs of the processes it starts on the lab's hosts (the
    nemesis's faults, then healing them all, then stopping them)."""

    def heal(self) -> None: ...

    def stop_all(self) -> None: ...


class RunLog:
    """``run.log`` in the output directory, echoed to stdout unless quiet."""

    def __init__(self, out: Path, quiet: bool) -> None:
        self._file = open(out / "run.log", "a", buffering=1)  # noqa: SIM115 - see close()
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        self._file.write(msg + "\n")
        if not self.quiet:
            print(msg, flush=True)

    def close(self) -> None:
        self._file.close()


def wait_for(cond: Callable[[], Any], timeout: float, step: float = 0.25) -> bool:
    """Poll ``cond`` until it is true (True) or ``timeout`` s have passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output appended to ``log``; it dies with the runner."""
    with open(log, "ab") as f:
        return subprocess.Popen(
            argv, stdout=f, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )


def _sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt("SIGTERM")


@contextlib.contextmanager
def lab_session(
    lab: Lab, cluster: LabCluster, workers: list[subprocess.Popen[bytes]]
) -> Iterator[None]:
    """While the body runs, SIGTERM is a KeyboardInterrupt; after it, whatever
    happened, the workers (as the body appended them), the cluster's processes
    and the lab's namespaces are gone."""
    old_handler = None
    with contextlib.suppress(ValueError):  # not the main thread: no handler
        old_handler = signal.signal(signal.SIGTERM, _sigterm)
    try:
        yield
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    w.wait(5)
        cluster.stop_all()
        lab.destroy()
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)


def clock_since(start_ns: int) -> Callable[[], float]:
    """Seconds since ``start_ns`` (``time.monotonic_ns``): the run's clock."""

    def clock() -> float:
        return (time.monotonic_ns() - start_ns) / 1e9

    return clock


def inject_faults(
    cfg: RunConfig,
    lab: Lab,
    cluster: LabCluster,
    clock: Callable[[], float],
    log: Callable[[str], None],
    tick: Callable[[], None],
) -> list[dict[str, Any]]:
    """The seeded fault schedule for ``cfg.time`` s (``tick`` called between
    steps), then every process and link healed; the faults as recorded."""
    schedule = plan(cfg.seed, cfg.time, cfg.nemesis, cfg.hosts)
    nemesis = Nemesis(lab, cluster, schedule, clock, log)
    log(f"workload started; {len(schedule)} faults planned (seed {cfg.seed})")
    try:
        nemesis.run(cfg.time, tick)
    finally:
        faults = [r.to_json() for r in nemesis.records]
        cluster.heal()
        lab.heal()
    return faults


def read_events(path: Path, start_ns: int) -> Iterator[dict[str, Any]]:
    """The events of a JSON-lines history, times made relative to ``start_ns``;
    a torn line (the writer killed mid-line) is skipped."""
    for line in path.read_text().splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        ev["t"] = ev["t"] - start_ns
        yield ev


def longest_gap_between(oks: list[float], duration: float) -> float:
    """The longest time (s) in [0, duration] without any of the sorted ``oks``."""
    times = [0.0, *(min(max(t, 0.0), duration) for t in oks), duration]
    return round(max((b - a for a, b in itertools.pairwise(times)), default=0.0), 2)


def operation_counts(events: list[dict[str, Any]]) -> dict[str, int]:
    """The figures ``operations`` (invoked) and ``ok`` (acknowledged)."""
    return {
        "operations": sum(1 for e in events if e["type"] == "invoke"),
        "ok": sum(1 for e in events if e["type"] == "ok"),
    }
