"""Serving throughput: 32 concurrent clients x 10 requests over 8 vectors vs the same requests one at a time.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_serve.py

Both sides go through the same live server (uvicorn on a free loopback port, the embedded SmolLM2, one torch
thread) with the same request mix (chat, greedy, MAX_TOKENS new tokens, vector run/i at scale 3). The one-at-a-time
side serves SEQUENTIAL requests of the mix (a rate is compared, so a sample suffices; the full 320 would take
minutes). Every concurrent answer is checked against the one-at-a-time answer of the same request.
Writes bench/results/serve.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch

import steerscope as ss
from steerscope.app import bind, create_app, serve_in_thread, url_of

CLIENTS, PER_CLIENT, N_VECTORS, MAX_TOKENS, SEQUENTIAL = 32, 10, 8, 16, 40
LAYER = 7
PROMPTS = ["Tell me about yourself.", "Give me advice on learning to cook.", "Write a haiku about rain.",
           "What is a prime number?"]


def request_mix() -> list[tuple[str, int]]:
    return [(PROMPTS[n % len(PROMPTS)], (n // len(PROMPTS)) % N_VECTORS) for n in range(CLIENTS * PER_CLIENT)]


def call(client: httpx.Client, prompt: str, vector: int) -> tuple[str, int, float]:
    start = time.perf_counter()
    r = client.post("chat/completions", json={"model": f"base+run/{vector}@3", "temperature": 0,
                                              "max_tokens": MAX_TOKENS,
                                              "messages": [{"role": "user", "content": prompt}]})
    r.raise_for_status()
    body = r.json()
    return body["choices"][0]["message"]["content"], body["usage"]["completion_tokens"], time.perf_counter() - start


def summary(latencies: list[float], tokens: int, seconds: float) -> dict:
    q = statistics.quantiles(latencies, n=20)
    return {"requests": len(latencies), "completion_tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1), "requests_per_s": round(len(latencies) / seconds, 2),
            "latency_p50_s": round(statistics.median(latencies), 3), "latency_p95_s": round(q[18], 3)}


def main() -> None:
    torch.set_num_threads(1)
    m = ss.load_model()
    gen = torch.Generator().manual_seed(0)
    vs = ss.VectorSet({LAYER: torch.nn.functional.normalize(torch.randn(N_VECTORS, m.d_model, generator=gen), dim=-1)
                       * 6}, method="bench", model_name=m.name)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "run").mkdir()
    vs.save(tmp / "run" / "vectors.safetensors")
    app = create_app(m, [tmp / "run"])
    sock = bind("127.0.0.1", 0)
    server, thread = serve_in_thread(app, sock)
    base = url_of(sock) + "v1/"
    mix = request_mix()
    limits = httpx.Limits(max_connections=CLIENTS + 4)
    with httpx.Client(base_url=base, timeout=600, limits=limits) as client:
        call(client, PROMPTS[0], 0)  # warm-up
        # one at a time: a sample of the same mix
        seq_answers, seq_lat, seq_tokens = {}, [], 0
        start = time.perf_counter()
        for prompt, v in mix[:SEQUENTIAL]:
            text, n, lat = call(client, prompt, v)
            seq_answers[(prompt, v)] = text
            seq_lat.append(lat)
            seq_tokens += n
        sequential = summary(seq_lat, seq_tokens, time.perf_counter() - start)
        print("one at a time:", sequential, flush=True)
        # concurrent: 32 clients x 10 requests
        results: list[tuple[str, int, str, int, float]] = []
        lock = threading.Lock()

        def worker(c: int) -> None:
            for k in range(PER_CLIENT):
                prompt, v = mix[c * PER_CLIENT + k]
                text, n, lat = call(client, prompt, v)
                with lock:
                    results.append((prompt, v, text, n, lat))

        start = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(c,)) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=900)
        seconds = time.perf_counter() - start
        health = httpx.get(url_of(sock) + "health").json()
        # the scheduler without HTTP vs one batched ss.generate of the same 32 rows (per-row vectors, 32 tokens)
        from steerscope.app.engine import Term
        from steerscope.app.explorer import prompt_ids
        from steerscope.app.scheduler import Job

        rows = mix[:CLIENTS]
        jobs = [Job(prompt_ids(m, p, True), [Term(vs[v], 3.0)], max_tokens=32) for p, v in rows]
        start = time.perf_counter()
        sched_texts = app.state.ctx.scheduler.run_many(jobs)
        sched_s = time.perf_counter() - start
        start = time.perf_counter()
        gen_texts = ss.generate(m, [p for p, _ in rows], vectors=[vs[v] for _, v in rows], scales=3.0,
                                max_new_tokens=32)
        gen_s = time.perf_counter() - start
        engine = {"rows": len(rows), "max_new_tokens": 32, "scheduler_s": round(sched_s, 2),
                  "hf_generate_batched_s": round(gen_s, 2), "same_texts": sched_texts == gen_texts}
        print("engine vs generate:", engine, flush=True)
    server.should_exit = True
    thread.join(timeout=20)
    sock.close()
    if len(results) != CLIENTS * PER_CLIENT:
        sys.exit(f"dropped requests: {CLIENTS * PER_CLIENT - len(results)}")
    concurrent = summary([r[4] for r in results], sum(r[3] for r in results), seconds)
    mismatches = sum(1 for p, v, text, _, _ in results if (p, v) in seq_answers and text != seq_answers[(p, v)])
    checked = sum(1 for p, v, *_ in results if (p, v) in seq_answers)
    print("concurrent:", concurrent, flush=True)
    out = {"model": m.name, "torch_threads": torch.get_num_threads(), "clients": CLIENTS,
           "requests_per_client": PER_CLIENT, "vectors": N_VECTORS, "max_tokens": MAX_TOKENS,
           "endpoint": "chat/completions (greedy)", "max_batch": app.state.ctx.limits.max_batch,
           "batch_window_ms": app.state.ctx.limits.batch_window_ms,
           "concurrent": concurrent, "one_at_a_time": sequential,
           "throughput_ratio": round(concurrent["tokens_per_s"] / sequential["tokens_per_s"], 2),
           "scheduler_vs_batched_generate": engine,
           "answers_checked_against_one_at_a_time": checked, "mismatches": mismatches,
           "scheduler": {k: health[k] for k in ("admitted", "finished", "steps", "max_rows", "dropped_disconnected")}}
    path = Path(__file__).parent / "results" / "serve.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"throughput ratio {out['throughput_ratio']}x; wrote {path}")


if __name__ == "__main__":
    main()
