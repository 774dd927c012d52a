"""Contrastive vectors: CAA mean difference and PCA of paired activations.

Each pair is a positive and a negative text. We read ``site[l]`` at one token position of each (default the
last real token) and form the differences d_i = h(positive_i) − h(negative_i):

- ``mean_diff`` (CAA, Rimsky et al. 2023): v_l = mean_i d_i.
- ``pca``: u_l = first principal direction of the d_i (uncentred, i.e. the top right singular vector: the same
  as PCA of differences with the pair order randomly swapped, as repeng does), sign fixed so positives project
  higher than negatives on average; v_l = u_l · mean_i(d_i · u_l), so its norm is the mean separation along u_l
  (comparable to a mean_diff vector). ``center=True`` gives classic centred PCA instead.

Pairs: ``(positive, negative)`` tuples or dicts ``{"positive": ..., "negative": ...}`` (user messages, formatted
with the chat template), or dicts with a shared ``"prompt"`` — then the texts are the templated prompt followed by
each completion as the assistant's answer (CAA's A/B style), and the read position falls inside the answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..configs import configurable
from ..errors import InvalidArgumentError
from ..generate import format_prompt, tokenize
from ..hooks import capture
from ..models.load import SteerableModel
from ..vector import SteeringVector

METHODS = ("mean_diff", "pca")


def pair_texts(model, pairs: Sequence, *, chat: bool = True) -> tuple[list[str], list[str]]:
    """Fully formatted (positive texts, negative texts); the chat template is applied here."""
    pos, neg = [], []
    for n, pair in enumerate(pairs, 1):
        if isinstance(pair, dict):
            p, q, prompt = pair.get("positive"), pair.get("negative"), pair.get("prompt")
        elif isinstance(pair, (tuple, list)) and len(pair) == 2:
            (p, q), prompt = pair, None
        else:
            raise InvalidArgumentError(f"pair {n} must be (positive, negative) or a dict with positive/negative keys")
        if not isinstance(p, str) or not isinstance(q, str) or not p.strip() or not q.strip():
            raise InvalidArgumentError(f"pair {n}: positive and negative must be non-empty strings")
        if prompt:
            head = format_prompt(model, prompt, chat)
            head += "" if head.endswith(("\n", " ")) else " "
            pos.append(head + p), neg.append(head + q)
        else:
            pos.append(format_prompt(model, p, chat)), neg.append(format_prompt(model, q, chat))
    if not pos:
        raise InvalidArgumentError("no pairs given; pass at least one (positive, negative) pair")
    return pos, neg


def read_activations(model, texts: list[str], layers: list[int], *, site: str = "resid_post",
                     read_position: int = -1, chat: bool = True, batch_size: int = 16,
                     progress: bool = False, desc: str = "activations") -> dict[int, Tensor]:
    """``site[l]`` at one token of each (already formatted) text: {l: (n, D)}, padding-correct and batched.

    ``read_position`` counts real tokens: -1 is the last, 0 the first (left padding is skipped).
    """
    from tqdm.auto import tqdm

    templated = chat and getattr(model.tokenizer, "chat_template", None)
    out: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    for start in tqdm(range(0, len(texts), batch_size), desc=desc, disable=not progress):
        ids, mask = tokenize(model, texts[start: start + batch_size], chat=False, add_special_tokens=not templated)
        lengths = mask.sum(-1)  # (B,)
        from_start = read_position >= 0
        if (lengths <= read_position if from_start else lengths < -read_position).any():
            where = "past the end" if from_start else "before the start"
            raise InvalidArgumentError(f"read_position {read_position} is {where} of a text with "
                                       f"{int(lengths.min())} tokens")
        # left padding: real tokens are the last `lengths`, so counting from the end needs no lengths
        col = ids.shape[1] + read_position - (lengths if from_start else 0)
        acts = capture(model, ids, mask, layers, site)  # {l: (B, T, D)}
        rows = torch.arange(len(ids), device=ids.device)
        for layer in layers:
            out[layer].append(acts[layer][rows, col].float().cpu())  # (B, D)
    return {layer: torch.cat(chunks) for layer, chunks in out.items()}


def _pca_direction(diffs: Tensor, center: bool) -> Tensor:
    """Unit first principal direction of (n, D) differences, sign: mean difference projects positive."""
    x = diffs.double()
    u = torch.linalg.svd(x - x.mean(0, keepdim=True) if center else x, full_matrices=False).Vh[0]
    return -u if (x @ u).mean() < 0 else u


@configurable("contrastive", name="ContrastiveConfig")
def contrastive_vector(
    model: SteerableModel,
    pairs: Sequence,
    *,
    layers: Sequence[int] | None = None,
    method: str = "mean_diff",
    read_position: int = -1,
    site: str = "resid_post",
    chat: bool = True,
    batch_size: int = 16,
    center: bool = False,
    progress: bool = True,
) -> SteeringVector:
    """A steering vector from contrastive pairs (CAA mean difference or PCA of the differences).

    Args:
        pairs: (positive, negative) tuples, or dicts with "positive", "negative" and optionally a shared "prompt".
        layers: layers to read (default: all).
        method: "mean_diff" or "pca".
        read_position: which real token to read (-1: the last).
        center: for "pca", centre the differences first (classic PCA); default uncentred.

    Example:
        >>> pairs = load_pairs("contrastive_happy_sad")
        >>> v = ss.contrastive_vector(m, pairs, layers=[10], method="mean_diff")
        >>> ss.generate(m, ["Describe your morning."], vectors=v, scales=4.0)
    """
    if method not in METHODS:
        raise InvalidArgumentError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    layers = sorted(set(range(model.n_layers) if layers is None else layers))
    if not layers:
        raise InvalidArgumentError("give at least one layer")
    for layer in layers:
        model.check_layer(layer)
    pos_texts, neg_texts = pair_texts(model, pairs, chat=chat)
    kw = {"site": site, "read_position": read_position, "chat": chat, "batch_size": batch_size, "progress": progress}
    pos = read_activations(model, pos_texts, layers, desc="positive activations", **kw)
    neg = read_activations(model, neg_texts, layers, desc="negative activations", **kw)
    directions: dict[int, Tensor] = {}
    for layer in layers:
        diffs = pos[layer] - neg[layer]  # (n, D)
        if method == "mean_diff":
            directions[layer] = diffs.mean(0)
        else:
            u = _pca_direction(diffs, center)
            directions[layer] = (u * (diffs.double() @ u).mean()).float()
    return SteeringVector(directions, site, model_type=model.model_type, model_name=model.name, method=method,
                          method_config={"pairs": len(pos_texts), "read_position": read_position, "chat": chat,
                                         "center": center})


ContrastiveConfig = contrastive_vector.Config
