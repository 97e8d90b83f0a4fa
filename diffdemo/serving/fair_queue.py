"""The fair queue: per-address limits on queued heavy and light requests, a global bound on queued heavy work in
network evaluations, round-robin between addresses, and jobs whose client stopped reading dropped; ``FairQueue``
is the policy, ``limit_queue`` fits it onto gradio's queue (duck-typed, no gradio import)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable

from diffdemo.serving.callers import request_address
from diffdemo.serving.deployment import env_number, limits
from diffdemo.serving.refusals import log_refusal

STREAM_GRACE_S = 10.0  # a queued job's client must have its event stream open within this time, or it is dropped


class FairQueue:
    """The policy of the queue, apart from gradio: per-address limits (heavy and light), a global bound on queued
    heavy work in network evaluations, and round-robin between addresses (the address served least recently
    goes next, whatever another address has queued)."""

    def __init__(self, heavy_limit: int, light_limit: int, max_evaluations: int):
        self.heavy_limit, self.light_limit, self.max_evaluations = heavy_limit, light_limit, max_evaluations
        self._jobs: dict[str, tuple[str, bool, int]] = {}  # event id -> (address, heavy, evaluations)
        self._served: dict[str, int] = {}  # address -> turn it was last served in
        self._turn = 0
        self._lock = threading.Lock()

    def refusal(self, address: str, heavy: bool, evaluations: int, alive: Callable[[str], bool]) -> str | None:
        """None if one more job from ``address`` may queue, else the one-line reason (jobs no longer ``alive``
        are forgotten first)."""
        with self._lock:
            for event_id in [i for i in self._jobs if not alive(i)]:
                del self._jobs[event_id]
            mine = sum(1 for a, h, _ in self._jobs.values() if a == address and h == heavy)
            limit = self.heavy_limit if heavy else self.light_limit
            if mine >= limit:
                what = "runs" if heavy else "requests"
                return f"Too many {what} queued from your address (at most {limit}): wait for one to finish."
            if heavy:
                queued = sum(e for _, h, e in self._jobs.values() if h)
                if queued + evaluations > self.max_evaluations:
                    return (
                        f"The server's queue is full ({queued:,} network evaluations waiting, at most "
                        f"{self.max_evaluations:,}): try again in a minute."
                    )
            return None

    def add(self, event_id: str, address: str, heavy: bool, evaluations: int) -> None:
        with self._lock:
            self._jobs[event_id] = (address, heavy, evaluations)

    def address(self, event_id: str) -> str | None:
        job = self._jobs.get(event_id)
        return job[0] if job else None

    def choose(self, event_ids: list[str]) -> str | None:
        """The next job to run among ``event_ids`` (ready ones, in arrival order): the first job of the address
        served least recently (never served: first), so addresses take turns."""
        with self._lock:
            best, best_turn = None, None
            seen = set()
            for event_id in event_ids:
                address = self._jobs.get(event_id, ("?",))[0]
                if address in seen:
                    continue
                seen.add(address)
                turn = self._served.get(address, -1)
                if best_turn is None or turn < best_turn:
                    best, best_turn = event_id, turn
            return best

    def served(self, event_id: str) -> None:
        with self._lock:
            address = self._jobs.get(event_id, ("?",))[0]
            self._turn += 1
            self._served[address] = self._turn
            if len(self._served) > 4096:  # forget the addresses served longest ago
                for old in sorted(self._served, key=self._served.get)[:1024]:
                    del self._served[old]


class _WatchedMessages(asyncio.Queue):
    """gradio's per-session message queue, noting when a client's event stream reads from it (the stream's loop
    waits on ``get`` at most 10 s at a time, so a reader is waiting whenever the stream is open)."""

    async def get(self):
        self._readers = getattr(self, "_readers", 0) + 1
        self._ever_read = True
        try:
            return await super().get()
        finally:
            self._readers -= 1
            self._last_read = time.monotonic()


def _watch(messages) -> None:
    if isinstance(messages, asyncio.Queue) and not isinstance(messages, _WatchedMessages):
        messages.__class__ = _WatchedMessages


def stream_state(messages, now: float | None = None) -> str:
    """'open' (a client reads this session's events now), 'never' (nobody ever has) or 'closed'."""
    if messages is None or not getattr(messages, "_ever_read", False):
        return "never"
    now = time.monotonic() if now is None else now
    if getattr(messages, "_readers", 0) > 0 or now - getattr(messages, "_last_read", 0.0) < 2.0:
        return "open"
    return "closed"


def limit_queue(
    queue, heavy_id: str, cost: Callable[[object, object], int] | None = None, grace_s: float | None = None
) -> FairQueue:
    """Make a gradio queue fair (duck-typed on gradio 6's Queue: ``push``, ``get_events``,
    ``event_queue_per_concurrency_id``, ``event_ids_to_events``, ``pending_messages_per_session``,
    ``pending_event_ids_session``, ``remove_from_queue``, ``blocks.fns``):

    - every job is keyed on its caller's address (``request_address``), never on its session hash;
    - at most ``per_client`` heavy jobs (concurrency group ``heavy_id``) and ``light_per_client`` others per
      address, and at most ``queue_evaluations`` network evaluations of heavy work queued or running in all
      (``cost(fn, body)``: a job's evaluations, the per-request cap when unknown);
    - the next job to run is the first ready one of the address served least recently (round-robin);
    - a job runs only while its client reads its event stream: one whose client never opened it, or closed it,
      is dropped before it runs once ``grace_s`` have passed (the plain /call route included)."""
    lim = limits()
    grace_s = env_number("DIFFDEMO_STREAM_GRACE_S", STREAM_GRACE_S) if grace_s is None else grace_s
    fair = FairQueue(lim.per_client, lim.light_per_client, lim.queue_evaluations)
    push, get_events = queue.push, queue.get_events
    alive = queue.event_ids_to_events.__contains__

    async def fair_push(body, request, username):
        fn = _fn_of(queue, body)
        heavy = (getattr(fn, "concurrency_id", None) or getattr(body, "concurrency_id", None)) == heavy_id
        evaluations = _job_evaluations(fn, body, cost, lim.max_evaluations) if heavy else 0
        address = request_address(request)
        reason = fair.refusal(address, heavy, evaluations, alive)
        if reason:
            log_refusal(address, reason)
            return False, reason, "queue_full"
        ok, event_id, state = await push(body, request, username)
        if ok and event_id in queue.event_ids_to_events:
            fair.add(event_id, address, heavy, evaluations)
            _watch(queue.pending_messages_per_session.get(body.session_hash))
        return ok, event_id, state

    queue.push, queue.get_events = fair_push, lambda: _fair_next_events(queue, fair, grace_s, get_events)
    return fair


def _fn_of(queue, body):
    """The block function a queued request calls (None when gradio's queue has no blocks attached)."""
    fns = getattr(getattr(queue, "blocks", None), "fns", None) or {}
    return fns.get(getattr(body, "fn_index", None))


def _job_evaluations(fn, body, cost, cap: int) -> int:
    """A heavy job's network evaluations by ``cost(fn, body)``, within [1, cap]; ``cap`` when unknown."""
    if not cost:
        return cap
    try:
        return min(cap, max(1, int(cost(fn, body))))
    except Exception:  # noqa: BLE001 (a request the handler will refuse itself: count it at the cap)
        return cap


def _drop_unread(queue, fair: FairQueue, event) -> None:
    """Forget a job whose client is not listening (it never runs; nobody is told, nobody is reading)."""
    queue.event_ids_to_events.pop(event._id, None)
    ids = queue.pending_event_ids_session.get(event.session_hash)
    if ids is not None:
        ids.discard(event._id)
        if not ids:
            queue.pending_event_ids_session.pop(event.session_hash, None)
    log_refusal(fair.address(event._id) or "?", "dropped a queued job: its client is not reading its stream")


def _fair_next_events(queue, fair: FairQueue, grace_s: float, get_events):
    """gradio's ``get_events`` made fair: of the concurrency groups with a free slot (in random order), the first
    ready job of the address served least recently; unread jobs past ``grace_s`` dropped on the way."""
    now = time.monotonic()
    order = list(queue.event_queue_per_concurrency_id.items())
    random.shuffle(order)
    for concurrency_id, event_queue in order:
        if not event_queue.queue or getattr(event_queue.queue[0].fn, "batch", False):
            continue
        limit = event_queue.concurrency_limit
        if limit is not None and event_queue.current_concurrency >= limit:
            continue
        ready = []
        for event in list(event_queue.queue):
            state = stream_state(queue.pending_messages_per_session.get(event.session_hash), now)
            if state == "open":
                ready.append(event)
            elif now - event.enqueue_time > grace_s:
                event_queue.queue.remove(event)
                _drop_unread(queue, fair, event)
        chosen = fair.choose([e._id for e in ready])
        if chosen is None:
            continue
        event = next(e for e in ready if e._id == chosen)
        event_queue.queue.remove(event)
        fair.served(chosen)
        return [event], False, concurrency_id
    if not any(q.queue and getattr(q.queue[0].fn, "batch", False) for _, q in order):
        return None
    return _gradio_batched_events(queue, get_events)


def _gradio_batched_events(queue, get_events):
    """Batched functions (none in this app) keep gradio's own order: its ``get_events`` with the other groups
    hidden for the call."""
    hidden = {}
    for concurrency_id, event_queue in queue.event_queue_per_concurrency_id.items():
        if event_queue.queue and not getattr(event_queue.queue[0].fn, "batch", False):
            hidden[concurrency_id], event_queue.queue = event_queue.queue, []
    try:
        return get_events()
    finally:
        for concurrency_id, events in hidden.items():
            queue.event_queue_per_concurrency_id[concurrency_id].queue = events
