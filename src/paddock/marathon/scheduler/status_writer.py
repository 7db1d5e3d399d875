"""Write-behind of status changes: persisted in pipelined batches, then acknowledged.

A status update is acknowledged only after the instance change it caused is in the store
(so a successor never misses a state the agent stopped resending), but the event stream
is never held up by the store: updates arriving while a batch is written join the next
one. Acknowledgements go out in the background, a bounded number at a time: an
unbounded burst exhausts the HTTP connection pool, the agents resend what was not
acknowledged, and the resends make the next burst bigger. A batch whose write fails
(the coordination service blinked) is retried with backoff until it is written: dropping
it left stale instances for the next leader to treat as surplus (found by the chaos lab).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from paddock.marathon.models import Task, TaskFailure
from paddock.marathon.store import MarathonStore

log = logging.getLogger(__name__)

ACK_CONCURRENCY = 16
RETRY_FIRST = 0.1  # seconds before retrying a batch whose write failed
RETRY_MAX = 2.0


class StatusWriter:
    def __init__(
        self,
        store: MarathonStore,
        call: Callable[[str, dict[str, Any]], Awaitable[int]],
        acting: Callable[[], bool],
    ) -> None:
        self.store = store
        self.call = call
        self.acting = acting
        self._writes: dict[str, tuple[Task, bool]] = {}  # task id -> (task, keep?)
        self._failures: dict[str, TaskFailure] = {}
        self._acks: list[dict[str, Any]] = []
        self._wake: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def put(self, task: Task) -> None:
        self._writes[task.id] = (task, True)

    def delete(self, task: Task) -> None:
        self._writes[task.id] = (task, False)

    def failure(self, failure: TaskFailure) -> None:
        self._failures[failure.app_id] = failure

    def ack(self, body: dict[str, Any]) -> None:
        self._acks.append(body)

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(ACK_CONCURRENCY)
        self._spawn(self._run())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        assert self._wake is not None
        backoff = RETRY_FIRST
        while True:
            await self._wake.wait()
            self._wake.clear()
            writes, self._writes = self._writes, {}
            failures, self._failures = self._failures, {}
            acks, self._acks = self._acks, []
            if writes or failures:
                try:
                    await asyncio.to_thread(self._write_batch, writes, failures)
                except Exception as exc:
                    log.warning("persisting %d instance changes failed (%s); retrying in %.1f s",
                                len(writes), exc, backoff)  # fmt: skip
                    self._requeue(writes, failures, acks)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, RETRY_MAX)
                    self._wake.set()
                    continue
                backoff = RETRY_FIRST
            if acks and self.acting():
                self._spawn(self._acknowledge(acks))

    def _requeue(
        self,
        writes: dict[str, tuple[Task, bool]],
        failures: dict[str, TaskFailure],
        acks: list[dict[str, Any]],
    ) -> None:
        """Put a batch that could not be written back in front of what came since.

        The in-memory state already moved on, so an agent's resend of the same update
        changes nothing there and would not write again: the batch itself must be
        retried. A newer change to the same task (or app's last failure) wins. The
        acknowledgements wait for the write, as ever.
        """
        for task_id, change in writes.items():
            self._writes.setdefault(task_id, change)
        for app_id, failure in failures.items():
            self._failures.setdefault(app_id, failure)
        self._acks[:0] = acks

    async def _acknowledge(self, acks: list[dict[str, Any]]) -> None:
        assert self._slots is not None
        slots = self._slots

        async def one(ack: dict[str, Any]) -> None:
            async with slots:
                await self.call("ACKNOWLEDGE", ack)

        await asyncio.gather(*(one(a) for a in acks), return_exceptions=True)

    def _write_batch(
        self, writes: dict[str, tuple[Task, bool]], failures: dict[str, TaskFailure]
    ) -> None:
        puts = [t for t, keep in writes.values() if keep]
        deletes = [t for t, keep in writes.values() if not keep]
        if puts:
            self.store.put_instances(puts)
        if deletes:
            self.store.delete_instances(deletes)
        for failure in failures.values():
            self.store.set_task_failure(failure)
