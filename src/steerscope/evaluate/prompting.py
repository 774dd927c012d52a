"""The prompting baseline: a system prompt that simply asks for the behaviour a vector is meant to cause.

AxBench (Wu et al., 2025) found that prompting usually beats steering vectors; every sweep and transfer evaluation
can therefore add rows for the *prompted* model (system prompt, no vector) and the *prompted + steered* model, so a
report shows whether a vector beats simply asking.

The generation and scoring functions take finished prompt texts with ``chat=False``: ``system_prompted`` applies
the chat template with the system message itself (or folds it into the user turn when the template has no system
role, or prepends it when the tokenizer has no template) and removes a leading BOS the tokenizer would add again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..inputs import format_prompt


def _adds_bos(tokenizer) -> bool:
    bos = getattr(tokenizer, "bos_token_id", None)
    return bos is not None and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]


def system_prompted(model, prompts: Sequence[str], system: str, *, chat: bool = True) -> tuple[list[str], bool]:
    """Prompt texts that carry ``system`` as a system message, and the ``chat`` flag to pass with them.

    Returns ``(texts, chat_flag)``: with a chat template the texts are fully templated and ``chat_flag`` is False
    (tokenize adds special tokens then, so a BOS the template already wrote is removed from the text); without one
    (or with ``chat=False``) the system text is prepended to the prompt and ``chat`` is passed through.

    Example:
        >>> texts, chat = system_prompted(m, ["Tell me about cats."], "Always answer like a pirate.")
        >>> ss.generate(m, texts, chat=chat)
    """
    system = system.strip()
    tok = model.tokenizer
    if not (chat and getattr(tok, "chat_template", None)):
        return [f"{system}\n\n{p}" for p in prompts], chat
    from jinja2.exceptions import TemplateError

    texts = []
    for p in prompts:
        try:
            text = tok.apply_chat_template([{"role": "system", "content": system}, {"role": "user", "content": p}],
                                           tokenize=False, add_generation_prompt=True)
        except (TemplateError, ValueError):  # templates without a system role (e.g. Gemma) raise: fold it into the user turn
            text = format_prompt(model, f"{system}\n\n{p}")
        texts.append(text)
    bos = getattr(tok, "bos_token", None)
    if bos and _adds_bos(tok):
        texts = [t.removeprefix(bos) for t in texts]
    return texts, False


def prompted_scale(scales: Sequence[float], best_scale: float | None) -> float:
    """The scale of the prompted + steered condition: the best scale found, else the largest positive one."""
    if best_scale:  # neither None nor 0
        return float(best_scale)
    positive = [s for s in scales if s > 0]
    return float(max(positive) if positive else max(scales, key=abs))


def plot_prompted(ax, rows: Sequence[dict], key: str) -> None:
    """What simply asking achieves: each prompting-baseline row's ``key`` as a horizontal line (NaN/None skipped)."""
    for row, style in zip(rows, ("-.", ":")):
        value = row.get(key)
        if value is not None and not math.isnan(value):
            label = row["condition"] + (f" (scale {row['scale']:g})" if row["scale"] else "")
            ax.axhline(value, color="tab:purple", ls=style, lw=1.2, label=label)
