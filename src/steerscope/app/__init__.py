"""The steerscope server: OpenAI-compatible chat/completions with per-request steering vectors, continuously
batched, plus the explorer page. See docs/serving.md.

Names are imported on first use (PEP 562), so building the CLI parser (``steerscope --help``) does not import
torch through the engine.

Example:
    >>> from steerscope.app import create_app, bind, serve_in_thread
    >>> server, thread = serve_in_thread(create_app(ss.load_model(), ["runs/melbo"]), bind("127.0.0.1", 0))
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BatchState": ".engine", "Row": ".engine", "Term": ".engine",
    "ExplorerSource": ".explorer", "load_source": ".explorer",
    "Limits": ".limits",
    "bind": ".net", "check_host": ".net", "host_allowlist": ".net", "make_server": ".net",
    "serve_in_thread": ".net", "url_of": ".net",
    "VectorRegistry": ".registry",
    "Job": ".scheduler", "Scheduler": ".scheduler",
    "create_app": ".server", "model_for": ".server", "serve": ".server",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'steerscope.app' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
