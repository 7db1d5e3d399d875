"""Durable files under the agent's work dir.

Two shapes, both fsynced before a caller relies on them:

* small state files replaced atomically (write a temp file, fsync, rename, fsync the
  directory), so a crash leaves either the old or the new content;
* append-only JSON-lines logs (one record per line, fsynced per append), read back
  tolerating a torn last line (a crash mid-append loses only that record, which the
  writer never reported as done).

Layout (``meta`` mirrors Mesos's ``meta/slaves/...`` tree in spirit, flattened)::

    <work_dir>/meta/agent.json                                   agent id, hostname, boot time
    <work_dir>/meta/frameworks/<fw>/tasks/<task>/task.json       TaskInfo, FrameworkInfo, run
    <work_dir>/meta/frameworks/<fw>/tasks/<task>/task.updates    status updates and acks

Framework and task ids are validated before they reach a path (see ``validate_id``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "CheckpointStore",
    "append_jsonl",
    "atomic_write_json",
    "read_json",
    "read_jsonl",
    "validate_id",
]


def validate_id(value: Any, what: str) -> str:
    """Mesos's ``common::validation::validateID``: a non-empty string, not ``.``/``..``,
    without ``/``, NUL or control characters (ids become directory names)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    if value in (".", ".."):
        raise ValueError(f"{what} {value!r} is not allowed")
    if len(value) > 255:
        raise ValueError(f"{what} is longer than 255 characters")
    if "/" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{what} {value!r} contains '/' or control characters")
    return value


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_json(path: Path) -> Any | None:
    """The file's JSON, or None when it is missing or unreadable (logged by the caller)."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None


def append_jsonl(path: Path, obj: Any) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # end a torn record first, so it cannot swallow this one
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        _fsync_dir(path.parent)


def read_jsonl(path: Path) -> Iterator[Any]:
    """Records of a JSON-lines log; a torn or garbled last line is skipped, as is any
    line that does not parse (the writer fsyncs whole lines, so only the tail can tear)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError:
            continue


class CheckpointStore:
    """The agent's ``meta`` directory."""

    def __init__(self, work_dir: Path) -> None:
        self.root = work_dir / "meta"

    # -- the agent --------------------------------------------------------------------
    @property
    def agent_file(self) -> Path:
        return self.root / "agent.json"

    def load_agent(self) -> dict[str, Any] | None:
        obj = read_json(self.agent_file)
        return obj if isinstance(obj, dict) else None

    def save_agent(self, info: dict[str, Any]) -> None:
        atomic_write_json(self.agent_file, info)

    # -- tasks ------------------------------------------------------------------------
    def task_dir(self, framework_id: str, task_id: str) -> Path:
        return self.root / "frameworks" / framework_id / "tasks" / task_id

    def save_task(self, framework_id: str, task_id: str, record: dict[str, Any]) -> None:
        atomic_write_json(self.task_dir(framework_id, task_id) / "task.json", record)

    def updates_file(self, framework_id: str, task_id: str) -> Path:
        return self.task_dir(framework_id, task_id) / "task.updates"

    def remove_task(self, framework_id: str, task_id: str) -> None:
        d = self.task_dir(framework_id, task_id)
        shutil.rmtree(d, ignore_errors=True)
        fw_tasks = d.parent
        with contextlib.suppress(OSError):
            fw_tasks.rmdir()
            fw_tasks.parent.rmdir()

    def iter_tasks(self) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
        """Every checkpointed task: (framework id, task id, task.json or None)."""
        base = self.root / "frameworks"
        if not base.is_dir():
            return
        for fw_dir in sorted(base.iterdir()):
            tasks = fw_dir / "tasks"
            if not tasks.is_dir():
                continue
            for task_dir in sorted(tasks.iterdir()):
                rec = read_json(task_dir / "task.json")
                yield fw_dir.name, task_dir.name, rec if isinstance(rec, dict) else None
