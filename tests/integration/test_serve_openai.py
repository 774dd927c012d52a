"""End to end with the real ``openai`` client against a live server (uvicorn on a free loopback port) on the
embedded SmolLM2: chat, completions, streaming, named / inline / two vectors, each answer equal to ``ss.generate``
(greedy) for the same prompt, vector and scale; then 32 concurrent clients x 10 requests over 8 vectors."""

from __future__ import annotations

import base64
import threading
import time

import numpy as np
import pytest
import torch

import steerscope as ss
from steerscope.app import bind, create_app, serve_in_thread, url_of

openai = pytest.importorskip("openai", reason="openai is in the dev extras: pip install -e .[dev]")
pytestmark = pytest.mark.real

LAYER = 7
PROMPTS = ["Tell me about yourself.", "Give me advice on learning to cook."]
TOKENS = 12


@pytest.fixture(scope="module")
def served(real_model, tmp_path_factory):
    """A run directory with 8 unit-ish vectors (registered as run/0..7) and a single-vector file (happy)."""
    m = real_model
    root = tmp_path_factory.mktemp("serve")
    gen = torch.Generator().manual_seed(0)
    vs = ss.VectorSet({LAYER: torch.nn.functional.normalize(torch.randn(8, m.d_model, generator=gen), dim=-1) * 6},
                      method="test", model_name=m.name)
    (root / "run").mkdir()
    vs.save(root / "run" / "vectors.safetensors")
    happy = ss.SteeringVector({LAYER: vs[2].directions[LAYER] * -1.5, LAYER + 3: vs[5].directions[LAYER]})
    happy.save(root / "happy.safetensors")
    sock = bind("127.0.0.1", 0)
    server, thread = serve_in_thread(create_app(m, [root / "run", root / "happy.safetensors"]), sock)
    client = openai.OpenAI(base_url=url_of(sock) + "v1", api_key="unused", timeout=120, max_retries=0)
    try:
        yield client, vs, happy
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def ref(m, prompt, vector=None, scale=1.0, chat=True, positions="all"):
    return ss.generate(m, [prompt], vectors=vector, scales=scale, max_new_tokens=TOKENS, chat=chat,
                       positions=positions)[0]


def chat(client, prompt, model="base", **extra):
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                       max_tokens=TOKENS, temperature=0, **extra)
    return r.choices[0].message.content.strip(), r


def test_listing(served):
    client = served[0]
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == "base" and "base+run/3" in ids and "base+happy" in ids
    listed = client.get("/steering/vectors", cast_to=object)["data"]
    row = next(r for r in listed if r["name"] == "run/3")
    assert row["layers"] == [LAYER] and row["site"] == "resid_post" and row["method"] == "test"
    assert abs(row["norm"] - 6.0) < 1e-4 and row["source"].endswith("run")


def test_unsteered_chat_equals_base_model(served, real_model):
    client, _, _ = served
    text, r = chat(client, PROMPTS[0])
    assert text == ref(real_model, PROMPTS[0])
    assert r.usage.completion_tokens <= TOKENS and r.choices[0].finish_reason in ("stop", "length")


def test_named_vector_chat_and_model_id(served, real_model):
    client, vs, _ = served
    expected = ref(real_model, PROMPTS[1], vs[3], 4.0)
    assert expected != ref(real_model, PROMPTS[1])  # the vector does something
    named, _ = chat(client, PROMPTS[1], extra_body={"steering": {"vectors": [{"name": "run/3", "scale": 4.0}]}})
    by_id, _ = chat(client, PROMPTS[1], model="base+run/3@4.0")
    assert named == by_id == expected


def test_completion_endpoint_and_streaming(served, real_model):
    client, vs, _ = served
    prompt = "The capital of France is"
    r = client.completions.create(model="base+run/1@3", prompt=prompt, max_tokens=TOKENS, temperature=0)
    assert r.choices[0].text.strip() == ref(real_model, prompt, vs[1], 3.0, chat=False)
    stream = client.chat.completions.create(model="base", messages=[{"role": "user", "content": PROMPTS[1]}],
                                            max_tokens=TOKENS, temperature=0, stream=True,
                                            stream_options={"include_usage": True},
                                            extra_body={"steering": {"vectors": [{"name": "run/0", "scale": 5.0}]}})
    chunks = list(stream)
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([d for d in deltas if d]) > 2  # streamed token by token, not in one piece
    assert "".join(deltas).strip() == ref(real_model, PROMPTS[1], vs[0], 5.0)
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    s = client.completions.create(model="base", prompt=prompt, max_tokens=TOKENS, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in s).strip() == ref(real_model, prompt, chat=False)


def test_inline_base64_vector_and_two_vectors(served, real_model):
    client, vs, happy = served
    data = base64.b64encode(np.asarray(vs[6].directions[LAYER], dtype="<f4").tobytes()).decode()
    inline, _ = chat(client, PROMPTS[0], extra_body={"steering": {"vectors": [
        {"data": data, "layers": [LAYER], "site": "resid_post", "scale": -3.0}]}})
    assert inline == ref(real_model, PROMPTS[0], vs[6], -3.0)
    # two vectors (one multi-layer): term 0 is applied first, as with steer(v1) around generate(vectors=v0)
    two, _ = chat(client, PROMPTS[0], extra_body={"steering": {"vectors": [
        {"name": "run/4", "scale": 3.0}, {"name": "happy", "scale": 2.0}]}})
    with ss.steer(real_model, happy, 2.0):
        expected = ref(real_model, PROMPTS[0], vs[4], 3.0)
    assert two == expected
    assert two != ref(real_model, PROMPTS[0], vs[4], 3.0)


def test_generated_positions_with_padding_reference(served, real_model):
    """positions="generated": equal to generate() in a batch where a longer second prompt left-pads this row (with
    padding, generate passes the 2D mask every step, so its positions are right whatever steer.py does without one)."""
    client, vs, _ = served
    steered, _ = chat(client, PROMPTS[1], extra_body={"steering": {"vectors": [
        {"name": "run/3", "scale": 40.0, "positions": "generated"}]}})
    longer = "Please write a long and detailed answer to a question about the history of the Roman empire."
    expected = ss.generate(real_model, [PROMPTS[1], longer], vectors=[vs[3], None], scales=[40.0, 0.0],
                           max_new_tokens=TOKENS, positions="generated")[0]
    assert steered == expected
    assert steered != ref(real_model, PROMPTS[1]) and steered != ref(real_model, PROMPTS[1], vs[3], 40.0)


def test_32_clients_x_10_requests_over_8_vectors(served, real_model):
    """Completions with short prompts (cheap prefill keeps the test short); bounded: 320 requests, 240 s."""
    client, vs, _ = served
    tokens = 6
    prompts = ["The weather today is", "My favourite food is"]
    combos = [(p, i) for p in prompts for i in range(8)]
    expected = {(p, i): ss.generate(real_model, [p], vectors=vs[i], scales=3.0, max_new_tokens=tokens, chat=False)[0]
                for p, i in combos}
    answers, errors = {}, []

    def worker(c: int) -> None:
        for k in range(10):
            prompt, i = combos[(c * 10 + k) % len(combos)]
            try:
                r = client.completions.create(model=f"base+run/{i}@3", prompt=prompt, max_tokens=tokens,
                                              temperature=0)
                answers[(c, k)] = (prompt, i, r.choices[0].text.strip())
            except openai.OpenAIError as exc:  # recorded, asserted below
                errors.append(repr(exc))

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(c,)) for c in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads), "load test did not finish within 240 s"
    assert not errors, errors[:3]
    assert len(answers) == 320  # nothing dropped
    wrong = [(p, i, a) for p, i, a in answers.values() if a != expected[(p, i)]]
    assert not wrong, wrong[:3]
    health = client.get("/../health", cast_to=object)
    assert health["max_rows"] > 8, health  # requests really shared batches
    print(f"320 requests in {time.monotonic() - start:.1f} s, widest batch {health['max_rows']}")
