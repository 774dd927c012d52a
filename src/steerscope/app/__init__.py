"""The steerscope server: OpenAI-compatible chat/completions with per-request steering vectors, continuously
batched, plus the explorer page. See docs/serving.md.

Example:
    >>> from steerscope.app import create_app, bind, serve_in_thread
    >>> server, thread = serve_in_thread(create_app(ss.load_model(), ["runs/melbo"]), bind("127.0.0.1", 0))
"""

from .engine import BatchState, Row, Term
from .explorer import ExplorerSource, load_source
from .limits import Limits
from .net import bind, check_host, host_allowlist, make_server, serve_in_thread, url_of
from .registry import VectorRegistry
from .scheduler import Job, Scheduler
from .server import create_app, model_for, serve

__all__ = ["BatchState", "ExplorerSource", "Job", "Limits", "Row", "Scheduler", "Term", "VectorRegistry", "bind",
           "check_host", "create_app", "host_allowlist", "load_source", "make_server", "model_for",
           "serve", "serve_in_thread", "url_of"]
