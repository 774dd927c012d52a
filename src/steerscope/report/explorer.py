"""A local web page to try vectors by hand: pick vectors, type a prompt, compare steered with unsteered text.

FastAPI serves one static page (``explorer.html``, no CDN) and a JSON API; uvicorn runs it on loopback only unless
``allow_remote`` is set. The model is loaded once per server; every request is ONE batched ``generate`` with a
per-row vector (row 0 unsteered, one row per chosen vector), serialised by a lock because steering hooks live on
the shared model.

Example:
    >>> from steerscope.report.explorer import load_source, create_app
    >>> app = create_app(ss.load_model(), load_source("runs/melbo-1"))    # or serve("runs/melbo-1")
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pydantic import BaseModel

from ..errors import InvalidArgumentError

log = logging.getLogger(__name__)

MAX_SCALE = 100.0
MAX_PROMPT_CHARS = 2000
MAX_NEW_TOKENS = 256
MAX_COMPARE = 8  # vectors per request: one batch of 1 + MAX_COMPARE rows stays fast on CPU
POSITIONS = ("all", "prompt", "generated")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_PORT = 8765


@dataclass
class ExplorerSource:
    """The vectors an explorer offers: a VectorSet plus one table row per vector (index, norm, csv columns)."""

    vectors: object  # VectorSet
    rows: list[dict]
    label: str
    model_name: str | None = None
    config: dict = field(default_factory=dict)


def load_source(path: str | os.PathLike) -> ExplorerSource:
    """A run directory (its ``vectors.safetensors`` and ``vectors.csv``) or any vector file (set or single)."""
    from ..vector import VectorSet
    from .data import VECTORS_FILE, load_run

    path = Path(path)
    if path.is_dir():
        run = load_run(path)
        if run.vector_set is None:
            raise InvalidArgumentError(f"{path} has no readable {VECTORS_FILE}; pass a run directory with vectors "
                                       "or a vector file")
        n = len(run.vector_set)
        rows = [r for r in run.table() if r["index"] < n]
        name = run.config.get("model_name") or run.vector_set.meta.model_name
        return ExplorerSource(run.vector_set, rows, path.resolve().name, name, run.config)
    if not path.is_file():
        raise InvalidArgumentError(f"{path} is neither a run directory nor a vector file")
    vs = VectorSet.load(path)
    rows = [{"index": i, "norm": float(x)} for i, x in enumerate(vs.norms().tolist())]
    return ExplorerSource(vs, rows, path.name, vs.meta.model_name)


def check_host(host: str, allow_remote: bool = False) -> str:
    """The address to bind: loopback only, unless ``allow_remote`` (the server runs a model for anyone who can
    reach it)."""
    if host in LOOPBACK_NAMES:
        return "127.0.0.1" if host == "localhost" else host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise InvalidArgumentError(f"refusing to serve on {host}: the explorer binds to loopback (127.0.0.1) only; "
                                   "pass --allow-remote to expose it to your network")
    return host


class GenerateRequest(BaseModel):
    """Types only; ranges are checked by ``validate`` so the page gets one clear sentence per problem."""

    prompt: str
    vectors: list[int]
    scale: float = 1.0  # run vectors already carry their trained norm (MELBO: the radius)
    positions: str = "all"
    max_new_tokens: int = 48
    chat: bool = True


def validate(req, n_vectors: int) -> list[str]:
    """Every problem with a request, as messages a person can act on (empty when fine)."""
    problems = []
    if not req.prompt.strip():
        problems.append("type a prompt first")
    elif len(req.prompt) > MAX_PROMPT_CHARS:
        problems.append(f"the prompt has {len(req.prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
    if not req.vectors:
        problems.append("pick at least one vector to compare with the unsteered model")
    elif len(req.vectors) > MAX_COMPARE:
        problems.append(f"{len(req.vectors)} vectors picked; compare at most {MAX_COMPARE} at once")
    bad = [i for i in req.vectors if not 0 <= i < n_vectors]
    if bad:
        problems.append(f"vector index {', '.join(map(str, bad))} is out of range: this set has {n_vectors} "
                        f"vectors (0..{n_vectors - 1})")
    if len(set(req.vectors)) != len(req.vectors):
        problems.append("each vector can be picked once")
    if not math.isfinite(req.scale) or abs(req.scale) > MAX_SCALE:
        problems.append(f"scale must be a finite number between -{MAX_SCALE:g} and {MAX_SCALE:g}; got {req.scale}")
    if req.positions not in POSITIONS:
        problems.append(f"positions must be one of {', '.join(POSITIONS)}; got {req.positions!r}")
    if not 1 <= req.max_new_tokens <= MAX_NEW_TOKENS:
        problems.append(f"max new tokens must be between 1 and {MAX_NEW_TOKENS}; got {req.max_new_tokens}")
    return problems


def create_app(model, source: ExplorerSource, *, allowed_hosts: list[str] | None = None):
    """The FastAPI app: ``GET /`` (the page), ``GET /api/info``, ``POST /api/generate``.

    Args:
        model: a loaded SteerableModel (kept for the server's life).
        source: from ``load_source``; its vectors must fit the model.
        allowed_hosts: Host headers to accept (``serve`` passes the loopback names, which blocks DNS rebinding);
            None accepts any.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    from .. import __version__
    from ..generate import generate

    vs = source.vectors
    model.check_width(vs.d_model)
    for layer in vs.layers:
        model.check_layer(layer)
    lock = threading.Lock()
    app = FastAPI(title="steerscope explorer", version=__version__, docs_url=None, redoc_url=None)
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    page = resources.files("steerscope.report").joinpath("explorer.html").read_text(encoding="utf-8")

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        # pydantic's type errors, rephrased as "field: problem" lines for the page
        msgs = [f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
                for e in exc.errors()]
        return JSONResponse({"errors": msgs}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/info")
    def info() -> dict:
        return {"source": source.label, "model": model.name, "model_type": model.model_type,
                "n_layers": model.n_layers, "d_model": model.d_model, "site": vs.site, "layers": vs.layers,
                "vectors": source.rows, "chat_template": bool(getattr(model.tokenizer, "chat_template", None)),
                "limits": {"max_scale": MAX_SCALE, "max_prompt_chars": MAX_PROMPT_CHARS,
                           "max_new_tokens": MAX_NEW_TOKENS, "max_compare": MAX_COMPARE, "positions": POSITIONS}}

    @app.post("/api/generate")
    def generate_endpoint(req: GenerateRequest):  # sync: runs in the threadpool, generation blocks
        problems = validate(req, len(vs))
        if problems:
            return JSONResponse({"errors": problems}, status_code=422)
        rows = [None] + [vs[i] for i in req.vectors]  # row 0 unsteered
        start = time.perf_counter()
        with lock:  # steering hooks are installed on the one shared model
            texts = generate(model, [req.prompt] * len(rows), vectors=rows, scales=[0.0] + [req.scale] * len(req.vectors),
                             max_new_tokens=req.max_new_tokens, chat=req.chat, positions=req.positions, seed=0)
        seconds = time.perf_counter() - start
        log.info("explorer: %d rows in %.1f s", len(rows), seconds)
        return {"prompt": req.prompt, "scale": req.scale, "positions": req.positions, "baseline": texts[0],
                "steered": [{"index": i, "completion": t} for i, t in zip(req.vectors, texts[1:])],
                "seconds": round(seconds, 3)}

    return app


def bind(host: str = "127.0.0.1", port: int = DEFAULT_PORT, allow_remote: bool = False) -> socket.socket:
    """A listening socket (port 0 picks a free one), so the address printed is already connectable."""
    host = check_host(host, allow_remote)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidArgumentError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port "
                                   "(0 picks a free one)") from None
    sock.listen(64)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def make_server(app):
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))


def serve_in_thread(app, sock: socket.socket):
    """Run the app on ``sock`` in a daemon thread (tests, notebooks). Returns (server, thread); stop with
    ``server.should_exit = True; thread.join()``."""
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="steerscope-explorer")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError("the explorer server did not start; see the log above")
    return server, thread


def host_allowlist(allow_remote: bool) -> list[str] | None:
    """Host headers a loopback server answers; anything else (e.g. a DNS-rebinding page) gets 400."""
    return None if allow_remote else ["127.0.0.1", "localhost", "[::1]", "::1"]


def model_for(source: ExplorerSource, name: str | None = None):
    """Load ``name``, else the model the vectors were made with (the embedded default when that is it)."""
    from ..errors import ModelNotFoundError
    from ..models.load import DEFAULT_MODEL_NAME, load_model

    name = name or source.model_name
    try:
        return load_model(None if name in (None, DEFAULT_MODEL_NAME) else name)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(f"{exc} (the vectors name model {source.model_name!r}; pass --model to choose "
                                 "another model of the same width)") from None


def serve(source: str | os.PathLike | ExplorerSource, *, model=None, host: str = "127.0.0.1",
          port: int = DEFAULT_PORT, allow_remote: bool = False, on_ready=None) -> None:
    """Serve the explorer until interrupted (Ctrl+C). ``on_ready(url)`` is called once it accepts connections.

    Example:
        >>> serve("runs/melbo-1", port=8765)    # then open http://127.0.0.1:8765/
    """
    source = source if isinstance(source, ExplorerSource) else load_source(source)
    sock = bind(host, port, allow_remote)  # before loading the model: a taken port fails fast
    try:
        model = model if model is not None else model_for(source)
        app = create_app(model, source, allowed_hosts=host_allowlist(allow_remote))
        server = make_server(app)
        if on_ready is not None:
            on_ready(url_of(sock))
        server.run(sockets=[sock])
    finally:
        sock.close()
