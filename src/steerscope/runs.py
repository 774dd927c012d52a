"""The run layer: every run directory is written here, the same way for every method.

Methods compute and return result objects; the only thing they hold is a ``Run`` (``Run.open(out_dir=None)`` is a
run that writes nothing):

- ``Run.open`` writes ``config.json`` (method, settings, model, versions), or on ``resume`` checks that the settings
  named in ``keys`` equal the new call's and hands back the checkpoint (``restore``), so the method continues where
  it stopped; ``checkpoint`` commits vectors + loss curves after every vector/block (atomic writes).
- ``write_run(result, dir)`` (``Run.finish``) is the end of every run: ``result.save(dir)`` (the data: config.json,
  safetensors, CSV/JSONL), ``result.figures()`` as PNG, greedy samples of the vectors, and ``report.html``.

Example:
    >>> res = ss.melbo(m, prompts, num_vectors=4)           # nothing written
    >>> ss.write_run(res, "runs/melbo", model=m)             # the same run directory melbo(out_dir=) writes
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from .errors import InvalidArgumentError, RunFileError
from .io import read_csv, read_json, save_figure, write_csv, write_json
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


class Run:
    """An open run directory, or none (``path`` None: every write is a no-op, ``restore`` is empty)."""

    def __init__(self, path: Path | None, config: dict, resuming: bool = False):
        self.path, self.config, self.resuming = path, config, resuming

    @classmethod
    def open(cls, out_dir, model, method: str, settings: dict, *, resume: bool = False,
             keys: list[str] | None = None) -> Run:
        """Create ``out_dir`` with its config.json, or reopen it to resume (``keys``: the settings that must match;
        default all of ``settings``). ``out_dir=None``: a run that writes nothing."""
        config = run_config(model, method, settings)
        path, resuming = open_run(out_dir, config, resume=resume, keys=list(settings) if keys is None else keys)
        return cls(path, config, resuming)

    def __bool__(self) -> bool:
        return self.path is not None

    def restore(self) -> tuple[list, list[list[float]]]:
        """(vectors, loss curves) checkpointed by an interrupted run; empty unless resuming."""
        return load_vector_checkpoint(self.path) if self.resuming else ([], [])

    def checkpoint(self, vectors: VectorSet, losses: list[list[float]]) -> None:
        if self.path:
            save_vector_checkpoint(self.path, vectors, losses)

    def read_table(self, name: str) -> list[dict] | None:
        """A CSV table an interrupted run wrote (None when not resuming or absent)."""
        return read_csv(self.path / name) if self.resuming and (self.path / name).is_file() else None

    def write_table(self, name: str, rows: list[dict]) -> None:
        if self.path:
            write_csv(self.path / name, rows)

    def finish(self, result, **kwargs) -> Path | None:
        """``write_run(result, self.path, **kwargs)``; nothing when the run has no directory."""
        return write_run(result, self.path, **kwargs) if self.path else None


def write_run(result, out_dir: str | os.PathLike, *, model=None, samples: dict | None = None,
              max_new_tokens: int = 40, chat: bool = True, report: bool = False) -> Path:
    """Write a finished result as a run directory: its data (``result.save``), its figures (PNG), samples and the
    report.

    Args:
        result: any steerscope result (``save(dir)`` and ``figures()``).
        samples: ``{file name: (VectorSet, {split: prompts})}``: greedy baseline and steered completions of each
            vector, one JSONL file each (needs ``model``).
        max_new_tokens / chat: for the samples.
        report: also write ``report.html`` (a report failure is logged, never loses the run's files).
    """
    out = Path(out_dir)
    result.save(out)
    for name, fig in result.figures().items():
        save_figure(fig, out / name)
    if samples:
        if model is None:
            raise InvalidArgumentError("write_run needs model= to generate samples")
        from .samples import write_samples

        for name, (vectors, splits) in samples.items():
            write_samples(model, vectors, splits, out / name, max_new_tokens=max_new_tokens, chat=chat)
    if report:
        from .report import write_report_if_available

        write_report_if_available(out)
    return out
