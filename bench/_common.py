"""Helpers the cluster benchmarks share (``launch_bench``, ``master_failover_bench``).

The benchmarks are run as scripts (``.venv/bin/python bench/launch_bench.py``), so
Python puts ``bench/`` first on ``sys.path`` and ``import _common`` finds this file;
it is not a package, and nothing here is part of paddock itself.

What is here: the figures every run prints beside its results (the commit measured,
the load average of the shared machine, the CPU a process used), starting a real
``paddock agent`` with a benchmark's flags, stopping a benchmark's cluster whatever
happened, and the common ``main``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "master"))

from clients import HOST, AgentProcess, MasterProcess  # noqa: E402

# ---------------------------------------------------------------- figures


def commit() -> str:
    """The commit measured (short hash), marked when agent/master code is uncommitted."""
    if os.environ.get("PADDOCK_BENCH_COMMIT"):  # a run from an exported tree (git archive)
        return os.environ["PADDOCK_BENCH_COMMIT"]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "src/paddock/agent", "src/paddock/master")
    return head + (" (+uncommitted agent/master changes)" if dirty else "")


def loadavg() -> str:
    """The 1/5/15-minute load averages as the kernel prints them (the machine is shared)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own user+system, reaped children's user+system) of a live process, seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    # After ")": state(0) ... utime(11) stime(12) cutime(13) cstime(14)
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


# ---------------------------------------------------------------- the cluster


def start_agent(agent: AgentProcess, *flags: str) -> None:
    """Start ``agent`` as ``paddock agent`` with its master, port, work dir and
    resources, on ``HOST``, plus the benchmark's own ``flags``."""
    cmd = [
        sys.executable, "-m", "paddock.cli.main", "agent",
        "--master", agent.master, "--port", str(agent.port), "--work-dir", str(agent.work_dir),
        "--ip", HOST, "--hostname", HOST, "--resources", agent.resources, *flags,
    ]  # fmt: skip
    with open(agent.log_path, "ab") as log:
        agent.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip


class Closable(Protocol):
    async def close(self) -> None: ...


def print_log_tails(daemons: Sequence[MasterProcess | AgentProcess], lines: int) -> None:
    """On stderr, the last ``lines`` of each daemon's log (after a failed run)."""
    for p in daemons:
        print(f"--- {p.log_path.name}\n{p.log_tail(lines)}", file=sys.stderr)


async def stop_cluster(
    framework: Closable, masters: Sequence[MasterProcess], agents: Sequence[AgentProcess]
) -> None:
    """The framework closed first (no event may start another call), then every
    agent and master killed."""
    await framework.close()
    for a in agents:
        a.kill()
    for m in masters:
        m.kill()


def main(
    parser: argparse.ArgumentParser,
    bench: Callable[[argparse.Namespace], Coroutine[Any, Any, Any]],
    keep_help: str,
) -> None:
    """Add ``--json`` and ``--keep`` to ``parser``, run ``bench`` with the arguments,
    and write what it returns as JSON where ``--json`` says."""
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help=keep_help)
    args = parser.parse_args()
    result = asyncio.run(bench(args))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
