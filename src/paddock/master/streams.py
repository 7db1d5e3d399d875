"""Long-lived event streams (a framework's SUBSCRIBE, an agent's REGISTER) as RecordIO.

The master pushes JSON events into an :class:`EventStream`; the HTTP layer drains
it into a chunked response. ``close()`` ends the response; the response ending for
any other reason (client went away) calls ``on_closed`` once, which is how the
master learns a framework or agent disconnected.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from paddock.recordio import encode_json

log = logging.getLogger(__name__)

#: An event stream whose reader stalls this far behind is cut (the client reconnects).
MAX_QUEUED_EVENTS = 100_000


class EventStream:
    def __init__(self, kind: str, owner: str) -> None:
        self.id = str(uuid.uuid4())
        self.kind = kind
        self.owner = owner
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False
        self.on_closed: Callable[[EventStream], None] | None = None
        self._notified = False

    def send(self, event: dict[str, Any]) -> bool:
        """Queue one event; False if the stream is closed."""
        if self.closed:
            return False
        if self._queue.qsize() > MAX_QUEUED_EVENTS:
            log.warning("%s stream of %s is not being read; closing it", self.kind, self.owner)
            self.close()
            return False
        self._queue.put_nowait(encode_json(event))
        return True

    def close(self) -> None:
        """End the response after the queued events (idempotent)."""
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    def _ended(self) -> None:
        self.closed = True
        if not self._notified:
            self._notified = True
            if self.on_closed is not None:
                try:
                    self.on_closed(self)
                except Exception:
                    log.exception("stream close handler failed")

    async def body(self) -> AsyncIterator[bytes]:
        """The response body: RecordIO records until closed or the client leaves."""
        try:
            while True:
                chunk = await self._queue.get()
                if chunk is None:
                    return
                # Send what else is queued in the same chunk.
                parts = [chunk]
                while not self._queue.empty():
                    nxt = self._queue.get_nowait()
                    if nxt is None:
                        yield b"".join(parts)
                        return
                    parts.append(nxt)
                yield b"".join(parts)
        finally:
            self._ended()
