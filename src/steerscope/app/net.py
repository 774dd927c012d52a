"""Binding and running the server: loopback unless allowed, a socket bound before the model loads, uvicorn.

Example:
    >>> sock = bind("127.0.0.1", 0)              # port 0 picks a free port
    >>> server, thread = serve_in_thread(app, sock)
    >>> url_of(sock)
    'http://127.0.0.1:43117/'
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

from ..errors import InvalidArgumentError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


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
        raise InvalidArgumentError(f"refusing to serve on {host}: steerscope binds to loopback (127.0.0.1) only; "
                                   "pass --allow-remote to expose it to your network")
    return host


def bind(host: str = "127.0.0.1", port: int = 8000, allow_remote: bool = False) -> socket.socket:
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
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def host_allowlist(allow_remote: bool) -> list[str] | None:
    """Host headers a loopback server answers; anything else (e.g. a DNS-rebinding page) gets 400."""
    return None if allow_remote else ["127.0.0.1", "localhost", "[::1]", "::1"]


def make_server(app):
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5))


def serve_in_thread(app, sock: socket.socket):
    """Run the app on ``sock`` in a daemon thread (tests, notebooks). Returns (server, thread); stop with
    ``server.should_exit = True; thread.join()``."""
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="steerscope-server")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError("the server did not start; see the log above")
    return server, thread
