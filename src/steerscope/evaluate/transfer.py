"""Transfer evaluation: does a vector optimised on a few prompts move held-out prompts the same way?

For each scale (negative ones included: −v should suppress what +v promotes) and each held-out prompt:

- the teacher-forced log-probability of each target completion, and its change from the unsteered model;
- a greedy generation and whether it contains any of the match strings (case-insensitive).

All scales × prompts × targets go through one per-row-steered batch (chunked by ``batch_size``): ``steer()`` with
a vector per row for the log-probs, ``generate()`` with per-row vectors/scales for the generations.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from ..completions import gather_hidden, pack_completions, token_logprobs
from ..errors import InvalidArgumentError
from ..generate import generate
from ..hooks import capture
from ..inputs import prompt_lengths
from ..layers import hidden_to_logits
from ..models.load import SteerableModel
from ..results import from_json, open_result, read_table, save_files
from ..steer import Positions, steer
from ..vector import SteeringVector
from .prompting import plot_prompted, prompted_scale, system_prompted

log = logging.getLogger(__name__)

DEFAULT_SCALES = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5)


@dataclass
class TransferResult:
    """Per-scale summary and per-(scale, prompt) rows of a transfer evaluation.

    Attributes:
        summary: one dict per scale: scale, mean_delta_logprob, sem_delta_logprob, mean_logprob, hit_rate,
            n_prompts (scale ``None`` is never listed: the unsteered baseline is in ``baseline``).
        rows: one dict per (scale, prompt): scale, prompt, logprob (mean over targets), base_logprob,
            delta_logprob, generation, hit.
        baseline: unsteered mean_logprob and hit_rate.
        config: the arguments the evaluation ran with.
    """

    summary: list[dict]
    rows: list[dict]
    baseline: dict
    config: dict = field(default_factory=dict)
    # with prompt_baseline: "prompted" (system prompt, no vector) and "prompted+steered" summary rows
    prompted: list[dict] = field(default_factory=list)

    def at(self, scale: float) -> dict:
        """The summary row of one scale."""
        for row in self.summary:
            if math.isclose(row["scale"], scale):
                return row
        raise InvalidArgumentError(f"scale {scale} was not evaluated; scales: {[r['scale'] for r in self.summary]}")

    def plot(self):
        """Figure with Δ log-prob (mean ± s.e.m.) and hit rate against scale."""
        from ..io import subplots

        scales = [r["scale"] for r in self.summary]
        fig, (ax1, ax2) = subplots(1, 2, figsize=(10, 3.8))
        ax1.errorbar(scales, [r["mean_delta_logprob"] for r in self.summary],
                     yerr=[r["sem_delta_logprob"] or 0.0 for r in self.summary], marker="o", capsize=3)
        ax1.axhline(0, color="grey", lw=0.8, ls="--")
        ax1.set(xlabel="scale", ylabel="Δ log p(target) vs unsteered", title="teacher-forced log-prob")
        ax2.plot(scales, [r["hit_rate"] for r in self.summary], marker="o")
        ax2.axhline(self.baseline.get("hit_rate") or 0.0, color="grey", lw=0.8, ls="--", label="unsteered")
        ax2.set(xlabel="scale", ylabel="fraction of generations", ylim=(-0.03, 1.03),
                title="generation contains target")
        plot_prompted(ax1, self.prompted, "mean_delta_logprob")
        plot_prompted(ax2, self.prompted, "hit_rate")
        if self.prompted:
            ax1.legend(loc="best", fontsize=8)
        ax2.legend(loc="best")
        fig.suptitle(f"transfer to {self.summary[0]['n_prompts'] if self.summary else 0} held-out prompts")
        fig.tight_layout()
        return fig

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> TransferResult:
        """Read a result written by ``save`` / ``evaluate_transfer(out_dir=)``; a malformed file is a RunFileError."""
        out, data = open_result(out_dir, "transfer", "transfer.json")
        return from_json(cls, data, out / "transfer.json", rows=read_table(out / "generations.jsonl"))

    def figures(self) -> dict:
        return {"transfer.png": self.plot()}

    def save(self, out_dir: str | os.PathLike) -> Path:
        """config.json (method + version), transfer.csv (per scale), transfer_rows.csv, transfer.json and
        generations.jsonl; ``TransferResult.load(out_dir)`` reads it back (``ss.write_run`` adds the figure)."""
        rows = [{k: v for k, v in r.items() if k != "generation"} for r in self.rows]
        prompted = [{k: v for k, v in r.items() if k != "generations"} for r in self.prompted]
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rows"}  # rows: generations.jsonl
        return save_files(out_dir, {"transfer.csv": self.summary, "transfer_rows.csv": rows,
                                    "generations.jsonl": self.rows, "transfer.json": data,
                                    "transfer_prompted.csv": prompted or None}, "transfer", self.config)


def _texts(value) -> list:
    """One string or a sequence of them, as a list."""
    return [value] if isinstance(value, str) else list(value)


def _check(vector, prompts, targets, match, scales) -> tuple[list[str], list[str], list[str], list[float]]:
    if not isinstance(vector, SteeringVector):
        raise InvalidArgumentError("evaluate_transfer needs a SteeringVector (use VectorSet[i] for one of a set)")
    prompts = _texts(prompts)
    if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise InvalidArgumentError("give at least one non-empty held-out prompt")
    targets = _texts(targets or [])
    if not targets or any(not isinstance(t, str) or not t for t in targets):
        raise InvalidArgumentError("targets must be a non-empty list of non-empty strings, e.g. ['Sure, here is']")
    match = targets if match is None else _texts(match)
    if not match or any(not isinstance(t, str) or not t.strip() for t in match):
        raise InvalidArgumentError("match must be a non-empty list of non-empty strings")
    scales = [float(s) for s in scales]
    if not scales or not all(map(math.isfinite, scales)):
        raise InvalidArgumentError(f"scales must be finite numbers, got {scales}")
    return prompts, targets, match, list(dict.fromkeys(scales))


@torch.no_grad()
def _target_logprobs(model, vector, groups, prompts, targets, *, positions, operator, chat, batch_size, progress):
    """[group][prompt]: mean log p(target) over targets, one per-row-steered forward per chunk."""
    from tqdm.auto import tqdm

    jobs = list(itertools.product(range(len(groups)), range(len(prompts)), targets))  # (group, prompt, target)
    sums = [[0.0] * len(prompts) for _ in groups]
    last = model.n_layers - 1
    starts = range(0, len(jobs), batch_size)
    for start in tqdm(starts, desc="target log-probs", disable=not progress or len(starts) < 2, leave=False):
        chunk = jobs[start : start + batch_size]
        batch = pack_completions(model, [(prompts[p], t) for _, p, t in chunk], chat=chat)
        vecs, scales = _steering(vector, [groups[g] for g, _, _ in chunk])
        # "prompt"/"last:k" must not count the target as prompt
        with prompt_lengths(batch.prompt_len), steer(model, vecs, scales, positions=positions, operator=operator):
            hidden = capture(model, batch.ids, batch.mask, [last], "resid_post")[last]  # (N, T, D)
        logits = hidden_to_logits(model, gather_hidden(hidden, batch))  # (M, V): completion positions only
        lp = token_logprobs(logits, batch.target_ids)
        # cpu-ok: host-side per-completion sums (read with .tolist() right below)
        per_row = torch.zeros(batch.completions, dtype=lp.dtype).index_add(0, batch.token_completion.cpu(), lp.cpu())
        for (g, p, _), value in zip(chunk, per_row.tolist()):
            sums[g][p] += value / len(targets)
    return sums


def _steering(vector, row_groups: list[float | None]) -> tuple[list, list[float]]:
    """Per-row vectors and scales for rows of the given groups (a scale; None = unsteered)."""
    return [None if s is None else vector for s in row_groups], [0.0 if s is None else s for s in row_groups]


def _measure_groups(model, vector, groups, prompts, targets, *, do_generate, max_new_tokens, **kwargs):
    """Mean target log-probs [group][prompt] and, with ``do_generate``, greedy generations [group][prompt] (else
    None) of every group (a scale; None = unsteered) on every prompt. ``kwargs``: positions, operator, chat,
    batch_size, progress."""
    lps = _target_logprobs(model, vector, groups, prompts, targets, **kwargs)
    if not do_generate:
        return lps, [None] * len(groups)
    vecs, scales = _steering(vector, [s for s in groups for _ in prompts])
    texts = generate(model, prompts * len(groups), vectors=vecs, scales=scales, max_new_tokens=max_new_tokens, **kwargs)
    return lps, [texts[i:i + len(prompts)] for i in range(0, len(texts), len(prompts))]


def _hits(texts: list[str] | None, needles: list[str]) -> list[bool] | None:
    """Whether each generation contains any of the (lower-cased) match strings; None without generations."""
    return None if texts is None else [any(x in text.lower() for x in needles) for text in texts]


def _summary(logprobs: list[float], base: list[float], hits: list[bool] | None) -> dict:
    """Δ log-prob against ``base`` (mean ± s.e.m.), mean log-prob and hit rate (None without generations) of one
    condition over n prompts."""
    n = len(logprobs)
    deltas = [lp - b for lp, b in zip(logprobs, base)]
    mean = sum(deltas) / n
    sem = math.sqrt(sum((d - mean) ** 2 for d in deltas) / (n - 1)) / math.sqrt(n) if n > 1 else None
    return {"mean_delta_logprob": mean, "sem_delta_logprob": sem,
            "mean_logprob": sum(logprobs) / n, "hit_rate": sum(hits) / n if hits is not None else None,
            "n_prompts": n}


def evaluate_transfer(model: SteerableModel, vector: SteeringVector, prompts: Sequence[str], *,
                      targets: Sequence[str] | str, scales: Sequence[float] = DEFAULT_SCALES,
                      match: Sequence[str] | str | None = None, max_new_tokens: int = 24, positions: str = "all",
                      operator: str = "add", chat: bool = True, do_generate: bool = True, batch_size: int = 32,
                      prompt_baseline: str | None = None, progress: bool = True) -> TransferResult:
    """Measure how a vector transfers to held-out prompts, for each scale.

    Args:
        vector: the steering vector (e.g. from ``optimize_vector``).
        prompts: held-out prompts (not the ones it was trained on).
        targets: completions whose teacher-forced log-prob is measured (mean over targets per prompt).
        scales: multipliers of the vector; negative ones apply −v. The unsteered model is the baseline.
        match: strings looked for (case-insensitive) in the greedy generations; default: ``targets``.
        positions, operator: how the vector is applied (as in ``steer()``); use what it was trained with.
        do_generate: also generate (``max_new_tokens`` greedy tokens) and compute hit rates.
        prompt_baseline: a system prompt that asks for the behaviour (e.g. "Begin every answer with 'Sure, here
            is'."). Adds ``prompted`` rows: the prompted model (no vector) and prompted + steered (at the scale
            with the largest mean Δ log-prob), with Δ log-prob against the *unprompted* unsteered model and hit
            rates, so the report shows whether the vector beats simply asking.

    Example:
        >>> res = ss.evaluate_transfer(m, v, held_out, targets=["Sure, here is"], match=["sure, here"],
        ...                            scales=[-1, 0, 1])
        >>> res.at(1.0)["mean_delta_logprob"] > 0 > res.at(-1.0)["mean_delta_logprob"]
        True
    """
    prompts, targets, match, scales = _check(vector, prompts, targets, match, scales)
    Positions.parse(positions)
    if operator not in ("add", "ablate", "clamp"):
        raise InvalidArgumentError(f"unknown operator {operator!r}; choose add, ablate or clamp")
    model.check_width(vector.d_model)
    # group None = unsteered baseline; an added vector at scale 0 is the baseline too, so it is not rerun
    group_of = {s: None if operator == "add" and s == 0.0 else s for s in scales}
    groups = list(dict.fromkeys([None, *group_of.values()]))
    settings = {"positions": positions, "operator": operator, "batch_size": batch_size, "progress": progress,
                "do_generate": do_generate, "max_new_tokens": max_new_tokens}
    lps, gens = _measure_groups(model, vector, groups, prompts, targets, chat=chat, **settings)
    needles = [m.lower() for m in match]
    base = lps[0]
    rows, summary = [], []
    for s in scales:
        g = groups.index(group_of[s])
        hit = _hits(gens[g], needles)
        for p, prompt in enumerate(prompts):
            rows.append({"scale": s, "prompt": prompt, "logprob": lps[g][p], "base_logprob": base[p],
                         "delta_logprob": lps[g][p] - base[p], "generation": None if gens[g] is None else gens[g][p],
                         "hit": None if hit is None else hit[p]})
        summary.append({"scale": s, **_summary(lps[g], base, hit)})
    summary.sort(key=lambda r: r["scale"])
    base_summary = _summary(base, base, _hits(gens[0], needles))  # its Δ is 0; its mean log-prob and hit rate
    baseline = {"mean_logprob": base_summary["mean_logprob"], "hit_rate": base_summary["hit_rate"]}
    config = {"targets": targets, "match": match, "scales": scales, "max_new_tokens": max_new_tokens,
              "positions": positions, "operator": operator, "chat": chat, "n_prompts": len(prompts),
              "vector_site": vector.site, "vector_layers": vector.layers, "vector_norm": vector.norm(),
              "vector_method": vector.method}
    result = TransferResult(summary=summary, rows=rows, baseline=baseline, config=config)
    if prompt_baseline:
        config["prompt_baseline"] = prompt_baseline
        best = max((r for r in summary if r["scale"] > 0), key=lambda r: r["mean_delta_logprob"], default=None)
        steer_scale = prompted_scale(scales, None if best is None else best["scale"])
        # the prompted model, then prompted + steered: Δ log-prob against the unprompted unsteered log-probs
        texts, prompted_chat = system_prompted(model, prompts, prompt_baseline, chat=chat)
        prompted_lps, prompted_gens = _measure_groups(model, vector, [None, steer_scale], texts, targets,
                                                      chat=prompted_chat, **settings)
        conditions = [("prompted", 0.0), ("prompted+steered", steer_scale)]
        result.prompted = [{"condition": condition, "scale": scale, "system_prompt": prompt_baseline,
                            **_summary(prompted_lps[g], base, _hits(prompted_gens[g], needles)),
                            "generations": prompted_gens[g] or []} for g, (condition, scale) in enumerate(conditions)]
    log.info("transfer: %s", [(r["scale"], round(r["mean_delta_logprob"], 3), r["hit_rate"]) for r in summary])
    return result

