"""The one steerscope server: OpenAI-compatible endpoints with per-request steering, plus the explorer page.

Example:
    >>> app = create_app(ss.load_model(), ["runs/melbo"], api_key=None)
    >>> serve(vectors=["runs/melbo"], port=8000)      # blocks; or serve_in_thread(app, bind("127.0.0.1", 0))
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from dataclasses import dataclass

from .limits import Limits
from .registry import VectorRegistry
from .scheduler import Scheduler

log = logging.getLogger(__name__)

BASE_ID = "base"


@dataclass
class ServerContext:
    """What the route handlers share."""

    model: object
    registry: VectorRegistry
    scheduler: Scheduler
    limits: Limits
    base_id: str = BASE_ID
    created: int = 0

    @property
    def base_ids(self) -> set[str]:
        return {self.base_id, self.model.name}


def create_app(model, vectors: list[str | os.PathLike] = (), *, limits: Limits | None = None, explorer=None,
               api_key: str | None = None, allowed_hosts: list[str] | None = None):
    """The FastAPI app. Everything is validated before the scheduler thread starts (a bad vector fails here).

    Args:
        model: a loaded ``SteerableModel``; the app's scheduler is the only thing that runs it.
        vectors: run directories and vector files to register by name (RUN/INDEX, STEM/INDEX, STEM).
        limits: request limits and batching settings.
        explorer: an ``ExplorerSource`` to serve at ``/explore/`` (None: no page).
        api_key: when set, /v1/* needs ``Authorization: Bearer KEY``.
        allowed_hosts: Host headers to accept (loopback names block DNS rebinding); None accepts any.

    Example:
        >>> app = create_app(m, ["runs/melbo"], explorer=load_source("runs/melbo"))
    """
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    from .. import __version__
    from . import explorer as explorer_page
    from . import openai_api
    from .errors import APIError, error_body

    limits = limits or Limits()
    registry = VectorRegistry(model, list(vectors))
    if explorer is not None:
        explorer_page.check_source(model, explorer)
    scheduler = Scheduler(model, limits)
    ctx = ServerContext(model, registry, scheduler, limits, created=int(time.time()))

    @asynccontextmanager
    async def lifespan(app):
        yield
        scheduler.stop()

    app = FastAPI(title="steerscope", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.ctx = ctx
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    if api_key:
        expected = f"Bearer {api_key}".encode()

        @app.middleware("http")
        async def check_key(request: Request, call_next):
            if request.url.path.startswith("/v1/"):
                given = request.headers.get("authorization", "").encode()
                if not hmac.compare_digest(given, expected):
                    return JSONResponse(error_body("missing or wrong API key (send Authorization: Bearer KEY)",
                                                   code="invalid_api_key"), status_code=401)
            return await call_next(request)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        # only the explorer's typed requests get here: "field: problem" lines for the page
        msgs = [f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
                for e in exc.errors()]
        return JSONResponse({"errors": msgs}, status_code=422)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}", type="server_error"), 500)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        from fastapi.responses import Response

        return Response(status_code=204)

    openai_api.add_routes(app, ctx)
    if explorer is not None:
        explorer_page.add_routes(app, ctx, explorer)
    scheduler.start()
    log.info("serving %s with %d registered vectors", model.name, len(registry.names()))
    return app


def model_for(name: str | None, fallback: str | None = None, *, device=None, dtype=None):
    """Load ``name``, else ``fallback`` (e.g. the model the vectors name), else the embedded default."""
    from ..errors import ModelNotFoundError
    from ..models.load import DEFAULT_MODEL_NAME, load_model

    chosen = name or fallback
    try:
        return load_model(None if chosen in (None, DEFAULT_MODEL_NAME) else chosen, device=device, dtype=dtype)
    except ModelNotFoundError as exc:
        if name or not fallback:
            raise
        raise ModelNotFoundError(f"{exc} (the vectors name model {fallback!r}; pass --model to choose another "
                                 "model of the same width)") from None


def serve(model=None, vectors: list[str | os.PathLike] = (), *, explorer=None, host: str = "127.0.0.1",
          port: int = 8000, allow_remote: bool = False, api_key: str | None = None, limits: Limits | None = None,
          on_ready=None) -> None:
    """Serve until interrupted (Ctrl+C). ``model``: a SteerableModel, a name/path, or None (embedded default).
    ``on_ready(url)`` is called once the socket accepts connections.

    Example:
        >>> serve(vectors=["runs/melbo"], explorer=load_source("runs/melbo"), port=8000)
    """
    from .net import bind, host_allowlist, make_server, url_of

    sock = bind(host, port, allow_remote)  # before loading the model: a taken port fails fast
    try:
        if model is None or isinstance(model, (str, os.PathLike)):
            model = model_for(None if model is None else str(model))
        app = create_app(model, vectors, limits=limits, explorer=explorer, api_key=api_key,
                         allowed_hosts=host_allowlist(allow_remote))
        if on_ready is not None:
            on_ready(url_of(sock))
        make_server(app).run(sockets=[sock])
    finally:
        sock.close()
