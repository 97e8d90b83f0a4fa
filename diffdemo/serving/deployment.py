"""Which deployment this is and the limits in force: **local** (``python app.py``: generous limits) or **public**
(a Hugging Face Space, where the ``SPACE_ID`` environment variable is set, or ``DIFFDEMO_PUBLIC=1`` /
``python app.py --public``: tight limits). Every limit can be set by an environment variable (``describe()`` lists
them); they are read afresh on each call."""

from __future__ import annotations

import os
from dataclasses import dataclass


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` says yes (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def env_number(name: str, default: float) -> float:
    """The environment variable ``name`` as a number; ``default`` when it is unset or not a number."""
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def is_public() -> bool:
    """A public deployment: a Hugging Face Space (SPACE_ID is set there) or DIFFDEMO_PUBLIC=1."""
    return bool(os.environ.get("SPACE_ID")) or env_flag("DIFFDEMO_PUBLIC")


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
        max_evaluations=int(env_number("DIFFDEMO_MAX_EVALUATIONS", PUBLIC_MAX_EVALUATIONS if public else 100_000)),
        time_cap_s=env_number("DIFFDEMO_TIME_CAP_S", PUBLIC_TIME_CAP_S if public else 3600),
        per_client=max(1, int(env_number("DIFFDEMO_QUEUE_PER_CLIENT", 2 if public else 4))),
        light_per_client=max(1, int(env_number("DIFFDEMO_LIGHT_PER_CLIENT", 16 if public else 64))),
        queue_evaluations=int(env_number("DIFFDEMO_QUEUE_EVALUATIONS", 16_000 if public else 1_000_000)),
        results_max_bytes=int(env_number("DIFFDEMO_RESULTS_MAX_MB", 500 if public else 2000) * 1e6),
        results_max_age_s=env_number("DIFFDEMO_RESULTS_MAX_AGE_S", 2 * 3600),
        allow_local_models=env_flag("DIFFDEMO_ALLOW_LOCAL_MODELS") and not public,
        trusted_hops=max(0, int(env_number("DIFFDEMO_TRUSTED_PROXY_HOPS", 1 if os.environ.get("SPACE_ID") else 0))),
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
