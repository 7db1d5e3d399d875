"""The agent's side of the task zygote (see :mod:`paddock.agent.supervisor`).

One :class:`Zygote` per agent: it starts ``supervisor.py`` as a stdlib-only interpreter
once (``python -I -S``), sends it a JSON request per task over a ``SOCK_SEQPACKET``
socketpair and matches the answers (they come from the supervisors, which inherit the
zygote's end) to the waiting launches by request id.

A dead zygote is noticed by end-of-file on the socket, which comes only once the zygote
*and* every supervisor still holding its end have closed it: so every answer that was
sent is read first, and only requests nobody can answer any more fail.  The next launch
starts a fresh zygote; supervisors already forked keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["SUPERVISOR_SCRIPT", "Zygote", "ZygoteError"]

SUPERVISOR_SCRIPT = Path(__file__).with_name("supervisor.py")
MAX_MESSAGE = 1 << 20


class ZygoteError(RuntimeError):
    """The zygote could not be started or died before answering."""


class _Generation:
    """One zygote process, its socket and the requests waiting for an answer."""

    def __init__(self, python: str) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [python, "-I", "-S", str(SUPERVISOR_SCRIPT), str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError as exc:
            ours.close()
            raise ZygoteError(f"cannot start the task zygote: {exc}") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        #: One sender at a time: ``sock_sendall`` waiting for room keeps one writer
        #: callback per fd, so a second waiting sender would silently replace the first.
        self.send_lock = asyncio.Lock()
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(ours.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("task zygote socket: %s", exc)
                data = b""
            if not data:
                self.close("the task zygote exited")
                return
            try:
                msg = json.loads(data)
                fut = self.pending.pop(msg["id"], None)
            except (ValueError, KeyError, TypeError):
                log.warning("task zygote: unreadable answer %r", data[:200])
                continue
            if fut is not None and not fut.done():
                fut.set_result(msg)

    def close(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ZygoteError(why))
        self.pending.clear()
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(0.5)  # EOF on its socket makes it exit at once
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.wait()


class Zygote:
    """Forks task supervisors on request; restarted when it dies."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self._gen: _Generation | None = None
        self._next_id = 0
        self.starts = 0

    @property
    def pid(self) -> int | None:
        gen = self._gen
        return gen.proc.pid if gen is not None and not gen.closed else None

    def _generation(self) -> _Generation:
        gen = self._gen
        if gen is not None and not gen.closed and gen.proc.poll() is not None:
            # It died: answers already sent are still readable until EOF; new requests
            # go to a fresh zygote.
            gen = None
        if gen is None or gen.closed:
            if self._gen is not None and self.starts:
                log.warning("task zygote (pid %s) died; starting another", self._gen.proc.pid)
            gen = _Generation(self.python)
            self._gen = gen
            self.starts += 1
        return gen

    def start(self) -> None:
        """Start the zygote now (else the first launch does); needs a running loop."""
        self._generation()

    async def spawn(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one launch request; the supervisor's answer (``error`` or pids)."""
        gen = self._generation()
        self._next_id += 1
        rid = self._next_id
        data = json.dumps({**request, "id": rid}).encode()
        if len(data) > MAX_MESSAGE:
            raise ZygoteError("the task's launch request is too large")
        fut: asyncio.Future[dict[str, Any]] = gen.loop.create_future()
        gen.pending[rid] = fut
        try:
            async with gen.send_lock:
                await gen.loop.sock_sendall(gen.sock, data)
        except OSError as exc:
            gen.pending.pop(rid, None)
            raise ZygoteError(f"cannot reach the task zygote: {exc}") from exc
        return await fut

    def close(self) -> None:
        """Stop the zygote (its supervisors and their tasks are not affected)."""
        if self._gen is not None:
            self._gen.close("the agent is stopping")
            self._gen = None
