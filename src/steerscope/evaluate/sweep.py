"""Scale sweeps: generate every prompt at every scale in per-row-scaled batches, measure behaviour and coherence,
and find the coherence window.

Output directory (names other tools read): ``sweep.csv`` (one row per scale), ``sweep.json`` (rows, window,
best_scale, tolerance, config), ``sweep.png`` (behaviour and perplexity against scale, window shaded),
``samples.jsonl`` (every response with its per-sample measures). While generating, ``checkpoint.jsonl`` holds the
responses so far; ``resume=True`` continues from it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import InvalidArgumentError
from ..generate import generate
from ..models.load import SteerableModel
from ..results import NO_CHECKPOINT, Checkpoint, from_json, open_result, read_table, save_files
from ..vector import SteeringVector
from .metrics import distinct_n, is_empty, mean_logprobs, nanmean, parse_metric, perplexities, repetition_rate
from .prompting import plot_prompted, prompted_scale, system_prompted
from .window import best_in_window, coherence_window, is_coherent, resolve_tolerance

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    """What a sweep measured.

    Attributes:
        rows: one dict per scale (sorted): ``scale``, each behaviour metric (mean over prompts), ``perplexity``
            (geometric mean over non-empty responses, under the unsteered model), ``distinct_2``,
            ``repetition_rate``, ``empty_rate``, ``coherent`` (within tolerance of the scale-0 row).
        window: (low, high) coherence window; ``best_scale`` maximises ``objective`` inside it.
        samples: every response: scale, prompt_index, prompt, response and per-sample measures.
    """

    rows: list[dict]
    window: tuple[float, float]
    best_scale: float | None
    tolerance: dict[str, float]
    objective: str | None = None
    maximize: bool = True
    samples: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    # with prompt_baseline: one row each for "prompted" (system prompt, no vector) and "prompted+steered"
    prompt_rows: list[dict] = field(default_factory=list)

    def row(self, scale: float) -> dict:
        return next(r for r in self.rows if r["scale"] == scale)

    def prompting_comparison(self) -> dict | None:
        """Objective of the unsteered, best-steered, prompted and prompted+steered conditions, and whether the
        vector beats simply asking (None without a prompt baseline or an objective)."""
        if not self.prompt_rows or self.objective is None:
            return None
        value = {r["condition"]: r.get(self.objective) for r in self.prompt_rows}
        steered = None if self.best_scale is None else self.row(self.best_scale).get(self.objective)
        prompted = value.get("prompted")
        beats = None
        if all(x is not None and not math.isnan(x) for x in (steered, prompted)):
            beats = steered > prompted if self.maximize else steered < prompted
        return {"objective": self.objective, "unsteered": self.row(0.0).get(self.objective),
                "steered_best_scale": self.best_scale, "steered": steered, "prompted": prompted,
                "prompted_plus_steered": value.get("prompted+steered"), "vector_beats_prompting": beats}

    def to_json(self) -> dict:
        """Every field but ``samples`` (saved as samples.jsonl), in field order, and the prompting comparison."""
        return {**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "samples"},
                "window": list(self.window), "prompting_comparison": self.prompting_comparison()}

    def save(self, out_dir: str | os.PathLike) -> Path:
        """config.json, sweep.csv, sweep_prompted.csv (with prompt rows), sweep.json and samples.jsonl; ``load`` reads
        them back (``ss.write_run`` adds the figure and the report)."""
        return save_files(out_dir, {"sweep.csv": self.rows, "sweep_prompted.csv": self.prompt_rows or None,
                                    "sweep.json": self.to_json(), "samples.jsonl": self.samples}, "sweep", self.config)

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> SweepResult:
        """Read a result written by ``save`` / ``sweep(out_dir=)``; a malformed file is a RunFileError."""
        out, data = open_result(out_dir, "sweep", "sweep.json")
        return from_json(cls, data, out / "sweep.json", samples=read_table(out / "samples.jsonl"))

    def figures(self) -> dict:
        return {"sweep.png": self.plot()}

    def plot(self):
        """Figure: behaviour metric (left axis) and perplexity (right axis, log) against scale; the window shaded."""
        from ..io import subplots

        scales = [r["scale"] for r in self.rows]
        fig, ax = subplots(figsize=(7, 4))
        ax.axvspan(*self.window, color="tab:green", alpha=0.12, label="coherence window")
        if self.objective:
            ax.plot(scales, [_nan(r.get(self.objective)) for r in self.rows], "o-", color="tab:blue",
                    label=self.objective)
            ax.set_ylabel(self.objective, color="tab:blue")
        if self.best_scale is not None:
            ax.axvline(self.best_scale, color="tab:blue", ls="--", lw=1, label=f"best scale {self.best_scale:g}")
        ax.set_xlabel("scale")
        twin = ax.twinx()
        twin.plot(scales, [_nan(r.get("perplexity")) for r in self.rows], "s-", color="tab:red", label="perplexity")
        bad = [r for r in self.rows if not r.get("coherent", True) and r.get("perplexity") is not None]
        if bad:  # whichever measure failed (perplexity, repetition or empty responses), mark the scale
            twin.plot([r["scale"] for r in bad], [r["perplexity"] for r in bad], "kx", ms=9, label="incoherent")
        twin.set_yscale("log")
        twin.set_ylabel("perplexity under unsteered model (log)", color="tab:red")
        if self.objective:
            plot_prompted(ax, self.prompt_rows, self.objective)
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper left", fontsize=8)
        ax.set_title(f"window [{self.window[0]:g}, {self.window[1]:g}]")
        return fig


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def _metric_table(metrics) -> dict[str, Callable[[str], float]]:
    if metrics is None:
        return {}
    if isinstance(metrics, Mapping):
        return dict(metrics)
    table = {}
    for m in [metrics] if isinstance(metrics, str) or callable(metrics) else metrics:
        name, fn = (getattr(m, "__name__", f"metric{len(table)}"), m) if callable(m) else parse_metric(str(m))
        table[name] = fn
    return table


def _measures(model, texts, prompts, table, gen, batch_size, *, completions, lp_prompts, lp_chat, vectors, scales):
    """Each response's coherence measures (perplexity under the *unsteered* model, given its original prompt),
    behaviour metrics and, given completions, ``completion_logprob``: the mean log-prob of its completion after
    ``lp_prompts`` under the row's own steering."""
    batch_size = max(1, batch_size // 2)
    ppl = perplexities(model, prompts, texts, chat=gen["chat"], batch_size=batch_size)
    lp = [None] * len(texts)
    if completions is not None:
        lp = mean_logprobs(model, lp_prompts, completions, chat=lp_chat, vectors=vectors, scales=scales,
                           positions=gen["positions"], batch_size=batch_size)
    return [{"perplexity": perplexity, "distinct_2": distinct_n(text, 2), "repetition_rate": repetition_rate(text),
             "empty": is_empty(text), **{name: float(fn(text)) for name, fn in table.items()},
             **({} if logprob is None else {"completion_logprob": logprob})}
            for text, perplexity, logprob in zip(texts, ppl, lp)]


def _aggregate(group: list[dict], names: list[str]) -> dict:
    """One condition's row from its samples: mean of each metric in ``names``, geometric-mean perplexity over
    non-empty responses, mean distinct-2, repetition and empty rates."""
    def mean(key: str) -> float:
        return nanmean([x[key] for x in group])

    logs = [math.log(x["perplexity"]) for x in group if math.isfinite(x["perplexity"])]
    return {**{name: mean(name) for name in names}, "perplexity": math.exp(sum(logs) / len(logs)) if logs else math.nan,
            "distinct_2": mean("distinct_2"), "repetition_rate": mean("repetition_rate"), "empty_rate": mean("empty"),
            "n": len(group)}


def _fingerprint(vector: SteeringVector, prompts: list[str], settings: dict) -> str:
    h = hashlib.sha256(json.dumps({"prompts": prompts, **settings}, sort_keys=True, default=str).encode())
    for layer, t in vector.directions.items():
        h.update(str(layer).encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _generate_all(model, vector, prompts, keys, gen: dict, batch_size: int, checkpoint: Checkpoint,
                  fingerprint: str, progress: bool) -> dict[tuple[float, int], str]:
    """{(scale, prompt_index): response} for every key; per-row scales in batches; checkpointed after every batch."""
    from tqdm.auto import tqdm

    done: dict[tuple[float, int], str] = {}
    lines = checkpoint.read_table(CHECKPOINT)
    if lines and lines[0].get("fingerprint") == fingerprint:
        done = {(r["scale"], r["prompt_index"]): r["response"] for r in lines[1:]}
        log.info("resuming sweep: %d of %d responses already generated", len(done), len(keys))
    todo = [key for key in keys if key not in done]
    for start in tqdm(range(0, len(todo), batch_size), desc="sweep", disable=not progress):
        chunk = todo[start:start + batch_size]
        outs = generate(model, [prompts[i] for _, i in chunk],
                        vectors=[None if s == 0 else vector for s, _ in chunk], scales=[s for s, _ in chunk],
                        batch_size=len(chunk), **gen)
        done.update(zip(chunk, outs))
        checkpoint.write_table(CHECKPOINT, [{"fingerprint": fingerprint}] +
                               [{"scale": s, "prompt_index": i, "response": t} for (s, i), t in done.items()])
    return done


CHECKPOINT = "checkpoint.jsonl"  # the responses so far, while a sweep with out_dir runs


def sweep(model: SteerableModel, vector: SteeringVector, prompts: Sequence[str], *,
          scales: Sequence[float] = (-8, -4, -2, -1, 0, 1, 2, 4, 8),
          metrics: Mapping[str, Callable[[str], float]] | Sequence[str | Callable] | str | None = None,
          completions: Sequence[str] | str | None = None, objective: str | None = None, maximize: bool = True,
          tolerance: float | Mapping[str, float] | None = None, max_new_tokens: int = 48, seed: int | None = 0,
          do_sample: bool = False, temperature: float = 1.0, chat: bool = True, positions: str | int = "all",
          operator: str = "add", batch_size: int = 32, prompt_baseline: str | None = None, progress: bool = True,
          checkpoint: Checkpoint | None = None) -> SweepResult:
    """Generate ``prompts`` × ``scales`` steered by ``vector``; measure behaviour and coherence per scale.

    Args:
        scales: scales to try; 0 (the unsteered baseline) is added if missing.
        metrics: behaviour metrics: ``{name: text -> float}``, or specs ``count:REGEX`` (matches per response),
            ``contains:TEXT`` (rate of responses containing TEXT), ``module:function`` (user callable).
        completions: given completions (one per prompt, or one for all) whose mean token log-prob under the
            steered model becomes the metric ``completion_logprob``.
        objective: the metric whose best value inside the window picks ``best_scale`` (default: the first
            behaviour metric, else ``completion_logprob``); ``maximize=False`` picks the smallest.
        tolerance: how far coherence may drift from the baseline inside the window (see ``window.DEFAULT_TOLERANCE``;
            a float sets the relative perplexity tolerance).
        batch_size: rows per generation batch; rows of different scales share a batch.
        prompt_baseline: a system prompt that asks for the behaviour (e.g. "Answer like a pirate."). Adds
            ``prompt_rows``: the *prompted* model (no vector) and *prompted + steered* (at ``best_scale``, else
            the largest positive scale), measured like the other rows, and ``prompting_comparison()`` says
            whether the vector beats simply asking. Coherence is still scored by the unsteered model on the
            original prompt.
        checkpoint: where the responses so far are kept while generating (``ss.sweep(out_dir=, resume=)``, the
            run layer, passes its run directory).

    Example:
        >>> res = ss.sweep(m, v, ["Tell me about dogs."] * 4, scales=[-4, 0, 4, 8], metrics=["count:\\?"])
        >>> res.window, res.best_scale
        ((-4, 4), 4)
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise InvalidArgumentError("sweep needs at least one prompt")
    if not isinstance(vector, SteeringVector):
        raise InvalidArgumentError("sweep takes one SteeringVector; load one with ss.load_vector('file[:index]')")
    scales = sorted({float(s) for s in scales} | {0.0})
    if not all(map(math.isfinite, scales)):
        raise InvalidArgumentError("scales must be finite numbers")
    table = _metric_table(metrics)
    if isinstance(completions, str):
        completions = [completions] * len(prompts)
    if completions is not None and len(completions) != len(prompts):
        raise InvalidArgumentError(f"got {len(completions)} completions for {len(prompts)} prompts; give one per prompt")
    table_names = [*table, *(["completion_logprob"] if completions is not None else [])]
    objective = objective or next(iter(table_names), None)
    if objective is not None and objective not in table_names:
        raise InvalidArgumentError(f"objective {objective!r} is not one of the metrics: {', '.join(table_names)}")
    tol = resolve_tolerance(tolerance)
    gen = {"max_new_tokens": max_new_tokens, "seed": seed, "do_sample": do_sample, "temperature": temperature,
           "chat": chat, "positions": positions, "operator": operator}
    fingerprint = _fingerprint(vector, prompts, {"scales": scales, **gen})
    keys = [(s, i) for s in scales for i in range(len(prompts))]
    responses = _generate_all(model, vector, prompts, keys, gen, batch_size, checkpoint or NO_CHECKPOINT,
                              fingerprint, progress)
    texts = [responses[k] for k in keys]
    row_prompts = [prompts[i] for _, i in keys]
    measures = _measures(model, texts, row_prompts, table, gen, batch_size,
                         completions=None if completions is None else [completions[i] for _, i in keys],
                         lp_prompts=row_prompts, lp_chat=chat, vectors=[None if s == 0 else vector for s, _ in keys],
                         scales=[s for s, _ in keys])
    samples = [{"scale": s, "prompt_index": i, "prompt": prompts[i], "response": text, **m}
               for (s, i), text, m in zip(keys, texts, measures)]
    rows = [{"scale": s, **_aggregate([x for x in samples if x["scale"] == s], table_names)} for s in scales]
    baseline = rows[scales.index(0.0)]
    for row in rows:
        row["coherent"] = is_coherent(row, baseline, tol)
    window = coherence_window(rows, tol)
    result = SweepResult(rows=rows, window=window, best_scale=best_in_window(rows, window, objective, maximize),
                         tolerance=tol, objective=objective, maximize=maximize, samples=samples,
                         config={"prompts": prompts, "scales": scales, "metrics": table_names, "vector_layers":
                                 vector.layers, "vector_norm": vector.norm(), "site": vector.site,
                                 "model_name": getattr(model, "name", None), "batch_size": batch_size, **gen})
    if prompt_baseline:
        result.prompt_rows, prompted_samples = _prompted_rows(model, vector, prompts, prompt_baseline, scales,
                                                              result.best_scale, table, table_names, completions,
                                                              gen, batch_size)
        result.samples += prompted_samples
        result.config["prompt_baseline"] = prompt_baseline
        log.info("prompting baseline: %s", result.prompting_comparison())
    log.info("sweep: window %s, best scale %s", window, result.best_scale)
    return result


def _prompted_rows(model, vector, prompts, system, scales, best_scale, table, names, completions, gen, batch_size):
    """Rows (and samples) for the prompted and prompted + steered conditions, measured like the sweep's rows."""
    texts, prompted_chat = system_prompted(model, prompts, system, chat=gen["chat"])
    steer_scale = prompted_scale(scales, best_scale)
    n = len(prompts)
    row_vectors, row_scales = [None] * n + [vector] * n, [0.0] * n + [steer_scale] * n  # prompted, then steered
    outs = generate(model, texts * 2, vectors=row_vectors, scales=row_scales, batch_size=batch_size,
                    **{**gen, "chat": prompted_chat})
    measures = _measures(model, outs, prompts * 2, table, gen, batch_size,
                         completions=None if completions is None else list(completions) * 2, lp_prompts=texts * 2,
                         lp_chat=prompted_chat, vectors=row_vectors, scales=row_scales)
    rows, samples = [], []
    for c, (condition, scale) in enumerate([("prompted", 0.0), ("prompted+steered", steer_scale)]):
        group = [{"condition": condition, "scale": scale, "prompt_index": i, "prompt": prompts[i],
                  "system_prompt": system, "response": outs[c * n + i], **measures[c * n + i]} for i in range(n)]
        rows.append({"condition": condition, "scale": scale, **_aggregate(group, names)})
        samples += group
    return rows, samples

