"""The launch queue, pure: which apps want how many new instances, and their backoff.

Marathon's RateLimiter: after a task of an app FAILS or FINISHES (not when it is killed)
the next launch of that app waits ``backoffSeconds * backoffFactor^(n-1)`` capped at
``maxLaunchDelaySeconds``. The delay resets on a new deployment of the app, on
``DELETE /v2/queue/{id}/delay``, and after ``delay + maxLaunchDelaySeconds`` without
failures. Time is a float argument (monotonic seconds); nothing reads a clock here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paddock.marathon.models import AppDefinition
from paddock.marathon.planner import launch_delay
from paddock.marathon.scheduler.matcher import OfferSummary


@dataclass
class Backoff:
    failures: int = 0
    delay: float = 0.0
    until: float = 0.0  # monotonic time before which the app must not launch
    last_failure: float = 0.0


@dataclass
class QueuedApp:
    """An app that wants ``count`` more instances of ``app``'s current version."""

    app: AppDefinition
    count: int
    since: str
    summary: OfferSummary = field(default_factory=OfferSummary)


class LaunchQueue:
    def __init__(self) -> None:
        self.backoffs: dict[str, Backoff] = {}
        self.entries: dict[str, QueuedApp] = {}
        self.summaries: dict[str, OfferSummary] = {}

    # -- backoff ---------------------------------------------------------------------

    def failed(self, app: AppDefinition, now: float) -> float:
        """Record a failure of one of ``app``'s tasks; returns the new delay in seconds."""
        b = self.backoffs.setdefault(app.id, Backoff())
        if b.failures and now - b.last_failure > b.delay + app.max_launch_delay_seconds:
            b.failures = 0  # quiet long enough: start over
        b.failures += 1
        b.delay = launch_delay(
            app.backoff_seconds, app.backoff_factor, app.max_launch_delay_seconds, b.failures
        )
        b.until = now + b.delay
        b.last_failure = now
        return b.delay

    def reset(self, app_id: str) -> bool:
        """Forget the app's delay (new deployment, DELETE /v2/queue/{id}/delay)."""
        return self.backoffs.pop(app_id, None) is not None

    def delay_left(self, app_id: str, now: float) -> float:
        b = self.backoffs.get(app_id)
        if b is None:
            return 0.0
        return max(0.0, b.until - now)

    def expire(self, apps: dict[str, AppDefinition], now: float) -> None:
        """Drop backoffs of apps that have been quiet for delay + maxLaunchDelay."""
        for app_id, b in list(self.backoffs.items()):
            app = apps.get(app_id)
            quiet = b.delay + (app.max_launch_delay_seconds if app else 0)
            if now - b.last_failure > quiet:
                del self.backoffs[app_id]

    # -- wanted launches -------------------------------------------------------------

    def set_wanted(self, wanted: dict[str, tuple[AppDefinition, int]], now_iso: str) -> None:
        """Replace what is queued: app id -> (definition to launch, how many)."""
        entries: dict[str, QueuedApp] = {}
        for app_id, (app, count) in wanted.items():
            if count <= 0:
                continue
            old = self.entries.get(app_id)
            summary = self.summaries.setdefault(app_id, OfferSummary())
            since = old.since if old is not None else now_iso
            entries[app_id] = QueuedApp(app, count, since, summary)
        for app_id in set(self.summaries) - set(entries):
            del self.summaries[app_id]
        self.entries = entries

    def launchable(self, now: float) -> list[QueuedApp]:
        """Queued apps whose delay has passed, oldest request first."""
        return sorted(
            (e for e in self.entries.values() if self.delay_left(e.app.id, now) <= 0),
            key=lambda e: (e.since, e.app.id),
        )

    def __bool__(self) -> bool:
        return bool(self.entries)
