"""Batched generation with chat templates, left padding and per-row steering.

``generate(m, prompts, vectors=[v1, None, ...], scales=[...])`` evaluates many vectors on many prompts in one
batched ``model.generate`` per chunk: this is what every evaluation in steerscope is built on.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import InvalidArgumentError

# format_prompt, forward_kwargs, position_ids: re-exported
from .inputs import forked_rng, format_prompt, forward_kwargs, position_ids, prompt_lengths, tokenize  # noqa: F401
from .models.load import SteerableModel
from .steer import steer
from .vector import SteeringVector


def _per_row(value, n: int, what: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise InvalidArgumentError(f"got {len(value)} {what} for {n} prompts; give one per prompt")
        return list(value)
    return [value] * n


def generate(model: SteerableModel, prompts: Sequence[str] | str, *,
             vectors: SteeringVector | Sequence[SteeringVector | None] | None = None,
             scales: float | Sequence[float] = 1.0, max_new_tokens: int = 48, min_new_tokens: int | None = None,
             do_sample: bool = False, temperature: float = 1.0, top_p: float | None = None, seed: int | None = 0,
             chat: bool = True, positions: str | int = "all", operator: str = "add", batch_size: int = 32,
             progress: bool = False) -> list[str]:
    """Generate continuations for each prompt, optionally steered, one vector/scale per row if lists are given.

    Args:
        vectors: None, one vector for all prompts, or a list with a vector (or None) per prompt.
        scales: one scale, or one per prompt.
        positions: which tokens are steered (see ``steer``); "all" steers prompt and generated tokens.

    Example:
        >>> ss.generate(m, ["Hi", "Hi"], vectors=[v, None], scales=[4.0, 0.0], max_new_tokens=16)
        ['...steered...', '...baseline...']
    """
    from tqdm.auto import tqdm

    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not temperature >= 0:  # also refuses NaN
        raise InvalidArgumentError(f"temperature must be >= 0, got {temperature}")
    if do_sample and temperature == 0:
        do_sample = False  # temperature 0 is the limit of sampling: greedy decoding
    if max_new_tokens < 1:
        raise InvalidArgumentError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    row_vectors = _per_row(vectors, len(prompts), "vectors")
    row_scales = _per_row(scales, len(prompts), "scales")
    tok = model.tokenizer
    sampling = ({"temperature": temperature, "top_p": top_p} if do_sample
                else {"temperature": None, "top_p": None, "top_k": None})
    outputs: list[str] = []
    # a forked RNG: sampling is reproducible and the caller's global RNG state is left untouched
    with forked_rng(model, seed):
        starts = range(0, len(prompts), batch_size)
        for start in tqdm(starts, desc="generating", disable=not progress or len(starts) < 2):
            chunk = slice(start, start + batch_size)
            ids, mask = tokenize(model, prompts[chunk], chat=chat)
            vecs = row_vectors[chunk]
            with prompt_lengths(mask.sum(-1)), steer(model, vecs, row_scales[chunk], positions=positions,
                                                       operator=operator):
                out = model.hf.generate(ids, **sampling, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
                                        do_sample=do_sample, pad_token_id=tok.pad_token_id, attention_mask=mask)
            outputs.extend(text.strip() for text in tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True))
    return outputs
