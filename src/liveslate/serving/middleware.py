"""ASGI middleware of the service: refuse request bodies above the configured size (413).

The body is read here up to the limit and replayed to the application, so an oversized
request is refused before anything parses it, whether it declares its length
(Content-Length) or streams it in chunks. The rest of an oversized body is read and
discarded (up to ``DRAIN_BYTES``) before the 413 is sent: a client still writing its
body would otherwise see a broken pipe instead of the answer.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Oversized bodies up to this size are drained before the 413; beyond it the connection is just answered.
DRAIN_BYTES = 64 * 1024 * 1024


class BodySizeLimit:
    """Answer 413 to a request whose body exceeds ``max_bytes``; pass every other request through.

    max_bytes: the limit, or a function returning it (read per request, so it follows the
    arguments of the Bento being served).
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 max_bytes: int | Callable[[], int]) -> None:
        self.app = app
        self._limit = max_bytes

    @property
    def max_bytes(self) -> int:
        return int(self._limit() if callable(self._limit) else self._limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _error(send, 400, "invalid_header", "content-length",
                             f"Content-Length {declared.decode(errors='replace')!r} is not a number")
                return
            if length > limit:
                if length <= DRAIN_BYTES and not await _drain(receive, DRAIN_BYTES):
                    return
                await _too_large(send, length, limit)
                return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > limit:
                size = len(body)
                del body[:]
                if message.get("more_body", False) and not await _drain(receive, DRAIN_BYTES - size):
                    return
                await _too_large(send, size, limit)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _drain(receive: Receive, budget: int) -> bool:
    """Read and discard the rest of a body (at most ``budget`` bytes); False when the client went away."""
    while budget > 0:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return True


async def _too_large(send: Send, size: int, limit: int) -> None:
    await _error(send, 413, "payload_too_large", "body",
                 f"request body of {size} bytes (or more) exceeds serving.max_request_bytes = {limit}")


async def _error(send: Send, status: int, kind: str, field: str, message: str) -> None:
    """A JSON error shaped like BentoML's validation errors: {"error", "detail": [{"type", "loc", "msg"}]}."""
    payload = json.dumps({"error": f"{field}: {message}",
                          "detail": [{"type": kind, "loc": [field], "msg": message}]}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})
