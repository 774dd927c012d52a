"""Moved: the explorer is a page of the steerscope server now (``steerscope.app``). Kept for old imports.

Example:
    >>> from steerscope.report.explorer import create_app, load_source    # same as steerscope.app.*
"""

from __future__ import annotations

from ..app.explorer import ExplorerSource, load_source
from ..app.net import bind, check_host, host_allowlist, serve_in_thread, url_of

__all__ = ["ExplorerSource", "bind", "check_host", "create_app", "host_allowlist", "load_source", "serve",
           "serve_in_thread", "url_of"]


def create_app(model, source: ExplorerSource, *, allowed_hosts: list[str] | None = None):
    """The steerscope server app with ``source`` as its explorer page (at ``/explore/``)."""
    from ..app.server import create_app as _create

    return _create(model, explorer=source, allowed_hosts=allowed_hosts)


def serve(source, *, model=None, host: str = "127.0.0.1", port: int = 8765, allow_remote: bool = False,
          on_ready=None) -> None:
    """Serve the explorer for ``source`` (a run directory, vector file or ExplorerSource) until interrupted."""
    from ..app.server import model_for
    from ..app.server import serve as _serve

    source = source if isinstance(source, ExplorerSource) else load_source(source)
    model = model if model is not None else model_for(None, source.model_name)
    _serve(model, explorer=source, host=host, port=port, allow_remote=allow_remote, on_ready=on_ready)
