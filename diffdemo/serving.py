"""What a served app allows: which models, how much work per request, how many queued requests per client,
how long an event may run, and how much disk its results may take. No gradio here.

Two deployments: **local** (``python app.py``: generous limits) and **public** (a Hugging Face Space, where
the ``SPACE_ID`` environment variable is set, or ``DIFFDEMO_PUBLIC=1`` / ``python app.py --public``: tight
limits). Every limit can be set by an environment variable (``describe()`` lists them).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from diffdemo.errors import DiffdemoError, OverBudget
from diffdemo.hub import HUB_MODELS


class TimeCapReached(DiffdemoError):
    """An event ran past this deployment's time cap and was stopped."""


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def is_public() -> bool:
    """A public deployment: a Hugging Face Space (SPACE_ID is set there) or DIFFDEMO_PUBLIC=1."""
    return bool(os.environ.get("SPACE_ID")) or _flag("DIFFDEMO_PUBLIC")


@dataclass(frozen=True)
class Limits:
    public: bool
    max_evaluations: int  # network evaluations per request, counted per image: steps x chains x methods
    time_cap_s: float  # one event's wall time, then it is stopped
    per_client: int  # heavy requests queued or running per client session (or per address without a session)
    results_max_bytes: int  # disk taken by result folders and pictures
    results_max_age_s: float
    allow_local_models: bool  # local folders as models (never on a public deployment)


def limits() -> Limits:
    """The limits in force now (read from the environment each time, so tests and the app's flags can set them)."""
    public = is_public()
    return Limits(
        public=public,
        max_evaluations=int(_number("DIFFDEMO_MAX_EVALUATIONS", 6_000 if public else 100_000)),
        time_cap_s=_number("DIFFDEMO_TIME_CAP_S", 300 if public else 3600),
        per_client=max(1, int(_number("DIFFDEMO_QUEUE_PER_CLIENT", 2 if public else 4))),
        results_max_bytes=int(_number("DIFFDEMO_RESULTS_MAX_MB", 500 if public else 2000) * 1e6),
        results_max_age_s=_number("DIFFDEMO_RESULTS_MAX_AGE_S", 2 * 3600),
        allow_local_models=_flag("DIFFDEMO_ALLOW_LOCAL_MODELS") and not public,
    )


def describe() -> str:
    """One paragraph for the README and the app's log: the limits and the variables that set them."""
    lim = limits()
    return (
        f"{'public' if lim.public else 'local'} deployment: at most {lim.max_evaluations:,} image evaluations per "
        f"request (DIFFDEMO_MAX_EVALUATIONS), {lim.time_cap_s:g} s per event (DIFFDEMO_TIME_CAP_S), "
        f"{lim.per_client} heavy requests queued per client (DIFFDEMO_QUEUE_PER_CLIENT), results up to "
        f"{lim.results_max_bytes / 1e6:g} MB and {lim.results_max_age_s / 3600:g} h (DIFFDEMO_RESULTS_MAX_MB, "
        f"DIFFDEMO_RESULTS_MAX_AGE_S); local model folders {'allowed' if lim.allow_local_models else 'refused'}"
    )


# --- models ------------------------------------------------------------------------------------------
def allowed_models(default: str | None = None) -> list[str]:
    """The models a client may choose: the embedded ones, the known hub ids, the app's own default model
    ($DIFFDEMO_MODEL, chosen by whoever started it) and $DIFFDEMO_ALLOWED_MODELS (comma-separated)."""
    from diffdemo.models import available_models, canonical_name

    names = [*available_models(), *HUB_MODELS]
    extra = [n.strip() for n in os.environ.get("DIFFDEMO_ALLOWED_MODELS", "").split(",") if n.strip()]
    for name in [default, *extra]:
        if name:
            try:
                names.append(canonical_name(name))
            except DiffdemoError:
                pass
    return list(dict.fromkeys(names))


def check_model(name: str, default: str | None = None) -> str:
    """The canonical name of a model a client may use here, or the one 'no such model' message (the same
    whether or not something exists on this server under that name)."""
    from diffdemo.models import canonical_name, no_such_model

    canonical = canonical_name(name)  # one message for anything that is not a model
    if limits().allow_local_models or canonical in allowed_models(default):
        return canonical
    raise no_such_model()


# --- work --------------------------------------------------------------------------------------------
def check_budget(evaluations: int) -> int:
    """Refuse a request of more image evaluations (steps x chains x methods) than this deployment allows."""
    cap = limits().max_evaluations
    if evaluations > cap:
        raise OverBudget(
            f"this request needs {evaluations:,} network evaluations (steps x chains x methods); this server "
            f"allows {cap:,} per request: use fewer steps, chains or methods, or run it on your own machine "
            "(python app.py or python -m diffdemo)"
        )
    return evaluations


_running = threading.local()  # the deadline of the capped run this thread is advancing, if any


def check_deadline() -> None:
    """Raise TimeCapReached if the capped run this thread is advancing is past its deadline. Called by the
    model before each network evaluation, so a run stops within one evaluation of its cap, not one frame."""
    deadline = getattr(_running, "deadline", None)
    if deadline is not None and time.monotonic() > deadline[0]:
        raise TimeCapReached(_cap_message(deadline[1]))


def _cap_message(seconds: float) -> str:
    return f"stopped after the time cap of {seconds:g} s per run on this server: use fewer steps, chains or methods"


def capped(frames: Iterator, seconds: float | None = None, clock: Callable[[], float] = time.monotonic) -> Iterator:
    """Pass ``frames`` through until ``seconds`` have passed, then close them and raise TimeCapReached.

    The cap is checked between frames, and (through ``check_deadline``, with the real clock) before every
    network evaluation made while a frame is computed, whichever thread asks for the frame."""
    seconds = limits().time_cap_s if seconds is None else seconds
    deadline = clock() + seconds
    iterator = iter(frames)
    try:
        while True:
            _running.deadline = (time.monotonic() + (deadline - clock()), seconds)
            try:
                frame = next(iterator)
            except StopIteration:
                return
            finally:
                _running.deadline = None
            yield frame
            if clock() > deadline:
                raise TimeCapReached(_cap_message(seconds))
    finally:
        close = getattr(iterator, "close", None)
        if close:
            close()


class ClientQueueLimit:
    """At most ``limit`` heavy requests queued or running per client; more are refused at once.

    A client is its session (a browser tab, one gradio_client), or, for requests without a session (plain HTTP
    posts to /call/...), its address (the first X-Forwarded-For hop behind a proxy such as a Space's)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._pending: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def client_key(session_hash: str | None, headers, host: str | None) -> str:
        if session_hash:
            return "session:" + session_hash
        forwarded = (headers.get("x-forwarded-for") or "").split(",")[0].strip() if headers else ""
        return "address:" + (forwarded or host or "unknown")

    def admit(self, key: str, alive: Callable[[str], bool]) -> bool:
        """Whether one more request from ``key`` may queue (requests no longer ``alive`` are forgotten)."""
        with self._lock:
            ids = self._pending.setdefault(key, set())
            ids -= {i for i in ids if not alive(i)}
            return len(ids) < self.limit

    def add(self, key: str, event_id: str) -> None:
        with self._lock:
            self._pending.setdefault(key, set()).add(event_id)
            for k in [k for k, v in self._pending.items() if not v]:
                del self._pending[k]


def limit_queue(queue, concurrency_id: str, limit: int | None = None) -> ClientQueueLimit:
    """Wrap a gradio queue's ``push`` (duck-typed: push(body, request, username) -> (ok, event id or message,
    state), ``event_ids_to_events``, ``remove_from_queue``) so that each client holds at most ``limit`` queued
    or running events of ``concurrency_id``; one more is refused with a message, the others keep their place."""
    limiter = ClientQueueLimit(limits().per_client if limit is None else limit)
    push = queue.push

    def alive(event_id: str) -> bool:
        return event_id in queue.event_ids_to_events

    async def limited_push(body, request, username):
        session = getattr(body, "session_hash", None)  # None for plain /call/ posts: gradio then makes one up
        host = getattr(getattr(request, "client", None), "host", None)
        key = limiter.client_key(session, getattr(request, "headers", None), host)
        ok, event_id, state = await push(body, request, username)
        event = queue.event_ids_to_events.get(event_id) if ok else None
        if event is None or getattr(event, "concurrency_id", None) != concurrency_id:
            return ok, event_id, state
        if not limiter.admit(key, lambda i: i != event_id and alive(i)):
            await queue.remove_from_queue(event_id)
            ids = queue.pending_event_ids_session.get(getattr(body, "session_hash", None))
            if ids is not None:  # else the session's stream would wait for this event's completion forever
                ids.discard(event_id)
            return (
                False,
                f"Too many requests queued from this client (at most {limiter.limit}): wait for one to finish.",
                "queue_full",
            )
        limiter.add(key, event_id)
        return ok, event_id, state

    queue.push = limited_push
    return limiter


# --- disk --------------------------------------------------------------------------------------------
_prune_lock = threading.Lock()


def _entries(folder: Path) -> list[tuple[float, int, Path]]:
    """(mtime, bytes, path) of each file or sub-folder directly in ``folder``."""
    out = []
    for entry in folder.iterdir() if folder.is_dir() else []:
        try:
            if entry.is_dir() and not entry.is_symlink():
                files = [f.stat() for f in entry.rglob("*") if f.is_file()]
                size = sum(f.st_size for f in files)
                mtime = max([f.st_mtime for f in files], default=entry.stat().st_mtime)
            else:
                st = entry.stat()
                size, mtime = st.st_size, st.st_mtime
        except OSError:
            continue
        out.append((mtime, size, entry))
    return out


def prune(folders: list[Path], max_bytes: int | None = None, max_age_s: float | None = None, now=None) -> int:
    """Delete results older than ``max_age_s``, then the oldest until all ``folders`` together hold at most
    ``max_bytes``; return the bytes they hold afterwards. Entries are the folders' direct children (a run's
    folder, a picture)."""
    lim = limits()
    max_bytes = lim.results_max_bytes if max_bytes is None else max_bytes
    max_age_s = lim.results_max_age_s if max_age_s is None else max_age_s
    now = time.time() if now is None else now
    with _prune_lock:
        entries = sorted(e for folder in folders for e in _entries(Path(folder)) if e[2] not in folders)
        total = sum(size for _, size, _ in entries)
        for mtime, size, path in entries:  # oldest first
            if now - mtime <= max_age_s and total <= max_bytes:
                break
            try:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                total -= size
            except OSError:
                pass
        return total
