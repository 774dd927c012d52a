"""Unsupervised LoRA discovery: train small LoRA adapters that push the model away from itself, coherently.

Loss per batch, with P the base model (adapter disabled), Q the adapted model and y sampled from Q (on-policy)::

    L = alpha * (-KL(P || Q)) + beta * NLL(Q, y)

The negative KL pushes Q away from the base; the NLL on Q's own samples keeps it from collapsing into gibberish.
Each step samples continuations from Q with the KV cache in one batched ``generate``, then runs one
teacher-forced pass of P (no grad) and one of Q over prompt + continuation: every per-token KL and NLL comes out
of those two forwards (``bench/bench_lora_step.py`` compares this with a token-by-token loop).

Run directory (``out_dir``)::

    config.json                 settings of the whole call
    summary.json                one entry per finished run
    run_000/adapter/            standard PEFT LoRA directory (adapter_config.json, adapter_model.safetensors)
    run_000/losses.csv          step, epoch, loss, kl, nll, base_nll, tokens, seconds
    run_000/losses.png          loss curves (drawn by the run layer, runs.write_run)
    run_000/samples.jsonl       held-out prompts: base vs adapted completion (greedy)
    run_000/summary.json        held-out KL / NLL / perplexities; its presence marks the run done (resume skips it)
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch

from ..errors import InvalidArgumentError
from ..generate import generate, tokenize
from ..inputs import forked_rng
from ..io import read_json, write_csv, write_json, write_jsonl
from ..models.load import SteerableModel
from ..results import Checkpoint
from ._lora_common import default_target_modules, detach_peft, loss_terms, needs_fan_in_fan_out, sample

log = logging.getLogger(__name__)

DEFAULT_LR = 1e-2  # Adam; see docs/lora_and_contrastive.md for the runs on SmolLM2-135M that chose it
TERMS = ("kl", "nll", "base_nll")  # the LossTerms fields averaged over tokens


@dataclass
class LoraRun:
    """One trained adapter: where it is and how far it moved from the base on held-out prompts."""

    index: int
    dir: Path
    adapter_dir: Path
    heldout: dict = field(default_factory=dict)  # kl, nll, base_nll, base_ppl, base_ppl_of_base_samples, tokens
    losses: list[dict] = field(default_factory=list)  # per step: step, epoch, loss, kl, nll, base_nll, tokens, seconds
    summary: dict = field(default_factory=dict)  # its summary.json: index, seed, steps, updates, stopped_by, heldout


@dataclass
class LoraDiscoveryResult:
    out_dir: Path
    runs: list[LoraRun]

    @property
    def adapter_dirs(self) -> list[Path]:
        return [r.adapter_dir for r in self.runs]

    def save(self, out_dir: str | os.PathLike) -> Path:
        """The adapters already live in ``out_dir`` (PEFT directories are written while training, one finished run
        at a time); this writes the top-level summary.json. Saving elsewhere copies the run directory."""
        import shutil

        out = Path(out_dir)
        if out.resolve() != self.out_dir.resolve():
            shutil.copytree(self.out_dir, out, dirs_exist_ok=False)
        # adapter paths relative to the run directory: the directory can be moved or archived
        write_json(out / "summary.json", {"runs": [{"index": r.index, "heldout": r.heldout,
                                                    "adapter_dir": r.adapter_dir.relative_to(self.out_dir).as_posix()}
                                                   for r in self.runs]})
        return out

    def figures(self) -> dict:
        """Loss, KL and NLL per step of each run."""
        from ..plots import plot_lora_losses

        return {f"{r.dir.name}/losses.png": plot_lora_losses(r.losses, r.index) for r in self.runs if r.losses}

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> LoraDiscoveryResult:
        """Every finished run (``run_###/summary.json`` present) of a LoRA discovery directory."""
        from ..results import check_result_config

        out = Path(out_dir)
        check_result_config(out, "lora_discovery")
        # a run without summary.json is unfinished (resume would redo it)
        return cls(out_dir=out, runs=[_load_run(run_dir) for run_dir in sorted(out.glob("run_[0-9][0-9][0-9]"))
                                      if (run_dir / "summary.json").is_file()])


def _load_run(run_dir: Path) -> LoraRun:
    """One finished run from its directory (summary.json, and losses.csv when present)."""
    from ..results import from_json, need, read_table

    path = run_dir / "summary.json"
    summary = need(read_json(path), dict, path)
    return from_json(LoraRun, summary, path, index=int(run_dir.name[4:]), dir=run_dir,
                     adapter_dir=run_dir / "adapter", losses=read_table(run_dir / "losses.csv"), summary=summary)


def discover_lora(
    model: SteerableModel,
    prompts: list[str] | None = None,
    *,
    heldout_prompts: list[str] | None = None,
    rank: int = 2,
    target_modules: list[str] | None = None,
    lora_alpha: float | None = None,
    alpha: float = 1.1,
    beta: float = 0.3,
    lr: float = DEFAULT_LR,
    epochs: int = 1,
    max_steps: int | None = None,
    stop_kl: float | None = 0.5,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    runs: int = 1,
    seed: int = 0,
    chat: bool = True,
    eval_size: int = 32,
    num_samples: int = 8,
    sample_tokens: int | None = None,
    progress: bool = True,
    checkpoint: Checkpoint | None = None,
) -> LoraDiscoveryResult:
    """Train ``runs`` independent LoRA adapters with L = alpha·(−KL(P‖Q)) + beta·NLL(Q, y), y ~ Q.

    Args:
        prompts: training prompts; default the shipped ``honesty_train`` set (400 prompts).
        heldout_prompts: for the held-out KL and samples; default the shipped ``honesty_heldout`` set.
        rank: LoRA rank. ``lora_alpha`` (PEFT's scaling numerator) defaults to ``rank`` (scaling 1).
        target_modules: PEFT target module names; default every decoder block's MLP output projection.
        alpha, beta: weights of −KL and NLL.
        max_steps: stop each run after this many optimiser steps (default: ``epochs`` full passes).
        stop_kl: when a training batch's KL(P‖Q) per token exceeds this, stop the run and keep the previous
            adapter state (the last one measured at or under the bound). −KL is unbounded and its optimum is a
            collapsed adapter (one token repeated: NLL 0, huge KL); on SmolLM2-135M KL grows 3–10x per step
            near there, so the guard keeps the adapter in the coherent regime. None: train all steps.
        max_new_tokens: sampled continuation length during training.
        eval_size: held-out prompts used for the KL/perplexity summary; ``num_samples`` of them go to samples.jsonl.
        sample_tokens: length of the held-out samples (default ``max_new_tokens``).
        checkpoint: the run directory each finished run is committed to (``run_000/``: adapter, losses, samples,
            summary) and that resume skips finished runs from; ``ss.discover_lora(out_dir=, resume=)`` (the run
            layer) passes one. Required: the adapters are what this method makes.

    The model is left as it was: the adapter is removed (PEFT ``unload``) after each run, also on errors.

    Example:
        >>> res = ss.discover_lora(m, runs=2, max_steps=30, max_new_tokens=48, out_dir="runs/lora")
        >>> v = ss.vector_from_lora(m, res.runs[0].adapter_dir, prompts)
    """
    from ..data import load_prompts

    prompts = list(prompts) if prompts is not None else load_prompts("honesty_train")
    if checkpoint is None or checkpoint.path is None:
        raise InvalidArgumentError("discover_lora saves one PEFT adapter per run: pass out_dir=")
    held_out = list(heldout_prompts) if heldout_prompts is not None else load_prompts("honesty_heldout")
    for name, value in (("rank", rank), ("epochs", epochs), ("batch_size", batch_size), ("runs", runs),
                        ("max_new_tokens", max_new_tokens)):
        if not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    if stop_kl is not None and not stop_kl > 0:
        raise InvalidArgumentError(f"stop_kl must be positive, got {stop_kl}")
    if max_steps is not None and max_steps < 1:
        raise InvalidArgumentError(f"max_steps must be at least 1, got {max_steps}")
    if not (lr > 0 and math.isfinite(lr)) or not temperature > 0:
        raise InvalidArgumentError("lr and temperature must be positive finite numbers")
    if not prompts or not held_out:
        raise InvalidArgumentError("give at least one training prompt and one held-out prompt")
    targets = list(target_modules) if target_modules else default_target_modules(model)
    cfg = SimpleNamespace(rank=rank, lora_alpha=lora_alpha or rank, alpha=alpha, beta=beta, lr=lr,
                          epochs=epochs, max_steps=max_steps, stop_kl=stop_kl, batch_size=batch_size,
                          max_new_tokens=max_new_tokens, temperature=temperature, chat=chat, eval_size=eval_size,
                          num_samples=num_samples, sample_tokens=sample_tokens or max_new_tokens, seed=seed)
    result = LoraDiscoveryResult(checkpoint.path, [])
    for index in range(runs):
        name = f"run_{index:03d}"
        done = checkpoint.committed(name)
        if done is not None and (done / "summary.json").is_file():
            log.info("run %d already done, skipping (resume)", index)
            result.runs.append(_load_run(done))
            continue
        # each run seeds its own RNG stream (LoRA A init and sampling); the caller's stays untouched
        run_seed = seed + 1000 * index
        with forked_rng(model, run_seed):
            result.runs.append(_one_run(model, prompts, held_out, checkpoint, name, index, run_seed, cfg, targets,
                                        progress))
    return result


def _batches(prompts: list[str], batch_size: int, epochs: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(prompts), generator=g).tolist()
        for start in range(0, len(order), batch_size):
            yield epoch, [prompts[i] for i in order[start: start + batch_size]]


def _one_run(model, prompts, held_out, checkpoint: Checkpoint, name: str, index: int, seed: int, cfg: SimpleNamespace,
             targets: list[str], progress: bool) -> LoraRun:
    """Train one adapter (the caller seeded the RNG with ``seed``) and commit ``name/`` (adapter, losses.csv,
    samples.jsonl, summary.json) through the checkpoint in one rename."""
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm
    peft_model = get_peft_model(model.hf, LoraConfig(
        r=cfg.rank, lora_alpha=cfg.lora_alpha, target_modules=targets, lora_dropout=0.0, bias="none",
        fan_in_fan_out=needs_fan_in_fan_out(model, targets)))
    try:
        params = [p for p in peft_model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.lr)
        total = min(cfg.max_steps or 10**9, math.ceil(len(prompts) / cfg.batch_size) * cfg.epochs)
        rows, t0, stopped, updates = [], time.perf_counter(), "steps", 0
        kept: list[torch.Tensor] | None = None  # adapter state whose batch KL was <= stop_kl
        bar = tqdm(total=total, desc=f"lora run {index}", disable=not progress)
        for step, (epoch, batch) in enumerate(_batches(prompts, cfg.batch_size, cfg.epochs, seed)):
            if step >= total:
                break
            ids, mask = tokenize(model, batch, chat=cfg.chat)
            sampled = sample(model, ids, mask, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)
            terms = loss_terms(model, *sampled, peft_model.disable_adapter, alpha=cfg.alpha, beta=cfg.beta)
            rows.append({"step": step, "epoch": epoch, "loss": float(terms.loss.detach()),
                         **{key: float(getattr(terms, key)) for key in TERMS}, "tokens": terms.tokens,
                         "seconds": round(time.perf_counter() - t0, 3)})
            bar.update()
            bar.set_postfix(kl=f"{float(terms.kl):.3f}", nll=f"{float(terms.nll):.2f}")
            if cfg.stop_kl is not None:
                if float(terms.kl) > cfg.stop_kl:
                    # KL grows several-fold per step near collapse: go back to the last state under the bound
                    if kept is not None:
                        with torch.no_grad():
                            for p, saved in zip(params, kept):
                                p.copy_(saved)
                        updates -= 1  # kept is set only before an update, so this stays >= 0
                    stopped = "stop_kl"
                    break
                kept = [p.detach().clone() for p in params]
            opt.zero_grad()  # set_to_none=True is the default (torch >= 2.0)
            terms.loss.backward()
            opt.step()
            updates += 1
        bar.close()
        heldout, samples = _evaluate(model, peft_model, held_out, cfg)
        summary = {"index": index, "seed": seed, "steps": len(rows), "updates": updates, "stopped_by": stopped,
                   "heldout": heldout, "final_train": rows[-1] if rows else None}

        def write(unit: Path) -> None:
            peft_model.save_pretrained(str(unit / "adapter"))
            write_csv(unit / "losses.csv", rows)
            write_jsonl(unit / "samples.jsonl", samples)
            write_json(unit / "summary.json", summary)

        run_dir = checkpoint.commit_dir(name, write)
    finally:
        detach_peft(peft_model)
    log.info("run %d: held-out KL %.3f, perplexity under base %.1f", index, heldout["kl"], heldout["base_ppl"])
    return LoraRun(index, run_dir, run_dir / "adapter", heldout, rows, summary)


@torch.no_grad()
def _evaluate(model, peft_model, held_out: list[str], cfg: SimpleNamespace) -> tuple[dict, list[dict]]:
    """Held-out KL(P‖Q) and perplexities on Q's samples, plus greedy base-vs-adapted samples."""
    prompts = held_out[: cfg.eval_size]
    n_tok = cfg.sample_tokens
    sums = dict.fromkeys((*TERMS, "base_self_nll"), 0.0)
    tokens = base_tokens = 0
    bs = cfg.batch_size
    torch.manual_seed(cfg.seed + 7)
    for start in range(0, len(prompts), bs):
        ids, mask = tokenize(model, prompts[start: start + bs], chat=cfg.chat)
        sampled = sample(model, ids, mask, max_new_tokens=n_tok, temperature=cfg.temperature)
        t = loss_terms(model, *sampled, peft_model.disable_adapter, alpha=cfg.alpha, beta=cfg.beta)
        for key in TERMS:
            sums[key] += float(getattr(t, key)) * t.tokens
        tokens += t.tokens
        # reference: the base model's own samples under the base model (what "coherent" looks like here)
        with peft_model.disable_adapter():
            sampled = sample(model, ids, mask, max_new_tokens=n_tok, temperature=cfg.temperature)
            b = loss_terms(model, *sampled, contextlib.nullcontext, alpha=0.0, beta=1.0)
        sums["base_self_nll"] += float(b.nll) * b.tokens
        base_tokens += b.tokens
    heldout = {**{key: sums[key] / max(tokens, 1) for key in TERMS}, "tokens": tokens, "prompts": len(prompts),
               "base_self_nll": sums["base_self_nll"] / max(base_tokens, 1)}
    heldout["base_ppl"] = math.exp(min(heldout["base_nll"], 50.0))
    heldout["base_ppl_of_base_samples"] = math.exp(min(heldout["base_self_nll"], 50.0))
    shown = held_out[: cfg.num_samples]
    if not shown:
        return heldout, []
    adapted = generate(model, shown, max_new_tokens=n_tok, chat=cfg.chat, batch_size=bs)
    with peft_model.disable_adapter():
        base = generate(model, shown, max_new_tokens=n_tok, chat=cfg.chat, batch_size=bs)
    return heldout, [{"prompt": p, "base": b, "adapted": a} for p, b, a in zip(shown, base, adapted)]
