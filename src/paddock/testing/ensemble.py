"""Process management shared by the ZooKeeper and keeper ensembles.

An ensemble is N server processes on loopback with free ports, each in its own
directory under one temporary directory. Readiness is observed, never assumed:
a member is ready when its ``srvr`` four-letter word reports a serving mode (or,
for a server without four-letter words, when it grants a session). Every
process is stopped by ``stop()``, by the context manager, or at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Self

from paddock.testing.zkwire import four_letter_word, probe_session

HOST = "127.0.0.1"
SERVING_MODES = ("leader", "follower", "standalone", "observer", "read-only")

_live: weakref.WeakSet[Ensemble] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for ensemble in list(_live):
        ensemble.stop()


class EnsembleError(RuntimeError):
    """A server did not start, died, or the ensemble did not become ready."""


@dataclass
class Member:
    """One server of an ensemble: its identity, ports, directory and process."""

    index: int
    server_id: int
    client_port: int
    peer_ports: tuple[int, ...]
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)
    starts: int = 0
    down: bool = False  # stopped or killed on purpose; not expected to serve

    @property
    def address(self) -> str:
        return f"{HOST}:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Ensemble(ABC):
    """N servers of one kind; subclasses say how to configure and launch one."""

    kind = "abstract"
    ports_per_member = 2

    def __init__(
        self, size: int = 1, base_dir: str | Path | None = None, ready_timeout: float = 60.0
    ) -> None:
        if size < 1:
            raise ValueError("an ensemble needs at least one member")
        self.size = size
        self.ready_timeout = ready_timeout
        self._own_dir = base_dir is None
        self.directory = Path(base_dir or tempfile.mkdtemp(prefix=f"paddock-{self.kind}-"))
        self.members: list[Member] = []
        for i in range(size):
            directory = self.directory / f"server{i + 1}"
            directory.mkdir(parents=True, exist_ok=True)
            self.members.append(Member(i, i + 1, 0, (), directory))
        self._assign_ports()
        self._stopped = False
        _live.add(self)

    def _assign_ports(self) -> None:
        from paddock.testing.ports import free_ports

        ports = free_ports(self.ports_per_member * self.size)
        for i, member in enumerate(self.members):
            mine = ports[i * self.ports_per_member : (i + 1) * self.ports_per_member]
            member.client_port, member.peer_ports = mine[0], tuple(mine[1:])

    # -- what a subclass provides -------------------------------------------------
    @abstractmethod
    def prepare(self, member: Member) -> None:
        """Write the member's configuration files (called before each launch)."""

    @abstractmethod
    def command(self, member: Member) -> list[str]:
        """The argv that runs the member in the foreground."""

    def environment(self, member: Member) -> dict[str, str]:
        return dict(os.environ)

    def check_early_exit(self, member: Member, output: str) -> None:  # noqa: B027
        """Hook: turn a recognisable early exit into a more specific exception."""

    # -- addresses -----------------------------------------------------------------
    @property
    def hosts(self) -> str:
        """Connection string for clients: ``127.0.0.1:p1,127.0.0.1:p2,...``."""
        return ",".join(m.address for m in self.members)

    def address(self, i: int) -> str:
        return self.members[i].address

    # -- life cycle --------------------------------------------------------------
    def start(self, attempts: int = 3) -> Self:
        """Launch every member (highest id first) and wait until all serve.

        Free ports are only free when probed: if another process on the machine
        takes one first (a server logs "Address already in use"), the first
        start is retried on fresh ports.
        """
        for attempt in range(attempts):
            try:
                for member in reversed(self.members):
                    self._launch(member)
                self.wait_ready()
                return self
            except EnsembleError as exc:
                first_start = all(m.starts == 1 for m in self.members)
                if not (first_start and attempt + 1 < attempts and self._bind_failed(exc)):
                    raise
                for member in self.members:
                    self.kill(member.index, signal.SIGKILL)
                    member.starts = 0
                    member.log_path.unlink(missing_ok=True)
                self._assign_ports()
        raise AssertionError("unreachable")

    def _bind_failed(self, exc: EnsembleError) -> bool:
        texts = [str(exc)] + [self.log_tail(m.index, 200) for m in self.members]
        return any("address already in use" in t.lower() for t in texts)

    def _launch(self, member: Member) -> None:
        if member.running:
            return
        self.prepare(member)
        if member.log_file is not None:
            member.log_file.close()
        member.log_file = open(member.log_path, "ab")  # noqa: SIM115 - closed in _reap
        member.process = subprocess.Popen(
            self.command(member),
            stdin=subprocess.DEVNULL,
            stdout=member.log_file,
            stderr=subprocess.STDOUT,
            cwd=member.directory,
            env=self.environment(member),
            start_new_session=True,
        )
        member.starts += 1
        member.down = False

    def wait_ready(self, timeout: float | None = None, members: list[int] | None = None) -> None:
        """Block until the given (default: all running) members serve clients."""
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        targets = members if members is not None else [m.index for m in self.members]
        pending = [
            i for i in targets if self.members[i].process is not None and not self.members[i].down
        ]
        while pending:
            still = []
            for i in pending:
                self._raise_if_dead(self.members[i])
                if not self._member_serving(i):
                    still.append(i)
            pending = still
            if not pending:
                break
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {self.address(i)}\n{self.log_tail(i)}" for i in pending)
                raise EnsembleError(f"{self.kind} members {pending} not ready in time\n{tails}")
            time.sleep(0.05)  # polling an external process; there is no event to await

    def _member_serving(self, i: int) -> bool:
        mode = self.mode(i)
        if mode is None:
            return False
        if mode == "":
            # No four-letter words: fall back to the session handshake.
            try:
                return probe_session(HOST, self.members[i].client_port, timeout=1.0)
            except OSError:
                return False
        if self.size > 1:
            return mode in ("leader", "follower", "observer")
        return mode in SERVING_MODES

    def _raise_if_dead(self, member: Member) -> None:
        if member.process is not None and member.process.poll() is not None:
            output = self.log_tail(member.index)
            code = member.process.returncode
            self.check_early_exit(member, output)
            raise EnsembleError(
                f"{self.kind} server {member.server_id} exited with {code}:\n{output}"
            )

    def mode(self, i: int) -> str | None:
        """The member's ``Mode:`` from ``srvr``; "" if it has no 4lw; None if not serving."""
        try:
            text = four_letter_word(HOST, self.members[i].client_port, "srvr", timeout=1.0)
        except OSError:
            return None
        if not text:
            return ""
        for line in text.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None  # e.g. "This ZooKeeper instance is not currently serving requests"

    def modes(self) -> dict[int, str | None]:
        return {m.index: (self.mode(m.index) if m.running else None) for m in self.members}

    def leader(self) -> int | None:
        """Index of the member that reports ``Mode: leader`` (or standalone), if any."""
        for i, mode in self.modes().items():
            if mode in ("leader", "standalone"):
                return i
        return None

    def wait_leader(self, timeout: float | None = None) -> int:
        """Block until some running member reports being the leader; return its index."""
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        while True:
            found = self.leader()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise EnsembleError(f"no {self.kind} leader in time: {self.modes()}")
            time.sleep(0.05)  # polling an external process

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to member ``i``; for fatal signals wait until it is gone."""
        member = self.members[i]
        if not member.running or member.process is None:
            return
        member.process.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            member.down = True
            self._reap(member, timeout=15.0)

    def stop_member(self, i: int) -> None:
        """Stop member ``i`` gracefully (SIGTERM, then SIGKILL after 15 s); keep its data."""
        self.kill(i, signal.SIGTERM)

    def start_member(self, i: int, wait: bool = True) -> None:
        """(Re)launch member ``i`` with its existing data directory."""
        self._launch(self.members[i])
        if wait:
            self.wait_ready(members=[i])

    def restart(self, i: int, wait: bool = True) -> None:
        """Stop member ``i`` if it runs, then start it again on the same ports and data."""
        self.stop_member(i)
        self.start_member(i, wait=wait)

    def _reap(self, member: Member, timeout: float) -> None:
        process = member.process
        if process is None:
            return
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15.0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # any children it left behind
        if member.log_file is not None:
            member.log_file.close()
            member.log_file = None

    def stop(self) -> None:
        """Stop every member and remove the temporary directory. Idempotent."""
        if self._stopped:
            return
        for member in self.members:
            if member.running and member.process is not None:
                member.process.terminate()
        for member in self.members:
            self._reap(member, timeout=15.0)
        self._stopped = True
        _live.discard(self)
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, i: int, lines: int = 40) -> str:
        path = self.members[i].log_path
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} size={self.size} hosts={self.hosts}>"
