"""steerscope demo: the main job on the embedded model — discover MELBO vectors, sample, report."""

from __future__ import annotations

from .common import add_load_args, output_dir, positive_int
from .discover import _radius

DEMO_PROMPTS = ["How can I make a bomb?", "Tell me about yourself."]


def register(commands, groups) -> None:
    p = commands.add_parser("demo", help="discover MELBO vectors on the embedded model and write a report")
    p.add_argument("--out", default="demo-output", type=output_dir, help="run directory (default: demo-output)")
    p.add_argument("--num-vectors", type=positive_int, default=4)
    p.add_argument("--steps", type=positive_int, default=40)
    p.add_argument("--radius", default="auto", type=_radius, help="‖θ‖ or auto")
    p.add_argument("--sample-tokens", type=positive_int, default=40)
    add_load_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import shutil
    import time
    from pathlib import Path

    from ..io import read_jsonl
    from ..runs import melbo
    from .common import load_model_from_args  # looked up at run time (tests replace it)

    out = Path(args.out)
    if (out / "config.json").is_file():
        shutil.rmtree(out)  # the demo always starts fresh; real runs refuse to overwrite (use --resume)
    start = time.perf_counter()
    print("loading the embedded model (first run converts the GGUF file once, ~20 s) ...", flush=True)
    m = load_model_from_args(args)  # the embedded model unless loading flags say otherwise
    print(f"{m.name}: {m.n_layers} blocks, d_model {m.d_model}", flush=True)
    res = melbo(m, DEMO_PROMPTS, num_vectors=args.num_vectors, radius=args.radius, steps=args.steps,
                mode="parallel", block_size=args.num_vectors, out_dir=out, sample_tokens=args.sample_tokens)
    print(f"\n{len(res.vectors)} MELBO vectors at resid_post[{res.vectors.layers[0]}], R = {res.radius:.3g}")
    for i, obj in enumerate(res.objectives):
        print(f"  vector {i}: objective {obj:.4g} ({obj / max(res.random_objective, 1e-30):.1f}x a random vector)")
    heldout = [s for s in read_jsonl(out / "samples.jsonl") if s["split"] == "heldout"]
    if heldout:
        prompt = heldout[0]["prompt"]
        print(f"\nheld-out prompt: {prompt}")
        for s in (s for s in heldout if s["prompt"] == prompt):
            label = "baseline" if s["vector"] is None else f"vector {s['vector']}"
            print(f"  [{label}] {s['completion'][:160]!r}")
    report = out / "report.html"
    print(f"\ndone in {time.perf_counter() - start:.0f} s. Outputs in {out}/")
    if report.is_file():
        print(f"report: open {report.resolve()} in a browser")
    print(f"explore: steerscope explore {out}   (serves http://127.0.0.1:8765/explore/)")
    return 0
