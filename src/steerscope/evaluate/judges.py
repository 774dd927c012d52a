"""Judges: language models that read generated text and answer questions about it.

``Judge`` is a protocol with one method, ``complete(requests, validate=...)``: a list of chat requests in, one
answer (or ``None`` = missing) per request out. Two implementations:

- ``HTTPJudge``: any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, Gemini's OpenAI-compatible
  endpoint, vLLM, llama.cpp server). Timeouts, retries with exponential backoff on 429/5xx/timeouts (honouring
  ``Retry-After``), at most ``max_concurrency`` requests in flight, and an on-disk cache keyed by the full request
  so re-running an evaluation costs nothing.
- ``LocalJudge``: a Hugging Face chat model run locally (default: the embedded SmolLM2).

Answers that fail ``validate`` (or HTTP bodies that are not the expected JSON) are retried up to ``attempts``
times and then recorded as ``None``: a missing answer is never turned into a number.
Judge tasks (difference summaries, blind pairwise comparison) live in ``judge_tasks``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..errors import InvalidArgumentError, SteerscopeError
from ..io import write_json

log = logging.getLogger(__name__)
Messages = list[dict]  # [{"role": "user", "content": "..."}]
Validator = Callable[[str], bool]


class JudgeError(SteerscopeError):
    """A judge endpoint refused the request for a reason retrying cannot fix (bad key, unknown model, ...)."""


class _GaveUp(Exception):
    """Transient failures outlasted the retries: asking again for another answer would only repeat them."""


@runtime_checkable
class Judge(Protocol):
    """Anything that answers chat requests. ``None`` in the output means the answer is missing."""

    name: str

    def complete(self, requests: Sequence[Messages], *, validate: Validator | None = None) -> list[str | None]:
        ...


def default_cache_dir() -> Path:
    root = os.environ.get("STEERSCOPE_CACHE") or Path.home() / ".cache" / "steerscope"
    return Path(root) / "judge"


class JudgeCache:
    """One JSON file per (request, attempt), named by the SHA-256 of the canonical JSON of both."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)

    @staticmethod
    def key(request: dict, attempt: int) -> str:
        text = json.dumps({"request": request, "attempt": attempt}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, request: dict, attempt: int) -> Path:
        key = self.key(request, attempt)
        return self.dir / key[:2] / f"{key}.json"

    def get(self, request: dict, attempt: int) -> str | None:
        path = self._path(request, attempt)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())["answer"]
        except (json.JSONDecodeError, KeyError):
            return None  # a damaged entry is just a miss

    def put(self, request: dict, attempt: int, answer: str) -> None:
        write_json(self._path(request, attempt), {"request": request, "attempt": attempt, "answer": answer})


def _ask_with_attempts(request: dict, attempts: int, ask: Callable[[dict, int], str | None],
                       cache: JudgeCache | None, validate: Validator | None) -> str | None:
    """Try up to ``attempts`` answers; each attempt's raw answer is cached under (request, attempt)."""
    for attempt in range(attempts):
        answer = cache.get(request, attempt) if cache is not None else None
        if answer is None:
            try:
                answer = ask(request, attempt)
            except _GaveUp:
                return None
            if answer is not None and cache is not None:
                cache.put(request, attempt, answer)
        if answer is not None and (validate is None or validate(answer)):
            return answer
        log.info("judge answer malformed (attempt %d/%d): %r", attempt + 1, attempts, (answer or "")[:80])
    return None


class HTTPJudge:
    """OpenAI-compatible chat-completions judge.

    Args:
        base_url: e.g. ``https://api.openai.com/v1``, ``https://generativelanguage.googleapis.com/v1beta/openai``,
            ``http://localhost:8000/v1`` (vLLM) or ``http://localhost:8080/v1`` (llama.cpp server).
        model: the model name the endpoint expects.
        api_key_env: environment variable holding the API key (not needed for local servers).
        timeout: seconds per HTTP request. max_retries: retries of one request on 429/5xx/timeouts/connection
            errors, with exponential backoff from ``backoff`` seconds (capped at ``max_backoff``).
        max_concurrency: requests in flight at once. attempts: answers asked for before recording a malformed
            one as missing. cache_dir: on-disk cache (``None`` disables it).

    Example:
        >>> judge = ss.HTTPJudge("https://api.openai.com/v1", "gpt-4o-mini", api_key_env="OPENAI_API_KEY")
        >>> judge.complete([[{"role": "user", "content": "Say hi"}]])
        ['Hi!']
    """

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = "OPENAI_API_KEY",
                 timeout: float = 60.0, max_retries: int = 4, backoff: float = 1.0, max_backoff: float = 30.0,
                 max_concurrency: int = 4, attempts: int = 3, temperature: float = 0.0, max_tokens: int = 256,
                 cache_dir: str | os.PathLike | None = "default", extra_body: dict | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidArgumentError(f"base_url {base_url!r} must start with http:// or https://")
        if max_concurrency < 1 or attempts < 1 or max_retries < 0 or timeout <= 0:
            raise InvalidArgumentError("need max_concurrency >= 1, attempts >= 1, max_retries >= 0 and timeout > 0")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.name, self.api_key_env = model, f"http:{model}", api_key_env
        self.timeout, self.max_retries, self.backoff, self.max_backoff = timeout, max_retries, backoff, max_backoff
        self.max_concurrency, self.attempts = max_concurrency, attempts
        self.params = {"temperature": temperature, "max_tokens": max_tokens, **(extra_body or {})}
        self.cache = JudgeCache(default_cache_dir() if cache_dir == "default" else cache_dir) if cache_dir else None
        self.requests_sent = 0  # HTTP requests actually made (cache hits make none)
        self._count_lock = threading.Lock()

    def _headers(self) -> dict:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _sleep(self, retry: int, retry_after: str | None) -> None:
        delay = self.backoff * (2 ** retry) * random.uniform(0.5, 1.0)  # jitter spreads concurrent retries
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = max(delay, float(retry_after))
        time.sleep(min(delay, self.max_backoff))

    def _post(self, client, request: dict) -> str | None:
        """One answer: retried on transient failures; None when the body is malformed or retries ran out."""
        import httpx

        refused: Exception | None = None
        for retry in range(self.max_retries + 1):
            with self._count_lock:
                self.requests_sent += 1
            try:
                resp = client.post(self.url, json=request, headers=self._headers(), timeout=self.timeout)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                refused = exc if isinstance(exc, httpx.ConnectError) else None
                failure, retry_after = f"request failed ({type(exc).__name__})", None
            else:
                status = resp.status_code
                if status in (401, 403):
                    raise JudgeError(self._auth_message(status))
                if 400 <= status < 500 and status != 429:
                    raise JudgeError(f"{self.url} answered HTTP {status}: {resp.text[:200]} "
                                     f"(check base_url and the model name {self.model!r})")
                if status < 400:
                    try:
                        content = resp.json()["choices"][0]["message"]["content"]
                    except (ValueError, KeyError, IndexError, TypeError):
                        log.info("judge returned a malformed body: %r", resp.text[:120])
                        return None
                    return content if isinstance(content, str) else None
                failure, retry_after = f"endpoint answered {status}", resp.headers.get("retry-after")  # 429, 5xx
            log.info("judge %s; retry %d/%d", failure, retry + 1, self.max_retries)
            if retry < self.max_retries:
                self._sleep(retry, retry_after)
        if refused is not None:  # nothing listens there: no answer will ever come, so say so instead of None
            raise JudgeError(f"cannot connect to the judge at {self.url} ({refused}); is the server running? "
                             "check the base URL (--judge-url)")
        log.warning("judge request gave up after %d retries; answer recorded as missing", self.max_retries)
        raise _GaveUp

    def _auth_message(self, status: int) -> str:
        """Why the endpoint refused us, and what to set."""
        where = f"{self.url} refused the request (HTTP {status})"
        if not self.api_key_env:
            return (f"{where}; this judge sends no API key (api_key_env=None): pass api_key_env (or "
                    "--judge-api-key-env) naming an environment variable that holds a valid key")
        if not os.environ.get(self.api_key_env):
            return f"{where}; ${self.api_key_env} is not set: set it to a valid API key"
        return f"{where}; the key in ${self.api_key_env} was not accepted: set it to a valid API key"

    def complete(self, requests: Sequence[Messages], *, validate: Validator | None = None) -> list[str | None]:
        import httpx

        # the cache key is the whole request: endpoint URL and body (model, messages, sampling parameters)
        payloads = [{"url": self.url, "body": {"model": self.model, "messages": list(messages), **self.params}}
                    for messages in requests]
        limits = httpx.Limits(max_connections=self.max_concurrency)
        with httpx.Client(limits=limits) as client, ThreadPoolExecutor(self.max_concurrency) as pool:
            ask = lambda req, attempt: self._post(client, req["body"])  # the attempt only keys the cache
            return list(pool.map(lambda p: _ask_with_attempts(p, self.attempts, ask, self.cache, validate), payloads))


class LocalJudge:
    """A local Hugging Face chat model as judge (default: the embedded SmolLM2-135M-Instruct).

    The first attempt decodes greedily; retries after a malformed answer sample (seeded) so they can differ.

    Example:
        >>> judge = ss.LocalJudge()                  # or LocalJudge("path/to/chat-model") / LocalJudge(m)
        >>> judge.complete([[{"role": "user", "content": "Answer A or B: which is a colour? A: red B: run"}]])
    """

    def __init__(self, model=None, *, max_new_tokens: int = 96, batch_size: int = 8, attempts: int = 2,
                 cache_dir: str | os.PathLike | None = None) -> None:
        self._model = model
        self.max_new_tokens, self.batch_size, self.attempts = max_new_tokens, batch_size, attempts
        self.cache = JudgeCache(cache_dir) if cache_dir else None

    @property
    def model(self):
        if self._model is None or isinstance(self._model, str):
            from ..models.load import load_model

            self._model = load_model(self._model)
        return self._model

    @property
    def name(self) -> str:
        return f"local:{getattr(self._model, 'name', self._model or 'embedded')}"

    def _generate(self, messages_list: list[Messages], attempt: int) -> list[str]:
        from ..generate import generate

        m = self.model
        if all(len(ms) == 1 and ms[0]["role"] == "user" for ms in messages_list):
            texts, chat = [ms[0]["content"] for ms in messages_list], True  # one user turn: generate() formats it
        elif getattr(m.tokenizer, "chat_template", None):
            texts, chat = [m.tokenizer.apply_chat_template(ms, tokenize=False, add_generation_prompt=True)
                           for ms in messages_list], False
        else:
            texts, chat = ["\n\n".join(x["content"] for x in ms) for ms in messages_list], False
        return generate(m, texts, max_new_tokens=self.max_new_tokens, chat=chat, batch_size=self.batch_size,
                        do_sample=attempt > 0, temperature=0.7, seed=attempt)

    def complete(self, requests: Sequence[Messages], *, validate: Validator | None = None) -> list[str | None]:
        requests = [list(r) for r in requests]
        answers: list[str | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        for attempt in range(self.attempts):
            if not pending:
                break
            keyed = [{"messages": requests[i], "model": self.name, "max_new_tokens": self.max_new_tokens}
                     for i in pending]
            got = [self.cache.get(k, attempt) if self.cache else None for k in keyed]
            missing = [j for j, g in enumerate(got) if g is None]
            if missing:  # one batched generate for everything not cached
                fresh = self._generate([requests[pending[j]] for j in missing], attempt)
                for j, text in zip(missing, fresh):
                    got[j] = text
                    if self.cache:
                        self.cache.put(keyed[j], attempt, text)
            for i, text in zip(pending, got):
                if text is not None and (validate is None or validate(text)):
                    answers[i] = text
            pending = [i for i in pending if answers[i] is None]
        return answers
