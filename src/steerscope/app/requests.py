"""Turn an OpenAI chat/completions request body into a scheduler ``Job``; every problem is an ``APIError``.

Fields understood: model, messages / prompt, max_tokens (or max_completion_tokens), temperature, top_p, n (1),
stream, stream_options.include_usage, stop, seed, steering. Fields that would change the answer but are not
implemented (logprobs, echo, tools, penalties, n > 1, best_of) are refused rather than ignored; the rest (user,
metadata, ...) is ignored.

Example:
    >>> job, stream, include_usage = parse_request(body, ctx, chat=True)
"""

from __future__ import annotations

import math

from .errors import APIError, check_text
from .registry import parse_model_id
from .scheduler import Job

ROLES = ("system", "developer", "user", "assistant")
UNSUPPORTED = {"logprobs": "logprobs", "top_logprobs": "logprobs", "echo": "echo", "tools": "tool calling",
               "functions": "function calling", "suffix": "suffix", "logit_bias": "logit_bias",
               "response_format": "response_format"}


def _int(body: dict, key: str, default, low: int, high: int) -> int:
    value = body.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int):
        raise APIError(f"{key} must be an integer; got {value!r}", param=key)
    if not low <= value <= high:
        raise APIError(f"{key} must be between {low} and {high}; got {value}", param=key,
                       code="max_tokens_too_large" if key.startswith("max") and value > high else None)
    return value


def _float(body: dict, key: str, default: float, low: float, high: float) -> float:
    value = body.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise APIError(f"{key} must be a finite number; got {value!r}", param=key)
    if not low <= value <= high:
        raise APIError(f"{key} must be between {low:g} and {high:g}; got {value}", param=key)
    return float(value)


def _chat_text(model, messages) -> str:
    if not isinstance(messages, list) or not messages:
        raise APIError("messages must be a non-empty list of {role, content} objects", param="messages")
    turns = []
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            raise APIError(f"each message needs a role ({', '.join(ROLES)}); tool messages are not supported",
                           param=f"{param}.role")
        content = msg.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}]
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise APIError("only text content parts are supported", param=f"{param}.content")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise APIError("message content must be a string", param=f"{param}.content")
        role = "system" if msg["role"] == "developer" else msg["role"]
        turns.append({"role": role, "content": check_text(content, f"{param}.content")})
    tok = model.tokenizer
    if not getattr(tok, "chat_template", None):
        return "\n".join(t["content"] for t in turns)
    return tok.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)


def parse_request(body, ctx, *, chat: bool) -> tuple[Job, bool, bool, str]:
    """(job, stream, include_usage, model id) for a chat (``chat=True``) or completions request body."""
    if not isinstance(body, dict):
        raise APIError("the request body must be a JSON object")
    limits, model = ctx.limits, ctx.model
    for key, what in UNSUPPORTED.items():
        if body.get(key) not in (None, False, [], {}, 0) and not (key == "response_format" and
                                                                  body[key] == {"type": "text"}):
            raise APIError(f"{what} is not supported by steerscope serve", param=key, code="unsupported")
    for key in ("presence_penalty", "frequency_penalty"):
        if body.get(key) not in (None, 0, 0.0):
            raise APIError(f"{key} is not supported (only 0)", param=key, code="unsupported")
    if body.get("n", 1) not in (1, None) or body.get("best_of", 1) not in (1, None):
        raise APIError("n and best_of must be 1: send one request per completion (they are batched anyway)",
                       param="n", code="unsupported")
    if "model" not in body:
        raise APIError("model is required (GET /v1/models lists the ids)", param="model")
    model_id = body["model"]
    terms = parse_model_id(model_id, ctx.base_ids, ctx.registry, limits)
    terms += ctx.registry.terms(body.get("steering"), limits)
    if len(terms) > limits.max_vectors:
        raise APIError(f"{len(terms)} steering vectors in one request; the limit is {limits.max_vectors}",
                       param="steering.vectors", code="too_many_vectors")
    if chat:
        text = _chat_text(model, body.get("messages"))
        ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt:
            raise APIError("prompt must be a non-empty string (one prompt per request)", param="prompt")
        ids = model.tokenizer(check_text(prompt, "prompt"), add_special_tokens=True)["input_ids"]
    if not ids:
        raise APIError("the prompt has no tokens", param="prompt")
    if len(ids) > limits.max_prompt_tokens:
        raise APIError(f"the prompt has {len(ids)} tokens; the limit is {limits.max_prompt_tokens}",
                       param="messages" if chat else "prompt", code="context_length_exceeded")
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    default = min(limits.max_tokens, 256) if chat else 16
    max_tokens = _int(body, key, default, 1, limits.max_tokens)
    context = getattr(model.hf.config, "max_position_embeddings", None)
    if context and len(ids) + max_tokens > context:
        raise APIError(f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) exceeds the model's context of "
                       f"{context}", param=key, code="context_length_exceeded")
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else (stop or [])
    if not isinstance(stop, list) or len(stop) > limits.max_stop or not all(isinstance(s, str) and s for s in stop):
        raise APIError(f"stop must be a string or a list of at most {limits.max_stop} non-empty strings",
                       param="stop")
    for s in stop:
        check_text(s, "stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise APIError("seed must be an integer between 0 and 2**63 - 1", param="seed")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise APIError("stream must be true or false", param="stream")
    options = body.get("stream_options") or {}
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    job = Job(prompt_ids=list(ids), terms=terms, max_tokens=max_tokens,
              temperature=_float(body, "temperature", 1.0, 0.0, 2.0), top_p=_float(body, "top_p", 1.0, 1e-6, 1.0),
              seed=seed, stop=stop)
    return job, stream, include_usage, model_id
