"""HTTPJudge against a real OpenAI-compatible server on localhost: timeouts, 429 then success, malformed JSON, cache."""

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import steerscope as ss
from steerscope.evaluate.judge_tasks import describe_differences, pairwise_compare
from steerscope.evaluate.judges import JudgeError


class FakeOpenAI(BaseHTTPRequestHandler):
    """Behaviour chosen by a marker in the user message; counts requests per marker."""

    calls: Counter = Counter()  # noqa: RUF012 (reset by the fixture)
    in_flight = 0
    max_in_flight = 0
    lock = threading.Lock()

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status: int, body: str, headers: dict | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        try:
            self._handle()
        finally:
            with cls.lock:
                cls.in_flight -= 1

    def _handle(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/chat/completions"
        text = body["messages"][-1]["content"]
        marker = text.split()[0]
        with self.lock:
            self.calls[marker] += 1
            count = self.calls[marker]
        if marker == "AUTH" and self.headers.get("Authorization") != "Bearer sekrit":
            return self._send(401, '{"error": "bad key"}')
        if marker == "SLOW" and count == 1:
            time.sleep(1.5)  # longer than the client's timeout: the first attempt times out
        if marker == "RATE" and count == 1:
            return self._send(429, '{"error": "slow down"}', {"Retry-After": "0"})
        if marker == "ERR500" and count <= 2:
            return self._send(503, "unavailable")
        if marker == "BADJSON":
            return self._send(200, '{"choices": [{"message": {"content": ')  # truncated body
        if marker == "BADANSWER":
            return self._send(200, json.dumps({"choices": [{"message": {"content": "I cannot decide."}}]}))
        if marker == "CONC":
            time.sleep(0.2)
        answer = '{"answer": "A"}' if "Response A" in text else f"echo {marker}"
        return self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}))


@pytest.fixture()
def server():
    FakeOpenAI.calls = Counter()
    FakeOpenAI.max_in_flight = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def judge(url, tmp_path, **kw):
    opts = {"timeout": 0.5, "max_retries": 3, "backoff": 0.01, "max_backoff": 0.05, "attempts": 2,
            "cache_dir": tmp_path / "cache", "api_key_env": "STEERSCOPE_TEST_KEY"}
    opts.update(kw)
    return ss.HTTPJudge(url, "fake-model", **opts)


def ask(j, marker, **kw):
    return j.complete([[{"role": "user", "content": f"{marker} please"}]], **kw)[0]


def test_timeout_then_success(server, tmp_path):
    j = judge(server, tmp_path)
    assert ask(j, "SLOW") == "echo SLOW"
    assert FakeOpenAI.calls["SLOW"] == 2


def test_429_then_success_and_5xx_retries(server, tmp_path):
    j = judge(server, tmp_path)
    assert ask(j, "RATE") == "echo RATE"
    assert FakeOpenAI.calls["RATE"] == 2
    assert ask(j, "ERR500") == "echo ERR500"
    assert FakeOpenAI.calls["ERR500"] == 3


def test_retries_exhausted_is_missing(server, tmp_path):
    j = judge(server, tmp_path, max_retries=1)
    assert ask(j, "ERR500") is None  # two 503s, no third try
    assert FakeOpenAI.calls["ERR500"] == 2


def test_malformed_json_and_malformed_answer_are_retried_then_missing(server, tmp_path):
    j = judge(server, tmp_path, attempts=3)
    assert ask(j, "BADJSON") is None
    assert FakeOpenAI.calls["BADJSON"] == 3
    assert ask(j, "BADANSWER", validate=lambda t: t.strip() in ("A", "B")) is None
    assert FakeOpenAI.calls["BADANSWER"] == 3


def test_cache_hits_make_no_second_request(server, tmp_path):
    j = judge(server, tmp_path)
    first = ask(j, "HELLO")
    sent = j.requests_sent
    again = judge(server, tmp_path)  # a fresh judge, same cache directory: re-running an evaluation
    assert ask(again, "HELLO") == first
    assert again.requests_sent == 0 and FakeOpenAI.calls["HELLO"] == 1 and sent == 1
    # malformed answers are cached per attempt, so re-running them costs nothing either
    ask(j, "BADANSWER", validate=lambda t: False)
    before = FakeOpenAI.calls["BADANSWER"]
    ask(judge(server, tmp_path), "BADANSWER", validate=lambda t: False)
    assert FakeOpenAI.calls["BADANSWER"] == before
    # a different parameter is a different request
    ask(judge(server, tmp_path, temperature=0.5), "HELLO")
    assert FakeOpenAI.calls["HELLO"] == 2


def test_bounded_concurrency(server, tmp_path):
    j = judge(server, tmp_path, max_concurrency=2, timeout=5)
    out = j.complete([[{"role": "user", "content": f"CONC {i}"}] for i in range(6)])
    assert out == ["echo CONC"] * 6
    assert FakeOpenAI.max_in_flight <= 2


def test_api_key_from_environment(server, tmp_path, monkeypatch):
    monkeypatch.delenv("STEERSCOPE_TEST_KEY", raising=False)
    with pytest.raises(JudgeError, match="STEERSCOPE_TEST_KEY"):
        ask(judge(server, tmp_path, cache_dir=None), "AUTH")
    monkeypatch.setenv("STEERSCOPE_TEST_KEY", "sekrit")
    assert ask(judge(server, tmp_path, cache_dir=None), "AUTH") == "echo AUTH"


def test_tasks_over_http(server, tmp_path):
    j = judge(server, tmp_path)
    res = pairwise_compare(j, ["p"] * 20, ["x"] * 20, ["y"] * 20, behaviour="joy", seed=3)
    # the fake judge always answers "A": system a wins exactly when it was shown as A
    assert res.n == 20 and res.n_missing == 0
    shown_a = sum(r["a_shown_as"] == "A" for r in res.records)
    assert 0 < shown_a < 20 and res.win_rate == shown_a / 20
    assert res.ci[0] <= res.win_rate <= res.ci[1]
    summaries = describe_differences(j, [["a", "b"], ["c"]], ["base"])
    assert summaries == ["echo Below", "echo Below"]
