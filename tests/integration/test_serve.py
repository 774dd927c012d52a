"""The server on a tiny model: bad input gets OpenAI-style 4xx errors (and the server keeps serving), API key,
per-row continuous batching equals separate generate calls, disconnected clients are not generated, loopback only."""

from __future__ import annotations

import base64
import json
import threading
import time

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from tiny import tiny_model

import steerscope as ss
from steerscope.app import Job, Limits, Scheduler, Term, bind, create_app, serve_in_thread, url_of
from steerscope.app.explorer import prompt_ids
from steerscope.cli.main import main

LAYER = 1


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    m = tiny_model("llama")
    root = tmp_path_factory.mktemp("serve")
    gen = torch.Generator().manual_seed(3)
    vs = ss.VectorSet({LAYER: torch.randn(4, m.d_model, generator=gen) * 3})
    (root / "run").mkdir()
    vs.save(root / "run" / "vectors.safetensors")
    app = create_app(m, [root / "run"], limits=Limits(max_tokens=64, max_scale=50, max_vectors=3,
                                                      max_body_bytes=20_000, max_prompt_tokens=100))
    return m, vs, app, TestClient(app)


def b64(values) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


def post(client, body, path="/v1/completions"):
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body  # \ud800 goes out as its JSON escape
    return client.post(path, content=raw, headers={"content-type": "application/json"})


OK = {"model": "base", "prompt": "the cat", "max_tokens": 3, "temperature": 0}
BAD = [  # (what was sent, status, param, message part) — the README's bad-input table is this list
    ({"prompt": "hi \ud800"}, 400, "prompt", "lone surrogate"),
    ({"model": "gpt-4"}, 404, "model", "does not exist"),
    ({"model": "base+nope@2"}, 400, "model", "unknown vector 'nope'"),
    ({"model": "base+run/1@abc"}, 400, "model", "is not a number"),
    ({"steering": {"vectors": [{"name": "run/9"}]}}, 400, "steering.vectors[0].name", "unknown vector 'run/9'"),
    ({"steering": {"vectors": [{"data": b64(np.ones(64)), "layers": [1]}]}}, 400, "steering.vectors[0].data",
     "has 64 floats but model tiny-llama has d_model 32"),
    ({"steering": {"vectors": [{"data": b64([float("nan")] * 32), "layers": [1]}]}}, 400,
     "steering.vectors[0].data", "NaN"),
    ({"steering": {"vectors": [{"data": "not base64!", "layers": [1]}]}}, 400, "steering.vectors[0].data",
     "not valid base64"),
    ({"steering": {"vectors": [{"data": b64(np.ones(32)), "layers": [7]}]}}, 400, "steering.vectors[0].layers",
     "layer 7 is out of range"),
    ({"steering": {"vectors": [{"data": b64(np.ones(32))}]}}, 400, "steering.vectors[0].layers", "needs layers"),
    ({"steering": {"vectors": [{"name": "run/1", "scale": 1e9}]}}, 400, "steering.vectors[0].scale",
     "between -50 and 50"),
    ({"steering": {"vectors": [{"name": "run/1", "positions": "sideways"}]}}, 400,
     "steering.vectors[0].positions", "not understood"),
    ({"steering": {"vectors": [{"name": "run/1"}] * 4}}, 400, "steering.vectors", "the limit is 3"),
    ({"steering": {"vectors": [{"name": "run/1", "data": "AAAA"}]}}, 400, "steering.vectors[0]", "exactly one"),
    ({"steering": "run/1"}, 400, "steering", "must be an object"),
    ({"max_tokens": 100000}, 400, "max_tokens", "between 1 and 64"),
    ({"max_tokens": 0}, 400, "max_tokens", "between 1 and 64"),
    ({"prompt": "a" * 150}, 400, "prompt", "the limit is 100"),
    ({"prompt": ""}, 400, "prompt", "non-empty string"),
    ({"temperature": -1}, 400, "temperature", "between 0 and 2"),
    ({"n": 2}, 400, "n", "must be 1"),
    ({"logprobs": 3}, 400, "logprobs", "not supported"),
    ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop", "at most 4"),
]


@pytest.mark.parametrize("change,status,param,message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_is_an_openai_error(setup, change, status, param, message):
    client = setup[3]
    r = post(client, {**OK, **change})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    assert err["param"] == param and message in err["message"], err


def test_malformed_bodies_and_server_survives(setup):
    client = setup[3]
    assert post(client, b'{"model": "base", "prompt": "hi", "steering": {"vectors": [{"name": "run/1", '
                        b'"scale": NaN}]}}').status_code == 400
    assert post(client, b"{not json").json()["error"]["code"] == "invalid_json"
    assert post(client, b'{"model": "base", "prompt": "\xff\xfe"}').status_code == 400  # not UTF-8
    assert post(client, b"[1, 2]").status_code == 400
    big = post(client, {**OK, "prompt": "x" * 30_000})
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    chat = post(client, {"model": "base", "messages": [{"role": "tool", "content": "x"}]}, "/v1/chat/completions")
    assert chat.status_code == 400 and chat.json()["error"]["param"] == "messages[0].role"
    assert post(client, OK).status_code == 200  # still serving
    assert client.get("/health").json()["status"] == "ok"


def test_api_key(setup, tmp_path):
    m = setup[0]
    client = TestClient(create_app(m, api_key="s3cret"))
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).json()["error"]["code"] == \
        "invalid_api_key"
    assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/health").status_code == 200


def test_listing_and_model_ids(setup):
    _, vs, _, client = setup
    ids = [d["id"] for d in client.get("/v1/models").json()["data"]]
    assert ids == ["base"] + [f"base+run/{i}" for i in range(4)]
    vectors = client.get("/v1/steering/vectors").json()["data"]
    assert [v["name"] for v in vectors] == [f"run/{i}" for i in range(4)]
    assert vectors[2]["layers"] == [LAYER] and abs(vectors[2]["norm"] - float(vs[2].norm())) < 1e-4


def test_continuous_batching_equals_separate_generate(setup):
    """Jobs that join while others decode (staggered submits, different lengths, 0-2 vectors) give exactly the
    text of separate generate calls."""
    m, vs = setup[0], setup[1]
    sched = Scheduler(m, Limits(max_batch=5, batch_window_ms=0)).start()
    try:
        prompts = ["the cat sat", "hello there friend", "a", "numbers 1 2 3 4 5 6", "Zebra!"]
        cases = [(prompts[i % 5], [(i % 4, 2.0 - i)] if i % 3 else [(i % 4, 1.5), ((i + 1) % 4, -2.0)] if i % 2
                  else [], 3 + (i % 4) * 3) for i in range(14)]
        events: list = []
        threads = []
        for i, (prompt, terms, n) in enumerate(cases):
            job = Job(prompt_ids(m, prompt, False), [Term(vs[k], s) for k, s in terms], max_tokens=n)
            t = threading.Thread(target=lambda job=job, i=i: events.append((i, sched.run_sync(job, timeout=60))))
            t.start()
            threads.append(t)
            time.sleep(0.01 * (i % 3))
        for t in threads:
            t.join(timeout=60)
        got = {i: text.strip() for i, (text, _, _) in events}
        assert len(got) == len(cases)
        for i, (prompt, terms, n) in enumerate(cases):
            with ss.steer(m, vs[terms[1][0]], terms[1][1]) if len(terms) == 2 else _null():
                want = ss.generate(m, [prompt], vectors=vs[terms[0][0]] if terms else None,
                                   scales=terms[0][1] if terms else 1.0, max_new_tokens=n, chat=False)[0]
            assert got[i] == want, (i, got[i], want)
        assert sched.stats["prefills"] > 1 and sched.stats["max_rows"] > 1
    finally:
        sched.stop()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def test_cancelled_jobs_are_never_generated(setup):
    m = setup[0]
    sched = Scheduler(m, Limits(batch_window_ms=0))
    jobs = [Job(prompt_ids(m, "the cat", False), max_tokens=50) for _ in range(3)]
    ends = []
    for job in jobs[:2]:
        job.cancelled.set()  # the client went away while queued
        job.sink = ends.append
        sched.submit(job)
    sched.start()
    try:
        assert sched.run_sync(jobs[2], timeout=60)[1] == "length"
        assert sched.stats["dropped_disconnected"] == 2 and sched.stats["admitted"] == 1
        assert [e[1] for e in ends] == ["cancelled", "cancelled"]
        assert all(not j.generated for j in jobs[:2])
    finally:
        sched.stop()


def test_disconnects_free_rows_and_skip_queued_requests(setup):
    """One row only: A streams, B waits in the queue and its client gives up, then A's client hangs up. B is never
    generated, A's row is freed at once, and C is served."""
    m = setup[0]
    app = create_app(m, limits=Limits(max_tokens=240, max_batch=1))
    sock = bind("127.0.0.1", 0)
    server, thread = serve_in_thread(app, sock)
    slow = m.hf.register_forward_hook(lambda *args: time.sleep(0.02))  # 240 steps take ~5 s
    stats = app.state.ctx.scheduler.stats
    try:
        url = url_of(sock) + "v1/completions"
        body = {"model": "base", "prompt": "the cat", "max_tokens": 240, "temperature": 0}
        with httpx.Client(timeout=30) as client, client.stream("POST", url, json={**body, "stream": True}) as r:
            assert r.status_code == 200
            lines = r.iter_lines()  # keep the iterator: dropping it closes the connection
            next(lines)  # A is decoding
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(url, json=body, timeout=0.5)  # B queues behind A; its client gives up
            time.sleep(0.5)  # B's disconnect is noticed while it still waits
            assert stats["dropped_disconnected"] == 0 and stats["admitted"] == 1  # A still decoding, B waiting
        deadline = time.monotonic() + 20
        while stats["dropped_disconnected"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stats["dropped_disconnected"] == 2 and stats["admitted"] == 1  # B never reached the model
        assert app.state.ctx.scheduler.state.size == 0
        r = httpx.post(url, json={**body, "max_tokens": 3}, timeout=30)  # C is served at once
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3 and stats["admitted"] == 2
    finally:
        slow.remove()
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def test_sampling_is_seeded(setup):
    client = setup[3]
    body = {**OK, "temperature": 1.5, "seed": 7, "max_tokens": 12}
    a, b = post(client, body).json(), post(client, body).json()
    assert a["choices"][0]["text"] == b["choices"][0]["text"]
    assert post(client, {**body, "stop": ["e"]}).json()["choices"][0]["text"].count("e") == 0


def test_cli_serve_refuses_remote_and_wrong_width(setup, tmp_path, capsys):
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err
    m = setup[0]
    model_dir = tmp_path / "tiny-model"
    m.hf.save_pretrained(model_dir)
    m.tokenizer.save_pretrained(model_dir)
    wide = tmp_path / "wide.safetensors"
    ss.VectorSet({1: torch.randn(2, 64)}).save(wide)
    capsys.readouterr()  # drop the save progress bars
    assert main(["serve", str(model_dir), "--vectors", str(wide), "--port", "0"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("steerscope: error:")]
    assert len(err) == 1 and "width 64" in err[0] and "d_model 32" in err[0], err
