"""HTTP basic authentication for the Marathon API (Marathon's ``--http_credentials``).

With credentials set, every request — ``/ping`` and the web UI included, as in
Marathon — needs ``Authorization: Basic`` with the one configured user and password;
anything else gets 401 with ``WWW-Authenticate: Basic realm="<realm>"`` (Marathon's
default realm is "Mesosphere"). It is a plain ASGI middleware so streamed answers
(the SSE event bus, proxied leader answers) pass through untouched, and it sits outside
the leader proxy: a standby checks credentials before forwarding (the header goes
along, so every instance needs the same credentials).

The answers never repeat what the client sent: a wrong password must not show up in
a response or a log line.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from typing import Any

log = logging.getLogger(__name__)

Scope = dict[str, Any]


def parse_http_credentials(text: str) -> tuple[str, str]:
    """``user:password`` (the user may not contain ':'; the password may)."""
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise ValueError("--http-credentials must be user:password")
    return user, password


class BasicAuthMiddleware:
    def __init__(self, app: Any, user: str, password: str, realm: str = "Mesosphere") -> None:
        self.app = app
        self._expected = f"{user}:{password}".encode()
        self._challenge = f'Basic realm="{realm}"'.encode()

    def _authorized(self, scope: Scope) -> bool:
        header = b""
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                header = value
                break
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self._expected)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        log.info("refused unauthenticated %s %s", scope.get("method"), scope.get("path"))
        body = json.dumps({"message": "Unauthorized: HTTP basic credentials required"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", self._challenge),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def protect(app: Any, credentials: str, realm: str = "Mesosphere") -> None:
    """Require ``credentials`` (``user:password``) on every request to ``app`` (a
    FastAPI/Starlette app that has not started serving yet)."""
    user, password = parse_http_credentials(credentials)
    app.add_middleware(BasicAuthMiddleware, user=user, password=password, realm=realm)


__all__ = ["BasicAuthMiddleware", "parse_http_credentials", "protect"]
