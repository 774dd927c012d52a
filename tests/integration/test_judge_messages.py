"""HTTPJudge failures say what to fix: a refused connection is an error (not a silent None), a 401 names the key."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

import steerscope as ss
from steerscope.evaluate.judges import JudgeError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket is closed


def test_refused_connection_is_a_clear_error(tmp_path):
    j = ss.HTTPJudge(f"http://127.0.0.1:{_closed_port()}/v1", "m", cache_dir=None, max_retries=1, backoff=0.01,
                     max_backoff=0.01, timeout=1.0)
    with pytest.raises(JudgeError, match="cannot connect to the judge.*is the server running"):
        j.complete([[{"role": "user", "content": "hi"}]])


class _Deny(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(401)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_401_messages_name_the_setting(monkeypatch):
    httpd = HTTPServer(("127.0.0.1", 0), _Deny)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    ask = lambda j: j.complete([[{"role": "user", "content": "hi"}]])
    try:
        with pytest.raises(JudgeError) as info:
            ask(ss.HTTPJudge(url, "m", api_key_env=None, cache_dir=None))
        assert "$None" not in str(info.value) and "api_key_env" in str(info.value)
        monkeypatch.delenv("STEERSCOPE_NO_SUCH_KEY", raising=False)
        with pytest.raises(JudgeError, match=r"\$STEERSCOPE_NO_SUCH_KEY is not set"):
            ask(ss.HTTPJudge(url, "m", api_key_env="STEERSCOPE_NO_SUCH_KEY", cache_dir=None))
        monkeypatch.setenv("STEERSCOPE_NO_SUCH_KEY", "wrong")
        with pytest.raises(JudgeError, match="was not accepted"):
            ask(ss.HTTPJudge(url, "m", api_key_env="STEERSCOPE_NO_SUCH_KEY", cache_dir=None))
    finally:
        httpd.shutdown()
        httpd.server_close()
