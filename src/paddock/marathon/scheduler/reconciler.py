"""Task reconciliation with the master, as Marathon does it.

After this marathon subscribes (a new leader, or a reconnect), and after an initial delay
that lets agents re-register with a master that itself just failed over, it asks for the
state of every task it knows (explicit), then for every task the master knows
(implicit); then again every ``interval``. Answers arrive as ordinary status updates:
a known task's state is corrected; a task nobody asked for — one this marathon does not
know — is killed by the core. A task is never killed merely because this marathon just
took over: only an answer naming it unknown or terminal removes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Call = Callable[[str, dict[str, Any]], Awaitable[int]]


def explicit_body(tasks: list[tuple[str, str]]) -> dict[str, Any]:
    """RECONCILE body for (task id, agent id) pairs."""
    return {
        "tasks": [
            {"task_id": {"value": t}, **({"agent_id": {"value": a}} if a else {})} for t, a in tasks
        ]
    }


class Reconciler:
    def __init__(
        self,
        call: Call,
        known_tasks: Callable[[], list[tuple[str, str]]],
        *,
        initial_delay: float = 15.0,
        interval: float = 600.0,
        gap: float = 1.0,
    ) -> None:
        self.call = call
        self.known_tasks = known_tasks
        self.initial_delay = initial_delay
        self.interval = interval
        self.gap = gap  # between the explicit and the implicit round
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None

    def restart(self) -> None:
        """(Re)start the schedule: call on every SUBSCRIBED."""
        self.stop()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def reconcile_once(self) -> None:
        known = self.known_tasks()
        # Explicit in batches (a master answers each task id).
        for i in range(0, len(known), 1000):
            await self.call("RECONCILE", explicit_body(known[i : i + 1000]))
        await asyncio.sleep(self.gap)
        await self.call("RECONCILE", {"tasks": []})
        self.rounds += 1
        log.info("reconciliation round %d: %d known tasks", self.rounds, len(known))

    async def _run(self) -> None:
        await asyncio.sleep(self.initial_delay)
        while True:
            try:
                await self.reconcile_once()
            except Exception:
                log.exception("reconciliation failed")
            await asyncio.sleep(self.interval)
