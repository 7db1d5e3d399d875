"""The in-process event bus behind ``GET /v2/events`` (Marathon's event stream).

Publishers (the API service, the scheduler) may run in any thread; subscribers are SSE
responses on the asyncio loop. ``publish`` is thread-safe and never blocks: each
subscriber has a bounded queue, and a subscriber that falls that far behind is cut off
(its stream ends) rather than letting memory grow — Marathon likewise drops slow
event-stream consumers.

Event names and fields are Marathon's (``docs/docs/event-bus.md``); marathon-python
raises on an ``eventType`` it does not know, so only these names are published.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EVENT_TYPES = frozenset(
    {
        "api_post_event",
        "status_update_event",
        "framework_message_event",
        "subscribe_event",
        "unsubscribe_event",
        "add_health_check_event",
        "remove_health_check_event",
        "failed_health_check_event",
        "health_status_changed_event",
        "unhealthy_task_kill_event",
        "unhealthy_instance_kill_event",
        "group_change_success",
        "group_change_failed",
        "deployment_success",
        "deployment_failed",
        "deployment_info",
        "deployment_step_success",
        "deployment_step_failure",
        "event_stream_attached",
        "event_stream_detached",
        "app_terminated_event",
        "instance_changed_event",
        "unknown_instance_terminated_event",
        "instance_health_changed_event",
        "pod_created_event",
        "pod_updated_event",
        "pod_deleted_event",
    }
)

CLOSED = None  # queue sentinel: the stream is over


@dataclass(eq=False)
class Subscription:
    """One event-stream consumer: an asyncio queue fed from any thread."""

    loop: asyncio.AbstractEventLoop
    event_types: frozenset[str] | None
    queue: asyncio.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1024)
    )
    closed: bool = False

    def wants(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types

    def _offer(self, event: dict[str, Any] | None) -> None:
        """Runs on the loop: enqueue, or cut the consumer off if it is too far behind."""
        if self.closed:
            return
        if event is None:
            self.closed = True
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.closed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(CLOSED)

    async def next(self) -> dict[str, Any] | None:
        """The next event, or None when the stream is over."""
        return await self.queue.get()


class EventBus:
    """Fan-out of Marathon events to in-process subscribers."""

    def __init__(self, clock: Callable[[], str]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self.published = 0

    def publish(self, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Stamp and deliver an event; returns the event as subscribers see it."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown Marathon event type {event_type!r}")
        event = {"eventType": event_type, "timestamp": self._clock(), **payload}
        with self._lock:
            subs = [s for s in self._subs if s.wants(event_type) and not s.closed]
            self.published += 1
        for sub in subs:
            with contextlib.suppress(RuntimeError):  # loop already closed
                sub.loop.call_soon_threadsafe(sub._offer, event)
        return event

    def subscribe(self, event_types: frozenset[str] | None = None) -> Subscription:
        """Subscribe from the running loop (call inside a coroutine)."""
        sub = Subscription(asyncio.get_running_loop(), event_types)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
        sub.closed = True

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subs)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(RuntimeError):
                sub.loop.call_soon_threadsafe(sub._offer, CLOSED)
