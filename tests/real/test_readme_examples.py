"""The README's Python examples run (issue 14: examples that cannot drift from the API).

Every ```python block of README.md is executed in order, in one namespace, on the embedded model, in a temporary
directory. Argument names, call shapes and return attributes are exactly the README's; only the sizes that would
take minutes (steps, vector counts, runs) are shrunk by the substitutions below, which must each match something,
so the list stays honest when the README changes.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.real

README = Path(__file__).resolve().parents[2] / "README.md"
SHRINK = [  # (pattern, replacement): the README's sizes → seconds-long runs
    (r"steps=40\b", "steps=3"), (r"steps=300\b", "steps=3"), (r"steps=1000\b", "steps=2"),
    (r"num_vectors=8\b", "num_vectors=2"), (r"num_vectors=100\b", "num_vectors=2"),
    (r"max_iters=30\b", "max_iters=3"), (r"runs=2\b", "runs=1"), (r"max_steps=30\b", "max_steps=1, eval_size=2, num_samples=1"),
    (r"max_new_tokens=48\b", "max_new_tokens=4"), (r"max_new_tokens=40\b", "max_new_tokens=4"),
    (r"batches=6\b", "batches=2"), (r'radius="auto"', "radius=4.0"),
    (r"num_vectors=16\b", "num_vectors=2"), (r"steps=100\b", "steps=2"),
    (r"ss\.melbo\(m\)", "ss.melbo(m, num_vectors=2, steps=3, radius=4.0)"),
]
PRELUDE = '''
import torch
import steerscope as ss
m = ss.load_model()
prompts = ["Tell me about yourself.", "How do I bake bread?", "What is the capital of France?", "Hi!"]
held_out_prompts = ["Write a poem about dogs.", "Give me a recipe."]
pairs = [("I love this!", "I hate this!"), ("What a great day.", "What a terrible day.")]
from steerscope.inputs import tokenize
batch = dict(zip(("input_ids", "attention_mask"), tokenize(m, prompts[:3])))
v1, v2 = (ss.SteeringVector({10: torch.randn(m.d_model) * 4}) for _ in range(2))
'''


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_python_examples_run(real_model, tmp_path, monkeypatch):
    import steerscope as ss

    code = blocks()
    assert code, "README has no python examples"
    used = set()
    shrunk = []
    for block in code:
        for pattern, repl in SHRINK:
            block, n = re.subn(pattern, repl, block)
            if n:
                used.add(pattern)
        # "...; h.remove()" style placeholders: Ellipsis is a valid expression, keep them
        shrunk.append(block)
    assert used == {p for p, _ in SHRINK}, f"substitutions that match nothing any more: {set(dict(SHRINK)) - used}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ss, "load_model", lambda *a, **k: real_model)  # one load for the whole file
    from steerscope import samples

    real_write = samples.write_samples  # run samples: a few tokens each (sizes only, the API is unchanged)
    monkeypatch.setattr(samples, "write_samples", lambda *a, **k: real_write(*a, **{**k, "max_new_tokens": 4}))
    namespace: dict = {}
    exec(compile(PRELUDE, "README-prelude", "exec"), namespace)
    # the vectors the sweep/KL examples use
    exec(compile("vectors = [v1, v2, None]", "README-prelude", "exec"), namespace)
    for i, block in enumerate(shrunk, 1):
        start = time.perf_counter()
        try:
            if "OpenAI(" in block:  # the serving example: against a real server on a free loopback port
                with _live_server(real_model, tmp_path) as url:
                    namespace["b64_float32_le"] = _b64(torch.randn(real_model.d_model))
                    exec(compile(block.replace("http://127.0.0.1:8000/v1", url), f"README block {i}", "exec"),
                         namespace)
            else:
                exec(compile(block, f"README.md python block {i}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"README python block {i} fails: {type(exc).__name__}: {exc}\n{block}") from exc
        print(f"README block {i}: {time.perf_counter() - start:.1f} s")


@contextmanager
def _live_server(model, root: Path):
    """The steerscope server on 127.0.0.1:free-port with the README's run registered as ``melbo``."""
    from steerscope.app import bind, create_app, serve_in_thread, url_of

    sock = bind("127.0.0.1", 0)
    server, thread = serve_in_thread(create_app(model, [root / "runs" / "melbo"]), sock)
    try:
        yield url_of(sock).rstrip("/") + "/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _b64(vector) -> str:
    import base64

    import numpy as np

    return base64.b64encode(np.asarray(vector.numpy(), dtype="<f4").tobytes()).decode()
