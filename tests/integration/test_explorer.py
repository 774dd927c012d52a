"""Explorer API on a tiny model (no browser): batched generation, validation messages, loopback-only binding."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch
from fake_run import make_run
from fastapi.testclient import TestClient
from tiny import tiny_model

import steerscope as ss
from steerscope.cli.main import main
from steerscope.errors import InvalidArgumentError
from steerscope.report.explorer import bind, check_host, create_app, host_allowlist, load_source

generate_module = importlib.import_module("steerscope.generate")  # `steerscope.generate` the attribute is the function


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("explore") / "run", n_vectors=3)


@pytest.fixture
def client(run_dir):
    return TestClient(create_app(tiny_model("llama"), load_source(run_dir)))


def test_info_lists_vectors_with_their_columns(client):
    info = client.get("/api/info").json()
    assert [row["index"] for row in info["vectors"]] == [0, 1, 2]
    assert {"norm", "objective", "kl_to_base"} <= set(info["vectors"][1])
    assert info["limits"]["max_scale"] == 100
    page = client.get("/")
    assert page.status_code == 200 and 'id="generate"' in page.text and "http" not in page.text.split("<script>")[1]


def test_generate_is_one_batch_with_per_row_vectors(run_dir, monkeypatch):
    calls = []
    real = generate_module.generate

    def counting(model, prompts, **kwargs):
        calls.append((list(prompts), kwargs))
        return real(model, prompts, **kwargs)

    monkeypatch.setattr(generate_module, "generate", counting)
    m, source = tiny_model("llama"), load_source(run_dir)
    client = TestClient(create_app(m, source))
    body = {"prompt": "the cat sat", "vectors": [2, 0], "scale": -3.5, "positions": "prompt", "max_new_tokens": 6}
    r = client.post("/api/generate", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(calls) == 1 and len(calls[0][0]) == 3  # baseline + two vectors in one generate
    assert [s["index"] for s in out["steered"]] == [2, 0]
    alone = [real(m, ["the cat sat"], vectors=v, scales=-3.5, max_new_tokens=6, positions="prompt")[0]
             for v in (None, source.vectors[2], source.vectors[0])]
    assert [out["baseline"]] + [s["completion"] for s in out["steered"]] == alone


@pytest.mark.parametrize("change,message", [
    ({"scale": 1000}, "scale must be a finite number between -100 and 100"),
    ({"scale": -100.5}, "scale must be a finite number"),
    ({"prompt": "   "}, "type a prompt first"),
    ({"prompt": "x" * 2001}, "the limit is 2000"),
    ({"vectors": [3]}, "vector index 3 is out of range: this set has 3 vectors (0..2)"),
    ({"vectors": [-1]}, "vector index -1 is out of range"),
    ({"vectors": []}, "pick at least one vector"),
    ({"vectors": [0, 0]}, "each vector can be picked once"),
    ({"positions": "sideways"}, "positions must be one of all, prompt, generated"),
    ({"max_new_tokens": 0}, "max new tokens must be between 1 and 256"),
    ({"scale": "big"}, "scale: Input should be a valid number"),
    ({"scale": None}, "scale: Input should be a valid number"),
    ({"vectors": "0"}, "vectors: Input should be a valid list"),
])
def test_invalid_requests_get_clear_messages(client, change, message):
    body = {"prompt": "hi there", "vectors": [0], "scale": 4.0, "positions": "all", "max_new_tokens": 4, **change}
    r = client.post("/api/generate", json=body)
    assert r.status_code == 422
    assert any(message in e for e in r.json()["errors"]), r.json()


def test_nan_scale_is_refused(client):
    r = client.post("/api/generate", content=b'{"prompt": "hi", "vectors": [0], "scale": NaN}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_only_loopback_unless_allowed():
    assert check_host("127.0.0.1") == "127.0.0.1"
    assert check_host("localhost") == "127.0.0.1"
    assert check_host("::1") == "::1"
    assert check_host("127.0.0.5") == "127.0.0.5"
    for host in ("0.0.0.0", "192.168.1.5", "example.org", "::"):
        with pytest.raises(InvalidArgumentError, match="--allow-remote"):
            check_host(host)
    assert check_host("0.0.0.0", allow_remote=True) == "0.0.0.0"


def test_foreign_host_header_is_rejected(run_dir):
    app = create_app(tiny_model("llama"), load_source(run_dir), allowed_hosts=host_allowlist(False))
    assert TestClient(app, base_url="http://127.0.0.1").get("/api/info").status_code == 200
    assert TestClient(app, base_url="http://attacker.example").get("/api/info").status_code == 400


def test_sources_and_width_checks(run_dir, tmp_path):
    single = tmp_path / "one.safetensors"
    load_source(run_dir).vectors[1].save(single)
    source = load_source(single)
    assert len(source.vectors) == 1 and source.rows[0]["index"] == 0
    with pytest.raises(InvalidArgumentError, match="neither a run directory nor a vector file"):
        load_source(tmp_path / "missing")
    (tmp_path / "novectors").mkdir()
    with pytest.raises(InvalidArgumentError, match="no readable vectors.safetensors"):
        load_source(tmp_path / "novectors")
    wide = tmp_path / "wide.safetensors"
    ss.VectorSet({1: torch.randn(2, 64)}).save(wide)
    with pytest.raises(ss.SteerscopeError, match="64"):
        create_app(tiny_model("llama"), load_source(wide))


def test_taken_port_is_a_clear_error():
    sock = bind("127.0.0.1", 0)
    try:
        with pytest.raises(InvalidArgumentError, match="pick another --port"):
            bind("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()


def test_cli_refuses_remote_host_before_loading_anything(run_dir, capsys):
    assert main(["explore", str(run_dir), "--host", "0.0.0.0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_cli_serves_and_prints_its_address(run_dir, tmp_path):
    m = tiny_model("llama")
    model_dir = tmp_path / "tiny-model"
    m.hf.save_pretrained(model_dir)
    m.tokenizer.save_pretrained(model_dir)
    proc = subprocess.Popen([sys.executable, "-m", "steerscope.cli.main", "explore", str(run_dir), "--port", "0",
                             "--model", str(model_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("steerscope explorer: http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        url = line.split()[2]
        info = httpx.get(url + "api/info", timeout=30).json()
        assert len(info["vectors"]) == 3 and info["d_model"] == m.d_model
        r = httpx.post(url + "api/generate", json={"prompt": "the cat", "vectors": [1], "max_new_tokens": 4}, timeout=60)
        assert r.status_code == 200 and len(r.json()["steered"]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=20)
