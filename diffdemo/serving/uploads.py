"""Uploads: gradio's upload route wrapped (ASGI middleware; gradio has no hook there) so each upload is recorded
as its caller's, the disk bound enforced, and at most two uploads per address in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from diffdemo.serving.callers import client_address
from diffdemo.serving.refusals import log_refusal


class UploadGate:
    """ASGI middleware around gradio's upload route (gradio has no hook there): each upload's files are recorded
    as its caller's (``client_address``), then ``on_upload(paths, address)`` runs (the disk bound, pruning the
    caller's own files first), and at most two uploads per address are in flight at once."""

    def __init__(self, app, on_upload: Callable[[list[str], str], None], per_address: int = 2):
        self.app, self.on_upload, self.per_address = app, on_upload, per_address
        self._in_flight: dict[str, int] = {}

    async def __call__(self, scope, receive, send):
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or not scope.get("path", "").endswith("/upload")
        ):
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers
        from starlette.responses import PlainTextResponse

        address = client_address(Headers(scope=scope), (scope.get("client") or ("unknown",))[0])
        if self._in_flight.get(address, 0) >= self.per_address:
            log_refusal(address, "too many uploads at once")
            return await PlainTextResponse("Too many uploads at once from your address.", 429)(scope, receive, send)
        self._in_flight[address] = self._in_flight.get(address, 0) + 1
        held: list = []  # the response, sent once the files are in place and the disk bound holds again

        async def capture(message):
            held.append(message)

        try:
            await self.app(scope, receive, capture)  # returns once gradio has moved the files into place
            try:
                import json

                body = b"".join(m.get("body", b"") for m in held if m.get("type") == "http.response.body")
                paths = [p for p in json.loads(body) if isinstance(p, str)]
            except (ValueError, TypeError):
                paths = []
            if paths:
                await asyncio.to_thread(self.on_upload, paths, address)
        finally:
            self._in_flight[address] -= 1
            if not self._in_flight[address]:
                del self._in_flight[address]
        for message in held:
            await send(message)
