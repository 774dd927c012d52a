"""One-shot optimised steering vectors (Dunefsky & Cohan, "One-shot Optimized Steering Vectors Mediate
Safety-relevant Behaviors in LLMs", 2025).

A single vector ``v`` at ``site[layer]`` is trained with Adam so that, steered by ``v`` (or ``−v`` for a negated
example), the model promotes some completions of a prompt and suppresses others. With ``p = softmax(coldness ·
logits)`` for each completion token: promotion loss ``−Σ log(p + ε)``, suppression loss ``−Σ log(1 − p + ε)``,
summed over all completions of all examples (optionally each divided by its length; optionally satisficing
``(loss − target)²``). After each step ``v`` is rescaled to ``max_norm`` if it got longer.

Fast path (DESIGN.md, "replay, do not recompute"): each example is one row of a padded batch with all its
completions packed behind one copy of the prompt (4-D attention mask; one row per completion where that would not
be exact); blocks before the steered layer run once without gradients (``LayerReplay``); each step replays only the
blocks from the steered layer to the last one and applies the LM head at the completion positions only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import torch
from torch import Tensor

from ..completions import (
    EPS,
    PackedBatch,
    completion_losses,
    gather_hidden,
    pack_completions,
    pack_shared,
    sliding_window,
    token_logprobs,
)
from ..configs import configurable
from ..errors import InvalidArgumentError, SteerscopeError
from ..generate import forward_kwargs, tokenize
from ..hooks import record_activations, run_until_stopped
from ..layers import LayerReplay, hidden_to_logits
from ..models.load import SteerableModel
from ..vector import SteeringVector
from .one_shot_types import Example, OptimizeResult

__all__ = ["Example", "OptimizeResult", "apply_operator", "optimize_vector"]

log = logging.getLogger(__name__)

OPT_SITES = ("resid_pre", "resid_post")
OPERATORS = ("add", "clamp")


class _ReplayObjective:
    """The replayed forward: steered hidden at the site -> log-probs of every completion token."""

    def __init__(self, model, batch: PackedBatch, layer: int, site: str) -> None:
        self.model, self.batch = model, batch
        start = layer if site == "resid_pre" else layer + 1
        last = model.n_layers - 1
        mask, position_ids = batch.forward_inputs()
        self.replay = None
        if start <= last:
            self.replay = LayerReplay(model, batch.ids, mask, start, last, position_ids=position_ids)
            self.hidden = self.replay.hidden  # (R, T, D) input of block `start`, no grad
        else:  # resid_post of the last block: nothing to replay, only the final norm and LM head
            kwargs = forward_kwargs(batch.ids, batch.mask)
            if position_ids is not None:
                kwargs.update(attention_mask=mask, position_ids=position_ids)
            with torch.no_grad(), record_activations(model, [layer], "resid_post") as acts:
                run_until_stopped(model.hf, **kwargs)
            self.hidden = acts[layer]

    def logprobs(self, steered: Tensor, coldness: float) -> Tensor:
        out = self.replay.run(steered) if self.replay is not None else steered  # (R, T, D) resid_post[last]
        logits = hidden_to_logits(self.model, gather_hidden(out, self.batch))  # (M, V)
        return token_logprobs(logits, self.batch.target_ids, coldness)


def apply_operator(hidden: Tensor, v: Tensor, mask: Tensor, sign: Tensor, operator: str) -> Tensor:
    """Steer ``hidden`` (N, T, D) with ``sign · v`` where ``mask`` (N, T, 1) is 1; ``sign`` is (N, 1, 1).

    add: x + s·v. clamp: x − (x·v̂)v̂ + s·v (the component along v is set, not added), as ``steer()`` does.
    """
    if operator == "add":
        return hidden + mask * sign * v
    unit = v / v.norm().clamp_min(1e-12)
    along = (hidden * unit).sum(-1, keepdim=True) * unit  # (N, T, D)
    return hidden + mask * (sign * v - along)


LEADING_SPACE_NATS = 5.0  # warn when the spaced first token is this much less likely (e^5 ≈ 150x)


@torch.no_grad()
def leading_space_warnings(model, examples: Sequence[Example], *, chat: bool = True,
                           threshold: float = LEADING_SPACE_NATS) -> list[dict]:
    """Warn about completions whose leading whitespace makes their first token implausible after the prompt.

    A chat template's assistant turn usually starts right after a newline, so the model begins its answer with a
    token *without* a leading space: " Je suis désolé" starts with the token " Je", which SmolLM2 gives log p ≈ −38
    there (and ≈ −8 even after optimisation), while "Je" is ordinary. For every promote/suppress string that starts
    with whitespace, this compares the unsteered next-token log-prob of its first token with that of the same
    string stripped, in one forward over the prompts, and logs a warning when the spaced one is more than
    ``threshold`` nats less likely. Returns one dict per flagged completion.

    Example:
        >>> leading_space_warnings(m, [ss.Example("Say sorry in French.", promote=[" Je suis désolé"])])
        [{'completion': ' Je suis désolé', 'logprob': -38.2, 'stripped_logprob': -3.1, ...}]
    """
    spaced = [(ex.prompt, c) for ex in examples for c in (*ex.promote, *ex.suppress) if c[:1].isspace() and c.strip()]
    if not spaced:
        return []
    prompts = sorted({prompt for prompt, _ in spaced})
    logits = model.hf(**forward_kwargs(*tokenize(model, prompts, chat=chat))).logits
    last = torch.log_softmax(logits[:, -1].float(), -1)  # (P, V), left-padded
    found = []
    for prompt, c in spaced:
        first, bare = (model.tokenizer(text, add_special_tokens=False)["input_ids"][:1] for text in (c, c.lstrip()))
        if not first or not bare or first == bare:
            continue
        row = last[prompts.index(prompt)]
        lp, lp_bare = float(row[first[0]]), float(row[bare[0]])
        if lp < lp_bare - threshold:
            token, bare_token = model.tokenizer.decode(first), model.tokenizer.decode(bare)
            found.append({"completion": c, "prompt": prompt, "logprob": lp, "stripped_logprob": lp_bare,
                          "first_token": token, "stripped_first_token": bare_token})
            log.warning(
                "completion %r starts with whitespace: its first token %r has log p %.1f after the prompt, while "
                "%r (the same text without the leading space) has %.1f. The assistant turn of a chat template "
                "starts without a space, so this completion is implausible and hard to promote or suppress; "
                "drop the leading space: %r", c, token, lp, bare_token, lp_bare, c.lstrip())
    return found


@configurable("one_shot", name="OneShotConfig")
def optimize_vector(
    model: SteerableModel,
    examples: Sequence[Example] | Example,
    *,
    layer: int,
    site: str = "resid_pre",
    lr: float = 0.01,
    max_iters: int = 50,
    max_norm: float | None = None,
    init_norm: float = 1.0,
    coldness: float = 0.7,
    target_loss: float | None = None,
    normalize_by_length: bool = False,
    satisfice: bool = False,
    operator: str = "add",
    seed: int | None = 0,
    init: Tensor | None = None,
    tol: float = 1e-6,
    patience: int = 5,
    chat: bool = True,
    share_prompt: bool | None = None,
    eps: float = EPS,
    progress: bool = True,
) -> OptimizeResult:
    """Optimise one steering vector at ``site[layer]`` from a few examples (one-shot steering).

    Args:
        model: a ``SteerableModel`` (parameters stay frozen; only the vector gets a gradient).
        examples: ``Example`` objects (prompt, completions to promote/suppress, negate, positions).
        layer: decoder block index; ``site`` is ``resid_pre`` (block input, as in the paper) or ``resid_post``.
        lr: Adam learning rate.
        max_iters: number of Adam steps at most.
        max_norm: after each step the vector is rescaled to this norm if longer (None: unconstrained).
        init_norm: norm of the random initial vector (seeded by ``seed``); ``init`` gives a start vector instead.
        coldness: inverse temperature of the probabilities in the loss.
        target_loss: stop once the loss is at or below it (with ``satisfice``: minimise (loss − target)² instead).
        normalize_by_length: divide each completion's loss by its number of tokens.
        operator: ``add`` (x + v) or ``clamp`` (x − (x·v̂)v̂ + v).
        tol, patience: stop when the loss changes by less than ``tol`` for ``patience`` steps in a row.
        chat: apply the chat template to prompts (turn off for base models and tokenizers without one).
        share_prompt: pack all completions of an example behind one copy of its prompt (4-D attention mask), so
            the prompt is replayed once per step, not once per completion. None (default): whenever that is
            exact (no sliding-window attention shorter than the packed row); False: one row per completion.

    Returns:
        ``OptimizeResult`` (``.vector``, ``.history``, ``.final_loss``, ``.stop_reason``); unpacks as
        ``vector, history``.

    Example:
        >>> ex = ss.Example("Write a poem about cats.", promote=["Sure, here is"])
        >>> v, history = ss.optimize_vector(m, [ex], layer=10, max_iters=30, max_norm=8)
        >>> history[-1]["loss"] < history[0]["loss"]
        True
    """
    from tqdm.auto import tqdm

    examples = [examples] if isinstance(examples, Example) else list(examples)
    if not examples or not all(isinstance(e, Example) for e in examples):
        raise InvalidArgumentError("examples must be a non-empty list of steerscope.Example")
    model.check_layer(layer)
    if site not in OPT_SITES:
        raise InvalidArgumentError(f"one-shot optimisation supports site {' or '.join(OPT_SITES)}, got {site!r}")
    if operator not in OPERATORS:
        raise InvalidArgumentError(f"operator must be one of {', '.join(OPERATORS)}, got {operator!r}")
    for name, value in (("lr", lr), ("init_norm", init_norm), ("coldness", coldness)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise InvalidArgumentError(f"{name} must be a positive finite number, got {value!r}")
    if max_norm is not None and not (math.isfinite(max_norm) and max_norm > 0):
        raise InvalidArgumentError(f"max_norm must be a positive number or None, got {max_norm!r}")
    if not isinstance(max_iters, int) or max_iters < 0:
        raise InvalidArgumentError(f"max_iters must be a non-negative integer, got {max_iters!r}")
    if satisfice and target_loss is None:
        raise InvalidArgumentError("satisfice=True minimises (loss − target_loss)²: give target_loss too")
    if target_loss is not None and not math.isfinite(target_loss):
        raise InvalidArgumentError(f"target_loss must be finite, got {target_loss!r}")

    leading_space_warnings(model, examples, chat=chat)
    # the training batch: one row per example (share_prompt, see its Args entry), else one row per completion
    groups = [(ex.prompt, [*ex.promote, *ex.suppress]) for ex in examples]
    batch, row_examples = None, examples  # the example each row of the batch comes from
    if share_prompt is not False and any(len(comps) > 1 for _, comps in groups):
        shared = pack_shared(model, groups, chat=chat)
        window = sliding_window(model)
        if window is None or shared.ids.shape[1] <= window:
            batch = shared
        elif share_prompt:
            raise InvalidArgumentError(f"share_prompt=True needs rows of at most {window} tokens (the sliding "
                                       "window); use share_prompt=None to fall back to one row per completion")
    if batch is None:
        rows = [(ex, c) for ex, (_, comps) in zip(examples, groups) for c in comps]
        batch = pack_completions(model, [(ex.prompt, c) for ex, c in rows], chat=chat)
        row_examples = [ex for ex, _ in rows]
    dtype, device = model.dtype, model.device
    # (K,) one flag per completion: suppress or promote
    suppress = torch.tensor([s for ex in examples for s in [False] * len(ex.promote) + [True] * len(ex.suppress)],
                            device=device)
    sign = torch.tensor([-1.0 if ex.negate else 1.0 for ex in row_examples], device=device,
                        dtype=dtype)[:, None, None]  # (R, 1, 1)
    mask = batch.steer_mask([ex.positions for ex in row_examples]).to(device, dtype)  # (R, T, 1)
    objective = _ReplayObjective(model, batch, layer, site)

    if init is not None:
        if init.shape != (model.d_model,):
            raise InvalidArgumentError(f"init must have shape ({model.d_model},), got {tuple(init.shape)}")
        start = init.detach().clone()
    else:
        gen = torch.Generator().manual_seed(seed or 0)  # seed=None: 0
        # cpu-ok: drawn from a seeded CPU generator so the start is the same on every device; moved below
        start = torch.randn(model.d_model, generator=gen)
        start *= init_norm / start.norm()
    v = start.to(device, torch.float32).requires_grad_()  # fp32 master copy; cast where it enters
    optimizer = torch.optim.Adam([v], lr=lr)
    params = list(model.hf.parameters())
    if any(p.requires_grad for p in params):
        raise SteerscopeError("model parameters must be frozen for one-shot optimisation; load it with "
                              "ss.load_model() or ss.wrap_model(), which freeze them")

    def losses() -> Tensor:  # (K,) loss of each completion
        steered = apply_operator(objective.hidden, v.to(dtype), mask, sign, operator)  # (N, T, D), model dtype
        return completion_losses(objective.logprobs(steered, coldness), batch, suppress,
                                 normalize_by_length=normalize_by_length, eps=eps)

    history: list[dict] = []
    stop_reason, still = "max_iters", 0
    bar = tqdm(range(max_iters), desc="optimising vector", disable=not progress, leave=False)
    for step in bar:
        t0 = time.perf_counter()
        per_row = losses()
        total = per_row.sum()
        loss = float(total.detach())  # float() of a tensor that needs grad warns
        obj = (total - target_loss) ** 2 if satisfice else total
        row = {"step": step, "loss": loss, "objective": float(obj.detach()),
               "promote_loss": float(per_row[~suppress].sum().detach()),
               "suppress_loss": float(per_row[suppress].sum().detach()),
               "norm": float(v.detach().norm()), "grad_norm": None}
        history.append(row)
        if target_loss is not None and not satisfice and loss <= target_loss:
            stop_reason = "target_loss"  # this vector already does the job: keep it, no update
            row["seconds"] = time.perf_counter() - t0
            break
        optimizer.zero_grad()  # set_to_none=True is the default (torch >= 2.0)
        obj.backward()
        if any(p.grad is not None for p in params):  # frozen weights must never accumulate gradients
            raise SteerscopeError("a model parameter received a gradient during one-shot optimisation")
        row["grad_norm"] = float(v.grad.norm())
        optimizer.step()
        with torch.no_grad():
            if max_norm is not None and (norm := v.norm()) > max_norm:
                v.mul_(max_norm / norm)
        row["seconds"] = time.perf_counter() - t0
        bar.set_postfix(loss=f"{loss:.4f}", norm=f"{float(v.detach().norm()):.2f}")
        still = still + 1 if len(history) > 1 and abs(loss - history[-2]["loss"]) < tol else 0
        if still and still >= patience:  # only a step that changed by < tol counts (patience <= 0 included)
            stop_reason = "converged"
            break
    with torch.no_grad():
        final = float(losses().sum())
    log.info("one-shot: %d steps, final loss %.4f, norm %.3f (%s)", len(history), final, float(v.detach().norm()),
             stop_reason)
    config = {"layer": layer, "site": site, "lr": lr, "max_iters": max_iters, "max_norm": max_norm,
              "init_norm": init_norm, "coldness": coldness, "target_loss": target_loss,
              "normalize_by_length": normalize_by_length, "satisfice": satisfice, "operator": operator, "seed": seed,
              "chat": chat, "eps": eps, "steps": sum(r["grad_norm"] is not None for r in history),
              "final_loss": final, "stop_reason": stop_reason, "examples": [ex.to_dict() for ex in examples]}
    vector = SteeringVector({layer: v.detach().to("cpu", torch.float32).clone()}, site, model_type=model.model_type,
                            model_name=model.name, method="one_shot", method_config=config)
    return OptimizeResult(vector, history, final, stop_reason)


OneShotConfig = optimize_vector.Config
