"""Continuous batching: one thread owns the model; requests join the running batch between decoding steps.

Each loop iteration admits waiting requests (while rows are free), prefills them as one batch and merges them into
the KV cache, then takes one decoding step for every row. A row that finishes (end of sequence, ``max_tokens``, a
stop string) or whose client went away leaves at once and frees its slot. An idle scheduler waits
``batch_window_ms`` after the first request so that a burst is prefilled together. Requests whose client has
disconnected while they waited are dropped without being generated.

Results flow back as events through ``Job.sink`` (called on the scheduler thread): ``("text", delta)`` as text
becomes final, then ``("end", finish_reason, usage)``, or ``("error", message)``.

Example:
    >>> sched = Scheduler(m, Limits()); sched.start()
    >>> job = Job(prompt_ids=ids, terms=[Term(v, 4.0)], max_tokens=32)
    >>> sched.run_sync(job)          # blocking helper: (text, finish_reason, usage)
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import torch

from .engine import BatchState, Row, Term
from .errors import APIError
from .limits import Limits

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One generation request as the scheduler sees it (already tokenized and validated)."""

    prompt_ids: list[int]
    terms: list[Term] = field(default_factory=list)
    max_tokens: int = 16
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    sink: object = None  # callable(event tuple), called on the scheduler thread
    cancelled: threading.Event = field(default_factory=threading.Event)
    # filled in while generating
    generated: list[int] = field(default_factory=list)
    sent: int = 0  # characters of text already sent
    generator: torch.Generator | None = None
    submitted: float = field(default_factory=time.perf_counter)

    def emit(self, *event) -> None:
        if self.sink is not None:
            self.sink(event)


class Scheduler:
    """Owns the model: admits, prefills, decodes and streams every request.

    Args:
        model: the served ``SteerableModel`` (nothing else may run it while the scheduler does).
        limits: batch size, queue length and the collection window.
    """

    def __init__(self, model, limits: Limits | None = None) -> None:
        self.model = model
        self.limits = limits or Limits()
        self.state = BatchState(model)
        self.pending: collections.deque[Job] = collections.deque()
        self.cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        tok = model.tokenizer
        eos = getattr(getattr(model.hf, "generation_config", None), "eos_token_id", None)
        eos = eos if isinstance(eos, (list, tuple)) else [eos]
        self.eos = {int(e) for e in [*eos, tok.eos_token_id] if e is not None}
        self.stats = {"admitted": 0, "prefills": 0, "finished": 0, "dropped_disconnected": 0, "steps": 0,
                      "max_rows": 0}

    # ---- public ---------------------------------------------------------------------------------------------
    def start(self) -> Scheduler:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="steerscope-scheduler")
            self._thread.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self._stop = True
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def submit(self, job: Job) -> None:
        """Queue a job (429 when the queue is full)."""
        if job.temperature > 0:
            job.generator = torch.Generator(device=self.model.device)
            # cpu-ok: a host-side random seed for an unseeded request
            job.generator.manual_seed(job.seed if job.seed is not None else int(torch.randint(2**31, ()).item()))
        with self.cond:
            if len(self.pending) >= self.limits.max_queue:
                raise APIError(f"the server has {len(self.pending)} requests waiting; retry shortly", status=429,
                               type="rate_limit_error", code="queue_full")
            self.pending.append(job)
            self.cond.notify()

    def run_sync(self, job: Job, timeout: float | None = None) -> tuple[str, str, dict]:
        """Submit and wait: (text, finish_reason, usage). Raises RuntimeError on a generation error."""
        events: queue.Queue = queue.Queue()
        job.sink = events.put
        self.submit(job)
        parts = []
        while True:
            event = events.get(timeout=timeout)
            if event[0] == "text":
                parts.append(event[1])
            elif event[0] == "end":
                return "".join(parts), event[1], event[2]
            else:
                raise RuntimeError(event[1])

    def run_many(self, jobs: list[Job], timeout: float | None = None) -> list[str]:
        """Submit several jobs at once (they share batches) and wait for all: their texts, stripped as
        ``ss.generate`` strips them."""
        events: queue.Queue = queue.Queue()
        parts: list[list[str]] = [[] for _ in jobs]
        for i, job in enumerate(jobs):
            job.sink = lambda event, i=i: events.put((i, event))
        for job in jobs:
            self.submit(job)
        left = len(jobs)
        while left:
            i, event = events.get(timeout=timeout)
            if event[0] == "text":
                parts[i].append(event[1])
            elif event[0] == "end":
                left -= 1
            else:
                raise RuntimeError(event[1])
        return ["".join(p).strip() for p in parts]

    @property
    def waiting(self) -> int:
        return len(self.pending)

    # ---- loop -----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self.cond:
                while not self._stop and not self.pending and not self.state.rows:
                    self.cond.wait(timeout=1.0)
                if self._stop:
                    break
                idle = not self.state.rows
            if idle and self.limits.batch_window_ms > 0:
                time.sleep(self.limits.batch_window_ms / 1000)  # let a burst arrive, prefill it together
            try:
                self._admit()
                if self.state.rows:
                    self._step()
            except Exception as exc:  # never let one bad batch kill the server
                log.exception("generation failed; failing the rows of this batch")
                for row in self.state.rows:
                    row.payload.emit("error", f"generation failed: {exc}")
                self.state.close()
        self.state.close()
        for job in self.pending:
            job.emit("error", "the server is shutting down")

    def _admit(self) -> None:
        if self.state.rows and not self.state.mergeable:
            return  # micro-batching fallback: this model's cache cannot take rows mid-flight
        free = self.limits.max_batch - self.state.size
        jobs: list[Job] = []
        with self.cond:
            while self.pending and len(jobs) < free:
                job = self.pending.popleft()
                if job.cancelled.is_set():
                    self.stats["dropped_disconnected"] += 1
                    job.emit("end", "cancelled", _usage(job))
                    continue
                jobs.append(job)
        if not jobs:
            return
        rows = [Row(job.prompt_ids, job.terms, payload=job) for job in jobs]
        logits = self.state.admit(rows)
        self.stats["admitted"] += len(jobs)
        self.stats["prefills"] += 1
        self._advance(rows, logits)

    def _step(self) -> None:
        keep = [i for i, row in enumerate(self.state.rows) if not row.payload.cancelled.is_set()]
        if len(keep) < self.state.size:
            self.stats["dropped_disconnected"] += self.state.size - len(keep)
            self.state.keep(keep)
            if not keep:
                return
        rows = self.state.rows
        tokens = torch.tensor([[row.generated[-1]] for row in rows], device=self.model.device)
        logits = self.state.step(tokens)
        self.stats["steps"] += 1
        self.stats["max_rows"] = max(self.stats["max_rows"], len(rows))
        self._advance(rows, logits)

    def _advance(self, rows: list[Row], logits: torch.Tensor) -> None:
        """Pick each row's next token, stream its text, and drop the rows that finished."""
        chosen = logits.argmax(-1)
        for b, row in enumerate(rows):
            job: Job = row.payload
            if job.temperature > 0:
                chosen[b] = _sample(logits[b], job.temperature, job.top_p, job.generator)
        finished = set()
        for row, token in zip(rows, chosen.tolist()):  # the one device sync per step
            row.generated.append(token)
            if self._emit(row.payload, token):
                finished.add(id(row))
        if finished:
            self.stats["finished"] += len(finished)
            self.state.keep([i for i, row in enumerate(self.state.rows) if id(row) not in finished])

    def _emit(self, job: Job, token: int) -> bool:
        """Send the newly final text of ``job``; True when it has finished."""
        is_eos = token in self.eos
        if not is_eos:
            job.generated.append(token)
        text = self.model.tokenizer.decode(job.generated, skip_special_tokens=True)
        reason = "stop" if is_eos else ("length" if len(job.generated) >= job.max_tokens else None)
        for s in job.stop:
            at = text.find(s)
            if at >= 0:
                text, reason = text[:at], "stop"
        final = len(text)
        if reason is None:
            while final > job.sent and text[final - 1] == "\ufffd":  # an unfinished multi-byte character
                final -= 1
            hold = max((len(s) - 1 for s in job.stop), default=0)  # a stop string may be starting
            final = max(job.sent, final - hold)
        if final > job.sent:
            job.emit("text", text[job.sent:final])
            job.sent = final
        if reason is not None:
            usage = _usage(job, extra=1 if is_eos else 0)
            job.emit("end", reason, usage)
            return True
        return False


def _usage(job: Job, extra: int = 0) -> dict:
    completion = len(job.generated) + extra
    return {"prompt_tokens": len(job.prompt_ids), "completion_tokens": completion,
            "total_tokens": len(job.prompt_ids) + completion}


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator) -> torch.Tensor:
    """One token from softmax(logits / T), restricted to the smallest set with probability >= top_p."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p >= top_p  # keep the token that crosses top_p
        sorted_p = sorted_p.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator)[0]
