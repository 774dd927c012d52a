"""The explorer page (``/explore/``): pick vectors of one run, type a prompt, compare steered with unsteered text.

It is a page of the one steerscope server: its requests go through the same scheduler as the OpenAI endpoints, so
the unsteered row and one row per chosen vector are decoded together in the shared continuous batch (and batched
with any API traffic), never by a second copy of the model.

Example:
    >>> source = load_source("runs/melbo-1")
    >>> app = create_app(m, explorer=source)        # steerscope.app.server.create_app; page at /explore/
"""

from __future__ import annotations

import logging
import math
import os
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
MAX_COMPARE = 8  # vectors per request
POSITIONS = ("all", "prompt", "generated")
PREFIX = "/explore"


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
    from ..report.data import VECTORS_FILE, load_run
    from ..vector import VectorSet

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


def check_source(model, source: ExplorerSource) -> None:
    """Fail (ShapeMismatchError / InvalidArgumentError) unless every vector fits the model."""
    model.check_width(source.vectors.d_model)
    for layer in source.vectors.layers:
        model.check_layer(layer)


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
    try:
        req.prompt.encode("utf-8")
    except UnicodeEncodeError:
        problems.append("the prompt contains a character that is not valid Unicode text (a lone surrogate)")
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


def prompt_ids(model, prompt: str, chat: bool) -> list[int]:
    """Token ids exactly as ``ss.generate`` builds them (chat template, or the tokenizer's special tokens)."""
    from ..generate import format_prompt

    templated = chat and getattr(model.tokenizer, "chat_template", None)
    return model.tokenizer(format_prompt(model, prompt, chat), add_special_tokens=not templated)["input_ids"]


def add_routes(app, ctx, source: ExplorerSource) -> None:
    """``GET /explore/`` (the page), ``GET /explore/api/info``, ``POST /explore/api/generate``."""
    from fastapi import APIRouter
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

    from .engine import Term
    from .scheduler import Job

    model, vs = ctx.model, source.vectors
    page = resources.files("steerscope.app").joinpath("explorer.html").read_text(encoding="utf-8")
    router = APIRouter(prefix=PREFIX)

    @app.get("/", include_in_schema=False)
    def root():
        return RedirectResponse(f"{PREFIX}/")

    @router.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @router.get("/api/info")
    def info() -> dict:
        return {"source": source.label, "model": model.name, "model_type": model.model_type,
                "n_layers": model.n_layers, "d_model": model.d_model, "site": vs.site, "layers": vs.layers,
                "vectors": source.rows, "chat_template": bool(getattr(model.tokenizer, "chat_template", None)),
                "limits": {"max_scale": MAX_SCALE, "max_prompt_chars": MAX_PROMPT_CHARS,
                           "max_new_tokens": MAX_NEW_TOKENS, "max_compare": MAX_COMPARE, "positions": POSITIONS}}

    @router.post("/api/generate")
    def generate_endpoint(req: GenerateRequest):  # sync: runs in the threadpool and waits for the scheduler
        problems = validate(req, len(vs))
        if problems:
            return JSONResponse({"errors": problems}, status_code=422)
        ids = prompt_ids(model, req.prompt, req.chat)
        terms = [[]] + [[Term(vs[i], req.scale, req.positions)] for i in req.vectors]  # row 0 unsteered
        start = time.perf_counter()
        texts = ctx.scheduler.run_many([Job(list(ids), t, max_tokens=req.max_new_tokens) for t in terms])
        seconds = time.perf_counter() - start
        log.info("explorer: %d rows in %.1f s", len(terms), seconds)
        return {"prompt": req.prompt, "scale": req.scale, "positions": req.positions, "baseline": texts[0],
                "steered": [{"index": i, "completion": t} for i, t in zip(req.vectors, texts[1:])],
                "seconds": round(seconds, 3)}

    app.include_router(router)
