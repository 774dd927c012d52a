"""Run directories: config, checkpoints and resume for long optimisation runs.

A run directory holds ``config.json`` (method settings, model, versions) and whatever the method writes. A run is
resumable when ``config.json`` exists and its ``resume_key`` settings equal the new call's: the method then reloads
its checkpoint and continues where it stopped.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from .errors import InvalidArgumentError, RunFileError
from .io import read_csv, read_json, write_csv, write_json
from .vector import VectorSet

log = logging.getLogger(__name__)


def run_config(model, method: str, settings: dict) -> dict:
    from . import __version__

    return {
        "method": method,
        "model_name": model.name,
        "model_type": model.model_type,
        "n_layers": model.n_layers,
        "d_model": model.d_model,
        "steerscope_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **settings,
    }


def open_run(out_dir: str | os.PathLike | None, config: dict, *, resume: bool, keys: list[str]) -> tuple[Path | None, bool]:
    """Create or reopen a run directory. Returns (path, resuming).

    Refuses to overwrite an existing run unless ``resume`` is set (then the settings named in ``keys`` must match).
    """
    if out_dir is None:
        return None, False
    path = Path(out_dir)
    existing = path / "config.json"
    if existing.is_file():
        if not resume:
            raise InvalidArgumentError(
                f"{path} already holds a run; pass resume=True (--resume) to continue it or choose another output directory"
            )
        old = read_json(existing)
        if not isinstance(old, dict):
            raise RunFileError(f"{existing} is not a JSON object; the run directory is corrupt, start a new one")
        changed = [k for k in keys if old.get(k) != config.get(k)]
        if changed:
            raise InvalidArgumentError(
                f"cannot resume {path}: settings differ from the original run ({', '.join(changed)}); "
                "use the same settings or a new output directory"
            )
        log.info("resuming run in %s", path)
        _remove_stale_temp_files(path)
        return path, True
    path.mkdir(parents=True, exist_ok=True)
    write_json(existing, config)
    return path, False


def _remove_stale_temp_files(run_dir: Path) -> None:
    """Delete the temp files of atomic writes a killed process left behind (``.NAME.XXXX.tmp``; never a real file)."""
    for tmp in list(run_dir.glob(".*.tmp")) + list(run_dir.glob("*/.*.tmp")):
        try:
            tmp.unlink()
            log.info("removed %s, left by an interrupted write", tmp)
        except OSError:
            pass


def save_vector_checkpoint(run_dir: Path, vectors: VectorSet, losses: list[list[float]]) -> None:
    """Write ``losses.csv`` then ``vectors.safetensors``: the vectors file is the commit point a resume trusts."""
    write_csv(run_dir / "losses.csv", [{"vector": i, "step": s, "loss": v}
                                       for i, h in enumerate(losses) for s, v in enumerate(h)])
    vectors.save(run_dir / "vectors.safetensors")


def load_vector_checkpoint(run_dir: Path):
    """(vectors as a list of (D,) tensors, per-vector loss curves) from a run directory; empty if none yet.

    Loss rows of a vector whose checkpoint never completed are dropped.
    """
    if not (run_dir / "vectors.safetensors").is_file():
        return [], []
    vectors = list(next(iter(VectorSet.load(run_dir / "vectors.safetensors").tensors.values())))
    losses: list[list[float]] = [[] for _ in vectors]
    if not (run_dir / "losses.csv").is_file():
        log.warning("%s has vectors but no losses.csv; resuming without the earlier loss curves", run_dir)
        return vectors, losses
    for n, row in enumerate(read_csv(run_dir / "losses.csv"), 2):
        vector, loss = row.get("vector"), row.get("loss")
        if not isinstance(vector, float) or not vector.is_integer() or not isinstance(loss, (float, type(None))):
            raise RunFileError(f"{run_dir / 'losses.csv'}:{n}: expected numbers in the 'vector' and 'loss' columns; "
                               "the run directory is corrupt (delete losses.csv to resume without loss curves)")
        if 0 <= int(vector) < len(vectors):
            losses[int(vector)].append(float("nan") if loss is None else loss)
    return vectors, losses
