"""Moved: the explorer is a page of the steerscope server now (``steerscope.app``). Kept for old imports.

Example:
    >>> from steerscope.report.explorer import create_app, load_source    # same as steerscope.app.*
"""

from __future__ import annotations

from ..app.explorer import ExplorerSource, load_source
from ..app.net import bind, check_host, host_allowlist, serve_in_thread, url_of

__all__ = ["ExplorerSource", "bind", "check_host", "create_app", "host_allowlist", "load_source", "serve_in_thread",
           "url_of"]


def create_app(model, source: ExplorerSource, *, allowed_hosts: list[str] | None = None):
    """The steerscope server app with ``source`` as its explorer page (at ``/explore/``)."""
    from ..app.server import create_app as _create

    return _create(model, explorer=source, allowed_hosts=allowed_hosts)
