"""GPU benchmark (issue 11): a random-init model with Llama-3-8B's published config in bf16 on one CUDA device.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_gpu.py            # needs CUDA; writes bench/results/gpu.json

- bf16 matmul peak of this GPU, measured here (8192³ GEMMs), so MELBO's share of it is a ratio from one run;
- MELBO: vector-steps/s (parallel mode, 8 vectors, 4 prompts) and achieved TFLOP/s, with FLOPs per step counted
  by torch's FlopCounterMode on one replayed forward + input-gradient backward;
- generation tokens/s unsteered vs steered at batch 1 and 64, one layer and all layers, best of ≥ 3 interleaved
  repetitions (targets: ≤ 3 % overhead for one layer at batch 64, ≤ 10 % for all layers).
Absolute figures hold for the GPU named in the JSON only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import steerscope as ss

# meta-llama/Meta-Llama-3-8B config.json (published): the shapes are what matter for speed
LLAMA3_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0,
                 rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001)
PROMPT_WORDS = "Write a short paragraph about the history of bicycles and why people still ride them today."


SMOKE = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=1000)
DEVICE = "cuda"


def build(layers: int | None, smoke: bool = False):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    shape = {**LLAMA3_8B, **(SMOKE if smoke else {}), **({"num_hidden_layers": layers} if layers else {})}
    config = AutoConfig.for_model("llama", **shape)
    with torch.device(DEVICE):
        hf = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    # a word-level tokenizer made here (no hub): ids only need to be valid, the text is random anyway
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<s>", "</s>", *sorted(set(PROMPT_WORDS.split()))])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                  eos_token="</s>")
    return ss.wrap_model(hf, tok, name="random-llama3-8b-shape")


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def cuda_time(fn) -> float:
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def matmul_peak_tflops(n: int = 8192, reps: int = 20) -> float:
    a = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    best = min(cuda_time(lambda: [a @ b for _ in range(reps)]) for _ in range(3))
    return reps * 2 * n**3 / best / 1e12


def melbo_rate(m, source: int, target: int, vectors: int, steps: int) -> dict:
    from steerscope.generate import tokenize
    from steerscope.layers import LayerReplay

    prompts = [PROMPT_WORDS] * 4
    ids, mask = tokenize(m, prompts, chat=False)
    replay = LayerReplay(m, ids, mask, start=source + 1, end=target)
    theta = torch.randn(vectors, m.d_model, device=DEVICE, requires_grad=True)  # fp32 master, as melbo does
    hidden = replay.hidden.repeat(vectors, 1, 1)
    with FlopCounterMode(display=False) as counter:
        z = replay.run(hidden + theta.to(hidden.dtype).repeat_interleave(len(prompts), 0)[:, None, :])
        z.float().norm(dim=-1).sum().backward()
    flops_per_step = counter.get_total_flops()
    kwargs = dict(source_layer=source, target_layer=target, num_vectors=vectors, radius=8.0, steps=steps,
                  lr=0.01, tol=0.0, heldout_kl=False, mode="parallel", chat=False, progress=False, report=False)
    ss.melbo(m, prompts, **{**kwargs, "steps": 2})  # warm-up (kernels, allocator)
    seconds = cuda_time(lambda: ss.melbo(m, prompts, **kwargs))
    return {"source_layer": source, "target_layer": target, "vectors": vectors, "prompts": len(prompts),
            "tokens_per_prompt": int(ids.shape[1]), "steps": steps, "seconds": seconds,
            "vector_steps_per_s": vectors * steps / seconds, "flops_per_step": flops_per_step,
            "achieved_tflops": flops_per_step * steps / seconds / 1e12}


def generation(m, batch: int, tokens: int, repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    one = ss.SteeringVector({m.n_layers // 2: torch.randn(m.d_model, generator=g)})
    every = ss.SteeringVector({layer: torch.randn(m.d_model, generator=g) for layer in range(m.n_layers)})
    prompts = [PROMPT_WORDS] * batch

    def run(v):
        ss.generate(m, prompts, vectors=v, max_new_tokens=tokens, min_new_tokens=tokens, chat=False,
                    batch_size=batch, positions="all")

    run(None)
    times: dict[str, list[float]] = {"unsteered": [], "one_layer": [], "all_layers": []}
    for _ in range(repeats):  # interleaved: clock and thermal drift hit all three alike
        times["unsteered"].append(cuda_time(lambda: run(None)))
        times["one_layer"].append(cuda_time(lambda: run(one)))
        times["all_layers"].append(cuda_time(lambda: run(every)))
    best = {k: min(v) for k, v in times.items()}
    return {"batch": batch, "new_tokens": tokens, "repeats": repeats,
            **{f"{k}_tokens_per_s": batch * tokens / s for k, s in best.items()},
            "overhead_one_layer": best["one_layer"] / best["unsteered"] - 1,
            "overhead_all_layers": best["all_layers"] / best["unsteered"] - 1}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=None, help="fewer blocks for a quick try (default: all 32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--melbo-steps", type=int, default=20)
    parser.add_argument("--out", default="bench/results/gpu.json")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU: checks the script runs")
    args = parser.parse_args()
    global DEVICE
    if args.smoke:
        DEVICE, args.out, args.tokens, args.melbo_steps, args.repeats = "cpu", "/tmp/gpu-smoke.json", 4, 2, 1
    elif not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA GPU (or --smoke for a CPU dry run)")
    torch.manual_seed(0)
    m = build(args.layers, smoke=args.smoke)
    peak = matmul_peak_tflops(n=512 if args.smoke else 8192)
    source, target = m.n_layers // 4, (3 * m.n_layers) // 4
    mel = melbo_rate(m, source, target, vectors=8, steps=args.melbo_steps)
    mel["share_of_matmul_peak"] = mel["achieved_tflops"] / peak
    result = {
        "gpu": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu (smoke run)", "torch": torch.__version__,
        "model": f"random init, Llama-3-8B config, {m.n_layers} blocks, bf16",
        "bf16_matmul_peak_tflops": peak, "melbo": mel,
        "generation": [generation(m, b, args.tokens, args.repeats) for b in (1, 64)],
        "command": "OMP_NUM_THREADS=1 .venv/bin/python bench/bench_gpu.py",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
