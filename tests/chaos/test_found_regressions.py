"""What the chaos lab found, reduced to deterministic tests.

Marathon status write-behind drops a failed batch (cluster run, seed 5, 5 hosts,
240 s; docs/reliability.md "Findings"): during a coordination-service blip
``StatusWriter`` could not persist "task killed" and went on without it; the
instance stayed in the store, and the next leader, loading it, killed two running
tasks as surplus and launched replacements. Here the store fails the first write
only: the change must still reach the store once it works again.
"""

from __future__ import annotations

import asyncio

from paddock.marathon.models import Task
from paddock.marathon.scheduler.status_writer import StatusWriter


class FlakyStore:
    """Fails the first write (a ConnectionLoss), then works."""

    def __init__(self) -> None:
        self.failures_left = 1
        self.deleted: list[str] = []

    def _maybe_fail(self) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("ConnectionLoss")

    def put_instances(self, tasks: list[Task]) -> None:
        self._maybe_fail()

    def delete_instances(self, tasks: list[Task]) -> None:
        self._maybe_fail()
        self.deleted += [t.id for t in tasks]

    def set_task_failure(self, failure: object) -> None:
        self._maybe_fail()


async def test_a_failed_instance_write_is_retried():
    store = FlakyStore()

    async def call(_kind: str, _body: dict) -> int:
        return 202

    writer = StatusWriter(store, call, lambda: True)  # type: ignore[arg-type]
    writer.start()
    try:
        writer.delete(Task(id="chaos_a2.x", app_id="/chaos/a2"))
        writer.wake()
        for _ in range(60):  # up to 3 s for the write and its retry
            await asyncio.sleep(0.05)
            if store.deleted:
                break
        assert store.deleted == ["chaos_a2.x"]
    finally:
        await writer.stop()
