"""Server limits: every request is checked against these before it reaches the model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one request may ask for. ``steerscope serve`` exposes each as a flag.

    Example:
        >>> Limits(max_tokens=128, max_scale=50.0)
    """

    max_body_bytes: int = 4 * 1024 * 1024  # inline vectors of a 8k-wide model at a few layers fit
    max_prompt_tokens: int = 2048
    max_tokens: int = 512  # per request; OpenAI's max_tokens / max_completion_tokens
    max_vectors: int = 8  # terms summed in one request
    max_scale: float = 1000.0  # |scale|; unit vectors need tens, trained vectors ~1
    max_stop: int = 4
    max_batch: int = 32  # rows decoded together
    max_queue: int = 1024  # requests waiting for a row; more is a 429
    batch_window_ms: float = 5.0  # an idle scheduler waits this long for more requests before prefilling
