"""The data types of one-shot optimisation: ``Example`` (what to train on) and ``OptimizeResult`` (what comes back)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InvalidArgumentError
from ..steer import Positions
from ..vector import SteeringVector


@dataclass(frozen=True)
class Example:
    """One training example: a prompt, completions to promote and to suppress, and how it is steered.

    Args:
        prompt: the user prompt (the chat template is applied when the model has one and ``chat=True``).
        promote: completions whose probability should rise.
        suppress: completions whose probability should fall.
        negate: steer this example with −v instead of v (e.g. "−v should undo what +v does").
        positions: ``all`` (prompt and completion tokens), ``prompt`` (prompt only) or ``last:K`` (last K
            prompt tokens).

    Example:
        >>> Example("How do I bake bread?", promote=["Sure, here is"], suppress=["I can't"])
    """

    prompt: str
    promote: Sequence[str] = ()
    suppress: Sequence[str] = ()
    negate: bool = False
    positions: str = "all"

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InvalidArgumentError("Example.prompt must be a non-empty string")
        for name in ("promote", "suppress"):
            value = getattr(self, name)
            # a lone string is one completion, not a list of characters
            value = (value,) if isinstance(value, str) else tuple(value)
            if any(not isinstance(c, str) or not c for c in value):
                raise InvalidArgumentError(f"Example.{name} must hold non-empty strings, got {value!r}")
            object.__setattr__(self, name, value)
        if not self.promote and not self.suppress:
            raise InvalidArgumentError("an Example needs at least one completion to promote or suppress")
        spec = Positions.parse(self.positions)
        if spec.kind not in ("all", "prompt", "last") or (spec.kind == "last" and spec.k < 1):
            raise InvalidArgumentError(
                f"Example.positions {self.positions!r} not supported; use all, prompt or last:K (K >= 1)")

    @classmethod
    def from_dict(cls, data: dict) -> Example:
        """From a JSON object with keys prompt, promote, suppress, negate, positions (JSONL example files)."""
        if not isinstance(data, dict) or "prompt" not in data:
            raise InvalidArgumentError(f"an example needs a 'prompt' key, got {data!r}")
        unknown = set(data) - {"prompt", "promote", "suppress", "negate", "positions"}
        if unknown:
            raise InvalidArgumentError(
                f"unknown example keys {sorted(unknown)}; use prompt, promote, suppress, negate, positions")
        return cls(**data)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class OptimizeResult:
    """What ``optimize_vector`` returns. Unpacks as ``vector, history = optimize_vector(...)``.

    Attributes:
        vector: the optimised SteeringVector (``method="one_shot"``, hyperparameters in ``method_config``).
        history: one dict per step: step, loss (mixed loss at the vector before the update), objective (what was
            minimised: the loss, or (loss − target)² when satisficing), promote_loss, suppress_loss, norm, grad_norm,
            seconds (wall time of the step).
        final_loss: loss of the returned vector (one extra no-grad forward).
        stop_reason: max_iters | target_loss | converged.
    """

    vector: SteeringVector
    history: list[dict] = field(default_factory=list)
    final_loss: float = math.nan
    stop_reason: str = "max_iters"

    @property
    def losses(self) -> list[float]:
        return [row["loss"] for row in self.history]

    def __iter__(self) -> Iterator:
        return iter((self.vector, self.history))

    def plot(self):
        """Figure of the loss (and the vector norm) per step."""
        from ..io import subplots

        fig, ax = subplots(figsize=(6, 3.5))
        steps = [r["step"] for r in self.history]
        ax.plot(steps, self.losses, marker=".", label="loss")
        ax.set(xlabel="step", ylabel="loss", title=f"one-shot optimisation ({self.stop_reason})")
        twin = ax.twinx()
        twin.plot(steps, [r["norm"] for r in self.history], color="tab:orange", alpha=0.6, label="norm")
        twin.set_ylabel("vector norm")
        ax.legend(handles=ax.get_lines() + twin.get_lines(), loc="center right")  # labelled by each line's label
        fig.tight_layout()
        return fig

    def figures(self) -> dict:
        return {"loss.png": self.plot()}

    def summary(self) -> dict:
        """summary.json: final loss, why it stopped, steps taken and the vector's norm."""
        return {"final_loss": self.final_loss, "stop_reason": self.stop_reason, "steps": len(self.history),
                "norm": self.vector.norm()}

    def save(self, out_dir: str | os.PathLike) -> Path:
        """config.json (method ``one_shot``, the settings and examples), vector.safetensors, history.csv (one row per
        step) and summary.json; ``OptimizeResult.load(out_dir)`` reads them back (``ss.write_run`` adds loss.png).
        The vector file is an ordinary steerscope vector: pass ``OUT/vector.safetensors`` (or ``OUT``) wherever a
        vector is wanted."""
        from ..results import save_files

        if Path(out_dir).suffix == ".safetensors":
            raise InvalidArgumentError(f"OptimizeResult.save takes a directory (it writes vector.safetensors, "
                                       f"history.csv and summary.json there), got {out_dir}; to write only the vector "
                                       "use result.vector.save(path)")
        return save_files(out_dir, {"vector.safetensors": self.vector, "history.csv": self.history,
                                    "summary.json": self.summary()}, "one_shot", self.vector.meta.method_config)

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> OptimizeResult:
        """Read a result written by ``save``; a malformed file is a RunFileError."""
        from ..results import from_json, open_result, read_table

        out, summary = open_result(out_dir, "one_shot")
        return from_json(cls, summary, out / "summary.json", vector=SteeringVector.load(out / "vector.safetensors"),
                         history=read_table(out / "history.csv"))
