"""What a served app allows: which models, how much work per request, how many queued requests per client,
how long an event may run, and how much disk its results may take. No gradio here.

Two deployments: **local** (``python app.py``: generous limits) and **public** (a Hugging Face Space, where
the ``SPACE_ID`` environment variable is set, or ``DIFFDEMO_PUBLIC=1`` / ``python app.py --public``: tight
limits). Every limit can be set by an environment variable (``describe()`` lists them).
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from diffdemo.checkpoint import stop_when
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


# One request's hold on the only worker of a CPU Space: faces64 costs about 20-30 ms per network evaluation and
# about 60 ms with DPS's gradient on a 2-core CPU (bench/RESULTS_engine.md), so 2,000 evaluations are about 1 min
# of plain sampling and 2 min of DPS; the time cap stops anything slower (a 256 px hub model) after 2 min.
PUBLIC_MAX_EVALUATIONS = 2_000
PUBLIC_TIME_CAP_S = 120


@dataclass(frozen=True)
class Limits:
    public: bool
    max_evaluations: int  # network evaluations per request, counted per image: steps x chains x methods
    time_cap_s: float  # one event's wall time, then it is stopped
    per_client: int  # heavy requests queued or running per client address (client_address: never a session hash)
    light_per_client: int  # light events (previews, estimates, pickers) queued or running per client address
    queue_evaluations: int  # network evaluations of all heavy requests queued or running together
    results_max_bytes: int  # disk taken by result folders, pictures and uploads
    results_max_age_s: float
    allow_local_models: bool  # local folders as models (never on a public deployment)
    trusted_hops: int  # proxies in front of the app that append the caller's address to X-Forwarded-For


def limits() -> Limits:
    """The limits in force now (read from the environment each time, so tests and the app's flags can set them)."""
    public = is_public()
    return Limits(
        public=public,
        max_evaluations=int(_number("DIFFDEMO_MAX_EVALUATIONS", PUBLIC_MAX_EVALUATIONS if public else 100_000)),
        time_cap_s=_number("DIFFDEMO_TIME_CAP_S", PUBLIC_TIME_CAP_S if public else 3600),
        per_client=max(1, int(_number("DIFFDEMO_QUEUE_PER_CLIENT", 2 if public else 4))),
        light_per_client=max(1, int(_number("DIFFDEMO_LIGHT_PER_CLIENT", 16 if public else 64))),
        queue_evaluations=int(_number("DIFFDEMO_QUEUE_EVALUATIONS", 16_000 if public else 1_000_000)),
        results_max_bytes=int(_number("DIFFDEMO_RESULTS_MAX_MB", 500 if public else 2000) * 1e6),
        results_max_age_s=_number("DIFFDEMO_RESULTS_MAX_AGE_S", 2 * 3600),
        allow_local_models=_flag("DIFFDEMO_ALLOW_LOCAL_MODELS") and not public,
        trusted_hops=max(0, int(_number("DIFFDEMO_TRUSTED_PROXY_HOPS", 1 if os.environ.get("SPACE_ID") else 0))),
    )


def describe() -> str:
    """One paragraph for the README and the app's log: the limits and the variables that set them."""
    lim = limits()
    return (
        f"{'public' if lim.public else 'local'} deployment: at most {lim.max_evaluations:,} image evaluations per "
        f"request (DIFFDEMO_MAX_EVALUATIONS), {lim.time_cap_s:g} s per event (DIFFDEMO_TIME_CAP_S), "
        f"{lim.per_client} heavy and {lim.light_per_client} light requests queued per client address "
        f"(DIFFDEMO_QUEUE_PER_CLIENT, DIFFDEMO_LIGHT_PER_CLIENT), {lim.queue_evaluations:,} network evaluations queued "
        f"in all (DIFFDEMO_QUEUE_EVALUATIONS), the caller's address {lim.trusted_hops} trusted proxy hop(s) from the "
        f"right of X-Forwarded-For (DIFFDEMO_TRUSTED_PROXY_HOPS; 0: the socket's address), results and uploads up "
        f"to {lim.results_max_bytes / 1e6:g} MB and {lim.results_max_age_s / 3600:g} h (DIFFDEMO_RESULTS_MAX_MB, "
        f"DIFFDEMO_RESULTS_MAX_AGE_S); local model folders {'allowed' if lim.allow_local_models else 'refused'}"
    )


# --- models ------------------------------------------------------------------------------------------
def allowed_models(default: str | None = None) -> list[str]:
    """The models a client may choose: the embedded ones, the known hub ids, the app's own default model
    ($DIFFDEMO_MODEL, chosen by whoever started it) and $DIFFDEMO_ALLOWED_MODELS (comma-separated)."""
    return list(dict.fromkeys(_allowed_spellings(default).values()))


def _plain(name) -> str | None:
    """A model name normalised as a string only (never looked up on disk): ``./faces64/``, ``faces64/unet/..`` ->
    ``faces64``; None for what cannot be a name (not text, empty, over 512 characters, control characters)."""
    if not isinstance(name, str):
        return None
    name = name.strip()
    if not name or len(name) > 512 or any(ord(ch) < 32 for ch in name):
        return None
    plain = posixpath.normpath(name)
    return plain[2:] if plain.startswith("./") else plain


def _allowed_spellings(default: str | None = None) -> dict[str, str]:
    """Plain spelling -> canonical name of every model offered here. Only the operator's names (embedded models,
    hub ids, $DIFFDEMO_MODEL, $DIFFDEMO_ALLOWED_MODELS) are resolved on disk, never a client's."""
    from diffdemo.models import MODELS_DIR, available_models, canonical_name

    spellings: dict[str, str] = {}
    for name in available_models():
        for spelling in (name, str(MODELS_DIR / name), str(MODELS_DIR.resolve() / name)):
            spellings[posixpath.normpath(spelling)] = name
    for name in HUB_MODELS:
        spellings[name] = name
    extra = [n.strip() for n in os.environ.get("DIFFDEMO_ALLOWED_MODELS", "").split(",") if n.strip()]
    for name in [default, *extra]:
        plain = _plain(name)
        if plain:
            try:
                canonical = canonical_name(name)
            except DiffdemoError:
                continue
            spellings[plain] = spellings[posixpath.normpath(canonical)] = canonical
    return spellings


def check_model(name: str, default: str | None = None) -> str:
    """The canonical name of a model a client may use here, or the one 'no such model' message.

    The name is matched against the allow-list as a string before anything touches the file system, so the
    answer (and its time) is the same for every name not offered, whatever exists on this server under it.
    Only ``--allow-local-models`` on a local deployment resolves a client's name on disk."""
    from diffdemo.models import canonical_name, no_such_model

    if limits().allow_local_models:
        return canonical_name(name)
    canonical = _allowed_spellings(default).get(_plain(name) or "")
    if canonical is None:
        raise no_such_model()
    return canonical


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


def _cap_message(seconds: float) -> str:
    return f"stopped after the time cap of {seconds:g} s per run on this server: use fewer steps, chains or methods"


def _deadline_check(deadline: float, seconds: float) -> Callable[[], None]:
    """A check for ``checkpoint.stop_when``: TimeCapReached once the real clock is past ``deadline``."""

    def check() -> None:
        if time.monotonic() > deadline:
            raise TimeCapReached(_cap_message(seconds))

    return check


def capped(frames: Iterator, seconds: float | None = None, clock: Callable[[], float] = time.monotonic) -> Iterator:
    """Pass ``frames`` through until ``seconds`` have passed, then close them and raise TimeCapReached.

    The cap is checked between frames, and (through ``diffdemo.checkpoint``, with the real clock) at every
    checkpoint the engine passes while a frame is computed: each network evaluation, reverse step and Krylov
    iteration. The check is set around each ``next`` in the thread that asks for the frame (gradio advances a
    generator from worker threads), so it holds whichever thread that is."""
    seconds = limits().time_cap_s if seconds is None else seconds
    deadline = clock() + seconds
    iterator = iter(frames)
    try:
        while True:
            with stop_when(_deadline_check(time.monotonic() + (deadline - clock()), seconds)):
                try:
                    frame = next(iterator)
                except StopIteration:
                    return
            yield frame
            if clock() > deadline:
                raise TimeCapReached(_cap_message(seconds))
    finally:
        close = getattr(iterator, "close", None)
        if close:
            close()


# --- who is calling -------------------------------------------------------------------------------------
def _header_values(headers, name: str) -> list[str]:
    if headers is None:
        return []
    if hasattr(headers, "getlist"):  # starlette's Headers: every X-Forwarded-For line, in order
        return list(headers.getlist(name))
    value = headers.get(name)
    return [value] if value else []


def client_address(headers, host: str | None, hops: int | None = None) -> str:
    """The caller's address as the trusted proxies report it, which the caller cannot choose.

    ``hops`` proxies sit in front of the app (DIFFDEMO_TRUSTED_PROXY_HOPS: 1 on a Hugging Face Space, 0 locally);
    each appends the address it was connected from to X-Forwarded-For, so the caller's address is the ``hops``-th
    entry from the right. Whatever a client writes itself sits further left and is ignored. With 0 hops (or a
    shorter chain than promised) it is the socket's own peer."""
    hops = limits().trusted_hops if hops is None else hops
    if hops > 0:
        chain = [h.strip() for v in _header_values(headers, "x-forwarded-for") for h in str(v).split(",")]
        chain = [h for h in chain if h]
        if len(chain) >= hops:
            return chain[-hops][:64]
    return (host or "unknown")[:64]


def request_address(request) -> str:
    """client_address of a FastAPI / gradio request (its headers and socket peer)."""
    request = getattr(request, "request", None) or request  # gr.Request wraps the FastAPI request
    host = getattr(getattr(request, "client", None), "host", None)
    return client_address(getattr(request, "headers", None), host)


def trust_only_our_hops() -> None:
    """Stop uvicorn from rewriting the socket's peer from X-Forwarded-For (by default it trusts 127.0.0.1): the
    address is read once, by client_address, with this deployment's number of trusted hops."""
    os.environ["FORWARDED_ALLOW_IPS"] = ""


# --- fair queue ------------------------------------------------------------------------------------------
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
    grace_s = _number("DIFFDEMO_STREAM_GRACE_S", STREAM_GRACE_S) if grace_s is None else grace_s
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


# --- messages and logs -----------------------------------------------------------------------------------
def cut(text, limit: int = 200) -> str:
    """``text`` at most ``limit`` characters, one line: a long input is never echoed whole."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def log_refusal(who: str, reason: str) -> None:
    """One line in the server's log per refused request (never a traceback), its parts cut short."""
    print(f"diffdemo: refused [{cut(who, 64)}]: {cut(reason)}", flush=True)


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


_owners: dict[str, str] = {}  # a result folder or upload (a direct child of a pruned folder) -> its holder's address
_owners_lock = threading.Lock()


def own(path, holder: str) -> None:
    """Record who wrote ``path`` (a results folder, an upload's folder): pruning weighs holders, not files."""
    with _owners_lock:
        _owners[str(path)] = holder
        while len(_owners) > 100_000:
            _owners.pop(next(iter(_owners)))


def holder_of(path) -> str:
    return _owners.get(str(path), "shared")


def prune(
    folders: list[Path],
    max_bytes: int | None = None,
    max_age_s: float | None = None,
    now=None,
    writer: str | None = None,
) -> int:
    """Delete results older than ``max_age_s``; then, while all ``folders`` together hold more than ``max_bytes``,
    the oldest entry of the largest holder (an address, or "shared" for what nobody is recorded as writing), so one
    address filling the disk loses its own files first. With ``writer`` (an upload) only the writer's own files
    are deleted: an upload never evicts another user's fresh results. Returns the bytes held afterwards (over the
    bound when the writer's files alone could not make room). Entries are the folders' direct children."""
    lim = limits()
    max_bytes = lim.results_max_bytes if max_bytes is None else max_bytes
    max_age_s = lim.results_max_age_s if max_age_s is None else max_age_s
    now = time.time() if now is None else now
    folders = [Path(f) for f in folders]
    with _prune_lock:
        entries = sorted(e for folder in folders for e in _entries(folder) if e[2] not in folders)
        total = sum(size for _, size, _ in entries)
        kept = []
        for entry in entries:  # the expired, whoever holds them
            if now - entry[0] > max_age_s and delete_entry(entry[2]):
                total -= entry[1]
            else:
                kept.append(entry)
        while total > max_bytes and kept:
            if writer is not None:
                victim_holder = writer
            else:
                held: dict[str, int] = {}
                for _, size, path in kept:
                    held[holder_of(path)] = held.get(holder_of(path), 0) + size
                victim_holder = max(held, key=held.get)
            pool = [e for e in kept if holder_of(e[2]) == victim_holder]
            if not pool:
                break
            kept.remove(pool[0])  # that holder's oldest
            if delete_entry(pool[0][2]):
                total -= pool[0][1]
        return total


def delete_entry(path: Path) -> bool:
    try:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    except OSError:
        return False
    with _owners_lock:
        _owners.pop(str(path), None)
    return True


class UploadGate:
    """ASGI middleware around gradio's upload route (gradio has no hook there): each upload's files are recorded
    as its caller's (``client_address``), then ``on_upload(paths, address)`` runs (the disk bound, pruning the
    caller's own files first), and at most two uploads per address are in flight at once."""

    def __init__(self, app, on_upload: Callable[[list[str], str], None], per_address: int = 2):
        self.app, self.on_upload, self.per_address = app, on_upload, per_address
        self._in_flight: dict[str, int] = {}

    async def __call__(self, scope, receive, send):
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or not scope.get("path", "").endswith("/upload")
        ):
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers
        from starlette.responses import PlainTextResponse

        address = client_address(Headers(scope=scope), (scope.get("client") or ("unknown",))[0])
        if self._in_flight.get(address, 0) >= self.per_address:
            log_refusal(address, "too many uploads at once")
            return await PlainTextResponse("Too many uploads at once from your address.", 429)(scope, receive, send)
        self._in_flight[address] = self._in_flight.get(address, 0) + 1
        held: list = []  # the response, sent once the files are in place and the disk bound holds again

        async def capture(message):
            held.append(message)

        try:
            await self.app(scope, receive, capture)  # returns once gradio has moved the files into place
            try:
                import json

                body = b"".join(m.get("body", b"") for m in held if m.get("type") == "http.response.body")
                paths = [p for p in json.loads(body) if isinstance(p, str)]
            except (ValueError, TypeError):
                paths = []
            if paths:
                await asyncio.to_thread(self.on_upload, paths, address)
        finally:
            self._in_flight[address] -= 1
            if not self._in_flight[address]:
                del self._in_flight[address]
        for message in held:
            await send(message)
