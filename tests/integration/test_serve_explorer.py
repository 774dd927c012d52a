"""The explorer page of the server on a tiny model (no browser): rows batched through the scheduler, validation
messages, loopback-only binding, and the CLI (wrong-width vectors exit 2 at once)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient
from report_runs import report_runs
from tiny import tiny_model

import steerscope as ss
from steerscope.app import bind, check_host, create_app, host_allowlist, load_source
from steerscope.cli.main import main
from steerscope.errors import InvalidArgumentError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return report_runs(tmp_path_factory)["melbo"].path  # a real MELBO run of 3 vectors on the tiny llama


@pytest.fixture
def client(run_dir):
    return TestClient(create_app(tiny_model("llama"), explorer=load_source(run_dir)), base_url="http://127.0.0.1/explore/")


def test_info_lists_vectors_with_their_columns(client):
    info = client.get("api/info").json()
    assert [row["index"] for row in info["vectors"]] == [0, 1, 2]
    assert {"norm", "objective", "heldout_kl"} <= set(info["vectors"][1])
    assert info["limits"]["max_scale"] == 100
    page = client.get("")
    assert page.status_code == 200 and 'id="generate"' in page.text and "http" not in page.text.split("<script>")[1]


def test_generate_rows_share_one_batch_and_equal_generate(run_dir):
    m, source = tiny_model("llama"), load_source(run_dir)
    app = create_app(m, explorer=source)
    client = TestClient(app, base_url="http://127.0.0.1/explore/")
    body = {"prompt": "the cat sat", "vectors": [2, 0], "scale": -3.5, "positions": "all", "max_new_tokens": 6}
    r = client.post("api/generate", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    stats = app.state.ctx.scheduler.stats
    assert stats["admitted"] == 3 and stats["prefills"] == 1  # baseline + two vectors prefilled as one batch
    assert [s["index"] for s in out["steered"]] == [2, 0]
    alone = [ss.generate(m, ["the cat sat"], vectors=v, scales=-3.5, max_new_tokens=6)[0]
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
    r = client.post("api/generate", json=body)
    assert r.status_code == 422
    assert any(message in e for e in r.json()["errors"]), r.json()


def test_lone_surrogate_prompt_is_a_4xx(client):
    body = json.dumps({"prompt": "hi \ud800 there", "vectors": [0]})  # ensure_ascii: sent as the escape \ud800
    r = client.post("api/generate", content=body.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 422 and "lone surrogate" in r.json()["errors"][0]


def test_nan_scale_is_refused(client):
    r = client.post("api/generate", content=b'{"prompt": "hi", "vectors": [0], "scale": NaN}',
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
    app = create_app(tiny_model("llama"), explorer=load_source(run_dir), allowed_hosts=host_allowlist(False))
    assert TestClient(app, base_url="http://127.0.0.1").get("/explore/api/info").status_code == 200
    assert TestClient(app, base_url="http://attacker.example").get("/explore/api/info").status_code == 400
    assert TestClient(app, base_url="http://attacker.example").get("/v1/models").status_code == 400


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
        create_app(tiny_model("llama"), explorer=load_source(wide))


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
        assert url.endswith("/explore/")
        info = httpx.get(url + "api/info", timeout=30).json()
        assert len(info["vectors"]) == 3 and info["d_model"] == m.d_model
        r = httpx.post(url + "api/generate", json={"prompt": "the cat", "vectors": [1], "max_new_tokens": 4}, timeout=60)
        assert r.status_code == 200 and len(r.json()["steered"]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_cli_wrong_width_exits_2_with_one_line(tmp_path):
    """Issue 16: a vector of the wrong width is a one-line error and exit code 2, not a hang."""
    m = tiny_model("llama")
    model_dir = tmp_path / "tiny-model"
    m.hf.save_pretrained(model_dir)
    m.tokenizer.save_pretrained(model_dir)
    wide = tmp_path / "wide.safetensors"
    ss.VectorSet({1: torch.randn(2, 64)}).save(wide)
    proc = subprocess.run([sys.executable, "-m", "steerscope.cli.main", "explore", str(wide), "--port", "0",
                           "--model", str(model_dir)], check=False, capture_output=True, text=True, timeout=60)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("steerscope: error:")]
    assert proc.returncode == 2, proc.stderr
    assert len(errors) == 1 and "64" in errors[0] and str(m.d_model) in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
