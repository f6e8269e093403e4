"""ASGI applications for the ASGI tests: a plain one, and a FastAPI one with a router, a
Starlette mount, a streaming response and an error.

``tests.integrations.asgi_apps:application`` (plain) and ``:api`` (FastAPI) are what the
servers load. Importing FastAPI is deferred to `api`'s module-level creation only when the
package is installed: the plain application needs nothing but the standard library.
"""

from __future__ import annotations

import asyncio
import importlib.util

STREAM_PAUSE = 0.2  # seconds the /stream body takes to produce


async def application(scope, receive, send):
    """A plain ASGI 3 application: /ok, /stream (two chunks STREAM_PAUSE apart), /boom (raises),
    /empty (returns without responding); lifespan supported."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/boom":
        raise ZeroDivisionError("a failing application")
    if path == "/empty":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    if path == "/stream":
        await send({"type": "http.response.body", "body": b"first chunk\n", "more_body": True})
        await asyncio.sleep(STREAM_PAUSE)
        await send({"type": "http.response.body", "body": b"last chunk\n"})
        return
    await send({"type": "http.response.body", "body": b"ok"})


if importlib.util.find_spec("fastapi") is not None:
    from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
    from fastapi.responses import StreamingResponse
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    api = FastAPI()
    router = APIRouter(prefix="/users")

    @api.get("/loans/{loan_id}")
    async def loan(loan_id: int) -> dict:
        return {"loan": loan_id}

    @api.get("/boom")
    async def boom() -> dict:
        raise KeyError("missing in a view")

    @api.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks():
            yield b"first chunk\n"
            await asyncio.sleep(STREAM_PAUSE)
            yield b"last chunk\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    @api.get("/events")
    async def events() -> StreamingResponse:
        """A server-sent event stream that never ends by itself: the client ends it."""

        async def forever():
            n = 0
            while True:
                yield f"data: {n}\n\n".encode()
                n += 1
                await asyncio.sleep(0.05)

        return StreamingResponse(forever(), media_type="text/event-stream")

    @router.get("/{name}/orders")
    async def orders(name: str) -> dict:
        return {"user": name, "orders": []}

    api.include_router(router)

    @api.websocket("/rooms/{room}/ws")
    async def room(websocket: WebSocket, room: str) -> None:
        """Echo each text upper-cased until the client goes."""
        await websocket.accept()
        try:
            while True:
                await websocket.send_text((await websocket.receive_text()).upper())
        except WebSocketDisconnect:
            pass

    async def status(request):
        return PlainTextResponse(f"status of {request.path_params['part']}")

    api.mount("/legacy", Starlette(routes=[Route("/parts/{part}", status)]))
