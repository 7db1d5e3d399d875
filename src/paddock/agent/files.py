"""Sandbox file access for ``/files/read``, ``/files/browse`` and ``/files/download``.

As in Mesos, only "attached" directories can be read: each task's sandbox, both under
its real path (the ``directory`` that ``/state`` reports) and under the virtual path
``/frameworks/<fw>/executors/<task>/runs/<run id | latest>``.  A request path is joined to
the sandbox, resolved with symlinks, and refused unless it still lies inside the
sandbox, so ``..`` and symlinks cannot reach the rest of the machine.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["FileAccessError", "SandboxFiles"]

MAX_READ = 16 * 1024 * 1024


class FileAccessError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Attached:
    framework_id: str
    task_id: str
    run_id: str
    sandbox: Path


class SandboxFiles:
    def __init__(self, sandboxes: Iterable[Attached]) -> None:
        self.sandboxes = list(sandboxes)

    def _split(self, raw: str) -> tuple[Path, list[str]]:
        """(sandbox root, path components inside it)."""
        if not raw or "\x00" in raw:
            raise FileAccessError(400, "expecting a 'path' query parameter")
        parts = PurePosixPath("/" + raw.lstrip("/")).parts[1:]
        # Virtual: frameworks/<fw>/executors/<task>/runs/<run|latest>/...
        if len(parts) >= 6 and parts[0] == "frameworks" and parts[2] == "executors":
            fw, task, run = parts[1], parts[3], parts[5]
            if parts[4] == "runs":
                matches = [s for s in self.sandboxes if (s.framework_id, s.task_id) == (fw, task)]
                if run != "latest":
                    matches = [s for s in matches if s.run_id == run]
                if matches:
                    return matches[-1].sandbox, list(parts[6:])
        for s in self.sandboxes:
            root = s.sandbox.parts[1:]
            if tuple(parts[: len(root)]) == tuple(root):
                return s.sandbox, list(parts[len(root) :])
        raise FileAccessError(404, f"{raw} is not a sandbox path of this agent")

    def resolve(self, raw: str) -> Path:
        root, rest = self._split(raw)
        if any(p == ".." for p in rest):
            raise FileAccessError(403, "path escapes the sandbox")
        try:
            real_root = root.resolve(strict=True)
        except (OSError, RuntimeError):
            raise FileAccessError(404, "the sandbox no longer exists") from None
        try:
            target = root.joinpath(*rest).resolve(strict=True)
        except FileNotFoundError:
            raise FileAccessError(404, f"{raw} does not exist") from None
        except (OSError, RuntimeError):
            raise FileAccessError(404, f"{raw} cannot be resolved") from None
        if target != real_root and real_root not in target.parents:
            raise FileAccessError(403, "path escapes the sandbox")
        return target

    def read(self, raw: str, offset: int = -1, length: int | None = None) -> dict[str, Any]:
        """Mesos's ``/files/read``: ``offset`` -1 asks only for the size."""
        path = self.resolve(raw)
        if path.is_dir():
            raise FileAccessError(400, f"{raw} is a directory")
        size = path.stat().st_size
        if offset < 0:
            return {"data": "", "offset": size}
        if length is not None and length < 0:
            raise FileAccessError(400, "negative length")
        want = MAX_READ if length is None else min(length, MAX_READ)
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(want)
        return {"data": data.decode("utf-8", errors="replace"), "offset": offset}

    def browse(self, raw: str) -> list[dict[str, Any]]:
        path = self.resolve(raw)
        if not path.is_dir():
            raise FileAccessError(400, f"{raw} is not a directory")
        out = []
        shown = "/" + raw.strip("/")
        for entry in sorted(path.iterdir()):
            try:
                st = entry.lstat()
            except OSError:
                continue
            out.append(
                {
                    "path": f"{shown}/{entry.name}",
                    "nlink": st.st_nlink,
                    "size": st.st_size,
                    "mtime": st.st_mtime,
                    "mode": stat.filemode(st.st_mode),
                    "uid": _user(st.st_uid),
                    "gid": _group(st.st_gid),
                }
            )
        return out

    def download(self, raw: str) -> Path:
        path = self.resolve(raw)
        if path.is_dir():
            raise FileAccessError(400, f"{raw} is a directory")
        return path


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


def _group(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (KeyError, ImportError):
        return str(gid)
