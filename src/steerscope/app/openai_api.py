"""The OpenAI-compatible endpoints: /v1/models, /v1/chat/completions, /v1/completions (with server-sent events),
/v1/steering/vectors and /health.

Every handler validates, submits a ``Job`` to the scheduler and relays its events; a client that disconnects
cancels its job (a queued job is then never generated, a running row leaves the batch at the next step).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from fastapi import Request

from .errors import APIError, error_body
from .requests import parse_request
from .scheduler import Job

log = logging.getLogger(__name__)


async def read_json(request, limit: int):
    """The request body as JSON, refusing more than ``limit`` bytes (413) and bodies that are not JSON (400)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(f"the request body has {declared} bytes; the limit is {limit}", status=413,
                       code="body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(f"the request body is over the limit of {limit} bytes", status=413, code="body_too_large")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(f"the request body is not valid JSON ({exc})", code="invalid_json") from None


def _attach(job: Job) -> asyncio.Queue:
    """Route the job's events (from the scheduler thread) into an asyncio queue of this event loop."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    job.sink = lambda event: loop.call_soon_threadsafe(events.put_nowait, event)
    return events


async def _next(events: asyncio.Queue, request, job: Job):
    """The next event, or None once the client has gone away (the job is then cancelled)."""
    while True:
        try:
            return await asyncio.wait_for(events.get(), timeout=0.25)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                job.cancelled.set()
                return None


def _sse(data) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def add_routes(app, ctx) -> None:
    """Register the /v1 endpoints and /health on ``app``; ``ctx`` is the ``ServerContext``."""
    from fastapi.responses import JSONResponse, StreamingResponse

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": ctx.model.name, "rows": ctx.scheduler.state.size,
                "waiting": ctx.scheduler.waiting, **ctx.scheduler.stats}

    @app.get("/v1/models")
    def models() -> dict:
        ids = [ctx.base_id] + [f"{ctx.base_id}+{name}" for name in ctx.registry.names()]
        return {"object": "list", "data": [{"id": i, "object": "model", "created": ctx.created,
                                            "owned_by": "steerscope", "root": ctx.model.name} for i in ids]}

    @app.get("/v1/steering/vectors")
    def vectors() -> dict:
        return {"object": "list", "data": ctx.registry.describe()}

    async def handle(request: Request, chat: bool):
        body = await read_json(request, ctx.limits.max_body_bytes)
        job, stream, include_usage, model_id = parse_request(body, ctx, chat=chat)
        events = _attach(job)
        ctx.scheduler.submit(job)
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        head = {"id": rid, "created": int(time.time()), "model": model_id}
        if stream:
            return StreamingResponse(_stream(request, job, events, head, chat, include_usage),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        parts = []
        while True:
            event = await _next(events, request, job)
            if event is None:
                return JSONResponse(error_body("client disconnected"), status_code=499)
            if event[0] == "text":
                parts.append(event[1])
            elif event[0] == "error":
                return JSONResponse(error_body(event[1], type="server_error"), status_code=500)
            else:
                break
        text, reason, usage = "".join(parts), event[1], event[2]
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                   "finish_reason": reason} if chat else
                  {"index": 0, "text": text, "logprobs": None, "finish_reason": reason})
        return {**head, "object": "chat.completion" if chat else "text_completion", "choices": [choice],
                "usage": usage}

    async def _stream(request, job: Job, events, head, chat: bool, include_usage: bool):
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(delta: str | None, reason: str | None, first: bool = False) -> dict:
            if chat:
                d = {"role": "assistant", "content": ""} if first else ({"content": delta} if delta else {})
                choice = {"index": 0, "delta": d, "logprobs": None, "finish_reason": reason}
            else:
                choice = {"index": 0, "text": delta or "", "logprobs": None, "finish_reason": reason}
            return {**head, "object": kind, "choices": [choice]}

        try:
            if chat:
                yield _sse(chunk(None, None, first=True))
            while True:
                event = await _next(events, request, job)
                if event is None:
                    return
                if event[0] == "text":
                    yield _sse(chunk(event[1], None))
                elif event[0] == "error":
                    yield _sse(error_body(event[1], type="server_error"))
                    break
                else:
                    yield _sse(chunk(None, event[1]))
                    if include_usage:
                        yield _sse({**head, "object": kind, "choices": [], "usage": event[2]})
                    break
            yield b"data: [DONE]\n\n"
        finally:
            job.cancelled.set()  # a no-op once finished; frees the row if the client went away mid-stream

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await handle(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await handle(request, chat=False)
