"""Helpers for driving ``paddock`` as a user would: real subprocesses, a real cluster.

Every cluster a test starts lives in its own work dir; :func:`stop_cluster` runs
``paddock down`` and then kills whatever is still running from that directory
(recorded pids, and any process whose command line or working directory is inside it),
so no test leaves processes behind even when ``down`` itself is what failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PADDOCK = [sys.executable, "-m", "paddock.cli.main"]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def paddock(
    *args: str, timeout: float = 240, env: dict[str, str] | None = None, real: bool = False
) -> Result:
    """Run one ``paddock`` command. ``up`` and ``down`` (and ``real=True``) run as real
    processes; the client commands run in-process through typer's runner, because
    starting Python for each of dozens of calls is what made these tests slow on a
    loaded machine (the code path below ``main`` is the same)."""
    if real or args[0] in ("up", "down"):
        r = subprocess.run(
            [*PADDOCK, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
            check=False,
        )
        return Result(r.returncode, r.stdout, r.stderr)
    from typer.testing import CliRunner

    from paddock.cli.main import app

    out = CliRunner().invoke(app, list(args), env=env)
    if out.exception is not None and not isinstance(out.exception, SystemExit):
        raise out.exception
    return Result(out.exit_code, out.stdout, out.stderr)


def paddock_json(*args: str) -> Any:
    r = paddock(*args, "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def processes_of(work_dir: Path) -> list[int]:
    """Live processes started from this cluster: its daemons and their tasks."""
    needle = str(work_dir.resolve())
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if needle in cmdline or cwd.startswith(needle):
            out.append(int(entry))
    return out


def stop_cluster(work_dir: Path) -> None:
    paddock("down", "--work-dir", str(work_dir), timeout=120)
    for pid in processes_of(work_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_until(cond, timeout: float, what: str, interval: float = 0.2):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = cond()
        except Exception as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout}s (last: {last!r})")


def logs(work_dir: Path, n: int = 30) -> str:
    out = []
    for p in sorted((work_dir / "logs").glob("*")):
        lines = p.read_text(errors="replace").splitlines()[-n:]
        out.append(f"--- {p.name}\n" + "\n".join(lines))
    return "\n".join(out)
