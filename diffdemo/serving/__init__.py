"""What a served app allows: which models, how much work per request, how many queued requests per client,
how long an event may run, and how much disk its results may take. No gradio here.

Two deployments: **local** (``python app.py``: generous limits) and **public** (a Hugging Face Space, where
the ``SPACE_ID`` environment variable is set, or ``DIFFDEMO_PUBLIC=1`` / ``python app.py --public``: tight
limits). Every limit can be set by an environment variable (``describe()`` lists them).

One concept per module, each name re-exported here (``from diffdemo.serving import check_model``):

- ``deployment``: local or public, and the limits in force (``limits``, ``describe``);
- ``model_access``: the models a client may choose (``allowed_models``, ``check_model``);
- ``work``: one request's evaluation budget and time cap, its checkpoint (``check_budget``, ``capped``);
- ``callers``: the caller's address behind the trusted proxies (``client_address``, ``request_address``);
- ``fair_queue``: per-address caps, the global bound on queued work, round-robin (``FairQueue``, ``limit_queue``);
- ``disk``: the bounds on results and uploads on disk (``prune``, ``own``);
- ``uploads``: the upload route's per-address cap and bookkeeping (``UploadGate``);
- ``refusals``: a refused request's one log line (``log_refusal``, ``cut``).
"""

from __future__ import annotations

from diffdemo.serving.callers import client_address, request_address, trust_only_our_hops
from diffdemo.serving.deployment import (
    PUBLIC_MAX_EVALUATIONS,
    PUBLIC_TIME_CAP_S,
    Limits,
    describe,
    env_flag,
    env_number,
    is_public,
    limits,
)
from diffdemo.serving.disk import delete_entry, holder_of, own, prune
from diffdemo.serving.fair_queue import STREAM_GRACE_S, FairQueue, limit_queue, stream_state
from diffdemo.serving.model_access import allowed_models, check_model
from diffdemo.serving.refusals import cut, log_refusal
from diffdemo.serving.uploads import UploadGate
from diffdemo.serving.work import TimeCapReached, capped, check_budget

__all__ = [
    "PUBLIC_MAX_EVALUATIONS", "PUBLIC_TIME_CAP_S", "STREAM_GRACE_S", "FairQueue", "Limits", "TimeCapReached",
    "UploadGate", "allowed_models", "capped", "check_budget", "check_model", "client_address", "cut", "delete_entry",
    "describe", "env_flag", "env_number", "holder_of", "is_public", "limit_queue", "limits", "log_refusal", "own",
    "prune", "request_address", "stream_state", "trust_only_our_hops",
]  # fmt: skip
