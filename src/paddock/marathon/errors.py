"""Errors the Marathon API answers with: a status code and Marathon's JSON body."""

from __future__ import annotations

import datetime as dt
from typing import Any


class MarathonApiError(Exception):
    """An error with Marathon's status code and JSON body."""

    status = 500

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.extra}


class NotFound(MarathonApiError):
    status = 404


class Conflict(MarathonApiError):
    status = 409


class BadRequest(MarathonApiError):
    status = 400


class Forbidden(MarathonApiError):
    status = 403


class AppLocked(Conflict):
    def __init__(self, deployment_ids: list[str]) -> None:
        super().__init__(
            "App is locked by one or more deployments. Override with the option "
            "'?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
            deployments=[{"id": d} for d in deployment_ids],
        )


def iso_ms(moment: dt.datetime) -> str:
    """Marathon's timestamp form: ``2020-01-01T00:00:00.000Z``."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
