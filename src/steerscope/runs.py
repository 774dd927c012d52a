"""The run layer: every run directory is written here, the same way for every method.

Methods (``methods/``) and evaluations (``evaluate/``) compute and return result objects and never import this module.
What users call (``ss.melbo``, ``ss.melbo_ortho``, ``ss.discover_lora``, ``ss.sweep``, ``ss.evaluate_transfer``,
``ss.linearity_score``) is defined at the bottom: the pure function plus this layer's keywords (``out_dir``,
``resume``, ``report``, and per method what a run measures and samples), with merged signatures so each config
and CLI command keeps one field/flag per keyword. A long method is handed the run directory as its ``checkpoint``
(``results.Checkpoint.open``: config.json written, or checked on ``resume``; ``out_dir=None`` writes nothing), and
``write_run(result, dir)`` ends every run: ``result.save(dir)`` (the data: config.json, safetensors, CSV/JSONL),
``result.figures()`` as PNG, greedy samples of the vectors, and ``report.html``.

Example:
    >>> res = ss.melbo(m, prompts, num_vectors=4)           # nothing written
    >>> ss.write_run(res, "runs/melbo", model=m)             # the same run directory melbo(out_dir=) writes
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from pathlib import Path

from .configs import _jsonable, configurable, renamed
from .errors import InvalidArgumentError
from .evaluate import linearity, transfer
from .evaluate import sweep as sweep_module
from .evaluate.kl import kl_divergence, kl_to_base
from .io import save_figure
from .methods import lora_discovery, ortho
from .methods import melbo as melbo_module
from .results import Checkpoint
from .samples import default_heldout_prompts, write_samples
from .vector import SteeringVector, VectorSet


def write_run(result, out_dir: str | os.PathLike, *, model=None, samples: dict | None = None,
              max_new_tokens: int = 40, chat: bool = True, report: bool = False) -> Path:
    """Write a finished result as a run directory: its data (``result.save``), figures (PNG), samples and report.

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
        for name, (vectors, splits) in samples.items():
            write_samples(model, vectors, splits, out / name, max_new_tokens=max_new_tokens, chat=chat)
    if report:
        from .report import write_report_if_available

        write_report_if_available(out)
    return out


# --- the public methods: a pure method (methods/) + the run layer's keywords -----------------------------------------

def _public(pure, method: str, run_args: dict[str, tuple], finish, *, resume_ignores: tuple = (), check=None,
            renames: dict[str, str] | None = None, name: str | None = None):
    """``pure`` (a method from ``methods/``, which takes ``checkpoint=``) with the run layer's keywords added, made
    ``@configurable(method, name=name)`` (and ``@renamed(**renames)`` for old keyword spellings).

    ``run_args``: ``{name: (default, annotation, doc)}``, inserted before ``progress``; ``finish(model, result, run,
    args, run_values)`` measures, writes and returns the result; ``check(run_values)`` validates the run layer's own
    keywords before anything runs. The signature, docstring and type hints are merged, so ``@configurable`` builds one
    config (and the CLI one flag) per keyword of both."""
    pure_sig = inspect.signature(pure)
    takes_checkpoint = "checkpoint" in pure_sig.parameters
    extra = [inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
             for arg, (default, annotation, _doc) in run_args.items()]
    params = [p for p in pure_sig.parameters.values() if p.name != "checkpoint"]
    at = [p.name for p in params].index("progress")
    sig = pure_sig.replace(parameters=params[:at] + extra + params[at:])

    @functools.wraps(pure)
    def public(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        values = bound.arguments
        runs = {arg: values.pop(arg) for arg in run_args}
        if check:
            check(runs)
        model = values["model"]
        settings = _jsonable({k: v for k, v in {**values, **runs}.items()
                              if k not in ("model", "progress", "out_dir", "resume", "report")}, _describe)
        run = Checkpoint.open(runs["out_dir"], model, method, settings, resume=runs.get("resume", False),
                              keys=[k for k in settings if k not in resume_ignores])
        if takes_checkpoint:
            values["checkpoint"] = run
        return finish(model, pure(**values), run, values, runs)

    public.__signature__ = sig
    public.__annotations__ = {**{k: v for k, v in pure.__annotations__.items() if k != "checkpoint"},
                              **{p.name: p.annotation for p in extra}}
    public.__doc__ = _with_args(pure.__doc__ or "", {arg: doc for arg, (_d, _a, doc) in run_args.items()})
    return configurable(method, name=name)(renamed(**renames)(public) if renames else public)


def _with_args(doc: str, extra: dict[str, str]) -> str:
    """``doc`` with its ``checkpoint:`` entry replaced by ``extra``'s entries, at the end of its ``Args:`` section."""
    section = re.search(r"^( *)Args:\n(?:\1 {4}.*\n?|\s*\n)*", doc, flags=re.MULTILINE)  # its lines and blank lines
    if section is None:
        return doc
    indent = section.group(1) + "    "
    # the entry: its first line, the deeper continuation lines and blank lines up to the next entry
    args = re.sub(rf"^{indent}checkpoint:.*\n?(?:{indent} .*\n?|\s*\n)*", "", section.group(), flags=re.MULTILINE)
    rest = doc[section.end():]
    return (doc[:section.start()] + args.rstrip() + "".join(f"\n{indent}{name}: {text}" for name, text in extra.items())
            + ("\n\n" + rest if rest.strip() else ""))


def _describe(value):
    """A setting JSON has no type for, as config.json records it and resume compares it: a vector by its site,
    layers and norm, a function by its name, anything else by its repr."""
    if isinstance(value, SteeringVector):
        return {"site": value.site, "layers": value.layers, "norm": round(value.norm(), 6)}
    if callable(value) and hasattr(value, "__qualname__"):  # a metric function: its name, not its address
        return f"{value.__module__}:{value.__qualname__}"
    return repr(value)


def _write(run: Checkpoint, result, args: dict, runs: dict, samples: dict):
    """A method's result records its run directory (``result.out_dir``, None without one); then ``write_run`` with
    the call's samples (``sample_tokens`` long, ``chat`` as the call) and report, nothing when the run has no
    directory. Returns the result."""
    result.out_dir = run.path
    if run:
        write_run(result, run.path, model=args["model"], samples=samples, max_new_tokens=runs["sample_tokens"],
                  chat=args["chat"], report=runs["report"])
    return result


def _check_ortho(runs: dict) -> None:
    if runs["kl_direction"] not in ("forward", "reverse"):
        raise InvalidArgumentError("kl_direction must be 'forward' (KL(P_i||P_0)) or 'reverse' (KL(P_0||P_i))")


def _finish_melbo(model, result, run, args, runs):
    heldout = list(runs["heldout_prompts"]) if runs["heldout_prompts"] is not None else default_heldout_prompts()
    if runs["heldout_kl"]:  # next-token KL(steered ‖ unsteered) at the first generated token, mean per vector
        result.heldout_kl = [float(x) for x in kl_divergence(model, result.vectors, heldout, chat=args["chat"],
                                                             progress=args["progress"])]
    splits = {"train": melbo_module.training_prompts(args["prompts"]), "heldout": heldout}
    return _write(run, result, args, runs, {"samples.jsonl": (result.vectors, splits)})


def _finish_ortho(model, result, run, args, runs):
    vs = result.vectors
    result.kl_direction = runs["kl_direction"]
    result.analysis = kl_to_base(model, vs, result.base, runs["heldout_prompts"] or list(args["prompts"]),
                                 direction=result.kl_direction, window=runs["moving_average"], chat=args["chat"],
                                 progress=args["progress"])
    shown = VectorSet({k: t[:runs["sample_vectors"]] for k, t in vs.tensors.items()}, vs.site)
    train = {"train": list(args["prompts"])}
    return _write(run, result, args, runs, {"samples.jsonl": (shown, train),
                                            "base_samples.jsonl": (VectorSet.from_vectors([result.base]), train)})


def _finish_plain(model, result, run, args, runs):
    """Evaluations and LoRA discovery (whose result already names its run directory): the result as the run
    directory, nothing measured or sampled on top."""
    if run:
        # config.json (the run's), data, figures, the report; LoRA: summary.json (adapter paths relative to the
        # run directory), each run's loss figure, the report
        write_run(result, run.path, report=runs["report"])
    return result


def _finish_sweep(model, result, run, args, runs):
    """``_finish_plain``, then the responses checkpoint goes: samples.jsonl now holds every response."""
    if run:
        _finish_plain(model, result, run, args, runs)
        (run.path / sweep_module.CHECKPOINT).unlink(missing_ok=True)
    return result


def _build():
    # the run layer's keywords: (default, annotation, doc)
    out_dir = (None, "str | os.PathLike | None", ("run directory: config.json, checkpoints, the result's files, "
                                                  "figures, samples, report.html; None: nothing is written"))
    resume = (False, "bool", ("continue an interrupted run in ``out_dir`` (the same settings give the same result; "
                              "changed settings are refused)"))
    report = (True, "bool", "write ``report.html`` at the end of the run")
    sample_tokens = (40, "int", "length of the greedy samples written to the run directory")
    heldout = (None, "list[str] | None", "prompts for the samples and the held-out KL (default: shipped chat prompts)")
    resumable = {"out_dir": out_dir, "resume": resume, "report": report}
    not_resumable = {"out_dir": out_dir, "report": report}
    return (
        _public(sweep_module.sweep, "sweep", resumable, _finish_sweep),
        _public(transfer.evaluate_transfer, "transfer", not_resumable, _finish_plain),
        _public(linearity.linearity_score, "linearity", not_resumable, _finish_plain),
        _public(melbo_module.melbo, "melbo", {
            "out_dir": out_dir, "resume": resume, "heldout_prompts": heldout,
            "heldout_kl": (True, "bool", ("measure each vector's next-token KL(steered ‖ unsteered) at the first "
                                          "generated token of the held-out prompts (``result.heldout_kl``)")),
            "sample_tokens": sample_tokens, "report": report}, _finish_melbo),
        _public(ortho.melbo_ortho, "melbo_ortho", {
            "out_dir": out_dir, "resume": resume,
            "heldout_prompts": (None, "list[str] | None", "prompts for the KL analysis (default: the training prompts)"),
            "kl_direction": ("forward", "str", "``forward`` = KL(Pᵢ‖P₀) (default), ``reverse`` = KL(P₀‖Pᵢ)"),
            "moving_average": (25, "int", "window (vectors) of the KL curve's moving average"),
            "sample_vectors": (8, "int", "how many of the vectors get samples in the run directory"),
            "sample_tokens": sample_tokens, "report": report},
            _finish_ortho, check=_check_ortho, name="OrthoConfig", renames={"kl_prompts": "heldout_prompts"}),
        _public(lora_discovery.discover_lora, "lora_discovery", resumable, _finish_plain, resume_ignores=("runs",),
                renames={"held_out_prompts": "heldout_prompts"}),
    )


sweep, evaluate_transfer, linearity_score, melbo, melbo_ortho, discover_lora = _build()
SweepConfig, TransferConfig, LinearityConfig = sweep.Config, evaluate_transfer.Config, linearity_score.Config
MelboConfig, OrthoConfig, LoraDiscoveryConfig = melbo.Config, melbo_ortho.Config, discover_lora.Config
